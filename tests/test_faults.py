"""The fault campaign (:mod:`app.campaigns.faults`): the campaigns use the ``oracle`` tree (no
learned models, fast) and ``vs_only`` with :class:`tests.fakes.truth_models.TruthModels` injected.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.campaigns import faults as fl
from app.errors import ConfigError
from tests.fakes.truth_models import TruthModels

CONTRACT = {"trials", "successes", "table_strikes", "self_collisions_or_limits", "unhandled_exceptions",
            "unnamed_failures", "transient"}
# Top-down grasps at the centre (as in tests/test_evaluate.py): the oracle needs no grasps file.
OBJECTS = """
name: tiny
objects:
  - {name: block, shape: box, size: [0.08, 0.03, 0.03], mass: 0.1, friction: 0.6, color: [0.2, 0.4, 0.9],
     grasps: [[0.0, 0.0, 0.0, 90.0], [0.02, 0.0, 0.0, 90.0]]}
  - {name: can, shape: cylinder, size: [0.03, 0.06], mass: 0.2, friction: 0.6, color: [0.8, 0.1, 0.1], round: true,
     grasps: [[0.0, 0.0, 0.01, 0.0]]}
"""


@pytest.fixture
def objects(tmp_path: Path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(OBJECTS)
    return str(path)


# ------------------------------------------------------------------------------ campaigns
def _args(out: Path, objects: str, kinds: str, tree: str = "oracle", trials: int = 2, *extra: str):
    return fl.build_parser().parse_args(["--tree", tree, "--kinds", kinds, "--objects", objects, "--trials",
                                         str(trials), "--seed", "0", "--out", str(out), "--workers", "1", "--gap", "none",
                                         *extra])


def test_oracle_campaign_writes_the_contract_and_resumes(tmp_path: Path, objects: str) -> None:
    out = tmp_path / "faults"
    code = fl.run_faults(_args(out, objects, "arm_reflex,gripper_fail", "oracle", 2, "--no-baseline"))
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["faults"]) == {"arm_reflex", "gripper_fail"}
    for kind, v in summary["faults"].items():
        assert CONTRACT <= set(v)
        assert v["trials"] == 2 and v["transient"] == (kind == "arm_reflex")
        assert v["table_strikes"] == 0 and v["self_collisions_or_limits"] == 0
        assert v["unhandled_exceptions"] == 0 and v["unnamed_failures"] == 0
        assert v["injected_trials"] == 2
    # The trees recover one reflex (Recover ... decorators call arm.recover() and resume towards
    # the same goal); an aborted grasp is retried ("Re-grasp": back off, approach, close again).
    assert summary["faults"]["arm_reflex"]["failures"] == {}
    assert summary["faults"]["arm_reflex"]["successes"] == 2
    assert summary["faults"]["gripper_fail"]["successes"] == 2
    assert summary["faults"]["gripper_fail"]["regrasps"] == 2 and summary["faults"]["gripper_fail"]["meets_target"]
    assert summary["faults"]["arm_reflex"]["meets_target"] is True
    assert summary["checks"]["all_zero"] and code == 0
    assert "| arm_reflex | tick >= 40 (moving) | yes | 2 | 2 | 2 |" in (out / "summary.md").read_text()
    assert (out / "rates.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the campaign's figure
    assert (out / "summary.md").read_text().endswith("![rates](rates.png)\n")
    lines = (out / fl.RESULTS).read_text().splitlines()
    assert sorted((json.loads(x)["kind"], json.loads(x)["trial"]) for x in lines) == [
        ("arm_reflex", 0), ("arm_reflex", 1), ("gripper_fail", 0), ("gripper_fail", 1)]
    with (out / fl.RESULTS).open("a") as f:
        f.write('{"tree": "oracle:arm_ref')  # a line torn by kill -9
    assert fl.run_faults(_args(out, objects, "arm_reflex,gripper_fail", "oracle", 2, "--no-baseline",
                               "--resume")) == 0
    assert (out / fl.RESULTS).read_text().splitlines() == lines  # repaired, nothing run twice
    with pytest.raises(ConfigError, match="pass --resume"):
        fl.run_faults(_args(out, objects, "arm_reflex", "oracle", 2))


def test_vs_only_campaign_with_truth_models(tmp_path: Path, objects: str) -> None:
    """A camera timeout during VS is held for a tick (Acquire Frame returns RUNNING) and the grasp
    goes on; a stale frame is ridden out; a corrupt checkpoint stops at start with exit code 2."""
    out = tmp_path / "faults"
    fl.run_faults(_args(out, objects, "frame_timeout,stale_frame,checkpoint_corrupt", "vs_only", 1,
                        "--no-baseline"), models_factory=TruthModels)
    lines = {r["kind"]: r for r in map(json.loads, (out / fl.RESULTS).read_text().splitlines())}
    timeout = lines["frame_timeout"]
    assert timeout["injected"] >= 1 and timeout["success"] and not timeout["exception"]
    assert lines["stale_frame"]["injected"] == 10 and lines["stale_frame"]["success"]
    assert lines["checkpoint_corrupt"]["exit_code"] == 2 and lines["checkpoint_corrupt"]["ticks"] == 0
    summary = json.loads((out / "summary.json").read_text())
    assert summary["faults"]["checkpoint_corrupt"]["successes"] == 1
    assert summary["checks"] == {"table_strikes": 0, "self_collisions_or_limits": 0, "unhandled_exceptions": 0,
                                 "unnamed_failures": 0, "all_zero": True}


def test_command_errors_are_one_line_exit_2(tmp_path: Path, objects: str, capsys: pytest.CaptureFixture) -> None:
    base = ["--objects", objects, "--out", str(tmp_path / "o"), "--trials", "1", "--workers", "1"]
    assert fl.main([*base, "--kinds", "frame_drop,gremlins"]) == 2
    assert "--kinds: unknown ['gremlins']" in capsys.readouterr().err
    empty = tmp_path / "no_weights"
    empty.mkdir()
    assert fl.main([*base, "--tree", "drl_gan_vs", "--kinds", "frame_drop", "--weights", str(empty)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "cyclegan.pt: missing" in err


def test_persistent_camera_failure_fails_at_acquire_frame_naming_it() -> None:
    """Held frames are bounded: after max_missed misses in a row the leaf fails with the error."""
    import py_trees

    from app.errors import HardwareError
    from behaviours.perception import AcquireFrame

    class DeadCamera:
        def get_frame(self):
            raise HardwareError("frame timeout after 100 ms")

    leaf = AcquireFrame(max_missed=3)
    leaf.setup(robot=SimpleNamespace(camera=DeadCamera()))
    statuses = [leaf.tick_once() or leaf.status for _ in range(4)]
    assert statuses == [py_trees.common.Status.RUNNING] * 3 + [py_trees.common.Status.FAILURE]
    assert "4 frames missed in a row, last: frame timeout after 100 ms" in leaf.feedback_message


def test_kill9_then_resume_keeps_every_fault_trial_once(tmp_path: Path, objects: str) -> None:
    """A fault campaign killed with SIGKILL after a result line, then resumed: every (kind,
    trial) exactly once and every line whole (the machinery is app.campaigns.engine's, tested there
    with several random kills)."""
    import os
    import signal
    import subprocess
    import sys

    from app import ROOT
    from tests.test_evaluate import _alive_in_group, _count_lines

    out = tmp_path / "faults"
    cmd = [sys.executable, "-m", "app.campaigns.faults", "--tree", "oracle", "--kinds", "depth_nan,latency_spike",
           "--objects", objects, "--trials", "4", "--seed", "0", "--out", str(out), "--workers", "2",
           "--no-baseline"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with (tmp_path / "log").open("w") as log:
        p = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90  # s: worker start-up plus the first trial
        while _count_lines(out / fl.RESULTS) < 1 and p.poll() is None and time.monotonic() < deadline:
            time.sleep(0.05)
        if p.poll() is None:
            p.send_signal(signal.SIGKILL)
        p.wait(timeout=30)
        deadline = time.monotonic() + 10
        while _alive_in_group(p.pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in _alive_in_group(p.pid):
            os.kill(pid, signal.SIGKILL)
        done = subprocess.run([*cmd, "--resume"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                              timeout=180)
    assert done.returncode == 0, (tmp_path / "log").read_text()[-2000:]
    lines = [json.loads(x) for x in (out / fl.RESULTS).read_text().splitlines()]
    assert sorted((r["kind"], r["trial"]) for r in lines) == sorted(
        (k, t) for k in ("depth_nan", "latency_spike") for t in range(4))


def _line(kind: str, success: bool, node: str = "", reason: str = "", injected: int = 1) -> dict:
    return {"kind": kind, "success": success, "outcome": "success" if success else "failure", "failed_node": node,
            "reason": reason, "injected": injected, "trial": 0, "object": "x", "regrasps": int(kind == "gripper_fail"),
            "reacquisitions": int(kind == "mask_empty")}


def test_recovery_targets_in_the_summary() -> None:
    """gripper_fail / mask_empty >= 90 %, object_push >= 95 % of the injected trials grasped;
    object_hidden: every failure a named give-up at "Reacquire Object"."""
    from app.campaigns.fault_report import build_fault_summary

    lines = ([_line("gripper_fail", True)] * 9 + [_line("gripper_fail", False, "Close Gripper", "empty")]
             + [_line("object_push", True)] * 9 + [_line("object_push", False, "Extract Features", "lost")]
             + [_line("mask_empty", True)] * 10
             + [_line("object_hidden", False, "Reacquire Object", "object not seen for 1.5 s")] * 3)
    summary = build_fault_summary(lines)["faults"]
    assert summary["gripper_fail"]["meets_target"] is True and summary["gripper_fail"]["regrasps"] == 9 + 1
    assert summary["object_push"]["meets_target"] is False  # 90 % < 95 %
    assert summary["mask_empty"]["meets_target"] is True and summary["mask_empty"]["reacquisitions"] == 10
    assert summary["object_hidden"]["meets_target"] is True
    other = build_fault_summary([_line("object_hidden", False, "Extract Features", "no object")])
    assert other["faults"]["object_hidden"]["meets_target"] is False
