"""The robot session lifecycle as a hierarchical state machine (``transitions``).

The behaviour tree decides what the robot does during one episode; this machine decides when
the tree may run at all, and what happens around it: connecting, homing, recovering from arm
reflexes, faults, Ctrl-C and shutdown::

    disconnected --connect--> connecting --connected--> ready (entering it enters ready.idle)
    connecting, ready (any substate) --fault--> faulted
    every state but shut_down --shutdown, or interrupt (Ctrl-C)--> shut_down

    inside ready:
        idle --home--> homing --homed--> idle
        idle --execute--> executing --finished--> idle
        homing, executing --reflex--> recovering --recovered--> idle (then retried)

Nested states are named ``parent.child`` (``"ready.executing"``); :class:`SessionState` holds
every name. The tree is ticked only inside :meth:`RobotSession.execute`, i.e. only while the
machine is in ``ready.executing``.

The machine only validates transitions and tracks the state; the work (connecting, polling
motions, ticking, stopping the arm) is done by :class:`RobotSession`'s methods, in order, so the
module reads top to bottom.

Example (the real robot)::

    with RobotSession(lambda: RealSession(hw, host).robot, hw.start_pose(), log=log) as session:
        session.start()  # HardwareUnavailable: faulted, exit code 3
        session.home()
        result = session.execute(lambda robot: run_episode(tree, robot, models, max_ticks))
"""

from __future__ import annotations

import contextlib
import enum
import re
from collections.abc import Callable, Iterator, Sequence
from typing import Any, NamedTuple, TypeVar

import numpy as np
from transitions import MachineError
from transitions.extensions import HierarchicalMachine
from transitions.extensions.nesting import NestedState

from app.errors import HardwareError, OutputWriteError
from app.logs import RunLog
from app.robot.interfaces import Arm, Gripper, MotionStatus, Robot
from app.robot.reflexes import BACKOFF_M, reflex_kind
from app.robot.safety import SafeArm, SafetyLimits
from app.runner import EpisodeResult
from app.transforms import Pose

T = TypeVar("T")

DEFAULT_MAX_RECOVERIES = 2  # consecutive reflexes recovered within one home()/execute() call
HOME_TIMEOUT_S = 30.0  # s; a move across the whole workspace at the configured speeds takes < 10 s
EXIT_INTERRUPT = 130  # 128 + SIGINT, what a shell reports for Ctrl-C (as app.cli)
#: Triggers of the stop path: a failed log write never keeps them from stopping the arm.
STOPPING = frozenset({"fault", "shutdown", "interrupt", "release_error"})
# libfranka names the reflex in its errors ("motion aborted by reflex! [\"cartesian_reflex\"]").
REFLEX_RE = re.compile(r"reflex", re.IGNORECASE)
MAX_HOME_JOINT_DELTA = 1.0  # rad: joints 1-6 farther than this from the homing posture: refuse
HOME_HEIGHT_SLACK = 0.01  # m: below the start height by more than this, homing first goes up
EMPTY_WIDTH = 0.002  # m: fingers closer than this hold nothing (as behaviours.motion)


class SessionState(enum.StrEnum):
    """Every state of the session (flat names of the nested states)."""

    DISCONNECTED = "disconnected"
    CONNECTING = "connecting"
    READY = "ready"  # never current itself: entering it enters ready.idle
    IDLE = "ready.idle"
    HOMING = "ready.homing"
    EXECUTING = "ready.executing"
    RECOVERING = "ready.recovering"
    FAULTED = "faulted"
    SHUT_DOWN = "shut_down"


S = SessionState
_LIVE = [S.DISCONNECTED, S.CONNECTING, S.READY, S.FAULTED]  # every state that can still shut down
STATES: list[Any] = [
    S.DISCONNECTED.value,
    S.CONNECTING.value,
    {"name": S.READY.value, "initial": "idle",
     "children": ["idle", "homing", "executing", "recovering"]},
    S.FAULTED.value,
    S.SHUT_DOWN.value,
]
#: (trigger, sources, destination). A source ``ready`` covers all of its substates.
TRANSITIONS: list[tuple[str, list[SessionState], SessionState]] = [
    ("connect", [S.DISCONNECTED], S.CONNECTING),
    ("connected", [S.CONNECTING], S.READY),
    ("home", [S.IDLE], S.HOMING),
    ("homed", [S.HOMING], S.IDLE),
    ("execute", [S.IDLE], S.EXECUTING),
    ("finished", [S.EXECUTING], S.IDLE),
    ("reflex", [S.HOMING, S.EXECUTING], S.RECOVERING),
    ("recovered", [S.RECOVERING], S.IDLE),
    ("fault", [S.CONNECTING, S.READY], S.FAULTED),
    ("shutdown", _LIVE, S.SHUT_DOWN),
    ("interrupt", _LIVE, S.SHUT_DOWN),  # Ctrl-C
]


class Transition(NamedTuple):
    """One entry of :attr:`RobotSession.history`."""

    source: str
    dest: str
    trigger: str
    reason: str


class LifecycleError(RuntimeError):
    """A method was called in a state that does not allow it (a bug in the caller)."""


class SessionFault(HardwareError):
    """The session moved to ``faulted``; the message is :attr:`RobotSession.fault_reason`."""


class _NestedState(NestedState):
    separator = "."  # "ready.idle"; the default "_" would split "shut_down" into two states


class _Machine(HierarchicalMachine):
    state_cls = _NestedState


class _Model:
    """What the machine decorates with its triggers (kept off :class:`RobotSession`'s API)."""

    state: str


def one_line(error: BaseException) -> str:
    """An exception's message folded onto one line (libfranka's span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def _hardware_errors() -> set[str]:
    """Names of HardwareError and its subclasses (the runner records an exception's name)."""
    names, todo = set(), [HardwareError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def hardware_fault(arm: Arm, result: object = None) -> str | None:
    """Why the arm needs :meth:`~app.robot.interfaces.Arm.recover` after a run, or None.

    Args:
        arm: The arm, polled once.
        result: What the executed function returned; an :class:`~app.runner.EpisodeResult`
            whose tree failed because a leaf raised :class:`~app.errors.HardwareError` counts.

    Returns:
        The arm's reflex message when its last motion FAILED with a reflex, the runner's reason
        for a leaf's HardwareError, else None (an ordinary failure, no recovery needed).
    """
    if arm.motion_status() == MotionStatus.FAILED and REFLEX_RE.search(arm.motion_error()):
        return arm.motion_error()
    if isinstance(result, EpisodeResult) and result.extra.get("exception_type") in _hardware_errors():
        return result.reason
    return None


class RobotSession:
    """One robot's lifecycle: connect, home, execute trees, recover, fault, shut down.

    Use it as a context manager (leaving the block shuts down; Ctrl-C inside it is reported as
    exit code 130). Blocking methods (:meth:`start`, :meth:`home`, :meth:`execute`) catch
    KeyboardInterrupt, stop the arm, shut down and re-raise it.

    Args:
        connect: Opens the backends and returns the :class:`~app.robot.interfaces.Robot`; raising
            :class:`~app.errors.HardwareUnavailable` (or anything) faults the session.
        start_pose: Gripper home pose in the base frame (``HardwareConfig.start_pose()``).
        log: Transition records go there (JSON lines, event ``"transition"``); closed at
            shutdown.
        max_recoveries: Reflexes in a row that one :meth:`home` or :meth:`execute` recovers from
            and retries; one more faults the session.
        home_timeout_s: Seconds of clock time homing may take before faulting.
        limits: The safety envelope: homing refuses to start outside it, and its Cartesian
            moves go through it (:class:`~app.robot.safety.SafeArm`). None: unchecked (simulator).
        home_joints: Homing posture (rad) reached in joint space, where the arm can
            (``move_to_joints``: the real arm); None skips that stage.
        place_height: Grasp-point height (m) at which homing puts down a held object.
    """

    def __init__(self, connect: Callable[[], Robot], start_pose: Pose, *, log: RunLog | None = None,
                 max_recoveries: int = DEFAULT_MAX_RECOVERIES,
                 home_timeout_s: float = HOME_TIMEOUT_S, limits: SafetyLimits | None = None,
                 home_joints: Sequence[float] | None = None, place_height: float = 0.08) -> None:
        if max_recoveries < 0:
            raise ValueError(f"max_recoveries must be >= 0, got {max_recoveries}")
        if home_timeout_s <= 0:
            raise ValueError(f"home_timeout_s must be positive, got {home_timeout_s}")
        self._connect = connect
        self.start_pose = start_pose
        self.limits = limits
        self.home_joints = None if home_joints is None else tuple(float(q) for q in home_joints)
        self.place_height = place_height
        self.max_recoveries = max_recoveries
        self.home_timeout_s = home_timeout_s
        self.history: list[Transition] = []
        self.fault_reason = ""  # why the session faulted ("" while it has not)
        self.recoveries = 0  # arm.recover() calls that succeeded, over the whole session
        self._log = log
        self.log_error: OutputWriteError | None = None  # the session log's failed write, if any
        self._robot: Robot | None = None
        self._exit_code = 0
        self._closers: list[Callable[[], None]] = []
        self._source = ""
        self._model = _Model()
        self._machine = _Machine(
            model=self._model, states=STATES, initial=S.DISCONNECTED.value,
            transitions=[{"trigger": t, "source": [s.value for s in src], "dest": d.value}
                         for t, src, d in TRANSITIONS],
            auto_transitions=False, send_event=True,
            before_state_change=self._note_source, after_state_change=self._record)

    # ---------------------------------------------------------------- state
    @property
    def state(self) -> SessionState:
        """The current (innermost) state."""
        return SessionState(self._model.state)

    @property
    def robot(self) -> Robot:
        """The connected backends.

        Raises:
            LifecycleError: Not connected (yet).
        """
        if self._robot is None:
            raise LifecycleError(f"no robot while {self.state}: call start() first")
        return self._robot

    @property
    def exit_code(self) -> int:
        """130 after Ctrl-C, the fault's code (3 for hardware) when faulted, else 0."""
        return self._exit_code

    def allowed(self, trigger: str) -> bool:
        """Whether ``trigger`` (a name in :data:`TRANSITIONS`) may fire in the current state."""
        return bool(self._model.may_trigger(trigger))  # type: ignore[attr-defined]

    def on_shutdown(self, callback: Callable[[], None]) -> None:
        """Run ``callback`` at shutdown, after the arm stops, before the camera closes
        (e.g. a run log's ``close``). Callbacks run once, in the order given."""
        self._closers.append(callback)

    # ---------------------------------------------------------------- lifecycle
    def start(self) -> Robot:
        """Connect: disconnected → connecting → ready.idle.

        Returns:
            The connected robot.

        Raises:
            HardwareUnavailable: Re-raised from ``connect`` once the session is faulted (so is
                any other exception it raises).
            LifecycleError: Not disconnected.
        """
        self._fire("connect")
        with self._ctrl_c():
            try:
                robot = self._connect()
            except Exception as e:
                self._fault(one_line(e), getattr(e, "exit_code", 1), raise_=False)
                raise
            self._robot = robot
            if self.state == S.SHUT_DOWN:  # shut down while connecting: release what opened
                self._release()
                return robot
            self._fire("connected")
            return robot

    def home(self) -> None:
        """Bring the gripper to :attr:`start_pose`: ready.idle → ready.homing → ready.idle.

        In order: refuse (fault, with the reason) when the arm is outside the envelope or its
        joints are far from the homing posture; put down a held object at
        :attr:`place_height` and open; go straight up to the start height; move in joint space
        to :attr:`home_joints`; then a short Cartesian move to the start pose (through the
        envelope). Polls the arm once per control period (``clock.advance()`` between polls).
        An error a retry can fix (:func:`~app.robot.reflexes.reflex_kind`) moves to
        ready.recovering and retries after :meth:`~app.robot.interfaces.Arm.recover`.

        Raises:
            SessionFault: Refused, failed for another reason (a contact reflex included), timed
                out, or kept reflexing (the session is then faulted).
            LifecycleError: Not in ready.idle.
        """
        self._fire("home")
        with self._ctrl_c():
            reflexes = 0
            while True:
                error = self._drive_home()
                if self.state == S.SHUT_DOWN:
                    return
                if error is None:
                    self._fire("homed")
                    return
                if reflex_kind(error) != "retry":
                    self._fault(f"homing failed: {error}")
                reflexes += 1
                if not self._recover(error, reflexes):
                    return
                self._fire("home", reason=f"retry {reflexes}/{self.max_recoveries}")

    def execute(self, fn: Callable[[Robot], T]) -> T | None:
        """Run ``fn(robot)`` (tick a tree) in ready.executing, then return to ready.idle.

        A hardware fault (:func:`hardware_fault`, or ``fn`` raising HardwareError) moves to
        ready.recovering and calls :meth:`~app.robot.interfaces.Arm.recover`. After a contact reflex
        the arm backs off along the approach, re-homes, and the failed result is returned: a
        rerun would hit the same obstacle. After any other hardware error (a lost packet, a
        motion ended while moving, a failed read) the arm re-homes and ``fn`` runs again (the
        episode assumes the start pose), up to :attr:`max_recoveries` times in a row.

        Args:
            fn: Runs one episode on the robot, e.g.
                ``lambda robot: run_episode(tree, robot, models, max_ticks, log)``; it is only
                ever called in ready.executing.

        Returns:
            What ``fn`` returned last; None if the session was shut down during recovery.

        Raises:
            SessionFault: Recovery failed or the reflexes did not stop (session faulted).
            LifecycleError: Not in ready.idle.
            Exception: Any other exception of ``fn``, re-raised after faulting.
        """
        self._fire("execute")
        with self._ctrl_c():
            reflexes = 0
            while True:
                try:
                    result: T | None = fn(self.robot)
                except HardwareError as e:
                    result, error = None, one_line(e)
                except Exception as e:
                    self._fault(f"{type(e).__name__}: {one_line(e)}", getattr(e, "exit_code", 1),
                                raise_=False)
                    raise
                else:
                    error = (None if self.state == S.SHUT_DOWN
                             else hardware_fault(self.robot.arm, result))
                if self.state == S.SHUT_DOWN:
                    return result
                if error is None:
                    self._fire("finished")
                    return result
                reflexes += 1
                contact = reflex_kind(error) == "contact"
                if not self._recover(error, reflexes, back_off=contact):
                    return None
                self.home()
                if self.state == S.SHUT_DOWN:
                    return None
                if contact:
                    return result
                self._fire("execute", reason=f"retry {reflexes}/{self.max_recoveries}")

    def shutdown(self, reason: str = "") -> None:
        """Stop the arm, run the :meth:`on_shutdown` callbacks, close the camera and the log.

        Allowed from every state; does nothing once shut down. Errors of the steps do not stop
        the others: they are recorded in :attr:`history` (trigger ``"release_error"``).
        """
        if self.state == S.SHUT_DOWN:
            return
        self._fire("shutdown", reason=reason)
        self._release()

    def __enter__(self) -> RobotSession:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: object) -> None:
        if exc_type is not None and issubclass(exc_type, KeyboardInterrupt):
            self._interrupt()
        else:
            self.shutdown(reason=f"{exc_type.__name__} raised" if exc_type else "")
            if exc_type is None and self.log_error is not None:  # the log broke while stopping
                raise self.log_error

    # ---------------------------------------------------------------- steps
    def _await_motion(self, arm: Arm, deadline: float) -> str | None:
        """Poll ``arm`` once per control period until its motion ends; its error, or None."""
        clock = self.robot.clock
        while True:
            status = arm.motion_status()
            if status == MotionStatus.DONE or self.state == S.SHUT_DOWN:
                return None
            if status == MotionStatus.FAILED:
                return arm.motion_error() or "motion failed"
            if clock.now() >= deadline:
                arm.stop()
                return f"did not reach the start pose within {self.home_timeout_s:g} s"
            clock.advance()

    def _refusal(self, arm: Arm, pose: Pose) -> str:
        """Why homing must not start from here ("" when it may)."""
        if self.limits is not None:
            why = self.limits.pose_violation(pose)
            if why:
                return f"refused from here: {why}; jog the arm into the workspace first"
        joints = getattr(arm, "joint_positions", None)
        if self.home_joints is not None and joints is not None:
            delta = np.abs(np.asarray(joints(), dtype=float)[:6] - np.asarray(self.home_joints)[:6])
            worst = int(np.argmax(delta))
            if delta[worst] > MAX_HOME_JOINT_DELTA:
                return (f"refused from here: joint {worst + 1} is {delta[worst]:.2f} rad from the "
                        f"homing posture (> {MAX_HOME_JOINT_DELTA} rad): a joint-space move could "
                        "sweep the table; jog the arm closer first")
        return ""

    def _put_down(self, arm: Arm, mover: Arm, gripper: Gripper, deadline: float) -> str | None:
        """Lower a held object to :attr:`place_height` and open the hand."""
        sample = getattr(gripper, "sample", None)
        width, held = ((sample().width, sample().is_grasped) if sample is not None
                       else (gripper.width(), gripper.is_grasped()))
        if not held or width < EMPTY_WIDTH:
            return None
        pose = arm.pose()
        if pose.position[2] > self.place_height + HOME_HEIGHT_SLACK:
            mover.move_to(Pose(np.array([*pose.position[:2], self.place_height]), pose.matrix))
            error = self._await_motion(mover, deadline)
            if error is not None and error.startswith("safety"):
                return f"putting down the held object: {error}"
            if error is not None and reflex_kind(error) is not None:
                arm.recover()  # the object met the table first: put it down there
        gripper.open()
        clock = self.robot.clock
        while gripper.busy() and clock.now() < deadline and self.state != S.SHUT_DOWN:
            clock.advance()
        return None

    def _drive_home(self) -> str | None:
        """The homing steps (see :meth:`home`); the first error, or None once there."""
        robot = self.robot
        arm = robot.arm
        mover: Arm = (SafeArm(arm, self.limits, robot.clock.period) if self.limits is not None
                      else arm)
        deadline = robot.clock.now() + self.home_timeout_s
        try:
            why = self._refusal(arm, arm.pose())
            if why:
                return why
            error = self._put_down(arm, mover, robot.gripper, deadline)
            if error is not None or self.state == S.SHUT_DOWN:
                return error
            pose = arm.pose()
            start_z = float(self.start_pose.position[2])
            if pose.position[2] < start_z - HOME_HEIGHT_SLACK:  # straight up first
                mover.move_to(Pose(np.array([*pose.position[:2], start_z]), pose.matrix))
                error = self._await_motion(mover, deadline)
                if error is not None or self.state == S.SHUT_DOWN:
                    return error
            move_to_joints = getattr(arm, "move_to_joints", None)
            if self.home_joints is not None and move_to_joints is not None:
                move_to_joints(self.home_joints)
                error = self._await_motion(arm, deadline)
                if error is not None or self.state == S.SHUT_DOWN:
                    return error
            mover.move_to(self.start_pose)
            return self._await_motion(mover, deadline)
        except HardwareError as e:
            return one_line(e)

    def _back_off(self) -> None:
        """After a contact reflex: back :data:`~app.robot.reflexes.BACKOFF_M` along the approach."""
        arm = self.robot.arm
        try:
            arm.move_relative(Pose(np.array([0.0, 0.0, -BACKOFF_M]), np.eye(3)), frame="gripper")
            error = self._await_motion(arm, self.robot.clock.now() + self.home_timeout_s)
        except HardwareError as e:
            error = one_line(e)
        if error is not None:
            self._append(Transition(self.state, self.state, "back_off_failed", error))

    def _recover(self, error: str, count: int, back_off: bool = False) -> bool:
        """ready.recovering: ``arm.recover()`` (and a back-off after a contact), then
        ready.idle if ``count`` is within the limit; False when shut down meanwhile. Raises
        SessionFault otherwise."""
        self._fire("reflex", reason=error)
        try:
            self.robot.arm.recover()
        except Exception as e:
            self._fault(f"recovery failed ({one_line(e)}) after: {error}")
        if self.state == S.SHUT_DOWN:
            return False
        if back_off:
            self._back_off()
            if self.state == S.SHUT_DOWN:
                return False
        self.recoveries += 1
        if count > self.max_recoveries:
            self._fault(f"arm errors in a row: {count} (recovery limit {self.max_recoveries}): "
                        f"{error}")
        self._fire("recovered", reason=f"recovery {count}/{self.max_recoveries}")
        return True

    def _fault(self, reason: str, exit_code: int = HardwareError.exit_code,
               raise_: bool = True) -> None:
        """Move to faulted with ``reason``, stop the arm; raise SessionFault if ``raise_``."""
        if self.state != S.SHUT_DOWN:
            self.fault_reason, self._exit_code = reason, exit_code
            self._fire("fault", reason=reason)
            self._stop_arm()
        if raise_:
            raise SessionFault(reason)

    def _interrupt(self) -> None:
        """Ctrl-C: shut down with exit code 130."""
        self._exit_code = EXIT_INTERRUPT
        if self.state != S.SHUT_DOWN:
            self._fire("interrupt", reason="KeyboardInterrupt (Ctrl-C)")
            self._release()

    @contextlib.contextmanager
    def _ctrl_c(self) -> Iterator[None]:
        try:
            yield
        except KeyboardInterrupt:
            self._interrupt()
            raise

    def _stop_arm(self) -> None:
        if self._robot is not None:
            self._robot.arm.stop()

    def _release(self) -> None:
        """Stop the arm, run the callbacks, close the camera, then the log (best effort)."""
        closers, self._closers = self._closers, []
        camera = [self._robot.camera.close] if self._robot is not None else []
        for step in [self._stop_arm, *closers, *camera]:
            try:
                step()
            except Exception as e:  # keep releasing the rest; the error goes to the history
                self._append(Transition(self.state, self.state, "release_error",
                                        f"{type(e).__name__}: {one_line(e)}"))
        if self._log is not None:
            self._log.close()
            self._log = None

    # ---------------------------------------------------------------- machine plumbing
    def _fire(self, trigger: str, reason: str = "") -> None:
        """Fire ``trigger``; an invalid one raises LifecycleError naming the allowed states."""
        if not self.allowed(trigger):
            allowed = [s for t, src, _ in TRANSITIONS if t == trigger for s in src]
            raise LifecycleError(f"cannot {trigger} while {self.state} (allowed from: "
                                 f"{', '.join(allowed)})")
        try:
            self._model.trigger(trigger, reason=reason)  # type: ignore[attr-defined]
        except MachineError as e:  # may_trigger said yes: a bug in the table
            raise LifecycleError(str(e.value)) from e

    def _note_source(self, event: Any) -> None:
        self._source = self._model.state

    def _record(self, event: Any) -> None:
        self._append(Transition(self._source, self._model.state, event.event.name,
                                str(event.kwargs.get("reason", ""))))

    def _append(self, entry: Transition) -> None:
        """Keep ``entry``; log it. A failed log write stops the run (OutputWriteError), except on
        the stop path, which goes on without its log (the error is kept in :attr:`log_error`)."""
        self.history.append(entry)
        if self._log is None:
            return
        try:
            self._log.log.info("transition", **entry._asdict())
        except OutputWriteError as e:
            self.log_error = self.log_error or e
            self._log.close()
            self._log = None  # no further writes into a broken log
            if entry.trigger not in STOPPING:
                raise
