"""PandaArm, PandaGripper and RealSession against a fake of panda_py, and the fake against the
real panda_py's API (so the fake cannot drift from what the backend will meet on the robot)."""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import re
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import panda_py
import panda_py.controllers
import panda_py.libfranka
import pytest

from app.errors import HardwareError, HardwareUnavailable, InputError
from app.hardware import panda as panda_backend
from app.hardware.panda import HAND_FROM_GRIPPER, PandaArm, PandaGripper
from app.hardware.real_session import RealClock, RealSession
from app.hardware_config import HardwareConfig, load_hardware
from app.robot.interfaces import Arm, Camera, Frame, Gripper, Intrinsics, MotionStatus
from app.transforms import Pose, rot_x, rot_z
from tests.fakes import FakePandaPy

HOST = "172.16.0.2"


@pytest.fixture(scope="module")
def hw() -> HardwareConfig:
    return load_hardware()


def _wait(condition: Callable[[], bool], timeout: float = 2.0) -> None:
    """Poll ``condition`` every millisecond until it holds (fails after ``timeout`` seconds)."""
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not met in time"
        time.sleep(0.001)


# ---------------------------------------------------------------------------- API conformance
def _balanced(text: str, open_at: int) -> str:
    """The text inside the bracket opening at ``open_at``, up to its matching close."""
    depth, quote = 0, ""
    for i in range(open_at, len(text)):
        c = text[i]
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{<":
            depth += 1
        elif c in ")]}>" and not (c == ">" and text[i - 1] == "-"):
            depth -= 1
            if depth == 0:
                return text[open_at + 1:i]
    raise ValueError(f"unbalanced signature: {text}")


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets and quotes."""
    parts, depth, quote, start = [], 0, "", 0
    for i, c in enumerate(text):
        if quote:
            quote = "" if c == quote else quote
        elif c in "'\"":
            quote = c
        elif c in "([{<":
            depth += 1
        elif c in ")]}>":
            depth -= 1
        elif c == "," and depth == 0:
            parts.append(text[start:i])
            start = i + 1
    parts.append(text[start:])
    return [p.strip() for p in parts if p.strip()]


def real_signatures(func: Any, name: str) -> list[list[tuple[str, bool]]]:
    """Overloads of a pybind11 function as [(parameter name, has default)], without ``self``.

    pybind11 functions have no ``inspect.signature``; their docstrings start with one
    signature line per overload, ``name(self: T, a: int, b: float = 0.2) -> R``.
    """
    try:
        found = [p for p in inspect.signature(func).parameters.values() if p.name != "self"]
    except (TypeError, ValueError):
        found = None
    variadic = (inspect.Parameter.VAR_POSITIONAL, inspect.Parameter.VAR_KEYWORD)
    if found is not None and not any(p.kind in variadic for p in found):
        return [[(p.name, p.default is not inspect.Parameter.empty) for p in found]]
    overloads = []
    for line in (func.__doc__ or "").splitlines():
        m = re.match(rf"\s*(?:\d+\.\s+)?{re.escape(name)}\(", line)
        if not m:
            continue
        params = _split_top(_balanced(line, m.end() - 1))
        if any(p.startswith("*") for p in params):  # the "(*args, **kwargs)" overload header
            continue
        overloads.append([(p.split(":")[0].split("=")[0].strip(), " = " in p)
                          for p in params if not p.startswith("self")])
    return overloads


def _fake_members(cls: type) -> dict[str, Any]:
    """Public members (and ``__init__``) that a fake class defines itself."""
    out: dict[str, Any] = {}
    for klass in reversed(cls.__mro__[:-1]):  # skip object
        for name, member in vars(klass).items():
            if name == "__init__" or not name.startswith("_"):
                out[name] = member
    return out


FAKE = FakePandaPy()
API_PAIRS = [
    (FAKE.Panda, panda_py.Panda),
    (FAKE.controllers.CartesianImpedance, panda_py.controllers.CartesianImpedance),
    (FAKE.libfranka.Gripper, panda_py.libfranka.Gripper),
    (FAKE.libfranka.GripperState, panda_py.libfranka.GripperState),
]


@pytest.mark.parametrize(("fake", "real"), API_PAIRS, ids=lambda c: c.__name__)
def test_fake_matches_real_panda_py_api(fake: type, real: type) -> None:
    assert fake.__name__ == real.__name__
    for name, member in _fake_members(fake).items():
        real_member = inspect.getattr_static(real, name, None)
        assert real_member is not None, f"panda_py {real.__name__} has no {name}"
        if isinstance(member, property):
            assert isinstance(real_member, property), f"{real.__name__}.{name} is not a property"
            continue
        assert callable(member) and not isinstance(real_member, property), name
        overloads = real_signatures(getattr(real, name), name)
        if name == "__init__" and not overloads:
            continue  # no public constructor (GripperState): the fake's own is test-only
        assert overloads, f"cannot read the signature of {real.__name__}.{name}"
        ours = [(p.name, p.default is not inspect.Parameter.empty)
                for p in inspect.signature(member).parameters.values() if p.name != "self"]
        # The fake takes a prefix of one real overload, with the same names and the same
        # required/optional split; what it leaves out must be optional on the real one.
        assert any(len(o) >= len(ours) and o[:len(ours)] == ours and all(d for _, d in o[len(ours):])
                   for o in overloads), f"{real.__name__}.{name}{ours} matches none of {overloads}"


def test_conformance_parser_reads_overloads() -> None:
    overloads = real_signatures(panda_py.Panda.move_to_pose, "move_to_pose")
    names = [[n for n, _ in o][:3] for o in overloads]
    assert ["position", "orientation", "speed_factor"] in names
    grasp = real_signatures(panda_py.libfranka.Gripper.grasp, "grasp")
    assert grasp == [[("width", False), ("speed", False), ("force", False),
                      ("epsilon_inner", True), ("epsilon_outer", True)]]


def test_backend_imports_panda_py_lazily() -> None:
    import sys

    source = inspect.getsource(panda_backend)
    assert not re.search(r"^\s*(import|from) panda_py", source, re.M)
    assert importlib.import_module("app.hardware.panda") is sys.modules["app.hardware.panda"]


def test_missing_panda_py_is_unavailable(hw: HardwareConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(name: str) -> Any:
        raise ImportError(f"No module named '{name}'")

    monkeypatch.setattr(panda_backend.importlib, "import_module", refuse)
    with pytest.raises(HardwareUnavailable, match="panda_py cannot be imported"):
        PandaArm(HOST, hw)


def test_hand_rotation_matches_simulator() -> None:
    from app.sim.pybullet_world import HAND_FROM_GRIPPER as SIM

    np.testing.assert_array_equal(HAND_FROM_GRIPPER, SIM)


# ---------------------------------------------------------------------------- connection
def test_connection_failure_is_one_line(hw: HardwareConfig) -> None:
    fake = FakePandaPy(refuse_connection=True)
    with pytest.raises(HardwareUnavailable, match=rf"^cannot reach the robot at {HOST}: "
                                                  "libfranka: Connection timeout Check") as e:
        PandaArm(HOST, hw, panda_module=fake)
    assert "\n" not in str(e.value) and e.value.exit_code == 3
    with pytest.raises(HardwareUnavailable, match=rf"^cannot reach the gripper at {HOST}: ") as e:
        PandaGripper(HOST, hw, panda_module=fake)
    assert "\n" not in str(e.value)


# ---------------------------------------------------------------------------- arm
@pytest.fixture
def fake() -> FakePandaPy:
    return FakePandaPy()


@pytest.fixture
def arm(fake: FakePandaPy, hw: HardwareConfig) -> Iterator[PandaArm]:
    a = PandaArm(HOST, hw, panda_module=fake)
    yield a
    a.stop()


def test_arm_satisfies_protocol(arm: PandaArm) -> None:
    assert isinstance(arm, Arm)
    assert arm.motion_status() == MotionStatus.IDLE


def test_gripper_frame_is_hand_turned_about_z(arm: PandaArm, fake: FakePandaPy) -> None:
    ee = fake.panda.get_pose()
    g = arm.pose()
    np.testing.assert_allclose(g.position, ee[:3, 3])
    np.testing.assert_allclose(g.matrix[:, 0], ee[:3, 1], atol=1e-12)  # finger line = hand y
    np.testing.assert_allclose(g.matrix[:, 2], ee[:3, 2], atol=1e-12)  # same approach axis
    np.testing.assert_allclose(arm.camera_pose().position, g.apply(arm.camera_mount.position))


def test_move_to_is_non_blocking_then_done(arm: PandaArm, fake: FakePandaPy) -> None:
    fake.options.move_duration_s = 0.2
    target = Pose.top_down(np.array([0.45, 0.05, 0.3]), yaw=0.4)
    t0 = time.monotonic()
    arm.move_to(target)
    assert time.monotonic() - t0 < 0.1  # returned long before the 0.2 s move ended
    assert arm.motion_status() == MotionStatus.MOVING
    _wait(lambda: arm.motion_status() != MotionStatus.MOVING)
    assert arm.motion_status() == MotionStatus.DONE and arm.motion_error() == ""
    d, r = arm.pose().distance(target)
    assert d < 1e-9 and r < 1e-6
    (call,) = fake.calls_to("Panda.move_to_pose")
    position, quat = call.args
    np.testing.assert_allclose(position, [0.45, 0.05, 0.3])
    # panda_py got the hand orientation: the gripper's, turned back by -90 deg about z.
    hand = Pose.from_quat(position, quat)
    np.testing.assert_allclose(hand.matrix, rot_z(0.4) @ rot_x(np.pi) @ rot_z(-np.pi / 2), atol=1e-9)
    assert call.kwargs == {"speed_factor": 0.2}


def test_move_relative_in_camera_frame(arm: PandaArm, hw: HardwareConfig) -> None:
    start = arm.pose()
    arm.move_relative(Pose(np.array([0.0, 0.0, 0.1]), np.eye(3)), frame="camera")
    _wait(lambda: arm.motion_status() == MotionStatus.DONE)
    # 10 cm along the optical axis; the camera looks along the approach (-Z when top-down).
    np.testing.assert_allclose(arm.pose().position, start.position + [0.0, 0.0, -0.1], atol=1e-9)


def test_reflex_during_move_fails_then_recover_clears(arm: PandaArm, fake: FakePandaPy) -> None:
    fake.options.reflex_on_move = True
    arm.move_to(Pose.top_down(np.array([0.5, 0.0, 0.3]), 0.0))
    _wait(lambda: arm.motion_status() != MotionStatus.MOVING)
    assert arm.motion_status() == MotionStatus.FAILED
    assert re.match(r"move to \(0\.500, 0\.000, 0\.300\) m failed: .*reflex", arm.motion_error())
    assert "\n" not in arm.motion_error()
    assert fake.panda.reflex
    arm.recover()
    assert not fake.panda.reflex
    assert arm.motion_status() == MotionStatus.IDLE and arm.motion_error() == ""
    arm.move_to(Pose.top_down(np.array([0.5, 0.0, 0.3]), 0.0))
    _wait(lambda: arm.motion_status() != MotionStatus.MOVING)
    assert arm.motion_status() == MotionStatus.DONE


def test_move_ending_short_fails_with_distance(arm: PandaArm, fake: FakePandaPy) -> None:
    fake.options.unreachable = True
    arm.move_to(Pose(np.array([0.5, 0.0, 0.3]), arm.pose().matrix))
    _wait(lambda: arm.motion_status() != MotionStatus.MOVING)
    assert arm.motion_status() == MotionStatus.FAILED
    assert "ended 10.0 cm / 0.0 deg short of the target" in arm.motion_error()


def test_stop_interrupts_a_move(arm: PandaArm, fake: FakePandaPy) -> None:
    fake.options.move_duration_s = 5.0
    arm.move_to(Pose.top_down(np.array([0.5, 0.0, 0.3]), 0.0))
    t0 = time.monotonic()
    arm.stop()
    assert time.monotonic() - t0 < 1.0
    assert arm.motion_status() == MotionStatus.DONE
    assert fake.calls_to("Panda.stop_controller")


def test_non_finite_target_fails(arm: PandaArm, fake: FakePandaPy) -> None:
    arm.move_to(Pose(np.array([np.nan, 0.0, 0.3]), np.eye(3)))
    assert arm.motion_status() == MotionStatus.FAILED
    assert "not finite" in arm.motion_error()
    assert not fake.calls_to("Panda.move_to_pose")


def _sent_gripper_pose(fake: FakePandaPy, index: int = -1) -> Pose:
    """Our gripper pose behind the EE reference of a recorded ``set_control``."""
    position, quat = fake.calls_to("CartesianImpedance.set_control")[index].args
    hand = Pose.from_quat(position, quat)
    return Pose(hand.position, hand.matrix @ HAND_FROM_GRIPPER)


def test_velocity_integrates_pose_in_camera_frame(arm: PandaArm, fake: FakePandaPy,
                                                  hw: HardwareConfig) -> None:
    g0 = arm.pose()
    dt = hw.period
    arm.command_velocity(np.array([0.0, 0.0, 0.1, 0.0, 0.0, 0.0]), frame="camera")
    assert arm.motion_status() == MotionStatus.MOVING
    assert len(fake.calls_to("Panda.start_controller")) == 1
    # vz 0.1 m/s along the optical axis = along the approach: down by 0.1 * dt in the base.
    np.testing.assert_allclose(_sent_gripper_pose(fake).position,
                               g0.position + [0.0, 0.0, -0.1 * dt], atol=1e-12)
    _wait(lambda: arm.motion_status() == MotionStatus.DONE, timeout=1.0)

    # A yaw rate about the optical axis turns the camera in place: the gripper, mounted at
    # t = (0, 0.055, -0.10) from the camera's view, swings around it. In the gripper frame its
    # origin moves by t - Rz(a) t = (0.055 sin a, 0.055 (1 - cos a), 0).
    g1 = arm.pose()
    wz = 0.3  # rad/s
    arm.command_velocity(np.array([0.0, 0.0, 0.0, 0.0, 0.0, wz]), frame="camera")
    a = wz * dt
    ty = hw.mount.position[1]
    shift_in_gripper = np.array([ty * np.sin(a), ty * (1 - np.cos(a)), 0.0])
    sent = _sent_gripper_pose(fake)
    np.testing.assert_allclose(sent.position, g1.position + g1.matrix @ shift_in_gripper, atol=1e-12)
    np.testing.assert_allclose(sent.matrix, g1.matrix @ rot_z(a), atol=1e-12)
    assert len(fake.calls_to("Panda.start_controller")) == 1  # started once, then fed
    assert len(fake.calls_to("CartesianImpedance.set_control")) == 2


def test_velocity_in_gripper_frame_and_clamped(arm: PandaArm, fake: FakePandaPy,
                                               hw: HardwareConfig) -> None:
    g0 = arm.pose()
    arm.command_velocity(np.array([10.0, 0.0, 0.0, 0.0, 0.0, 0.0]), frame="gripper")
    step = _sent_gripper_pose(fake).position - g0.position
    # 10 m/s is scaled down to the configured limit, along the finger line (gripper x).
    np.testing.assert_allclose(step, g0.matrix[:, 0] * hw.max_linear_speed * hw.period, atol=1e-12)


def test_velocity_reflex_fails_then_recover(arm: PandaArm, fake: FakePandaPy) -> None:
    arm.command_velocity(np.zeros(6))
    fake.trigger_reflex()
    assert arm.motion_status() == MotionStatus.FAILED
    assert arm.motion_error().startswith("velocity control stopped: libfranka: Move command "
                                         "aborted: motion aborted by reflex!")
    assert "\n" not in arm.motion_error()
    arm.recover()
    assert arm.motion_status() == MotionStatus.IDLE and not fake.panda.reflex
    arm.command_velocity(np.array([0.0, 0.0, 0.05, 0.0, 0.0, 0.0]))
    assert arm.motion_status() == MotionStatus.MOVING
    assert len(fake.calls_to("Panda.start_controller")) == 2  # a fresh controller after recovery


def test_velocity_non_finite_stops(arm: PandaArm, fake: FakePandaPy) -> None:
    arm.command_velocity(np.zeros(6))
    arm.command_velocity(np.array([np.inf, 0, 0, 0, 0, 0]))
    assert arm.motion_status() == MotionStatus.FAILED
    assert arm.motion_error() == "velocity command is not finite"
    assert fake.calls_to("Panda.stop_controller")


def test_move_after_velocity_stops_the_controller(arm: PandaArm, fake: FakePandaPy) -> None:
    arm.command_velocity(np.zeros(6))
    arm.move_to(Pose.top_down(np.array([0.5, 0.0, 0.45]), 0.0))
    _wait(lambda: arm.motion_status() != MotionStatus.MOVING)
    assert arm.motion_status() == MotionStatus.DONE
    names = [c.name for c in fake.calls]
    assert names.index("Panda.start_controller") < names.index("Panda.move_to_pose")


def test_recover_refused_is_a_hardware_error(arm: PandaArm, fake: FakePandaPy,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse() -> None:
        raise RuntimeError("libfranka: user stop pressed")

    monkeypatch.setattr(fake.panda, "recover", refuse)
    with pytest.raises(HardwareError, match=f"^cannot recover the robot at {HOST}: .*user stop"):
        arm.recover()


# ---------------------------------------------------------------------------- gripper
@pytest.fixture
def gripper(fake: FakePandaPy, hw: HardwareConfig) -> PandaGripper:
    return PandaGripper(HOST, hw, panda_module=fake)


def test_gripper_grasp_passes_wide_epsilons(gripper: PandaGripper, fake: FakePandaPy,
                                            hw: HardwareConfig) -> None:
    assert isinstance(gripper, Gripper)
    fake.options.grasp_duration_s = 0.1
    t0 = time.monotonic()
    gripper.grasp(0.03, 30.0)
    assert time.monotonic() - t0 < 0.05 and gripper.busy()
    _wait(lambda: not gripper.busy())
    (call,) = fake.calls_to("Gripper.grasp")
    assert call.args == (0.03, gripper.speed, 30.0)
    assert call.kwargs == {"epsilon_inner": hw.grasp_epsilon, "epsilon_outer": hw.grasp_epsilon}
    # The 5 cm object stops the fingers 2 cm beyond the target: within the 4 cm epsilon.
    assert gripper.is_grasped() and gripper.last_result() is True
    assert gripper.width() == pytest.approx(0.05)
    gripper.open()
    _wait(lambda: not gripper.busy())
    assert fake.calls_to("Gripper.move")[-1].args == (hw.max_width, gripper.speed)
    assert not gripper.is_grasped() and gripper.width() == pytest.approx(hw.max_width)


def test_default_epsilons_would_drop_the_object(fake: FakePandaPy, hw: HardwareConfig) -> None:
    narrow = PandaGripper(HOST, dataclasses.replace(hw, grasp_epsilon=0.005), panda_module=fake)
    narrow.grasp(0.03, 30.0)
    _wait(lambda: not narrow.busy())
    assert not narrow.is_grasped()  # why hardware.yaml widens them (panda-py issue #50)


def test_grasp_failure_reported(gripper: PandaGripper, fake: FakePandaPy) -> None:
    fake.options.grasp_fails = True
    gripper.grasp(0.04, 30.0)
    _wait(lambda: not gripper.busy())
    assert gripper.last_result() is False and not gripper.is_grasped()


def test_new_gripper_command_aborts_the_running_one(gripper: PandaGripper,
                                                    fake: FakePandaPy) -> None:
    fake.options.grasp_duration_s = 5.0
    gripper.grasp(0.04, 30.0)
    t0 = time.monotonic()
    fake.options.grasp_duration_s = 0.01
    gripper.open()
    assert time.monotonic() - t0 < 1.0
    assert fake.calls_to("Gripper.stop")
    _wait(lambda: not gripper.busy())
    assert gripper.last_result() is True  # the open, not the aborted grasp


def test_grasp_force_out_of_range(gripper: PandaGripper) -> None:
    with pytest.raises(InputError, match="grasp force must be in"):
        gripper.grasp(0.04, 500.0)


# ---------------------------------------------------------------------------- session and clock
class StubCamera:
    """A camera that returns one blank frame (the session only wires it through)."""

    def __init__(self, hw: HardwareConfig) -> None:
        self._k: Intrinsics = hw.intrinsics
        self.closed = False

    @property
    def intrinsics(self) -> Intrinsics:
        return self._k

    def get_frame(self) -> Frame:
        r = self._k.width
        return Frame(np.zeros((r, r, 3), np.uint8), np.zeros((r, r), np.float32), self._k, 0.0, 0)

    def close(self) -> None:
        self.closed = True


def test_real_session_builds_a_real_robot(fake: FakePandaPy, hw: HardwareConfig) -> None:
    camera = StubCamera(hw)
    with RealSession(hw, HOST, camera=camera, panda_module=fake) as session:
        robot = session.robot
        assert robot.backend == "real"
        assert isinstance(robot.camera, Camera) and isinstance(robot.arm, Arm)
        assert isinstance(robot.gripper, Gripper)
        assert robot.clock.period == pytest.approx(1 / 30)
        t0 = robot.clock.now()
        robot.clock.advance()
        robot.clock.advance()
        assert robot.clock.now() - t0 == pytest.approx(2 / 30, abs=0.02)
        robot.arm.command_velocity(np.zeros(6))
    assert camera.closed
    assert fake.calls[-1].name == "Panda.stop_controller"  # close() stopped the arm


def test_real_session_camera_failure_propagates(fake: FakePandaPy, hw: HardwareConfig,
                                                tmp_path: Any) -> None:
    with pytest.raises(HardwareUnavailable, match="cannot replay camera recording"):
        RealSession(hw, HOST, panda_module=fake, playback=tmp_path / "missing.db3")


def test_real_clock_keeps_a_grid_and_skips_when_late() -> None:
    now = [100.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    clock = RealClock(0.1, time_fn=lambda: now[0], sleep_fn=sleep)
    now[0] += 0.03  # 30 ms of work
    clock.advance()
    assert slept == [pytest.approx(0.07)] and clock.now() == pytest.approx(0.1)
    now[0] += 0.12  # 20 ms late: keep the grid, return at once
    clock.advance()
    assert len(slept) == 1
    now[0] += 0.03  # back on the grid at 0.3
    clock.advance()
    assert slept[-1] == pytest.approx(0.05) and clock.now() == pytest.approx(0.3)
    now[0] += 0.5  # a whole period behind: no catch-up burst, restart from now
    clock.advance()
    assert clock.overruns == 1 and clock.ticks == 4
    clock.advance()
    assert slept[-1] == pytest.approx(0.1)
    with pytest.raises(ValueError, match="period must be positive"):
        RealClock(0.0)
