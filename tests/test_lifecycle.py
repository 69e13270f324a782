"""The robot session lifecycle, transition by transition, with the simulator and with the real
backends over the fake panda_py.

Each test states the expected transitions first, as (source → dest by trigger) lines, then
drives the session and compares :attr:`RobotSession.history` with them.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import panda_py
import py_trees
import pytest
from py_trees.common import Status

from app.errors import HardwareError, HardwareUnavailable
from app.hardware.real_session import RealSession
from app.hardware_config import HardwareConfig, load_hardware
from app.lifecycle import (
    EXIT_INTERRUPT,
    TRANSITIONS,
    LifecycleError,
    RobotSession,
    SessionFault,
    SessionState,
    hardware_fault,
)
from app.logs import RunLog
from app.robot.interfaces import Frame, Intrinsics, MotionStatus, Robot
from app.robot.reflexes import BACKOFF_M
from app.robot.safety import load_safety
from app.runner import EpisodeResult, run_episode
from app.transforms import Pose
from tests.fakes import FakePandaPy
from tests.fakes.fake_panda_py import COMMUNICATION_MESSAGE, START_Q

S = SessionState
HOST = "172.16.0.2"
AWAY = np.array([0.05, -0.04, -0.06])  # m, where each test puts the gripper relative to home
BACKENDS = ["sim", "real"]
REAL_AWAY_Q = np.array([0.1, 0.15, -0.1, -0.3, 0.0, 0.45, 0.3])  # rad: ~20 cm below home, yawed


@pytest.fixture(scope="module")
def hw() -> HardwareConfig:
    return load_hardware()


@pytest.fixture(scope="module")
def sim(hw: HardwareConfig) -> Iterator[Any]:
    from app.sim.session import SimSession

    s = SimSession(hw, domain="sim")
    yield s
    s.close()


class StubCamera:
    """A camera giving one blank frame; records ``close``."""

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


class Rig:
    """One backend behind a ``connect`` function, with its arm, camera and clock spied on.

    ``calls["arm.stop"]`` etc. count the calls; ``before["arm.recover"] = f`` runs ``f`` just
    before the real method (to shut down or interrupt from inside a state).
    """

    SPIED = (("arm", "stop"), ("arm", "recover"), ("camera", "close"), ("clock", "advance"))

    def __init__(self, backend: str, hw: HardwareConfig, monkeypatch: pytest.MonkeyPatch,
                 sim: Any = None, **fake_options: Any) -> None:
        self.backend, self.hw, self._mp, self._sim = backend, hw, monkeypatch, sim
        self.calls: dict[str, int] = {f"{o}.{m}": 0 for o, m in self.SPIED}
        self.before: dict[str, Callable[[], None]] = {}
        away = hw.start_pose().position + AWAY
        if backend == "real":
            # Joints off the homing posture (elbow lower, wrist turned), and the pose they give.
            q = START_Q + REAL_AWAY_Q
            ee = panda_py.fk(q)
            fake_options = {"start_q": q, "fk": panda_py.fk, **fake_options}
            self.fake = FakePandaPy(start_pose=ee, **fake_options)
        else:
            sim.arm.recover()
            sim.arm.teleport(Pose.top_down(away, 0.3))
        self.robot: Robot | None = None

    def connect(self) -> Robot:
        if self.backend == "real":
            robot = RealSession(self.hw, HOST, camera=StubCamera(self.hw),
                                panda_module=self.fake).robot
        else:
            robot = self._sim.robot
        for owner, name in self.SPIED:
            self._spy(getattr(robot, owner), f"{owner}.{name}", name)
        self.robot = robot
        return robot

    def _spy(self, obj: Any, key: str, name: str) -> None:
        original = getattr(obj, name)

        def wrapper(*args: Any, **kwargs: Any) -> Any:
            self.calls[key] += 1
            if key in self.before:
                self.before[key]()
            return original(*args, **kwargs)

        self._mp.setattr(obj, name, wrapper)

    def session(self, **kwargs: Any) -> RobotSession:
        if self.backend == "real":  # as app.run: homing through the envelope and joint space
            kwargs = {"limits": load_safety(), "home_joints": self.hw.home_joints,
                      "place_height": self.hw.place_height, **kwargs}
        return RobotSession(self.connect, self.hw.start_pose(), **kwargs)


@pytest.fixture(params=BACKENDS)
def rig(request: pytest.FixtureRequest, hw: HardwareConfig, monkeypatch: pytest.MonkeyPatch) -> Rig:
    sim = request.getfixturevalue("sim") if request.param == "sim" else None
    return Rig(request.param, hw, monkeypatch, sim)


@pytest.fixture
def real(hw: HardwareConfig, monkeypatch: pytest.MonkeyPatch) -> Rig:
    return Rig("real", hw, monkeypatch)


def trace(session: RobotSession) -> list[str]:
    """The history as "source -> dest (trigger)" lines."""
    return [f"{t.source} -> {t.dest} ({t.trigger})" for t in session.history]


CONNECTED = ["disconnected -> connecting (connect)", "connecting -> ready.idle (connected)"]


def raiser(error: BaseException) -> Callable[[], None]:
    """A callable that raises ``error``."""

    def f() -> None:
        raise error

    return f


def ready(rig: Rig, **kwargs: Any) -> RobotSession:
    session = rig.session(**kwargs)
    session.start()
    return session


def reflex_move(rig: Rig) -> Callable[[Robot], str]:
    """An episode whose pose move ends in a reflex (the fake's, halfway)."""

    def episode(robot: Robot) -> str:
        rig.fake.options.reflex_on_move = True
        rig.fake.options.reflex_message = COMMUNICATION_MESSAGE  # one a retry can fix
        robot.arm.move_to(Pose.top_down(np.array([0.5, 0.0, 0.3]), 0.0))
        while robot.arm.motion_status() == MotionStatus.MOVING:
            robot.clock.advance()
        return "reflexed"

    return episode


class RecordState(py_trees.behaviour.Behaviour):
    """A leaf that records the session state at each tick; SUCCESS after ``ticks`` ticks, or
    raises HardwareError at its first tick if ``reflex``."""

    def __init__(self, session: RobotSession, ticks: int, reflex: bool = False) -> None:
        super().__init__("Record State")
        self.session, self.ticks, self.reflex = session, ticks, reflex
        self.seen: list[SessionState] = []

    def update(self) -> Status:
        self.seen.append(self.session.state)
        if self.reflex:
            self.reflex = False
            raise HardwareError(COMMUNICATION_MESSAGE)
        return Status.SUCCESS if len(self.seen) >= self.ticks else Status.RUNNING


# ---------------------------------------------------------------------------- the table
def test_transition_table() -> None:
    # Expected, per state, the triggers it accepts (a parent's apply to its substates):
    expected = {
        S.DISCONNECTED: {"connect", "shutdown", "interrupt"},
        S.CONNECTING: {"connected", "fault", "shutdown", "interrupt"},
        S.IDLE: {"home", "execute", "fault", "shutdown", "interrupt"},
        S.HOMING: {"homed", "reflex", "fault", "shutdown", "interrupt"},
        S.EXECUTING: {"finished", "reflex", "fault", "shutdown", "interrupt"},
        S.RECOVERING: {"recovered", "fault", "shutdown", "interrupt"},
        S.FAULTED: {"shutdown", "interrupt"},
        S.SHUT_DOWN: set(),
    }
    session = RobotSession(lambda: pytest.fail("not connected in this test"), Pose.identity())
    triggers = {t for t, _, _ in TRANSITIONS}
    for state, accepted in expected.items():
        session._machine.set_state(state.value)  # the table itself, not a path through it
        assert {t for t in triggers if session.allowed(t)} == accepted, state


# ---------------------------------------------------------------------------- connecting
def test_connect(rig: Rig) -> None:
    session = rig.session()
    assert session.state == S.DISCONNECTED
    robot = session.start()
    assert trace(session) == CONNECTED
    assert session.state == S.IDLE and session.robot is robot and robot.backend == rig.backend
    assert session.fault_reason == "" and session.exit_code == 0


def test_connect_failure_faults_with_reason(hw: HardwareConfig,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    # disconnected -> connecting (connect); connecting -> faulted (fault: the reason);
    # faulted -> shut_down (shutdown)
    rig = Rig("real", hw, monkeypatch, refuse_connection=True)
    with pytest.raises(HardwareUnavailable, match=f"^cannot reach the robot at {HOST}"):
        with rig.session() as session:
            session.start()
    assert trace(session) == ["disconnected -> connecting (connect)",
                              "connecting -> faulted (fault)",
                              "faulted -> shut_down (shutdown)"]
    assert session.fault_reason.startswith(f"cannot reach the robot at {HOST}: libfranka: ")
    assert session.history[1].reason == session.fault_reason and "\n" not in session.fault_reason
    assert session.exit_code == 3  # HardwareUnavailable's: the hardware could not be reached
    with pytest.raises(LifecycleError, match="no robot while shut_down"):
        _ = session.robot


def test_connect_failure_in_sim_faults(sim: Any) -> None:
    def unplugged() -> Robot:
        raise HardwareUnavailable("camera unplugged")

    session = RobotSession(unplugged, sim.hw.start_pose())
    with pytest.raises(HardwareUnavailable):
        session.start()
    assert session.state == S.FAULTED and session.fault_reason == "camera unplugged"


# ---------------------------------------------------------------------------- homing
def test_home_moves_the_arm_to_the_start_pose(rig: Rig, hw: HardwareConfig) -> None:
    session = ready(rig)
    assert rig.robot is not None
    assert rig.robot.arm.pose().distance(hw.start_pose())[0] > 0.05  # starts away from home
    session.home()
    assert trace(session)[2:] == ["ready.idle -> ready.homing (home)",
                                  "ready.homing -> ready.idle (homed)"]
    d, r = rig.robot.arm.pose().distance(hw.start_pose())
    assert d < hw.position_tolerance and r < hw.angle_tolerance
    assert rig.calls["clock.advance"] >= 1  # polled once per control period, not blocking
    if rig.backend == "real":
        # Straight up to the start height, the homing posture in joint space, the start pose.
        moves = [c for c in rig.fake.calls if c.name.startswith("Panda.move_to")]
        assert [c.name for c in moves] == ["Panda.move_to_pose", "Panda.move_to_joint_position",
                                           "Panda.move_to_pose"]
        up = [*rig.fake.options.start_pose[:2, 3], hw.start_position[2]]
        np.testing.assert_allclose(moves[0].args[0], up)
        np.testing.assert_allclose(moves[1].args[0], hw.home_joints)
        np.testing.assert_allclose(moves[2].args[0], hw.start_position)


@pytest.mark.parametrize(("where", "reason"), [
    (np.array([0.9, 0.0, 0.3]), r"refused from here: position \(0\.900, 0\.000, 0\.300\) m outside "
                                r"the workspace box"),
    (None, r"refused from here: joint 1 is 1\.60 rad from the homing posture"),
])
def test_home_refused_from_unsafe_poses(hw: HardwareConfig, monkeypatch: pytest.MonkeyPatch,
                                        where: np.ndarray | None, reason: str) -> None:
    rig = Rig("real", hw, monkeypatch)
    if where is not None:
        rig.fake.options.start_pose[:3, 3] = where
    else:
        rig.fake.options.start_q[0] += 1.5  # the arm turned away: a joint move could sweep
    session = ready(rig)
    with pytest.raises(SessionFault, match=f"^homing failed: {reason}"):
        session.home()
    assert not [c for c in rig.fake.calls if c.name.startswith("Panda.move_to")]  # nothing moved


def test_home_puts_down_a_held_object_first(real: Rig, hw: HardwareConfig) -> None:
    session = ready(real)
    assert real.robot is not None
    real.robot.gripper.grasp(0.0, 30.0)  # holding the 5 cm object
    while real.robot.gripper.busy():
        real.robot.clock.advance()
    assert real.robot.gripper.is_grasped()
    session.home()
    assert session.state == S.IDLE
    names = [c.name for c in real.fake.calls
             if c.name in ("Panda.move_to_pose", "Gripper.move", "Panda.move_to_joint_position")]
    assert names[:3] == ["Panda.move_to_pose", "Gripper.move", "Panda.move_to_pose"]
    down = real.fake.calls_to("Panda.move_to_pose")[0].args[0]
    assert down[2] == pytest.approx(hw.place_height)  # put down, then opened, then up
    assert not real.robot.gripper.is_grasped()


def test_home_contact_reflex_faults_without_retry(real: Rig) -> None:
    real.fake.options.reflex_on_move = True  # a cartesian_reflex: it hit something
    session = ready(real)
    with pytest.raises(SessionFault, match=r"^homing failed: move to .*cartesian_reflex"):
        session.home()
    assert len(real.fake.calls_to("Panda.move_to_pose")) == 1


def test_home_reflex_recovers_then_retries(real: Rig) -> None:
    real.fake.options.reflex_on_move = True
    real.fake.options.reflex_message = COMMUNICATION_MESSAGE  # a lost packet: a retry fixes it
    session = ready(real)
    session.home()
    assert trace(session)[2:] == ["ready.idle -> ready.homing (home)",
                                  "ready.homing -> ready.recovering (reflex)",
                                  "ready.recovering -> ready.idle (recovered)",
                                  "ready.idle -> ready.homing (home)",
                                  "ready.homing -> ready.idle (homed)"]
    assert "reflex" in session.history[3].reason and real.calls["arm.recover"] == 1
    assert len(real.fake.calls_to("Panda.move_to_pose")) == 3  # up (reflex); up, start


def test_home_failure_faults(real: Rig) -> None:
    real.fake.options.unreachable = True  # not a reflex: no recovery, a fault
    session = ready(real)
    with pytest.raises(SessionFault, match=r"^homing failed: move to .* short of the target"):
        session.home()
    assert session.state == S.FAULTED and real.calls["arm.recover"] == 0
    assert session.fault_reason.startswith("homing failed") and session.exit_code == 3
    with pytest.raises(LifecycleError, match="cannot home while faulted"):
        session.home()


def test_home_timeout_faults_and_stops(sim: Any, hw: HardwareConfig,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig("sim", hw, monkeypatch, sim)
    session = ready(rig, home_timeout_s=0.1)  # the 8 cm move needs ~0.3 s at 0.25 m/s
    with pytest.raises(SessionFault, match=r"did not reach the start pose within 0.1 s"):
        session.home()
    assert session.state == S.FAULTED and rig.calls["arm.stop"] >= 1
    assert sim.arm.motion_status() != MotionStatus.MOVING


# ---------------------------------------------------------------------------- executing
def test_execute_ticks_the_tree_only_in_executing(rig: Rig) -> None:
    session = ready(rig)
    leaf = RecordState(session, ticks=3)
    result = session.execute(lambda robot: run_episode(leaf, robot, None, max_ticks=10))
    assert isinstance(result, EpisodeResult) and result.success and result.ticks == 3
    assert leaf.seen == [S.EXECUTING] * 3
    assert trace(session)[2:] == ["ready.idle -> ready.executing (execute)",
                                  "ready.executing -> ready.idle (finished)"]


def test_execute_refused_outside_idle(rig: Rig) -> None:
    calls: list[Robot] = []
    session = rig.session()
    refused = r"^cannot execute while disconnected \(allowed from: ready.idle\)"
    with pytest.raises(LifecycleError, match=refused):
        session.execute(calls.append)
    session.start()
    with pytest.raises(LifecycleError, match="cannot execute while ready.executing"):
        session.execute(lambda robot: session.execute(calls.append))  # no nesting
    assert calls == [] and session.state == S.FAULTED  # the refused call was a bug in the episode
    assert session.fault_reason.startswith("LifecycleError: cannot execute")
    with pytest.raises(LifecycleError, match="cannot connect while faulted"):
        session.start()


def test_ordinary_failure_needs_no_recovery(rig: Rig) -> None:
    session = ready(rig)
    result = session.execute(lambda robot: EpisodeResult("failure", "Track Blob", "blob lost"))
    assert result is not None and result.outcome == "failure"
    assert session.state == S.IDLE and rig.calls["arm.recover"] == 0


def test_other_exception_faults_and_propagates(rig: Rig) -> None:
    session = ready(rig)

    def buggy(robot: Robot) -> None:
        raise ValueError("bad index")

    with pytest.raises(ValueError, match="bad index"):
        session.execute(buggy)
    assert session.state == S.FAULTED and session.fault_reason == "ValueError: bad index"
    assert rig.calls["arm.stop"] == 1 and session.exit_code == 1


# ---------------------------------------------------------------------------- recovering
@pytest.mark.parametrize("kind", ["move", "velocity", "raised"])
def test_reflex_recovers_and_resumes(real: Rig, kind: str) -> None:
    # ... ready.idle -> ready.executing (execute); ready.executing -> ready.recovering (reflex);
    # ready.recovering -> ready.idle (recovered); ready.idle -> ready.homing (home);
    # ready.homing -> ready.idle (homed); ready.idle -> ready.executing (execute);
    # ready.executing -> ready.idle (finished): re-homed before the rerun
    session = ready(real)
    attempts: list[int] = []

    def episode(robot: Robot) -> str:
        attempts.append(len(attempts) + 1)
        if len(attempts) > 1:
            return "grasped"
        if kind == "move":
            return reflex_move(real)(robot)
        if kind == "velocity":
            robot.arm.command_velocity(np.zeros(6))
            real.fake.trigger_reflex(COMMUNICATION_MESSAGE)
            return "reflexed"
        raise HardwareError("cannot read the robot pose: libfranka: UDP receive: Timeout")

    assert session.execute(episode) == "grasped"
    assert trace(session)[2:] == ["ready.idle -> ready.executing (execute)",
                                  "ready.executing -> ready.recovering (reflex)",
                                  "ready.recovering -> ready.idle (recovered)",
                                  "ready.idle -> ready.homing (home)",
                                  "ready.homing -> ready.idle (homed)",
                                  "ready.idle -> ready.executing (execute)",
                                  "ready.executing -> ready.idle (finished)"]
    assert attempts == [1, 2] and real.calls["arm.recover"] == 1 and session.recoveries == 1
    reason = session.history[3].reason
    assert ("communication_constraints_violation" in reason or "Timeout" in reason) and "\n" not in reason
    assert session.history[7].reason == "retry 1/2"
    assert real.robot is not None
    d, r = real.robot.arm.pose().distance(real.hw.start_pose())  # the rerun began at home
    assert d < real.hw.position_tolerance and r < real.hw.angle_tolerance
    assert not real.fake.panda.reflex
    assert real.robot.arm.motion_status() == MotionStatus.DONE  # the homing move's


def test_reflex_in_sim_tree_recovers(sim: Any, hw: HardwareConfig,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    rig = Rig("sim", hw, monkeypatch, sim)
    session = ready(rig)
    leaf = RecordState(session, ticks=3, reflex=True)  # the first tick's leaf raises
    results: list[EpisodeResult] = []

    def episode(robot: Robot) -> EpisodeResult:
        results.append(run_episode(leaf, robot, None, max_ticks=10))
        return results[-1]

    result = session.execute(episode)
    assert results[0].outcome == "failure" and hardware_fault(sim.arm, results[0]) is not None
    assert result is not None and result.success
    assert [t.trigger for t in session.history[2:]] == ["execute", "reflex", "recovered", "home",
                                                       "homed", "execute", "finished"]
    assert leaf.seen == [S.EXECUTING] * 3 and rig.calls["arm.recover"] == 1


def test_contact_reflex_backs_off_rehomes_and_does_not_rerun(real: Rig) -> None:
    # A collision would happen again: back off along the approach, re-home, return the failure.
    session = ready(real)
    attempts: list[int] = []

    def episode(robot: Robot) -> str:
        attempts.append(1)
        real.fake.options.reflex_on_move = True  # the fake's cartesian_reflex, halfway down
        robot.arm.move_to(Pose(robot.arm.pose().position - [0.0, 0.0, 0.1], robot.arm.pose().matrix))
        while robot.arm.motion_status() == MotionStatus.MOVING:
            robot.clock.advance()
        return "collided"

    assert session.execute(episode) == "collided"
    assert attempts == [1] and session.state == S.IDLE
    assert [t.trigger for t in session.history[2:]] == ["execute", "reflex", "recovered", "home",
                                                       "homed"]
    assert "cartesian_reflex" in session.history[3].reason
    # The move after the reflex backs off: straight up along the approach by BACKOFF_M.
    names = [c.name for c in real.fake.calls]
    first = names.index("Panda.move_to_pose")
    back_off = real.fake.calls[names.index("Panda.move_to_pose", first + 1)]
    assert "Panda.recover" in names[first + 1:names.index("Panda.move_to_pose", first + 1)]
    assert real.robot is not None
    start_z = real.fake.options.start_pose[2, 3]
    assert back_off.args[0][2] == pytest.approx(start_z - 0.05 + BACKOFF_M, abs=0.005)


def test_a_leaf_raising_a_hardware_error_subclass_is_recovered(rig: Rig) -> None:
    class FrameTimeout(HardwareError):
        pass

    result = EpisodeResult("failure", "Acquire Frame", "camera timeout",
                           extra={"exception_type": FrameTimeout.__name__})
    ready(rig)
    assert rig.robot is not None
    assert hardware_fault(rig.robot.arm, result) == "camera timeout"


def test_repeated_reflexes_fault(real: Rig) -> None:
    session = ready(real, max_recoveries=2)
    limit = r"^arm errors in a row: 3 \(recovery limit 2\): move to .*reflex"
    with pytest.raises(SessionFault, match=limit):
        session.execute(reflex_move(real))
    assert [t.trigger for t in session.history[2:]] == (["execute", "reflex", "recovered", "home",
                                                        "homed"] * 2 + ["execute", "reflex", "fault"])
    assert session.state == S.FAULTED and real.calls["arm.recover"] == 3
    assert session.history[-1].source == S.RECOVERING and session.exit_code == 3


def test_recovery_refused_faults(real: Rig, monkeypatch: pytest.MonkeyPatch) -> None:
    session = ready(real)

    def user_stop() -> None:
        raise RuntimeError("libfranka: user stop pressed")

    def episode(robot: Robot) -> str:
        outcome = reflex_move(real)(robot)
        # Only now: the fake's move_to_pose recovers before moving, as panda_py does.
        monkeypatch.setattr(real.fake.panda, "recover", user_stop)
        return outcome

    refused = r"^recovery failed \(cannot recover the robot .*user stop"
    with pytest.raises(SessionFault, match=refused):
        session.execute(episode)
    assert session.state == S.FAULTED and "move to" in session.fault_reason


def test_zero_recoveries_faults_at_the_first_reflex(real: Rig) -> None:
    session = ready(real, max_recoveries=0)
    with pytest.raises(SessionFault, match=r"^arm errors in a row: 1 \(recovery limit 0\)"):
        session.execute(reflex_move(real))
    assert real.calls["arm.recover"] == 1  # still recovered: the arm is left accepting commands


# ---------------------------------------------------------------------------- Ctrl-C
def test_ctrl_c_during_execute_stops_and_shuts_down(rig: Rig, tmp_path: Path) -> None:
    log = RunLog(tmp_path / "session.jsonl")
    episode_log = RunLog(tmp_path / "ticks.jsonl")
    session = ready(rig, log=log)
    session.on_shutdown(episode_log.close)

    def episode(robot: Robot) -> None:
        robot.arm.command_velocity(np.array([0.0, 0.0, 0.02, 0.0, 0.0, 0.0]))
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        session.execute(episode)
    assert trace(session)[-1] == "ready.executing -> shut_down (interrupt)"
    assert session.exit_code == EXIT_INTERRUPT == 130
    assert rig.calls["arm.stop"] == 1 and rig.calls["camera.close"] == 1
    assert rig.robot is not None and rig.robot.arm.motion_status() != MotionStatus.MOVING
    assert episode_log._file.closed and log._file.closed
    records = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert [r["trigger"] for r in records] == ["connect", "connected", "execute", "interrupt"]
    assert records[-1]["event"] == "transition" and records[-1]["dest"] == "shut_down"


def test_ctrl_c_during_homing(rig: Rig) -> None:
    session = ready(rig)
    rig.before["clock.advance"] = raiser(KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        session.home()
    assert trace(session)[-1] == "ready.homing -> shut_down (interrupt)"
    assert session.exit_code == 130 and rig.calls["arm.stop"] == 1
    assert rig.robot is not None and rig.robot.arm.motion_status() != MotionStatus.MOVING


def test_ctrl_c_between_episodes(rig: Rig) -> None:
    with pytest.raises(KeyboardInterrupt):
        with rig.session() as session:
            session.start()
            raise KeyboardInterrupt  # outside the session's methods: the with block handles it
    assert trace(session)[-1] == "ready.idle -> shut_down (interrupt)"
    assert session.exit_code == 130 and rig.calls["camera.close"] == 1


# ---------------------------------------------------------------------------- shutting down
def _from_disconnected(session: RobotSession, rig: Rig) -> None:
    session.shutdown()


def _from_connecting(session: RobotSession, rig: Rig) -> None:
    connect = session._connect

    def connect_then_shutdown() -> Robot:
        robot = connect()
        session.shutdown()  # e.g. a signal handler, while connect() is still running
        return robot

    session._connect = connect_then_shutdown
    session.start()


def _from_idle(session: RobotSession, rig: Rig) -> None:
    session.start()
    session.shutdown()


def _from_homing(session: RobotSession, rig: Rig) -> None:
    session.start()
    rig.before["clock.advance"] = session.shutdown
    session.home()


def _from_executing(session: RobotSession, rig: Rig) -> None:
    session.start()
    assert session.execute(lambda robot: session.shutdown()) is None


def _from_recovering(session: RobotSession, rig: Rig) -> None:
    session.start()
    rig.before["arm.recover"] = session.shutdown

    def hardware_error(robot: Robot) -> None:
        raise HardwareError("reflex")

    assert session.execute(hardware_error) is None


def _from_faulted(session: RobotSession, rig: Rig) -> None:
    session.start()
    with pytest.raises(ValueError):
        session.execute(lambda robot: int("x"))
    session.shutdown()


def _from_shut_down(session: RobotSession, rig: Rig) -> None:
    session.start()
    session.shutdown()
    session.shutdown()  # idempotent


SHUTDOWN_FROM = {
    S.DISCONNECTED: _from_disconnected,
    S.CONNECTING: _from_connecting,
    S.IDLE: _from_idle,
    S.HOMING: _from_homing,
    S.EXECUTING: _from_executing,
    S.RECOVERING: _from_recovering,
    S.FAULTED: _from_faulted,
    S.SHUT_DOWN: _from_shut_down,
}


@pytest.mark.parametrize("state", list(SHUTDOWN_FROM), ids=str)
def test_shutdown_from_each_state(rig: Rig, state: SessionState) -> None:
    session = rig.session()
    closed: list[bool] = []
    session.on_shutdown(lambda: closed.append(True))
    SHUTDOWN_FROM[state](session, rig)
    assert session.state == S.SHUT_DOWN
    shutdowns = [t for t in session.history if t.trigger == "shutdown"]
    assert len(shutdowns) == 1  # once, whatever the path
    source = S.IDLE if state == S.SHUT_DOWN else state
    assert shutdowns[0].source == source and session.history[-1].dest == S.SHUT_DOWN
    assert closed == [True]
    connected = state != S.DISCONNECTED
    assert rig.calls["camera.close"] == int(connected)
    assert rig.calls["arm.stop"] >= int(connected)
    assert session.exit_code == (1 if state == S.FAULTED else 0)
    for trigger in ("start", "home", "execute"):
        with pytest.raises(LifecycleError, match="while shut_down"):
            getattr(session, trigger)(*([print] if trigger == "execute" else []))


def test_shutdown_errors_do_not_stop_the_release(rig: Rig) -> None:
    session = ready(rig)
    rig.before["arm.stop"] = raiser(HardwareError("arm unreachable"))
    session.shutdown()
    assert session.state == S.SHUT_DOWN and rig.calls["camera.close"] == 1
    assert session.history[-1][2:] == ("release_error", "HardwareError: arm unreachable")


def test_invalid_constructor_arguments() -> None:
    with pytest.raises(ValueError, match="max_recoveries must be >= 0"):
        RobotSession(lambda: pytest.fail(), Pose.identity(), max_recoveries=-1)
    with pytest.raises(ValueError, match="home_timeout_s must be positive"):
        RobotSession(lambda: pytest.fail(), Pose.identity(), home_timeout_s=0.0)
