"""The CLI contract: exit codes, one-line errors (no traceback), common flags everywhere."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from app import CONFIG_DIR, ROOT
from app.cli import COMMANDS, build_parser, main
from app.config import load_yaml
from app.errors import AppError


def _run(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "app", *argv], capture_output=True, text=True, timeout=300)


def test_show_tree_prints_the_tree() -> None:
    r = _run("--tree", "drl_gan_vs", "--show-tree")
    assert r.returncode == 0
    assert "Linear VS Step" in r.stdout and "Full VS Step" in r.stdout


@pytest.mark.parametrize("argv,needle", [
    (["--tree", "nonexistent"], "nonexistent.yaml: no such file"),
    (["--tree", "oracle", "--domain", "nowhere"], "nowhere.yaml: no such file"),
    (["--tree", "oracle", "--object", "unicorn"], "no object 'unicorn'"),
    (["--tree", "oracle", "--seed", "abc"], "invalid int value"),
    (["bench", "nothing"], "invalid choice"),
])
def test_usage_errors_are_one_line_exit_2(argv, needle) -> None:
    r = _run(*argv)
    assert r.returncode == 2, r.stderr
    assert needle in r.stderr
    assert "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_common_flags_after_any_subcommand() -> None:
    p = build_parser()
    for cmd in (["bench", "sim"], ["calibrate"], ["dataset", "--out", "x"], ["train", "ppo"], ["inspect", "d"]):
        args = p.parse_args([*cmd, "--seed", "3", "--objects", "seen,unseen", "--domain", "real", "--episodes", "2",
                             "--log-dir", "L", "--backend", "sim", "--record"])
        assert (args.seed, args.objects, args.episodes, args.log_dir, args.record) == (3, "seen,unseen", 2, "L", True)


def _documented() -> list[str]:
    """The command of each row of the README's command table ('' for the main job)."""
    text = (ROOT / "README.md").read_text()
    table = text[text.index("## Command line"):text.index("Common flags (after any command)")]
    rows = re.findall(r"^\| `python -m app ?([^`]*)`", table, flags=re.MULTILINE)
    return list(dict.fromkeys("" if not r or r.startswith("-") else r.split()[0] for r in rows))


def test_every_command_is_documented() -> None:
    assert set(_documented()) == {"", "grasps", "compliant", *COMMANDS}


@pytest.mark.parametrize("command", _documented())
def test_every_documented_command_answers_help(command: str, capsys: pytest.CaptureFixture) -> None:
    """``python -m app [COMMAND] --help`` parses (in process: imports and flag definitions hold) and exits 0."""
    with pytest.raises(SystemExit) as e:
        main([command, "--help"] if command else ["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith("usage:") and "--help" in out


@pytest.mark.parametrize("module", ["app.campaigns.evaluate", "app.campaigns.faults"])
def test_campaign_modules_run_on_their_own(module: str, capsys: pytest.CaptureFixture) -> None:
    """``python -m app.campaigns.evaluate --help`` (how workers import them): same common flags."""
    import importlib

    with pytest.raises(SystemExit) as e:
        importlib.import_module(module).main(["--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    assert f"python -m {module}" in out and "--seed" in out and "--out" in out


def test_episodes_must_be_positive(capsys) -> None:
    assert main(["--tree", "oracle", "--episodes", "0"]) == 2
    assert "--episodes" in capsys.readouterr().err


def test_unreachable_robot_exits_3() -> None:
    r = _run("--tree", "vs_only", "--backend", "real", "--robot-host", "127.0.0.1")
    assert r.returncode in (2, 3), r.stderr  # 3: hardware; 2 if the weights are missing first
    assert "Traceback" not in r.stderr and len(r.stderr.strip().splitlines()) == 1


CONFIGS = ["faults.yaml", "hardware.yaml", "vs.yaml", "env.yaml", "safety.yaml", "domains/real.yaml", "objects/seen.yaml",
           "trees/drl_gan_vs.yaml"]
junk = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                 st.text(max_size=8), st.lists(st.integers(), max_size=4), st.dictionaries(st.text(max_size=4), st.integers(), max_size=2))


def _mutate(data, path: list, value):
    node = data
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    return data


def _paths(data, prefix=()):
    if isinstance(data, dict):
        for k, v in data.items():
            yield (*prefix, k)
            yield from _paths(v, (*prefix, k))
    elif isinstance(data, list):
        for i, v in enumerate(data):
            yield (*prefix, i)
            yield from _paths(v, (*prefix, i))


def _loader(name: str):
    from app.controllers.vs import load_vs_params
    from app.hardware_config import load_hardware
    from app.robot.fault_injection import load_faults
    from app.robot.safety import load_safety
    from app.sim.domain import load_domain
    from app.sim.objects import load_object_set
    from app.sim.pose_env import load_env_config
    from app.tree_config import load_tree_config

    return {"faults.yaml": load_faults, "hardware.yaml": load_hardware, "vs.yaml": load_vs_params, "env.yaml": load_env_config,
            "safety.yaml": load_safety, "domains/real.yaml": lambda p: load_domain(str(p)),
            "objects/seen.yaml": lambda p: load_object_set(str(p)),
            "trees/drl_gan_vs.yaml": lambda p: load_tree_config(str(p))}[name]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.sampled_from(CONFIGS), st.data())
def test_fuzzed_config_files_never_escape_as_tracebacks(tmp_path, name, data) -> None:
    original = load_yaml(CONFIG_DIR / name)
    paths = list(_paths(original))
    path = data.draw(st.sampled_from(paths))
    value = data.draw(junk)
    mutated = _mutate(yaml.safe_load(yaml.safe_dump(original)), list(path), value)
    f = tmp_path / name.replace("/", "_")
    f.write_text(yaml.safe_dump(mutated))
    try:
        _loader(name)(f)
    except AppError as e:
        assert "\n" not in str(e)
