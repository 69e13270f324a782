"""``python -m app lab``: every stage on a tiny budget, a kill mid-way, resume, summary."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml

from app.cli import main
from app.sim.domain import load_domain
from app.tools import lab

LAB = "config/domains/lab_cool.yaml"
TINY = ["--n", "8", "--epochs", "1", "--recipe", "tests/data/cyclegan_tiny.yaml", "--trials", "1",
        "--object", "tuna_can", "--eval-episodes", "1", "--eval-images", "2", "--latency-frames", "1", "--workers", "1"]


def test_lab_needs_a_domain_and_checks_it_before_work(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["lab", "--out", str(tmp_path / "a")]) == 2
    assert "--domain PATH.yaml is required" in capsys.readouterr().err
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: x\nrender: 3\n")
    assert main(["lab", "--domain", str(bad), "--out", str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "bad.yaml" in err
    assert not (tmp_path / "b" / "data").exists()


@pytest.mark.slow
def test_lab_end_to_end_survives_a_kill(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "lab"
    argv = ["lab", "--domain", LAB, "--out", str(out), *TINY]
    real_stage = lab.RUNNERS["eval_models"]

    def killed(a: object, o: Path) -> None:
        raise KeyboardInterrupt

    monkeypatch.setitem(lab.RUNNERS, "eval_models", killed)
    assert main(argv) == 130  # Ctrl-C / kill during eval-models
    assert sorted(p.stem for p in (out / "stages").glob("*.done")) == ["dataset", "train", "weights"]
    monkeypatch.setitem(lab.RUNNERS, "eval_models", real_stage)
    assert main(argv) == 2  # a lab run is there: --resume or another --out
    assert "expected --resume" in capsys.readouterr().err
    trained = (out / "train" / "cyclegan.pt").stat().st_mtime_ns
    assert main([*argv, "--resume"]) == 0
    assert (out / "train" / "cyclegan.pt").stat().st_mtime_ns == trained  # finished stages are not redone
    assert sorted(p.stem for p in (out / "stages").glob("*.done")) == sorted(lab.STAGES)
    sha = load_domain(LAB).sha256
    assert yaml.safe_load((out / "weights" / "training_domain.yaml").read_text()) == {"name": "lab_cool", "sha256": sha}
    metrics = json.loads((out / "eval_models" / "model_metrics.json").read_text())
    assert metrics["domain_sha256"] == sha and metrics["weights"] == str(out / "weights")
    for stage in ("before", "after"):
        rows = [json.loads(x) for x in (out / stage / "results.jsonl").read_text().splitlines()]
        assert [(r["tree"], r["object"], r["domain_sha256"]) for r in rows] == [("drl_gan_vs", "tuna_can", sha)]
        assert rows[0]["weights"] == (None if stage == "before" else str(out / "weights"))
        assert (rows[0]["split"], rows[0]["gap"]) == ("test", "lab")  # lab results report on test seeds
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# Lab `lab_cool`") and "this lab's own (`weights/`) | " in summary
    assert "8 sim + 8 lab images" in summary and "1 epochs" in summary
    assert "evaluations on `test` seeds, physical gap `lab`" in summary


def test_lab_passes_split_and_gap_to_its_evaluations(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """``--split`` and ``--gap`` reach the before/after campaigns and the reproducing command."""
    from app.campaigns import evaluate
    from app.cli import build_parser

    seen: list[object] = []
    monkeypatch.setattr(evaluate, "run_evaluate", lambda ns: seen.append((ns.split, ns.gap, ns.weights)))
    a = build_parser().parse_args(["lab", "--domain", LAB, "--out", str(tmp_path), "--split", "dev", "--gap", "none"])
    lab.RUNNERS["after"](a, tmp_path)
    assert seen == [("dev", "none", str(tmp_path / "weights"))]
    assert lab.command_line(a).endswith("--split dev --gap none")
    default = build_parser().parse_args(["lab", "--domain", LAB, "--out", str(tmp_path)])
    assert default.split == "test" and "--split" not in lab.command_line(default)


def test_lab_on_the_robot_collects_trains_and_leaves_evaluation_to_the_robot(tmp_path: Path) -> None:
    """``--backend real`` with the panda_py fake and a stub camera: homed collection (placements of
    ``--prompt-every`` images, unattended), sim half rendered, training, weights that record the
    robot lab; no simulated stages."""
    from app.cli import build_parser
    from app.hardware_config import load_hardware
    from models.dataset import read_index
    from tests.test_dataset_builder import _connect, _fake

    out = tmp_path / "lab"
    args = build_parser().parse_args(["lab", "--backend", "real", "--out", str(out), "--n", "3", "--epochs", "1",
                                      "--recipe", "tests/data/cyclegan_tiny.yaml", "--prompt-every", "2", "--no-prompt"])
    fake = _fake()
    assert lab.run_lab(args, connect=_connect(load_hardware(), fake)) == 0
    idx = read_index(out / "data")
    assert (len(idx["domains"]["sim"]), len(idx["domains"]["real"])) == (3, 3)
    assert [s["placement"] for s in idx["domains"]["real"]] == [0, 0, 1]  # --prompt-every 2 reached the collection
    assert fake.calls_to("Panda.move_to_pose")  # the lab images came from the (fake) arm
    assert sorted(p.stem for p in (out / "stages").glob("*.done")) == ["dataset", "train", "weights"]
    rec = yaml.safe_load((out / "weights" / "training_domain.yaml").read_text())
    assert rec["name"] == "robot" and len(rec["sha256"]) == 64
    summary = (out / "summary.md").read_text()
    assert summary.startswith("# Lab on the robot") and "--backend real --weights" in summary
    assert "--backend real --prompt-every 2 --no-prompt`" in summary  # the command that reproduces it
    assert not (out / "eval_models").exists() and not (out / "after").exists()
