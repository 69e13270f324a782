"""Fault injection (:mod:`app.robot.fault_injection`): each injector at its interface, and the
damaged weights directories of the model-loader faults.

The tests drive the wrappers of one simulator session by hand (a frame, a command, one control
period).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest

from app.errors import CheckpointError, ConfigError, HardwareError
from app.perception import load_perception
from app.robot import fault_injection as fl
from app.robot.interfaces import MotionStatus, Robot
from app.sim.pybullet_world import SEG_OBJECT
from app.sim.session import SimSession
from app.transforms import Pose


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
    assert [e.detail for e in inj.events] == ["communication_constraints_violation", "recovered"]
    assert inj.arm is not None and inj.arm.refused == 2


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
    from app.campaigns.faults import checkpoint_trial  # the campaign's trial of a loader fault

    rec = checkpoint_trial(spec, source, np.random.default_rng(0))
    assert rec["success"] and rec["exit_code"] == 2 and rec["ticks"] == 0 and rec["outcome"] == "refused"
    assert rec["reason"].startswith("<weights>/cyclegan.pt")


