"""PandaArm, PandaGripper and RealSession against a fake of panda_py, and the fake against the
real panda_py's API (so the fake cannot drift from what the backend will meet on the robot)."""

from __future__ import annotations

import importlib
import inspect
import re
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import panda_py
import panda_py.controllers
import panda_py.libfranka
import py_trees
import pytest
from py_trees.common import Status

from app.errors import HardwareError, HardwareUnavailable, InputError
from app.hardware import panda as panda_backend
from app.hardware.panda import HAND_FROM_GRIPPER, PandaArm, PandaGripper
from app.hardware.real_session import RealClock, RealSession
from app.hardware_config import HardwareConfig, load_hardware
from app.robot.interfaces import Arm, Camera, Frame, Gripper, Intrinsics, MotionStatus
from app.robot.safety import load_safety
from app.transforms import Pose, matrix_to_quat, rot_x, rot_z
from behaviours.motion import CloseGripper, OpenGripper
from tests.fakes import FakePandaPy

HOST = "172.16.0.2"


@pytest.fixture(scope="module")
def hw() -> HardwareConfig:
    return load_hardware()


def _ee(position: np.ndarray) -> np.ndarray:
    """4x4 top-down EE pose at ``position`` (m)."""
    t = np.eye(4)
    t[:3, :3] = np.diag([1.0, -1.0, -1.0])
    t[:3, 3] = position
    return t


def _quat(t: np.ndarray) -> np.ndarray:
    return matrix_to_quat(t[:3, :3])


def _wait(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    """Poll ``condition`` every millisecond until it holds (fails after ``timeout`` seconds).

    The timeout is a hang guard, not a speed check: a loaded CI machine may starve the fake's
    control thread for seconds (a 2 s guard failed that way under load)."""
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
    (FAKE.libfranka.RobotState, panda_py.libfranka.RobotState),
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


def test_fake_module_functions_match_real_panda_py() -> None:
    for fake_fn, real_fn in ((FAKE.realtime_priority_available, panda_py.realtime_priority_available),
                             (FAKE.libfranka.has_realtime_kernel, panda_py.libfranka.has_realtime_kernel)):
        assert real_signatures(real_fn, real_fn.__name__) == [[]]  # no parameters, as ours
        assert inspect.signature(fake_fn).parameters == {}


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


# ---------------------------------------------------------------------------- the fake itself
def test_fake_reads_refused_while_a_move_starts_or_ends() -> None:
    # libfranka: readOnce and control try_lock one mutex; the loser raises.
    fake = FakePandaPy(start_s=0.1, end_s=0.1, time_scale=1.0)
    panda = fake.Panda(HOST)
    goal = _ee(np.array([0.5, 0.0, 0.45]))
    mover = threading.Thread(target=panda.move_to_pose, args=(goal[:3, 3], _quat(goal)))
    mover.start()
    _wait(lambda: not panda._mutex.acquire(blocking=False) or panda._mutex.release())
    with pytest.raises(RuntimeError, match="Cannot perform this operation while another control"):
        panda.get_pose()  # the start window: the move holds the mutex, no loop running yet
    _wait(panda.is_moving)
    panda.get_pose()  # while the loop runs: the cached state, no read
    _wait(lambda: not panda.is_moving())
    with pytest.raises(RuntimeError, match="Cannot perform this operation"):
        panda.get_state()  # the end window: the final read holds the mutex
    mover.join()
    assert panda.read_errors == 2


def test_fake_moves_with_finite_speed_and_a_stop_while_moving_is_a_reflex() -> None:
    fake = FakePandaPy(time_scale=1.0)
    panda = fake.Panda(HOST)
    z0 = panda.get_pose()[2, 3]
    controller = fake.controllers.CartesianImpedance()
    panda.start_controller(controller)
    target = panda.get_pose()
    target[2, 3] -= 0.2
    controller.set_control(target[:3, 3], _quat(target))
    time.sleep(0.05)
    assert z0 - 0.2 < panda.get_pose()[2, 3] < z0 - 0.01  # on its way, not there
    panda.stop_controller()  # ended while still moving: libfranka's reflex
    with pytest.raises(RuntimeError, match="still moving"):
        panda.raise_error()
    assert panda.reflex
    panda.raise_error()  # raised once


def test_fake_hand_closes_to_contact_and_aborts_superseded_commands() -> None:
    fake = FakePandaPy(object_width=None, hand_read_s=0.05)
    hand = fake.libfranka.Gripper(HOST)
    assert hand.grasp(0.04, 0.05, 30.0, 0.04, 0.04) is True  # closed to 0: within 0..0.08
    t0 = time.monotonic()
    assert hand.read_once().width == pytest.approx(0.0)
    assert time.monotonic() - t0 >= 0.05  # waits for the next state packet
    fake.options.grasp_mode = "to_width"  # the other reading of the firmware
    hand.move(0.08, 0.05)
    hand.grasp(0.04, 0.05, 30.0, 0.04, 0.04)
    assert hand.read_once().width == pytest.approx(0.04)
    fake.options.time_scale = 1.0
    errors: list[str] = []

    def grasp() -> None:
        try:
            hand.grasp(0.0, 0.01, 30.0)
        except RuntimeError as e:
            errors.append(str(e))

    closing = threading.Thread(target=grasp)
    closing.start()
    time.sleep(0.02)
    hand.stop()
    closing.join(1.0)
    assert errors == ["libfranka gripper: Command aborted!"]


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


def test_move_to_is_non_blocking_then_done(arm: PandaArm, fake: FakePandaPy,
                                           hw: HardwareConfig) -> None:
    target = Pose.top_down(np.array([0.45, 0.05, 0.3]), yaw=0.4)
    fake.options.time_scale = 1.0  # the move takes about a second of wall time
    t0 = time.monotonic()
    arm.move_to(target)
    assert time.monotonic() - t0 < 0.5  # returned long before the move ended
    assert arm.motion_status() == MotionStatus.MOVING
    _wait(lambda: arm.motion_status() != MotionStatus.MOVING)
    assert arm.motion_status() == MotionStatus.DONE and arm.motion_error() == ""
    d, r = arm.pose().distance(target)
    assert d < hw.position_tolerance and r < hw.angle_tolerance
    (call,) = fake.calls_to("Panda.move_to_pose")
    position, quat = call.args
    np.testing.assert_allclose(position, [0.45, 0.05, 0.3])
    # panda_py got the hand orientation: the gripper's, turned back by -90 deg about z.
    hand = Pose.from_quat(position, quat)
    np.testing.assert_allclose(hand.matrix, rot_z(0.4) @ rot_x(np.pi) @ rot_z(-np.pi / 2), atol=1e-9)


def test_pose_move_speed_stays_within_the_envelope(fake: FakePandaPy, hw: HardwareConfig) -> None:
    # panda-py limits each axis to speed_factor x 1.7 m/s: at its default 0.2 a diagonal move
    # reaches 0.59 m/s. The real session bounds pose moves by config/safety.yaml's speeds.
    limits = load_safety()
    with RealSession(hw, HOST, camera=StubCamera(hw), panda_module=fake) as session:
        start = session.arm.pose()
        session.arm.move_to(Pose(start.position + [-0.15, 0.15, -0.15], start.matrix))
        _wait(lambda: session.arm.motion_status() != MotionStatus.MOVING)
        assert session.arm.motion_status() == MotionStatus.DONE
    assert limits.max_linear_speed * 0.8 < fake.panda.max_speed <= limits.max_linear_speed * 1.02


def test_move_within_panda_threshold_but_outside_tolerance_fails(arm: PandaArm, fake: FakePandaPy,
                                                                 hw: HardwareConfig) -> None:
    # panda-py's move_to_pose returns True within 2 cm: a descent stopped 1 cm short is not DONE.
    fake.options.settle_error = 0.01
    arm.move_to(Pose(arm.pose().position - [0.0, 0.0, 0.1], arm.pose().matrix))
    _wait(lambda: arm.motion_status() != MotionStatus.MOVING)
    assert arm.motion_status() == MotionStatus.FAILED
    assert re.search(r"ended 10\.0 mm / 0\.0 deg from the target \(tolerance 3\.0 mm", arm.motion_error())


def test_move_relative_in_camera_frame(arm: PandaArm, hw: HardwareConfig) -> None:
    start = arm.pose()
    arm.move_relative(Pose(np.array([0.0, 0.0, 0.1]), np.eye(3)), frame="camera")
    _wait(lambda: arm.motion_status() == MotionStatus.DONE)
    # 10 cm along the optical axis; the camera looks along the approach (-Z when top-down).
    np.testing.assert_allclose(arm.pose().position, start.position + [0.0, 0.0, -0.1],
                               atol=hw.position_tolerance)


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


def test_stopping_a_move_clears_and_logs_its_error(arm: PandaArm, fake: FakePandaPy,
                                                   caplog: pytest.LogCaptureFixture) -> None:
    fake.options.time_scale = 1.0  # a 20 cm move of about 1.3 s
    arm.move_to(Pose(arm.pose().position - [0.0, 0.0, 0.2], arm.pose().matrix))
    _wait(fake.panda.is_moving)
    time.sleep(0.3)  # moving fast now
    t0 = time.monotonic()
    arm.stop()
    assert time.monotonic() - t0 < 1.0
    assert arm.motion_status() == MotionStatus.DONE and arm.motion_error() == ""
    assert len(arm.stop_errors) == 1 and "still moving" in arm.stop_errors[0]
    assert "still moving" in caplog.text
    here = arm.pose()
    arm.move_to(Pose(here.position + [0.0, 0.0, 0.03], here.matrix))  # not blamed for the stop
    _wait(lambda: arm.motion_status() != MotionStatus.MOVING)
    assert arm.motion_status() == MotionStatus.DONE, arm.motion_error()


def test_no_read_while_a_move_starts_or_ends(arm: PandaArm, fake: FakePandaPy) -> None:
    # A tree polls the pose while a move starts and ends; libfranka would refuse those reads.
    fake.options.start_s = fake.options.end_s = 0.03
    for z in (0.4, 0.45):
        arm.move_to(Pose.top_down(np.array([0.5, 0.0, z]), 0.0))
        while arm.motion_status() == MotionStatus.MOVING:
            arm.pose()
            time.sleep(0.001)
        assert arm.motion_status() == MotionStatus.DONE, arm.motion_error()
    assert fake.panda.read_errors == 0


def test_stop_interrupts_a_move_before_it_starts(arm: PandaArm, fake: FakePandaPy) -> None:
    fake.options.start_s = 0.2  # the stop lands while the move starts: repeated until it ends
    arm.move_to(Pose.top_down(np.array([0.5, 0.0, 0.3]), 0.0))
    arm.stop()
    assert arm.motion_status() == MotionStatus.DONE
    assert fake.panda.get_pose()[2, 3] > 0.45  # it never went far
    assert len(fake.calls_to("Panda.stop_controller")) >= 2


def test_non_finite_target_fails(arm: PandaArm, fake: FakePandaPy) -> None:
    arm.move_to(Pose(np.array([np.nan, 0.0, 0.3]), np.eye(3)))
    assert arm.motion_status() == MotionStatus.FAILED
    assert "not finite" in arm.motion_error()
    assert not fake.calls_to("Panda.move_to_pose")


def test_joint_move_reaches_the_homing_posture(hw: HardwareConfig) -> None:
    fake = FakePandaPy(fk=panda_py.fk)
    arm = PandaArm(HOST, hw, panda_module=fake)
    arm.move_to_joints(hw.home_joints)
    _wait(lambda: arm.motion_status() != MotionStatus.MOVING)
    assert arm.motion_status() == MotionStatus.DONE, arm.motion_error()
    d, r = arm.pose().distance(hw.start_pose())  # the posture is the start pose's
    assert d < 0.002 and r < np.radians(1.0)
    np.testing.assert_allclose(arm.joint_positions(), hw.home_joints, atol=0.01)


def test_unreachable_robot_refused_within_seconds() -> None:
    with socket.socket() as server:  # a free port on this machine, then closed: nothing answers
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
    t0 = time.monotonic()
    with pytest.raises(HardwareUnavailable, match=rf"^cannot reach the robot at 127\.0\.0\.1: no answer on "
                                                  rf"port {port} within 3 s"):
        panda_backend.probe_fci("127.0.0.1", port)
    assert time.monotonic() - t0 < 3.5


def test_collision_thresholds_set_at_connect(arm: PandaArm, fake: FakePandaPy) -> None:
    assert len(fake.calls_to("Panda.set_default_behavior")) == 1


def test_realtime_and_end_effector_checked_at_connect(hw: HardwareConfig) -> None:
    fake = FakePandaPy(realtime=(False, "operation not permitted"), realtime_kernel=False)
    arm = PandaArm(HOST, hw, panda_module=fake)
    assert not arm.report.realtime and not arm.report.realtime_kernel
    assert "communication_constraints_violation" in arm.report.lines[0]
    assert "operation not permitted" in arm.report.lines[0] and "PREEMPT_RT" in arm.report.lines[1]
    assert PandaArm(HOST, hw, panda_module=FakePandaPy()).report.lines == ()
    wrong = np.eye(4)
    wrong[2, 3] = 0.2  # another end effector selected in Desk
    with pytest.raises(HardwareUnavailable, match=r"end effector \(Desk F_T_EE\) is at "
                                                  r"\(0\.0000, 0\.0000, 0\.2000\) m, 0 deg"):
        PandaArm(HOST, hw, panda_module=FakePandaPy(f_t_ee=wrong))


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
    _wait(lambda: arm.motion_status() == MotionStatus.DONE)

    # A yaw rate about the optical axis turns the camera in place: the gripper, mounted at
    # t = (0, 0.055, -0.10) from the camera's view, swings around it. In the gripper frame its
    # origin moves by t - Rz(a) t = (0.055 sin a, 0.055 (1 - cos a), 0).
    g1 = _sent_gripper_pose(fake)  # the reference advances from the last one sent
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


def test_velocity_reference_smoothed_and_elbow_held(arm: PandaArm, fake: FakePandaPy) -> None:
    arm.command_velocity(np.array([0.0, 0.0, 0.05, 0.0, 0.0, 0.0]))
    (init,) = fake.calls_to("CartesianImpedance.__init__")
    assert init.kwargs["filter_coeff"] == panda_backend.FILTER_COEFF < 1.0
    q = fake.calls_to("CartesianImpedance.set_control")[-1].kwargs["q_nullspace"]
    np.testing.assert_allclose(q, fake.options.start_q)  # the posture at start, not panda-py's


def test_velocity_in_gripper_frame_and_clamped(arm: PandaArm, fake: FakePandaPy,
                                               hw: HardwareConfig) -> None:
    g0 = arm.pose()
    arm.command_velocity(np.array([10.0, 0.0, 0.0, 0.0, 0.0, 0.0]), frame="gripper")
    step = _sent_gripper_pose(fake).position - g0.position
    # 10 m/s is scaled down to the configured limit, along the finger line (gripper x).
    np.testing.assert_allclose(step, g0.matrix[:, 0] * hw.max_linear_speed * hw.period, atol=1e-12)


def test_stopping_velocity_control_decelerates_first(arm: PandaArm, fake: FakePandaPy,
                                                     hw: HardwareConfig) -> None:
    # VS at 5 cm/s, then the next leaf's move: ending the controller while the arm moves would
    # be libfranka's "still moving" reflex, and panda-py would blame the next move for it.
    fake.options.time_scale = 1.0
    clock = RealClock(hw.period)
    for _ in range(10):
        arm.command_velocity(np.array([0.0, 0.0, 0.05, 0.0, 0.0, 0.0]))
        clock.advance()
    here = arm.pose()
    arm.move_to(Pose(here.position + [0.0, 0.0, 0.03], here.matrix))
    _wait(lambda: arm.motion_status() != MotionStatus.MOVING)
    assert arm.motion_status() == MotionStatus.DONE, arm.motion_error()
    assert arm.stop_errors == []
    names = [c.name for c in fake.calls]
    move = names.index("Panda.move_to_pose")
    stop = move - 1 - names[:move][::-1].index("Panda.stop_controller")  # the arm's own stop
    assert names[stop - 1] == "CartesianImpedance.set_control"  # the hold, before the stop


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


def test_recover_refused_is_a_hardware_error(arm: PandaArm, fake: FakePandaPy) -> None:
    fake.options.recover_fails = True
    with pytest.raises(HardwareError, match=f"^cannot recover the robot at {HOST}: .*user stop"):
        arm.recover()


# ---------------------------------------------------------------------------- gripper
@pytest.fixture
def gripper(fake: FakePandaPy, hw: HardwareConfig) -> PandaGripper:
    return PandaGripper(HOST, hw, panda_module=fake)


def test_gripper_grasp_epsilons_reach_the_full_opening(gripper: PandaGripper, fake: FakePandaPy,
                                                       hw: HardwareConfig) -> None:
    assert isinstance(gripper, Gripper)
    fake.options.time_scale = 1.0
    t0 = time.monotonic()
    gripper.grasp(0.0, 30.0)
    assert time.monotonic() - t0 < 0.5 and gripper.busy()  # the close takes seconds at time_scale 1
    _wait(lambda: not gripper.busy())
    (call,) = fake.calls_to("Gripper.grasp")
    assert call.args == (0.0, gripper.speed, 30.0)
    # Any stop between 0 and the full opening counts: a yielding object is not let go (#50).
    assert call.kwargs == {"epsilon_inner": hw.grasp_epsilon, "epsilon_outer": hw.max_width}
    assert gripper.is_grasped() and gripper.last_result() is True
    assert gripper.width() == pytest.approx(0.05)  # closed on the 5 cm object
    gripper.open()
    _wait(lambda: not gripper.busy())
    assert fake.calls_to("Gripper.move")[-1].args == (hw.max_width, gripper.speed)
    assert not gripper.is_grasped() and gripper.width() == pytest.approx(hw.max_width)


def test_unhomed_hand_is_homed_at_connect(fake: FakePandaPy, hw: HardwareConfig) -> None:
    fake.options.hand_homed = False  # max_width reads 0: every move would fail
    gripper = PandaGripper(HOST, hw, panda_module=fake)
    assert gripper.homed and len(fake.calls_to("Gripper.homing")) == 1
    gripper.open()
    _wait(lambda: not gripper.busy())
    assert gripper.last_result() is True and gripper.last_error() == ""
    assert not PandaGripper(HOST, hw, panda_module=fake).homed  # homed hands are left alone


def test_open_goes_to_the_homed_width(fake: FakePandaPy, hw: HardwareConfig) -> None:
    fake.options.hand_max_width = 0.078  # this hand's homing found 78 mm (within the slack)
    gripper = PandaGripper(HOST, hw, panda_module=fake)
    gripper.open()
    _wait(lambda: not gripper.busy())
    assert fake.calls_to("Gripper.move")[-1].args[0] == pytest.approx(0.078)
    assert gripper.last_result() is True


def test_grasp_failure_reported(gripper: PandaGripper, fake: FakePandaPy) -> None:
    fake.options.grasp_fails = True
    gripper.grasp(0.0, 30.0)
    _wait(lambda: not gripper.busy())
    assert gripper.last_result() is False and not gripper.is_grasped()


def test_new_gripper_command_aborts_the_running_one(gripper: PandaGripper,
                                                    fake: FakePandaPy) -> None:
    fake.options.time_scale = 5.0  # a slow close
    fake.options.object_width = None
    gripper.grasp(0.0, 30.0)
    time.sleep(0.02)
    t0 = time.monotonic()
    fake.options.time_scale = 0.1
    gripper.open()
    assert time.monotonic() - t0 < 1.0
    assert fake.calls_to("Gripper.stop")
    _wait(lambda: not gripper.busy())
    # The grasp raised "Command aborted!" in its thread; that is not the open's result.
    assert gripper.last_result() is True and gripper.last_error() == ""


def test_grasp_force_out_of_range(gripper: PandaGripper) -> None:
    with pytest.raises(InputError, match="grasp force must be in"):
        gripper.grasp(0.04, 500.0)


# ---------------------------------------------------------------------------- gripper leaves
def _tick_until_done(leaf: py_trees.behaviour.Behaviour, timeout: float = 30.0) -> Status:  # hang guard
    leaf.tick_once()
    end = time.monotonic() + timeout
    while leaf.status == Status.RUNNING and time.monotonic() < end:
        time.sleep(0.005)
        leaf.tick_once()
    return leaf.status


@pytest.mark.parametrize("mode", ["contact", "to_width"])
@pytest.mark.parametrize("object_width", [None, 0.022, 0.05])
def test_close_gripper_grasps_to_contact(hw: HardwareConfig, mode: str,
                                         object_width: float | None) -> None:
    # Whether the firmware closes to contact or stops at the commanded width, "grasped" means
    # an object between the fingers, and the width read is the object's.
    fake = FakePandaPy(grasp_mode=mode, object_width=object_width)
    with RealSession(hw, HOST, camera=StubCamera(hw), panda_module=fake) as session:
        leaf = CloseGripper(force=hw.grasp_force)
        leaf.setup(robot=session.robot)
        status = _tick_until_done(leaf)
    if object_width is None:
        assert status == Status.FAILURE
        assert leaf.feedback_message == "nothing between the fingers (closed to 0 mm)"
    else:
        assert status == Status.SUCCESS
        assert leaf.feedback_message == f"holding at {object_width * 1000:.0f} mm"


def test_close_gripper_reads_the_hand_once_per_tick(hw: HardwareConfig) -> None:
    fake = FakePandaPy(hand_read_s=0.02)
    with RealSession(hw, HOST, camera=StubCamera(hw), panda_module=fake) as session:
        leaf = CloseGripper(force=hw.grasp_force)
        leaf.setup(robot=session.robot)
        leaf.tick_once()
        _wait(lambda: not session.gripper.busy())
        before = len(fake.calls_to("Gripper.read_once"))
        leaf.tick_once()
        assert leaf.status == Status.SUCCESS
        assert len(fake.calls_to("Gripper.read_once")) - before == 1


def test_open_gripper_fails_on_a_failed_open(hw: HardwareConfig) -> None:
    fake = FakePandaPy(open_fails=True)
    with RealSession(hw, HOST, camera=StubCamera(hw), panda_module=fake) as session:
        leaf = OpenGripper()
        leaf.setup(robot=session.robot)
        assert _tick_until_done(leaf) == Status.FAILURE
    assert leaf.feedback_message == "the gripper did not open: the hand refused the move"


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
