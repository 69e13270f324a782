"""The README's two commands are the contract: CI runs the test command verbatim."""

import re

from app import ROOT


def _commands() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text[text.index("## The two commands"):text.index("## Command line")]
    return re.findall(r"```bash\n(.+?)\n```", section)


def test_two_commands_main_job_and_tests() -> None:
    run, test = _commands()
    assert run.endswith("python -m app --tree drl_gan_vs")
    assert test.endswith("python -m pytest -q")
    assert "torch" not in run  # torch comes pinned from setup.cfg
    assert "torch==2.13.0" in (ROOT / "setup.cfg").read_text()


def test_ci_runs_the_readme_test_command() -> None:
    _, test = _commands()
    assert test in (ROOT / ".ci" / "run").read_text()
