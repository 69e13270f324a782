"""A fake of the ``panda_py`` API that behaves like it where the backend depends on it.

Names and parameters are those of panda-python 1.1.1 (``tests/test_panda.py`` checks them
against the installed module). Behaviour follows panda-py's C++ source (``src/panda.cpp``) and
libfranka 0.9.2 (``robot.cpp``, ``robot_impl.cpp``, ``gripper.cpp``):

* ``Panda(hostname)`` connects in its constructor (and raises when it cannot).
* The arm moves with a finite speed in simulated time (``time_scale`` wall seconds per
  simulated second): a control loop steps a first-order lag of the measured pose behind the
  reference (the impedance controllers' tracking), at ``tick_s`` wall seconds a step.
* ``move_to_pose`` / ``move_to_joint_position`` run that loop in the *caller's* thread, after
  ``stop_controller``, ``recover`` and a read; the trajectory is a cosine profile whose path
  speed obeys panda-py's per-axis limits (1.7 m/s and 2.5 rad/s times ``speed_factor``). They
  return whether the arm ended within ``success_threshold`` / ``orientation_threshold``.
  ``start_controller`` runs the loop in a thread of its own.
* libfranka's read/control exclusion: ``readOnce`` and ``control`` both ``try_lock`` one mutex
  and the loser raises. The loop holds it from the start of a move to its end (including the
  start-up and final reads); state getters use the cached state while a loop is running and do
  a ``readOnce`` otherwise, so a read in a move's start or end window raises.
* A stop while the arm still moves faster than ``still_moving_speed`` ends the motion with
  libfranka's "Motion finished commanded, but the robot is still moving!" error, stored (as
  every control-loop error) for ``raise_error()``.
* Failures: a reflex halfway through the next move (``reflex_on_move``), a move that stops
  halfway (``unreachable``), an obstacle below ``obstacle_z`` that blocks the hand (with a
  ``cartesian_reflex`` when ``contact_reflex``), a refused recovery (``recover_fails``).
* The hand: commands take time at their finger speed; ``grasp`` closes to contact (the object,
  or fully when there is none; ``grasp_mode="to_width"`` stops at ``width`` instead, the other
  reading of the firmware); a command superseded by a new one or by ``stop()`` raises
  "Command aborted!"; ``read_once`` blocks for the next state packet (``hand_read_s``);
  an unhomed hand reports ``max_width`` 0 until ``homing()``.

Every call is recorded in :attr:`FakePandaPy.calls`.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from app.transforms import matrix_to_quat, quat_to_matrix

REFLEX_MESSAGE = ('libfranka: Move command aborted: motion aborted by reflex! ["cartesian_reflex"]'
                  "\ncontrol_command_success_rate: 0.98")  # two lines, as libfranka's can be
COMMUNICATION_MESSAGE = ('libfranka: Move command aborted: motion aborted by reflex! '
                         '["communication_constraints_violation"]\ncontrol_command_success_rate: 0.71')
STILL_MOVING_MESSAGE = ('libfranka: Motion finished commanded, but the robot is still moving! '
                        '["joint_motion_generator_velocity_discontinuity"]'
                        "\ncontrol_command_success_rate: 1.00")  # robot_impl.cpp finishMotion
INVALID_OPERATION_MESSAGE = ("libfranka: Cannot perform this operation while another control or "
                             "read operation is running.")  # robot.cpp, the try_lock loser
REFUSED_MESSAGE = ("libfranka: Connection timeout\nCheck that the robot's FCI is activated "
                   "in Desk and the host is reachable.")
ABORTED_MESSAGE = "libfranka gripper: Command aborted!"  # gripper.cpp, Status::kAborted
GRIPPER_FAILED_MESSAGE = "libfranka gripper: Command failed!"  # gripper.cpp, Status::kFail

LINEAR_LIMIT = 1.7  # m/s per axis at speed_factor 1 (panda-py constants.h)
ANGULAR_LIMIT = 2.5  # rad/s at speed_factor 1
JOINT_LIMITS = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61])  # rad/s, Panda joints
SETTLE_TIMEOUT = 1.0  # s (simulated) a move may settle after its trajectory (panda-py)
SETTLED_SPEED = 1e-3  # m/s: below this the arm counts as at rest at the end of a move
JOINTS_PER_METRE = 1.5  # rad of joint motion per m of EE motion: a crude Jacobian for dq
FRANKA_HAND_F_T_EE = np.array([[0.7071068, 0.7071068, 0.0, 0.0], [-0.7071068, 0.7071068, 0.0, 0.0],
                               [0.0, 0.0, 1.0, 0.1034], [0.0, 0.0, 0.0, 1.0]])  # Desk: -45 deg, 0.1034 m
START_Q = np.array([0.0, -0.186, 0.0, -1.837, 0.0, 1.651, -0.785])  # rad, a posture above the table


def _top_down_ee(position: tuple[float, float, float]) -> np.ndarray:
    """4x4 EE pose pointing down (hand z to -Z of the base) at ``position`` (m)."""
    t = np.eye(4)
    t[:3, :3] = np.diag([1.0, -1.0, -1.0])  # rotation by pi about x
    t[:3, 3] = position
    return t


def _log_rot(r: np.ndarray) -> np.ndarray:
    """Rotation vector (axis * angle, rad) of a rotation matrix."""
    c = np.clip((np.trace(r) - 1.0) / 2.0, -1.0, 1.0)
    angle = float(np.arccos(c))
    if angle < 1e-9:
        return np.zeros(3)
    if np.pi - angle < 1e-6:  # half turn: the axis from the symmetric part
        axis = np.sqrt(np.maximum((np.diag(r) + 1.0) / 2.0, 0.0))
        k = int(np.argmax(axis))
        axis[np.arange(3) != k] *= np.sign(r[k, np.arange(3) != k])
        return axis / np.linalg.norm(axis) * angle
    w = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / (2 * np.sin(angle))
    return w * angle


def _exp_rot(v: np.ndarray) -> np.ndarray:
    """Rotation matrix of a rotation vector (Rodrigues)."""
    angle = float(np.linalg.norm(v))
    if angle < 1e-12:
        return np.eye(3)
    k = v / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    return np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx


def _panda_fk(q: np.ndarray) -> np.ndarray:
    """panda_py's own forward kinematics (imported when a joint move needs it)."""
    import panda_py

    return np.asarray(panda_py.fk(np.asarray(q, dtype=float)), dtype=float)


@dataclass
class FakeOptions:
    """How the fake robot behaves. Lengths in metres, times in seconds (wall seconds where
    named ``_s`` and said so, simulated seconds otherwise)."""

    refuse_connection: bool = False  # Panda(host) and Gripper(host) raise
    time_scale: float = 0.1  # wall s per simulated s (tests run 10x faster than the robot)
    tick_s: float = 0.002  # wall s per control-loop step
    read_s: float = 0.001  # wall s a readOnce holds libfranka's mutex
    start_s: float = 0.004  # wall s a move/controller start holds the mutex before control
    end_s: float = 0.004  # wall s the final read after a move holds the mutex
    tracking_tau: float = 0.03  # s, first-order lag of the measured pose behind the reference
    settle_error: float = 0.0  # m, a pose move settles this far short of its goal
    still_moving_speed: float = 0.01  # m/s: a stop above this EE speed ends in a reflex
    reflex_on_move: bool = False  # the next move ends in a reflex halfway
    reflex_message: str = REFLEX_MESSAGE  # which reflex
    unreachable: bool = False  # moves stop halfway (returning False)
    obstacle_z: float | None = None  # m, the EE cannot go below this (contact)
    contact_reflex: bool = True  # touching the obstacle raises a cartesian_reflex
    recover_fails: bool = False  # recover() raises (user stop pressed)
    start_pose: np.ndarray = field(default_factory=lambda: _top_down_ee((0.5, 0.0, 0.5)))
    start_q: np.ndarray = field(default_factory=lambda: START_Q.copy())
    fk: Callable[[np.ndarray], np.ndarray] | None = None  # q -> O_T_EE (default panda_py.fk)
    f_t_ee: np.ndarray = field(default_factory=lambda: FRANKA_HAND_F_T_EE.copy())
    realtime: tuple[bool, str] = (True, "")  # realtime_priority_available()
    realtime_kernel: bool = True  # libfranka.has_realtime_kernel()
    # the hand
    object_width: float | None = 0.05  # width of the object between the fingers (None: nothing)
    grasp_mode: str = "contact"  # "contact": close until blocked; "to_width": stop at width
    grasp_fails: bool = False  # grasp() returns False and the hand reopens (panda-py issue #50)
    open_fails: bool = False  # move() returns False
    hand_homed: bool = True  # False: max_width reads 0 until homing()
    hand_max_width: float = 0.08  # m, the opening homing finds
    hand_read_s: float = 0.01  # wall s read_once blocks (the real hand: ~0.07-0.1 s)
    min_command_s: float = 0.01  # s (simulated) a hand command takes at least


@dataclass
class Call:
    """One recorded call: ``name`` is ``Class.method``."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class FakePandaPy:
    """Stands in for the ``panda_py`` module (attributes ``Panda``, ``controllers``,
    ``libfranka``, ``realtime_priority_available``); pass it as ``panda_module=``.

    Args:
        **options: Fields of :class:`FakeOptions`.
    """

    def __init__(self, **options: Any) -> None:
        self.options = FakeOptions(**options)
        self.calls: list[Call] = []
        self.robots: list[Panda] = []
        self.grippers: list[Gripper] = []
        self._lock = threading.Lock()
        # Bind the classes to this fake so that instances record here and read its options.
        self.Panda = type("Panda", (Panda,), {"_fake": self})
        self.controllers = SimpleNamespace(
            CartesianImpedance=type("CartesianImpedance", (CartesianImpedance,), {"_fake": self}))
        self.libfranka = SimpleNamespace(
            Gripper=type("Gripper", (Gripper,), {"_fake": self}), GripperState=GripperState,
            RobotState=RobotState, has_realtime_kernel=self.has_realtime_kernel)

    def fk(self, q: np.ndarray) -> np.ndarray:
        """``panda_py.fk``: the EE pose (4, 4) at joint angles ``q`` (the options' ``fk``, else panda_py's)."""
        self.record("fk", q)
        return (self.options.fk or _panda_fk)(np.asarray(q, dtype=float))

    def realtime_priority_available(self) -> tuple[bool, str]:
        """Whether the process may raise the control thread to realtime priority, and why not."""
        return self.options.realtime

    def has_realtime_kernel(self) -> bool:
        """Whether the kernel is a PREEMPT_RT one."""
        return self.options.realtime_kernel

    def record(self, name: str, /, *args: Any, **kwargs: Any) -> None:
        """Append one call (thread-safe: the backend calls from worker threads)."""
        with self._lock:
            self.calls.append(Call(name, args, kwargs))

    def calls_to(self, name: str) -> list[Call]:
        """The recorded calls of ``Class.method`` ``name``, oldest first."""
        with self._lock:
            return [c for c in self.calls if c.name == name]

    @property
    def panda(self) -> Panda:
        """The last connected robot."""
        return self.robots[-1]

    @property
    def gripper(self) -> Gripper:
        """The last connected gripper."""
        return self.grippers[-1]

    def trigger_reflex(self, message: str = REFLEX_MESSAGE) -> None:
        """A reflex on the last robot: its running control loop ends with ``message``."""
        self.panda._inject(RuntimeError(message))


class RobotState:
    """Fake ``panda_py.libfranka.RobotState`` (the fields the backend reads; matrices are
    column-major lists of 16, as libfranka's)."""

    def __init__(self, o_t_ee: np.ndarray, f_t_ee: np.ndarray, q: np.ndarray, dq: np.ndarray) -> None:
        self._o_t_ee, self._f_t_ee = o_t_ee.copy(), f_t_ee.copy()
        self._q, self._dq = q.copy(), dq.copy()

    @property
    def O_T_EE(self) -> list[float]:  # noqa: N802 - libfranka's name
        """EE pose in the base frame, column-major."""
        return self._o_t_ee.flatten(order="F").tolist()

    @property
    def F_T_EE(self) -> list[float]:  # noqa: N802 - libfranka's name
        """EE in the flange frame (Desk's end-effector setting), column-major."""
        return self._f_t_ee.flatten(order="F").tolist()

    @property
    def q(self) -> list[float]:
        """Joint positions (rad)."""
        return self._q.tolist()

    @property
    def dq(self) -> list[float]:
        """Joint velocities (rad/s)."""
        return self._dq.tolist()


class Panda:
    """Fake ``panda_py.Panda``."""

    _fake: FakePandaPy

    def __init__(self, hostname: str, name: str = "panda") -> None:
        self._fake.record("Panda.__init__", hostname, name=name)
        if self._fake.options.refuse_connection:
            raise RuntimeError(REFUSED_MESSAGE)
        opts = self._fake.options
        self.hostname = hostname
        self._state_lock = threading.Lock()  # guards the cached state (panda-py's mux_)
        self._mutex = threading.Lock()  # libfranka's control_mutex_ (read/control exclusion)
        self._pose = np.array(opts.start_pose, dtype=float)  # measured O_T_EE
        self._q = np.array(opts.start_q, dtype=float)
        self._dq = np.zeros(7)
        self._speed = 0.0  # m/s of the EE, measured
        self._ang_speed = 0.0  # rad/s of the EE, measured
        self.max_speed = 0.0  # m/s, the fastest the EE has moved (for tests)
        self._running = False  # a control loop runs: the getters use the cached state
        self._active: CartesianImpedance | str | None = None  # what stop_controller stops
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._error: Exception | None = None  # panda-py's last_error_
        self._pending: Exception | None = None  # injected into the running loop
        self.reflex = False  # robot in reflex mode until recover()
        self.read_errors = 0  # reads refused by the mutex (for tests)
        self._fake.robots.append(self)

    # ---------------------------------------------------------------- reads
    def _read_once(self) -> None:
        """libfranka's ``Robot::readOnce``: needs the mutex for a moment, raises if taken."""
        if not self._mutex.acquire(blocking=False):
            self.read_errors += 1
            raise RuntimeError(INVALID_OPERATION_MESSAGE)
        try:
            time.sleep(self._fake.options.read_s)
        finally:
            self._mutex.release()

    def _refresh(self) -> None:
        """panda-py's ``refreshState``: cached while a loop runs, else a ``readOnce``."""
        if not self._running:
            self._read_once()

    def get_pose(self) -> np.ndarray:
        """4x4 O_T_EE (base frame, metres)."""
        self._refresh()
        with self._state_lock:
            return self._pose.copy()

    def get_position(self) -> np.ndarray:
        """EE position (3,) in metres."""
        return self.get_pose()[:3, 3]

    def get_orientation(self, scalar_first: bool = False) -> np.ndarray:
        """EE orientation quaternion, (x, y, z, w) or (w, x, y, z)."""
        q = matrix_to_quat(self.get_pose()[:3, :3])
        return np.roll(q, 1) if scalar_first else q

    def get_state(self) -> RobotState:
        """A copy of the last robot state."""
        self._refresh()
        with self._state_lock:
            return RobotState(self._pose, self._fake.options.f_t_ee, self._q, self._dq)

    @property
    def q(self) -> np.ndarray:
        """Joint positions (rad)."""
        self._refresh()
        with self._state_lock:
            return self._q.copy()

    def is_moving(self) -> bool:
        """True while a control loop runs."""
        return self._running

    def set_default_behavior(self) -> None:
        """Reset collision thresholds and impedances to panda-py's defaults (reads first)."""
        self._fake.record("Panda.set_default_behavior")
        self.recover()

    # ---------------------------------------------------------------- errors
    def raise_error(self) -> None:
        """Raise (once) the error the control loop stored."""
        with self._state_lock:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def recover(self) -> None:
        """Automatic error recovery when in reflex (reads the state first)."""
        self._fake.record("Panda.recover")
        self._read_once()
        if self._fake.options.recover_fails:
            raise RuntimeError("libfranka: command rejected: user stop pressed")
        self.reflex = False

    def _inject(self, error: Exception) -> None:
        """Make the running loop end with ``error`` (or store it when none runs)."""
        if self._running:
            self._pending = error
            deadline = time.monotonic() + 1.0
            while (self._running or self._mutex.locked()) and time.monotonic() < deadline:
                time.sleep(self._fake.options.tick_s)
        else:
            with self._state_lock:
                self._error, self.reflex = error, True

    # ---------------------------------------------------------------- control loop
    def _begin(self, what: CartesianImpedance | str) -> None:
        """Take libfranka's mutex for a control loop (raises when a read holds it)."""
        if not self._mutex.acquire(blocking=False):
            raise RuntimeError(INVALID_OPERATION_MESSAGE)
        self._stop.clear()
        self._active = what

    def _loop(self, reference: Callable[[float], tuple[np.ndarray, np.ndarray | None, bool]],
              settle: bool) -> Exception | None:  # settle: a move (ends by itself, final read)
        """Run the control loop; the caller holds the mutex, released here at the end.

        ``reference(t)`` gives the EE reference pose, the joint reference (or None) and whether
        the trajectory is over, at simulated time ``t``. Returns the error that ended it.
        """
        opts = self._fake.options
        error: Exception | None = None
        try:
            if not self._running:  # a move: the start-up reads, under the mutex, not running yet
                time.sleep(opts.start_s)
                self._running = True
            t, over_since = 0.0, None
            while True:
                if self._pending is not None:
                    error, self._pending = self._pending, None
                    break
                if self._stop.is_set():
                    if self._speed > opts.still_moving_speed:
                        error = RuntimeError(STILL_MOVING_MESSAGE)
                    break
                dt = opts.tick_s / opts.time_scale
                t += dt
                ref, q_ref, over = reference(t)
                contact = self._step(ref, q_ref, dt)
                if contact and opts.contact_reflex:
                    error = RuntimeError(REFLEX_MESSAGE)
                    break
                if settle and over:
                    over_since = t if over_since is None else over_since
                    at_rest = self._speed < SETTLED_SPEED and self._ang_speed < SETTLED_SPEED
                    if at_rest or t - over_since > SETTLE_TIMEOUT:
                        break
                time.sleep(opts.tick_s)
        finally:
            self._running = False
            if error is not None:
                self._speed, self._ang_speed, self._dq = 0.0, 0.0, np.zeros(7)  # a reflex brakes
                with self._state_lock:
                    self._error, self.reflex = error, True
            self._active = None
            if settle:
                time.sleep(opts.end_s)  # the final read of a move, still under the mutex
            self._mutex.release()
        return error

    def _step(self, ref: np.ndarray, q_ref: np.ndarray | None, dt: float) -> bool:
        """One control step of ``dt`` simulated seconds; True if the hand touched the obstacle."""
        opts = self._fake.options
        a = 1.0 - np.exp(-dt / opts.tracking_tau)
        contact = False
        with self._state_lock:
            old = self._pose.copy()
            p = old[:3, 3] + a * (ref[:3, 3] - old[:3, 3])
            if opts.obstacle_z is not None and p[2] < opts.obstacle_z:
                p[2], contact = opts.obstacle_z, True
            r = old[:3, :3] @ _exp_rot(a * _log_rot(old[:3, :3].T @ ref[:3, :3]))
            self._pose[:3, :3], self._pose[:3, 3] = r, p
            self._speed = float(np.linalg.norm(p - old[:3, 3])) / dt
            w = float(np.linalg.norm(_log_rot(old[:3, :3].T @ r))) / dt
            self._ang_speed = w
            self.max_speed = max(self.max_speed, self._speed)
            if q_ref is not None:
                q = self._q + a * (q_ref - self._q)
                self._dq, self._q = (q - self._q) / dt, q
            else:
                self._dq = np.full(7, (self._speed + 0.1 * w) * JOINTS_PER_METRE)
        return contact

    def _cartesian_profile(self, goal: np.ndarray, speed_factor: float
                           ) -> Callable[[float], tuple[np.ndarray, None, bool]]:
        """Cosine-profile straight line to ``goal``, path speed within the per-axis limits."""
        opts = self._fake.options
        with self._state_lock:
            start = self._pose.copy()
        dp = goal[:3, 3] - start[:3, 3]
        if opts.unreachable:
            dp = dp / 2
        rv = _log_rot(start[:3, :3].T @ goal[:3, :3])
        if opts.unreachable:
            rv = rv / 2
        dist = float(np.linalg.norm(dp))
        if opts.settle_error > 0 and dist > 0:
            dp = dp * max(0.0, 1.0 - opts.settle_error / dist)
        # Peak of a cosine profile is pi/2 times its mean speed.
        duration = max(float(np.max(np.abs(dp))) / (LINEAR_LIMIT * speed_factor),
                       float(np.linalg.norm(rv)) / (ANGULAR_LIMIT * speed_factor), 1e-3) * np.pi / 2
        reflex = {"at": duration / 2 if opts.reflex_on_move else None, "message": opts.reflex_message}
        opts.reflex_on_move = False

        def reference(t: float) -> tuple[np.ndarray, None, bool]:
            if reflex["at"] is not None and t >= reflex["at"]:  # halfway: the reflex, once
                reflex["at"] = None
                self._pending = RuntimeError(reflex["message"])
            s = 0.5 - 0.5 * np.cos(np.pi * min(t / duration, 1.0))
            ref = np.eye(4)
            ref[:3, 3] = start[:3, 3] + s * dp
            ref[:3, :3] = start[:3, :3] @ _exp_rot(s * rv)
            return ref, None, t >= duration

        return reference

    def move_to_pose(self, position: np.ndarray, orientation: np.ndarray,
                     speed_factor: float = 0.2, impedance: np.ndarray | None = None,
                     damping_ratio: float = 1.0, nullspace_stiffness: float = 15.0,
                     dq_threshold: float = 0.001, success_threshold: float = 0.02,
                     orientation_threshold: float = 0.1) -> bool:
        """Blocking move of the EE to ``position`` (m) and ``orientation`` (x, y, z, w)."""
        self._fake.record("Panda.move_to_pose", np.array(position, dtype=float),
                          np.array(orientation, dtype=float), speed_factor=speed_factor,
                          success_threshold=success_threshold,
                          orientation_threshold=orientation_threshold)
        self.stop_controller()
        self.recover()
        self._read_once()
        goal = np.eye(4)
        goal[:3, :3] = quat_to_matrix(np.asarray(orientation, dtype=float))
        goal[:3, 3] = np.asarray(position, dtype=float).reshape(3)
        reference = self._cartesian_profile(goal, speed_factor)
        self._begin("move_to_pose")
        if self._loop(reference, settle=True) is not None:
            return False
        with self._state_lock:
            d = float(np.linalg.norm(self._pose[:3, 3] - goal[:3, 3]))
            r = float(np.linalg.norm(_log_rot(self._pose[:3, :3].T @ goal[:3, :3])))
        return d <= success_threshold and r <= orientation_threshold

    def move_to_joint_position(self, positions: np.ndarray, speed_factor: float = 0.2,
                               stiffness: np.ndarray | None = None, damping: np.ndarray | None = None,
                               dq_threshold: float = 0.001, success_threshold: float = 0.01) -> bool:
        """Blocking joint-space move to ``positions`` (rad)."""
        goal = np.asarray(positions, dtype=float).reshape(7)
        self._fake.record("Panda.move_to_joint_position", goal.copy(), speed_factor=speed_factor)
        self.stop_controller()
        self.recover()
        self._read_once()
        fk = self._fake.options.fk or _panda_fk
        start = self._q.copy()
        duration = max(float(np.max(np.abs(goal - start) / (JOINT_LIMITS * speed_factor))), 1e-3) * np.pi / 2

        def reference(t: float) -> tuple[np.ndarray, np.ndarray, bool]:
            s = 0.5 - 0.5 * np.cos(np.pi * min(t / duration, 1.0))
            q = start + s * (goal - start)
            return fk(q), q, t >= duration

        self._begin("move_to_joint_position")
        if self._loop(reference, settle=True) is not None:
            return False
        return float(np.max(np.abs(self._q - goal))) <= success_threshold

    def start_controller(self, controller: CartesianImpedance) -> None:
        """Run ``controller`` in a control thread (stops the previous one, recovers first)."""
        self._fake.record("Panda.start_controller", controller)
        self.stop_controller()
        self.recover()
        self._begin(controller)
        self._read_once_locked()
        with self._state_lock:
            controller._target = self._pose.copy()

        def reference(t: float) -> tuple[np.ndarray, None, bool]:
            target = controller._target
            return (target if target is not None else self._pose.copy()), None, False

        self._running = True  # the controller runs once started: the getters use the cache
        self._thread = threading.Thread(target=self._loop, args=(reference, False),
                                        name="fake-panda-control", daemon=True)
        self._thread.start()

    def _read_once_locked(self) -> None:
        """The start-up read of a controller (the caller already holds the mutex)."""
        time.sleep(self._fake.options.read_s)

    def stop_controller(self) -> None:
        """Stop the running controller or move (a no-op before one has started); joins the
        control thread of a controller (a move's loop runs in its caller's thread)."""
        self._fake.record("Panda.stop_controller")
        if self._active is not None:
            self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()


class CartesianImpedance:
    """Fake ``panda_py.controllers.CartesianImpedance``."""

    _fake: FakePandaPy

    def __init__(self, impedance: np.ndarray | None = None, damping_ratio: float = 1.0,
                 nullspace_stiffness: float = 0.5, filter_coeff: float = 1.0) -> None:
        self._fake.record("CartesianImpedance.__init__", impedance=impedance,
                          damping_ratio=damping_ratio, nullspace_stiffness=nullspace_stiffness,
                          filter_coeff=filter_coeff)
        self._target: np.ndarray | None = None
        self.filter_coeff = filter_coeff

    def set_control(self, position: np.ndarray, orientation: np.ndarray,
                    q_nullspace: np.ndarray | None = None) -> None:
        """New reference: EE ``position`` (m) and ``orientation`` (x, y, z, w), base frame."""
        position = np.array(position, dtype=float).reshape(3)
        orientation = np.array(orientation, dtype=float).reshape(4)
        self._fake.record("CartesianImpedance.set_control", position, orientation,
                          q_nullspace=None if q_nullspace is None else np.array(q_nullspace))
        t = np.eye(4)
        t[:3, :3] = quat_to_matrix(orientation)
        t[:3, 3] = position
        self._target = t


class GripperState:
    """Fake ``panda_py.libfranka.GripperState`` (read-only properties)."""

    def __init__(self, width: float, is_grasped: bool, max_width: float = 0.08) -> None:
        self._width, self._is_grasped, self._max_width = width, is_grasped, max_width

    @property
    def width(self) -> float:
        """Current opening (m)."""
        return self._width

    @property
    def is_grasped(self) -> bool:
        """Whether the last grasp ended within its epsilons and still holds."""
        return self._is_grasped

    @property
    def max_width(self) -> float:
        """Opening found by homing (m)."""
        return self._max_width

    @property
    def temperature(self) -> int:
        """Hand temperature (degrees Celsius)."""
        return 30


class Gripper:
    """Fake ``panda_py.libfranka.Gripper``."""

    _fake: FakePandaPy

    def __init__(self, franka_address: str) -> None:
        self._fake.record("Gripper.__init__", franka_address)
        if self._fake.options.refuse_connection:
            raise RuntimeError(REFUSED_MESSAGE)
        opts = self._fake.options
        self._max_width = opts.hand_max_width if opts.hand_homed else 0.0
        self._width = self._max_width
        self._grasped = False
        self._lock = threading.Lock()
        self._command = 0  # id of the running command; a new one (or stop) aborts it
        self._fake.grippers.append(self)

    def _run(self, target: float, speed: float, stop_at_object: bool) -> None:
        """Move the fingers towards ``target`` at ``speed``; raise "Command aborted!" when a
        newer command or :meth:`stop` supersedes this one."""
        opts = self._fake.options
        with self._lock:
            self._command += 1
            mine = self._command
            self._grasped = False
        obj = opts.object_width if stop_at_object else None
        if obj is not None and obj < self._width:
            target = max(target, obj)  # the fingers stop on the object
        duration = max(abs(self._width - target) / max(speed, 1e-3), opts.min_command_s)
        start_w, t0 = self._width, time.monotonic()
        while True:
            with self._lock:
                if self._command != mine:
                    raise RuntimeError(ABORTED_MESSAGE)
            s = min((time.monotonic() - t0) / (duration * opts.time_scale), 1.0)
            self._width = start_w + s * (target - start_w)
            if s >= 1.0:
                return
            time.sleep(opts.tick_s)

    def grasp(self, width: float, speed: float, force: float, epsilon_inner: float = 0.005,
              epsilon_outer: float = 0.005) -> bool:
        """Close (to contact, or to ``width`` in "to_width" mode); True if the fingers stop
        within ``width - epsilon_inner .. width + epsilon_outer``."""
        self._fake.record("Gripper.grasp", width, speed, force, epsilon_inner=epsilon_inner,
                          epsilon_outer=epsilon_outer)
        opts = self._fake.options
        self._run(width if opts.grasp_mode == "to_width" else 0.0, speed, stop_at_object=True)
        ok = width - epsilon_inner <= self._width <= width + epsilon_outer
        if opts.grasp_fails:
            self._width, ok = self._max_width, False  # the hand lets go and reopens
        self._grasped = ok
        return ok

    def move(self, width: float, speed: float) -> bool:
        """Move the fingers to ``width`` (m); fails beyond the homed ``max_width``."""
        self._fake.record("Gripper.move", width, speed)
        if width > self._max_width + 1e-6:
            raise RuntimeError(GRIPPER_FAILED_MESSAGE)
        if self._fake.options.open_fails:
            return False
        self._run(width, speed, stop_at_object=False)
        return True

    def homing(self) -> bool:
        """Calibrate the fingers: close and open fully; sets ``max_width``."""
        self._fake.record("Gripper.homing")
        self._fake.options.hand_homed = True  # the hand keeps its calibration
        self._max_width = self._fake.options.hand_max_width
        self._run(self._max_width, 0.1, stop_at_object=False)  # 0.1 m/s: homing speed
        return True

    def stop(self) -> bool:
        """Abort the running command (it raises "Command aborted!")."""
        self._fake.record("Gripper.stop")
        with self._lock:
            self._command += 1
            self._grasped = False
        return True

    def read_once(self) -> GripperState:
        """Wait for the next state packet and return it."""
        self._fake.record("Gripper.read_once")
        time.sleep(self._fake.options.hand_read_s)
        return GripperState(self._width, self._grasped, self._max_width)
