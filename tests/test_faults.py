"""Fault injection: each injector at its interface, the model-loader faults, the campaign.

Interface tests drive the wrappers of one simulator session by hand (a frame, a command, one
control period); the campaigns use the ``oracle`` tree (no learned models, fast) and ``vs_only``
with :class:`tests.fakes.truth_models.TruthModels` injected.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from app import faults as fl
from app.errors import CheckpointError, ConfigError, HardwareError
from app.interfaces import MotionStatus, Robot
from app.perception import load_perception
from app.sim.pybullet_world import SEG_OBJECT
from app.sim.session import SimSession
from app.transforms import Pose
from tests.fakes.truth_models import TruthModels

CONTRACT = {"trials", "successes", "unsafe_commands", "unhandled_exceptions", "unnamed_failures", "transient"}
# Top-down grasps at the centre (as in tests/test_evaluate.py): the oracle needs no grasps file.
OBJECTS = """
name: tiny
objects:
  - {name: block, shape: box, size: [0.08, 0.03, 0.03], mass: 0.1, friction: 0.6, color: [0.2, 0.4, 0.9],
     grasps: [[0.0, 0.0, 0.0, 90.0], [0.02, 0.0, 0.0, 90.0]]}
  - {name: can, shape: cylinder, size: [0.03, 0.06], mass: 0.2, friction: 0.6, color: [0.8, 0.1, 0.1], round: true,
     grasps: [[0.0, 0.0, 0.01, 0.0]]}
"""


@pytest.fixture(scope="module")
def session(seen) -> Iterator[SimSession]:
    """One world for the interface tests, the sugar box in view."""
    s = SimSession(domain="real", seed=0)
    s.reset(seen.get("sugar_box"), 11)
    yield s
    s.close()


@pytest.fixture
def faulty(session: SimSession) -> Iterator[Callable[..., tuple[Robot, fl.FaultInjector]]]:
    """``faulty(kind, **timing_and_params)``: the session's robot behind one fault; the plain
    robot is put back (and the arm stopped and recovered) after the test."""
    plain = session.robot

    def make(kind: str, rate: float | None = None, at: int | None = None, phase: str = "any",
             duration: int = 1, **params: object) -> tuple[Robot, fl.FaultInjector]:
        session.robot = plain
        spec = fl.FaultSpec(kind, rate=rate, at=at, phase=phase, duration=duration, params=dict(params))
        inj = fl.inject_sim(session, [spec], np.random.default_rng(0))
        return session.robot, inj

    yield make
    session.robot = plain
    session.arm.recover()
    session.gripper.open()


@pytest.fixture
def objects(tmp_path: Path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(OBJECTS)
    return str(path)


def _seqs(robot: Robot, ticks: int) -> list[int]:
    """Frame numbers seen over ``ticks`` control periods."""
    out = []
    for _ in range(ticks):
        out.append(robot.camera.get_frame().seq)
        robot.clock.advance()
    return out


# ------------------------------------------------------------------------------ configuration
def test_shipped_file_has_every_kind_with_one_timing() -> None:
    specs = fl.load_faults()
    assert list(specs) == list(fl.KINDS)
    for kind, s in specs.items():
        assert (kind in fl.CHECKPOINT_KINDS) == (s.rate is None and s.at is None), kind
    assert specs["frame_drop"].param("mode") == "repeat"
    assert fl.FaultSpec("depth_nan").param("size_px") == 12  # defaults when built in code


@pytest.mark.parametrize(("edit", "match"), [
    (("  rate: 0.10", "  at: 3\n  rate: 0.10"), "key 'frame_drop': expected exactly one of 'rate' and 'at'"),
    (("  rate: 0.05", "  rate: 1.5"), r"key 'latency_spike.rate': expected a number in \[0.0, 1.0\]"),
    (("  phase: moving", "  phase: sometimes"), "key 'arm_reflex.phase': expected one of"),
    (("  mode: repeat", "  mode: repeat\n  colour: red"), "unknown key 'frame_drop.colour'"),
    (("checkpoint_missing:", "checkpoint_gone: {}\ncheckpoint_missing:"), "unknown key 'checkpoint_gone'"),
])
def test_bad_fault_file_is_one_line_error(tmp_path: Path, edit: tuple[str, str], match: str) -> None:
    text = (Path(fl.CONFIG_DIR) / "faults.yaml").read_text()
    assert edit[0] in text
    path = tmp_path / "faults.yaml"
    path.write_text(text.replace(edit[0], edit[1], 1))
    with pytest.raises(ConfigError, match=match):
        fl.load_faults(path)


# ------------------------------------------------------------------------------ camera
def test_frame_timeout_raises_at_its_tick_only(faulty) -> None:
    robot, inj = faulty("frame_timeout", at=3, timeout_ms=250)
    robot.camera.get_frame()
    robot.clock.advance()
    robot.clock.advance()  # tick 3
    with pytest.raises(HardwareError, match="frame timeout: no frame within 250 ms"):
        robot.camera.get_frame()
    robot.clock.advance()
    assert robot.camera.get_frame().seq > 0  # one event: the camera is back
    assert [(e.tick, e.kind) for e in inj.events] == [(3, "frame_timeout")]


def test_frame_drop_repeats_the_previous_frame_or_raises(faulty) -> None:
    robot, inj = faulty("frame_drop", rate=1.0)
    seqs = _seqs(robot, 4)
    assert len(set(seqs)) == 1  # every later tick repeats the first frame, seq and all
    assert len(inj.events) == 3
    robot, _ = faulty("frame_drop", rate=1.0, mode="raise")
    with pytest.raises(HardwareError, match="frame dropped"):
        robot.camera.get_frame()


def test_stale_frame_repeats_seq_and_timestamp_for_its_duration(faulty) -> None:
    robot, _ = faulty("stale_frame", at=3, duration=3)
    frames = []
    for _ in range(7):
        frames.append(robot.camera.get_frame())
        robot.clock.advance()
    # Expected: ticks 1, 2 new; 3, 4, 5 repeat tick 2's frame; 6, 7 new again.
    seqs = [f.seq for f in frames]
    assert seqs[2] == seqs[3] == seqs[4] == seqs[1]
    assert seqs[0] < seqs[1] < seqs[5] < seqs[6]
    assert frames[4].timestamp == frames[1].timestamp < frames[5].timestamp


def test_depth_nan_and_depth_zero_damage_depth_only(faulty, session: SimSession) -> None:
    robot, _ = faulty("depth_nan", rate=1.0, patches=3, size_px=10, on_object=True)
    frame = robot.camera.get_frame()
    nan = np.isnan(frame.depth)
    assert 10 * 10 <= nan.sum() <= 3 * 10 * 10
    obj = session.camera.last_raw().mask == SEG_OBJECT
    vs, us = np.nonzero(obj)
    assert nan[int(vs.mean()), int(us.mean())]  # the first patch sits on the object
    assert np.array_equal(frame.rgb, session.camera.get_frame().rgb)
    robot, _ = faulty("depth_zero", rate=1.0, region="frame")
    robot.clock.advance()
    assert not robot.camera.get_frame().depth.any()
    robot, _ = faulty("depth_zero", rate=1.0, region="object")
    robot.clock.advance()
    depth = robot.camera.get_frame().depth
    obj = session.camera.last_raw().mask == SEG_OBJECT
    assert not depth[obj].any() and depth[~obj].any()


@pytest.mark.parametrize("kind", ["mask_empty", "object_hidden"])
def test_mask_empty_paints_the_object_as_table(faulty, session: SimSession, kind: str) -> None:
    robot, inj = faulty(kind, at=1, duration=2)
    hidden = robot.camera.get_frame()
    clean = session.camera.get_frame()  # the same tick, unfaulted
    obj = session.camera.last_raw().mask == SEG_OBJECT
    table = session.camera.last_raw().mask == 0
    table_rgb = np.median(clean.rgb[table], axis=0)
    before = np.abs(np.median(clean.rgb[obj], axis=0) - table_rgb).max()
    after = np.abs(np.median(hidden.rgb[obj], axis=0) - table_rgb).max()
    assert after < 0.25 * before  # the object's pixels now look like the table
    table_depth = np.median(clean.depth[table & (clean.depth > 0)])
    assert np.median(hidden.depth[obj]) == pytest.approx(table_depth, abs=0.02)  # 2 cm: the table's slope
    assert np.median(clean.depth[obj]) < table_depth - 0.03  # the box stood 7 cm proud of it
    assert {e.kind for e in inj.events} == {kind}
    robot.clock.advance()
    robot.clock.advance()  # tick 3: the occluder is gone
    assert np.array_equal(robot.camera.get_frame().rgb, session.camera.get_frame().rgb)


def _line(kind: str, success: bool, node: str = "", reason: str = "", injected: int = 1) -> dict:
    return {"kind": kind, "success": success, "outcome": "success" if success else "failure", "failed_node": node,
            "reason": reason, "injected": injected, "trial": 0, "object": "x", "regrasps": int(kind == "gripper_fail"),
            "reacquisitions": int(kind == "mask_empty")}


def test_recovery_targets_in_the_summary() -> None:
    """gripper_fail / mask_empty >= 90 %, object_push >= 95 % of the injected trials grasped;
    object_hidden: every failure a named give-up at "Reacquire Object"."""
    lines = ([_line("gripper_fail", True)] * 9 + [_line("gripper_fail", False, "Close Gripper", "empty")]
             + [_line("object_push", True)] * 9 + [_line("object_push", False, "Extract Features", "lost")]
             + [_line("mask_empty", True)] * 10
             + [_line("object_hidden", False, "Reacquire Object", "object not seen for 1.5 s")] * 3)
    summary = fl.build_fault_summary(lines)["faults"]
    assert summary["gripper_fail"]["meets_target"] is True and summary["gripper_fail"]["regrasps"] == 10
    assert summary["object_push"]["meets_target"] is False  # 90 % < 95 %
    assert summary["mask_empty"]["meets_target"] is True and summary["mask_empty"]["reacquisitions"] == 10
    assert summary["object_hidden"]["meets_target"] is True
    other = fl.build_fault_summary([_line("object_hidden", False, "Extract Features", "no object")])
    assert other["faults"]["object_hidden"]["meets_target"] is False


def test_latency_spike_costs_wall_time_not_sim_time(faulty) -> None:
    robot, inj = faulty("latency_spike", rate=1.0, sleep_s=0.05)
    t_sim, t0 = robot.clock.now(), time.perf_counter()
    robot.camera.get_frame()
    assert time.perf_counter() - t0 >= 0.05
    assert robot.clock.now() == t_sim and inj.events[0].kind == "latency_spike"


# ------------------------------------------------------------------------------ arm, gripper, world
def _small_move(robot: Robot) -> Pose:
    return robot.arm.pose() @ Pose(np.array([0.0, 0.0, 0.02]), np.eye(3))  # 2 cm along the approach


def test_arm_reflex_fails_once_mid_motion_and_recover_clears_it(faulty, session: SimSession) -> None:
    robot, inj = faulty("arm_reflex", at=1, phase="moving")
    robot.clock.advance()  # not moving: no reflex yet
    assert robot.arm.motion_status() != MotionStatus.FAILED
    robot.arm.move_to(_small_move(robot))
    assert robot.arm.motion_status() == MotionStatus.MOVING
    robot.clock.advance()  # mid-motion: the reflex
    assert robot.arm.motion_status() == MotionStatus.FAILED
    assert robot.arm.motion_error().startswith("reflex: motion aborted by reflex")
    sent = session.arm.commands
    robot.arm.move_to(_small_move(robot))  # refused until recover()
    robot.arm.command_velocity(np.zeros(6))
    assert session.arm.commands == sent and robot.arm.motion_status() == MotionStatus.FAILED
    robot.arm.recover()
    assert robot.arm.motion_status() == MotionStatus.IDLE and robot.arm.motion_error() == ""
    robot.arm.move_to(_small_move(robot))
    for _ in range(30):  # 1 s: a 2 cm move at 0.25 m/s needs ~0.1 s
        robot.clock.advance()
    assert robot.arm.motion_status() == MotionStatus.DONE  # one reflex only
    assert [e.detail for e in inj.events] == ["cartesian_reflex", "recovered"]
    assert inj.arm is not None and inj.arm.refused == 2 and inj.arm.unsafe == []


def test_arm_audit_flags_commands_outside_the_envelope(faulty) -> None:
    robot, inj = faulty("arm_reflex", at=10_000)  # never fires: the audit alone
    robot.arm.move_to(_small_move(robot))
    robot.arm.command_velocity(np.array([0.01, 0, 0, 0, 0, 0]))
    assert inj.arm is not None and inj.arm.unsafe == [] and inj.arm.audited == 2
    robot.arm.move_to(Pose(np.array([0.5, 0.0, -0.2]), np.eye(3)))  # below the table
    robot.arm.command_velocity(np.array([5.0, 0, 0, 0, 0, 0]))  # 5 m/s
    robot.arm.stop()
    assert len(inj.arm.unsafe) == 2
    assert "outside the workspace" in inj.arm.unsafe[0] and "speed" in inj.arm.unsafe[1]


def test_gripper_fail_ends_not_grasped_once(faulty, session: SimSession) -> None:
    robot, inj = faulty("gripper_fail", at=1, busy_ticks=3)
    robot.gripper.grasp(0.04, 30.0)
    busy = []
    for _ in range(4):
        busy.append(robot.gripper.busy())
        robot.clock.advance()
    assert busy == [True, True, True, False]
    assert not robot.gripper.is_grasped()
    assert robot.gripper.width() == pytest.approx(session.hw.max_width, abs=0.002)  # fingers stayed open
    robot.gripper.open()
    robot.gripper.grasp(0.04, 30.0)  # one event: this grasp runs
    robot.clock.advance()
    assert robot.gripper.width() < session.hw.max_width - 0.002
    assert [e.kind for e in inj.events] == ["gripper_fail"]


def test_object_push_moves_the_object_during_vs_only(faulty, session: SimSession) -> None:
    robot, inj = faulty("object_push", at=1, phase="vs", distance_m=0.03, yaw_deg=0.0)
    before = session.world.object_pose().position
    robot.clock.advance()  # no velocity command yet: not VS
    assert np.linalg.norm(session.world.object_pose().position - before) < 0.002
    robot.arm.command_velocity(np.zeros(6))
    robot.clock.advance()
    moved = session.world.object_pose().position - before
    assert np.hypot(*moved[:2]) == pytest.approx(0.03, abs=0.005)  # 5 mm: one period of settling
    assert [e.kind for e in inj.events] == ["object_push"]


# ------------------------------------------------------------------------------ model loader
@pytest.mark.parametrize(("kind", "params", "match"), [
    ("checkpoint_missing", {}, r"cyclegan\.pt: missing"),
    ("checkpoint_corrupt", {"mode": "garbage"}, r"cyclegan\.pt: cannot load as plain tensors"),
    ("checkpoint_corrupt", {"mode": "truncate"}, r"cyclegan\.pt: cannot load as plain tensors"),
])
def test_checkpoint_faults_are_refused_in_one_line(tmp_path: Path, kind: str, params: dict, match: str) -> None:
    source = tmp_path / "shipped"
    source.mkdir()
    import torch

    torch.save({"format": "simgrasp-cyclegan-inference", "blob": torch.zeros(256)}, source / "cyclegan.pt")
    spec = fl.FaultSpec(kind, params=params)
    weights = fl.faulty_weights(spec, source, tmp_path / "w", np.random.default_rng(0))
    if kind == "checkpoint_corrupt" and params["mode"] == "truncate":
        assert (weights / "cyclegan.pt").stat().st_size == (source / "cyclegan.pt").stat().st_size // 2
    with pytest.raises(CheckpointError, match=match) as e:
        load_perception(weights, threads=1)
    assert "\n" not in str(e.value) and e.value.exit_code == 2
    rec = fl.checkpoint_trial(spec, source, np.random.default_rng(0))
    assert rec["success"] and rec["exit_code"] == 2 and rec["ticks"] == 0 and rec["outcome"] == "refused"
    assert rec["reason"].startswith("<weights>/cyclegan.pt")


# ------------------------------------------------------------------------------ campaigns
def _args(out: Path, objects: str, kinds: str, tree: str = "oracle", trials: int = 2, *extra: str):
    return fl.build_parser().parse_args(["--tree", tree, "--kinds", kinds, "--objects", objects, "--trials",
                                         str(trials), "--seed", "0", "--out", str(out), "--workers", "1", *extra])


def test_oracle_campaign_writes_the_contract_and_resumes(tmp_path: Path, objects: str) -> None:
    out = tmp_path / "faults"
    code = fl.run_faults(_args(out, objects, "arm_reflex,gripper_fail", "oracle", 2, "--no-baseline"))
    summary = json.loads((out / "summary.json").read_text())
    assert set(summary["faults"]) == {"arm_reflex", "gripper_fail"}
    for kind, v in summary["faults"].items():
        assert CONTRACT <= set(v)
        assert v["trials"] == 2 and v["transient"] == (kind == "arm_reflex")
        assert v["unsafe_commands"] == 0 and v["unhandled_exceptions"] == 0 and v["unnamed_failures"] == 0
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
    assert summary["checks"] == {"unsafe_commands": 0, "unhandled_exceptions": 0, "unnamed_failures": 0,
                                 "all_zero": True}


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
    trial) exactly once and every line whole (the machinery is app.evaluate's, tested there
    with several random kills)."""
    import os
    import signal
    import subprocess
    import sys

    from app import ROOT
    from tests.test_evaluate import _alive_in_group, _count_lines

    out = tmp_path / "faults"
    cmd = [sys.executable, "-m", "app.faults", "--tree", "oracle", "--kinds", "depth_nan,latency_spike",
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
