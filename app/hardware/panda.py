"""The Franka Panda arm and hand over ``panda_py`` as :class:`~app.robot.interfaces.Arm` and
:class:`~app.robot.interfaces.Gripper`.

This is the only module that imports ``panda_py``, and it does so lazily; the module object can
be injected (``panda_module=``), which is how the tests run it against a fake.

panda_py blocks: ``Panda.move_to_pose`` returns when the motion ends and
``libfranka.Gripper.grasp`` when the fingers stop. Our interfaces never block, so those calls
run in a worker thread and ``motion_status()`` / ``busy()`` poll it. Velocity commands use
panda_py's asynchronous ``controllers.CartesianImpedance``: started once, then fed one
reference pose per control period. Errors of panda_py's control thread (reflexes) only surface
through ``Panda.raise_error()``, which the polls call.

Frames: panda_py reports and takes the pose of the end-effector (EE) frame configured in Desk
(for the Franka hand: between the fingertips, z along the approach, fingers moving along y).
Our gripper frame has the same origin and z but x along the finger line, i.e. it is the EE frame
turned by 90 degrees about z (:data:`HAND_FROM_GRIPPER`, as in the simulator).
"""

from __future__ import annotations

import importlib
import logging
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from app.errors import HardwareError, HardwareUnavailable, InputError
from app.hardware_config import JOINT_SPEED_FACTOR, JOINT_TOLERANCE, HardwareConfig
from app.robot.interfaces import FrameName, HandSample, MotionStatus
from app.transforms import Pose, rot_z, twist_to_pose

_LOG = logging.getLogger(__name__)

# Rotation from our gripper frame (x along the finger line) to the panda EE/hand frame (fingers
# move along y): the same constant as app.sim.pybullet_world.HAND_FROM_GRIPPER (a test keeps the
# two equal; the simulator module is not imported here).
HAND_FROM_GRIPPER = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
# panda-py limits each Cartesian axis of a pose move to speed_factor x 1.7 m/s and the rotation
# to speed_factor x 2.5 rad/s (its constants.h); pose moves pick the factor that keeps the
# gripper within the envelope's speeds (:func:`envelope_speed_factor`).
PANDA_LINEAR_LIMIT = 1.7  # m/s per axis at speed_factor 1
PANDA_ANGULAR_LIMIT = 2.5  # rad/s at speed_factor 1
STOP_JOIN_S = 2.0  # s to wait for an interrupted move or grasp to return
STOP_RETRY_S = 0.01  # s between repeated stop requests to a move that has not returned
STILL_DQ = 0.01  # rad/s: every joint slower than this = at rest, safe to end a controller
DECELERATE_S = 0.5  # s at most to wait for the arm to come to rest before a stop
DECELERATE_POLL_S = 0.005  # s between velocity reads while decelerating
# The velocity reference leads the measured pose by about one period of motion; if it leads by
# more than this the arm is blocked (or was pushed): re-anchor instead of winding up force.
MAX_REF_LEAD_M = 0.02  # m
MAX_REF_LEAD_RAD = np.radians(5.0)  # rad
# panda-py's reference filter runs per 1 ms control tick (alpha*target + (1-alpha)*previous):
# 0.05 smooths the 30 Hz reference steps with a ~20 ms time constant (1.0 = no smoothing).
FILTER_COEFF = 0.05
GRIPPER_SPEED = 0.05  # m/s finger speed for open and grasp (the hand's maximum is ~0.1 m/s)
MAX_GRASP_FORCE = 140.0  # N, the Franka hand's maximum (70 N continuous)
MAX_WIDTH_SLACK = 0.005  # m: a hand reporting max_width this far below hw.max_width is homed
# Desk's end-effector setting for the Franka Hand: F_T_EE turns -45 deg about z and reaches
# tcp_offset (0.1034 m) along z (franka_description franka_hand tcp_xyz).
FRANKA_HAND_YAW = -np.pi / 4  # rad
TCP_TOLERANCE_M = 0.002  # m, F_T_EE vs the configured grasp point
TCP_TOLERANCE_RAD = np.radians(2.0)  # rad
FCI_PORT = 1337  # libfranka's TCP command port on the control unit
CONNECT_TIMEOUT_S = 3.0  # s to wait for it before saying the robot is unreachable


def _one_line(error: BaseException) -> str:
    """An exception's message folded onto one line (libfranka messages may span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def _describe(error: BaseException) -> str:
    """One line for an error from a worker thread: libfranka's own (RuntimeError) by its
    message, anything else (a bug) with its type."""
    text = _one_line(error)
    return text if isinstance(error, RuntimeError) else f"{type(error).__name__}: {text}"


def import_panda_py(panda_module: ModuleType | Any | None = None) -> Any:
    """``panda_module`` if given, else the installed ``panda_py`` (with its ``libfranka`` and
    ``controllers`` submodules).

    Raises:
        HardwareUnavailable: ``panda_py`` is not installed.
    """
    if panda_module is not None:
        return panda_module
    try:
        module = importlib.import_module("panda_py")
        importlib.import_module("panda_py.libfranka")
        importlib.import_module("panda_py.controllers")
    except ImportError as e:
        raise HardwareUnavailable(f"panda_py cannot be imported ({_one_line(e)}): install the "
                                  "'hardware' extra") from e
    return module


def hand_to_gripper(hand: Pose) -> Pose:
    """Our gripper pose from a panda EE pose (same origin, base frame)."""
    return Pose(hand.position, hand.matrix @ HAND_FROM_GRIPPER)


def gripper_to_hand(gripper: Pose) -> Pose:
    """The panda EE pose that puts our gripper frame at ``gripper`` (base frame)."""
    return Pose(gripper.position, gripper.matrix @ HAND_FROM_GRIPPER.T)


def _clamp_twist(twist: np.ndarray, max_linear: float, max_angular: float) -> np.ndarray:
    """Scale the linear (m/s) and angular (rad/s) parts of a twist down to their limits."""
    out = twist.copy()
    for part, limit in ((slice(0, 3), max_linear), (slice(3, 6), max_angular)):
        norm = float(np.linalg.norm(out[part]))
        if norm > limit:
            out[part] *= limit / norm
    return out


def envelope_speed_factor(delta: np.ndarray, angle: float, max_linear: float,
                          max_angular: float) -> float:
    """panda-py ``speed_factor`` that keeps a straight pose move within the given speeds.

    panda-py limits each axis to ``speed_factor * 1.7`` m/s, so along a unit direction ``u`` the
    path speed may reach ``speed_factor * 1.7 / max|u_i|`` (up to sqrt(3) times the per-axis limit
    on a diagonal); the rotation is limited to ``speed_factor * 2.5`` rad/s.

    Args:
        delta: Translation of the move (m, base frame).
        angle: Rotation of the move (rad).
        max_linear: Largest gripper speed (m/s).
        max_angular: Largest rotation speed (rad/s).

    Returns:
        The factor in (0, 1].
    """
    norm = float(np.linalg.norm(delta))
    axis_share = float(np.max(np.abs(delta))) / norm if norm > 1e-9 else 1.0
    factor = min(max_linear * axis_share / PANDA_LINEAR_LIMIT, max_angular / PANDA_ANGULAR_LIMIT)
    return float(np.clip(factor, 1e-3, 1.0))  # 1e-3: panda-py needs a positive factor


def probe_fci(host: str, port: int = FCI_PORT, timeout_s: float = CONNECT_TIMEOUT_S) -> None:
    """Check that the robot's FCI answers on its command port within ``timeout_s``.

    Raises:
        HardwareUnavailable: Nothing answers (FCI off, wrong address, cable out).
    """
    try:
        with socket.create_connection((host, port), timeout=timeout_s):
            pass
    except OSError as e:
        raise HardwareUnavailable(f"cannot reach the robot at {host}: no answer on port {port} "
                                  f"within {timeout_s:g} s ({e.strerror or e}); check that FCI is "
                                  "activated in Desk and the cable is in") from e


def _column_major(values: Any) -> np.ndarray:
    """libfranka's 16 column-major numbers as a 4x4 matrix."""
    return np.asarray(values, dtype=float).reshape(4, 4, order="F")


@dataclass(frozen=True)
class ConnectReport:
    """What :class:`PandaArm` found at connect (printed by the real session).

    Attributes:
        realtime: Whether the control thread may get realtime priority.
        realtime_kernel: Whether the kernel is a PREEMPT_RT one.
        lines: One line per finding, for the operator.
    """

    realtime: bool
    realtime_kernel: bool
    lines: tuple[str, ...]


class PandaArm:
    """The Panda arm: non-blocking pose moves and per-period velocity commands.

    Pose moves run panda-py's blocking ``move_to_pose`` in a worker thread, at the speed factor
    that keeps the gripper within ``max_speed`` (:func:`envelope_speed_factor`), and are DONE
    only when the measured pose is within ``hw.position_tolerance`` / ``hw.angle_tolerance``
    (panda-py's own success means 2 cm and 0.1 rad). While a worker runs, :meth:`pose` returns
    the last pose read instead of reading the robot: libfranka refuses a read that overlaps the
    start or the end of a control loop. Stopping a velocity controller first holds the measured
    pose until the joints are at rest; the error a stop leaves in panda-py (e.g. "Motion finished
    commanded, but the robot is still moving!") is cleared, logged and kept in
    :attr:`stop_errors`, never reported as the next move's failure.

    Args:
        host: Hostname or IP address of the robot's control unit (FCI).
        hw: Robot configuration (camera mount, control period, speed limits, TCP offset).
        panda_module: The ``panda_py`` module or a stand-in (default: import ``panda_py``).
        speed_factor: A fixed fraction (0, 1] of panda-py's limits for :meth:`move_to`; None
            derives it per move from ``max_speed``.
        max_speed: Largest gripper speed of pose moves, (m/s, rad/s); default the ``hw`` limits
            (the real session passes the safety envelope's, if lower).

    Raises:
        HardwareUnavailable: The robot cannot be reached, or its end effector (Desk's F_T_EE)
            is not the configured grasp point.
    """

    def __init__(self, host: str, hw: HardwareConfig, panda_module: ModuleType | Any | None = None,
                 speed_factor: float | None = None,
                 max_speed: tuple[float, float] | None = None) -> None:
        if speed_factor is not None and not 0.0 < speed_factor <= 1.0:
            raise InputError(f"speed_factor must be in (0, 1], got {speed_factor}")
        self._pp = import_panda_py(panda_module)
        if panda_module is None:  # the real robot: fail in seconds, not after libfranka's 60 s
            probe_fci(host)
        try:
            self._panda = self._pp.Panda(host)
            # Known collision thresholds for the contact the tasks make (panda-py's defaults:
            # 20/10 Nm per joint and 20/10 N, upper/lower), not whatever a previous program set.
            self._panda.set_default_behavior()
        except RuntimeError as e:  # libfranka's exceptions all reach Python as RuntimeError
            raise HardwareUnavailable(f"cannot reach the robot at {host}: {_one_line(e)}") from e
        self.host, self.hw, self.speed_factor = host, hw, speed_factor
        self.max_speed = max_speed or (hw.max_linear_speed, hw.max_angular_speed)
        self._mount = hw.mount
        self._lock = threading.Lock()  # guards status, error and the pose cache
        self._status = MotionStatus.IDLE
        self._error = ""
        self._worker: threading.Thread | None = None
        self._stop_requested = False
        self._controller: Any = None  # the running CartesianImpedance, if any
        self._ref: Pose | None = None  # gripper reference the impedance controller tracks
        self._q_posture: np.ndarray | None = None  # nullspace posture of the controller (rad)
        self._twist_until = 0.0  # monotonic s when the current velocity period ends
        self._last_pose: Pose | None = None  # last gripper pose read (served while moving)
        self.commands = 0  # motion commands accepted (for logs and tests)
        self.stop_errors: list[str] = []  # errors that stopping a motion left (cleared, logged)
        self.check_tcp()
        self.report = self._realtime_report()

    # ---------------------------------------------------------------- connect checks
    def check_tcp(self) -> None:
        """Refuse an end effector other than the configured grasp point (Desk's F_T_EE).

        Raises:
            HardwareUnavailable: F_T_EE is off by more than 2 mm or 2 degrees, or unreadable.
        """
        try:
            f_t_ee = _column_major(self._panda.get_state().F_T_EE)
        except RuntimeError as e:
            raise HardwareUnavailable(f"cannot read the robot state at {self.host}: "
                                      f"{_one_line(e)}") from e
        expected = Pose(np.array([0.0, 0.0, self.hw.tcp_offset]), rot_z(FRANKA_HAND_YAW))
        d, r = Pose.from_matrix(f_t_ee).distance(expected)
        if d > TCP_TOLERANCE_M or r > TCP_TOLERANCE_RAD:
            x, y, z = f_t_ee[:3, 3]
            yaw = np.degrees(np.arctan2(f_t_ee[1, 0], f_t_ee[0, 0]))
            raise HardwareUnavailable(
                f"the robot's end effector (Desk F_T_EE) is at ({x:.4f}, {y:.4f}, {z:.4f}) m, "
                f"{yaw:.0f} deg about z; config arm.tcp_offset expects (0, 0, {self.hw.tcp_offset}) m, "
                f"-45 deg (Franka Hand): select the Franka Hand as end effector in Desk")

    def _realtime_report(self) -> ConnectReport:
        """Whether the 1 kHz control thread can run with realtime priority, said plainly."""
        check = getattr(self._pp, "realtime_priority_available", None)
        available, why = check() if check is not None else (False, "panda_py cannot tell")
        kernel_check = getattr(self._pp.libfranka, "has_realtime_kernel", None)
        kernel = bool(kernel_check()) if kernel_check is not None else False
        lines = []
        if not available:
            lines.append(f"no realtime priority for the control thread ({why or 'not permitted'}): "
                         "when the machine is busy the 1 kHz loop misses packets and the robot "
                         "stops with communication_constraints_violation; the app then retries "
                         "the episode (see README, 'On the real robot')")
        if not kernel:
            lines.append("the kernel is not PREEMPT_RT (/sys/kernel/realtime): latency spikes "
                         "can abort motions")
        for line in lines:
            _LOG.warning(line)
        return ConnectReport(bool(available), kernel, tuple(lines))

    # ---------------------------------------------------------------- state
    @property
    def camera_mount(self) -> Pose:
        """Camera optical frame in the gripper frame (``hw.mount``)."""
        return self._mount

    def _in_flight(self) -> bool:
        worker = self._worker
        return worker is not None and worker.is_alive()

    def pose(self) -> Pose:
        """Current gripper pose in the base frame (from the robot's O_T_EE).

        While a move's worker runs this is the pose read last (before the move, or its end
        once it returns): reading then could overlap the move's start or end, which libfranka
        refuses.

        Raises:
            HardwareError: The robot state cannot be read.
        """
        with self._lock:
            cached = self._last_pose
        if cached is not None and self._in_flight():
            return cached
        return self._read_pose()

    def _read_pose(self) -> Pose:
        try:
            o_t_ee = np.asarray(self._panda.get_pose(), dtype=float)
        except RuntimeError as e:
            raise HardwareError(f"cannot read the robot pose: {_one_line(e)}") from e
        pose = hand_to_gripper(Pose.from_matrix(o_t_ee))
        with self._lock:
            self._last_pose = pose
        return pose

    def camera_pose(self) -> Pose:
        """Current camera optical frame in the base frame."""
        return self.pose() @ self._mount

    def forward_kinematics(self, q: np.ndarray | tuple[float, ...]) -> Pose:
        """Gripper pose (base frame) at joint angles ``q`` (rad): panda_py's ``fk`` (libfranka's
        model of the arm with its end effector); the robot does not move."""
        return hand_to_gripper(Pose.from_matrix(np.asarray(self._pp.fk(np.asarray(q, dtype=float)), dtype=float)))

    def joint_positions(self) -> np.ndarray:
        """Joint positions (rad), read from the robot (not while a move runs).

        Raises:
            HardwareError: The robot state cannot be read, or a move is running.
        """
        if self._in_flight():
            raise HardwareError("cannot read the joints while a move is running")
        try:
            return np.asarray(self._panda.get_state().q, dtype=float)
        except RuntimeError as e:
            raise HardwareError(f"cannot read the robot joints: {_one_line(e)}") from e

    # ---------------------------------------------------------------- pose moves
    def move_to(self, target: Pose) -> None:
        """Start a move of the gripper to ``target`` (base frame); returns at once."""
        self.commands += 1
        if not target.is_finite():
            self._set(MotionStatus.FAILED, "unreachable target: pose is not finite")
            return
        if not self._halt():
            return
        try:
            start = self.pose()
        except HardwareError as e:
            self._set(MotionStatus.FAILED, str(e))
            return
        r = start.distance(target)[1]
        factor = self.speed_factor or envelope_speed_factor(target.position - start.position, r,
                                                            *self.max_speed)
        self._start_worker(self._run_move, (gripper_to_hand(target), target, factor))

    def move_to_joints(self, q: np.ndarray | tuple[float, ...]) -> None:
        """Start a joint-space move to ``q`` (rad) at :data:`JOINT_SPEED_FACTOR`; returns at once."""
        goal = np.asarray(q, dtype=float).reshape(7)
        self.commands += 1
        if not np.all(np.isfinite(goal)):
            self._set(MotionStatus.FAILED, "joint target is not finite")
            return
        if not self._halt():
            return
        self._start_worker(self._run_joint_move, (goal,))

    def _start_worker(self, target: Callable[..., None], args: tuple[Any, ...]) -> None:
        self._stop_requested = False
        self._set(MotionStatus.MOVING, "")
        self._worker = threading.Thread(target=target, args=args, name="panda-move", daemon=True)
        self._worker.start()

    def move_relative(self, delta: Pose, frame: FrameName = "gripper") -> None:
        """Start a move by ``delta`` expressed in the current gripper, camera or base frame."""
        current = self.pose()
        if frame == "gripper":
            target = current @ delta
        elif frame == "camera":
            target = current @ self._mount @ delta @ self._mount.inverse()
        elif frame == "base":
            target = Pose(current.position + delta.position, delta.matrix @ current.matrix)
        else:
            raise ValueError(f"frame must be 'base', 'gripper' or 'camera', got {frame!r}")
        self.move_to(target)

    def _finish_stopped(self, error: BaseException | None) -> None:
        """A move ended by our own stop: DONE; the stop's error is logged, not reported."""
        if error is not None:
            self._note_stop_error(_one_line(error))
        self._set(MotionStatus.DONE, "")

    def _run_move(self, hand: Pose, target: Pose, factor: float) -> None:
        """Worker thread: run panda_py's blocking move, then check where the arm ended."""
        x, y, z = target.position
        where = f"move to ({x:.3f}, {y:.3f}, {z:.3f}) m"
        if self._stop_requested:  # stopped before the move began
            self._set(MotionStatus.DONE, "")
            return
        error: BaseException | None = None
        try:
            reached = bool(self._panda.move_to_pose(hand.position, hand.quat, speed_factor=factor))
            self._panda.raise_error()  # a reflex ends the move early and is stored, not raised
        except Exception as e:  # anything: an uncaught error would leave the status MOVING
            error, reached = e, False
        if self._stop_requested:
            self._finish_stopped(error)
            return
        if error is not None:
            self._set(MotionStatus.FAILED, f"{where} failed: {_describe(error)}")
            return
        try:
            measured = self._read_pose()
        except HardwareError as e:
            self._set(MotionStatus.FAILED, f"{where}: {e}")
            return
        d, r = measured.distance(target)
        if not reached:
            self._set(MotionStatus.FAILED, f"{where} ended {d * 100:.1f} cm / {np.degrees(r):.1f} "
                                           "deg short of the target (blocked by contact?)")
            return
        if d > self.hw.position_tolerance or r > self.hw.angle_tolerance:
            self._set(MotionStatus.FAILED,
                      f"{where} ended {d * 1000:.1f} mm / {np.degrees(r):.1f} deg from the target "
                      f"(tolerance {self.hw.position_tolerance * 1000:.1f} mm / "
                      f"{np.degrees(self.hw.angle_tolerance):.1f} deg; blocked by contact?)")
            return
        self._set(MotionStatus.DONE, "")

    def _run_joint_move(self, goal: np.ndarray) -> None:
        """Worker thread: panda_py's blocking joint move."""
        if self._stop_requested:
            self._set(MotionStatus.DONE, "")
            return
        error: BaseException | None = None
        try:
            reached = bool(self._panda.move_to_joint_position(goal, speed_factor=JOINT_SPEED_FACTOR,
                                                              success_threshold=JOINT_TOLERANCE))
            self._panda.raise_error()
        except Exception as e:
            error, reached = e, False
        if self._stop_requested:
            self._finish_stopped(error)
            return
        if error is not None:
            self._set(MotionStatus.FAILED, f"joint move failed: {_describe(error)}")
            return
        try:
            self._read_pose()
        except HardwareError as e:
            self._set(MotionStatus.FAILED, f"joint move: {e}")
            return
        if not reached:
            self._set(MotionStatus.FAILED, f"joint move ended more than {JOINT_TOLERANCE} rad "
                                           "from its goal (blocked by contact?)")
            return
        self._set(MotionStatus.DONE, "")

    # ---------------------------------------------------------------- velocity
    def command_velocity(self, twist: np.ndarray, frame: FrameName = "camera") -> None:
        """Track a twist for one control period.

        The reference pose of the Cartesian impedance controller advances by the twist
        integrated over ``hw.period`` (:func:`~app.transforms.twist_to_pose`) in the moving
        ``frame``. Speeds beyond ``hw.max_linear_speed`` / ``hw.max_angular_speed`` are scaled
        down. The controller smooths the reference (``filter_coeff``) and pulls the elbow
        towards the posture the arm had when it started (``q_nullspace``).

        Args:
            twist: (vx, vy, vz) in m/s and (wx, wy, wz) in rad/s, in ``frame``.
            frame: ``"camera"`` (optical frame) or ``"gripper"``.
        """
        if frame not in ("camera", "gripper"):
            raise ValueError(f"velocity frame must be 'camera' or 'gripper', got {frame!r}")
        twist = np.asarray(twist, dtype=float).reshape(6)
        if not np.all(np.isfinite(twist)):
            self.stop()
            self._set(MotionStatus.FAILED, "velocity command is not finite")
            return
        self.commands += 1
        if self._controller is None:
            if not self._halt():
                return
            try:
                controller = self._pp.controllers.CartesianImpedance(filter_coeff=FILTER_COEFF)
                self._panda.start_controller(controller)
                self._q_posture = np.asarray(self._panda.get_state().q, dtype=float)
            except RuntimeError as e:
                self._set(MotionStatus.FAILED, f"cannot start velocity control: {_one_line(e)}")
                return
            self._controller = controller
            self._ref = self._read_pose()
        elif not self._poll_controller():
            return
        assert self._ref is not None
        measured = self._read_pose()  # cached by panda_py while the controller runs
        d, r = measured.distance(self._ref)
        if d > MAX_REF_LEAD_M or r > MAX_REF_LEAD_RAD:
            self._ref = measured
        twist = _clamp_twist(twist, self.hw.max_linear_speed, self.hw.max_angular_speed)
        step = twist_to_pose(twist, self.hw.period)
        if frame == "camera":  # move the camera frame, carry the gripper along (rigid mount)
            self._ref = self._ref @ self._mount @ step @ self._mount.inverse()
        else:
            self._ref = self._ref @ step
        hand = gripper_to_hand(self._ref)
        try:
            self._controller.set_control(hand.position, hand.quat, q_nullspace=self._q_posture)
        except RuntimeError as e:
            self._fail_controller(f"velocity control failed: {_one_line(e)}")
            return
        self._twist_until = time.monotonic() + self.hw.period
        self._set(MotionStatus.MOVING, "")

    def reference(self) -> Pose | None:
        """The gripper pose the velocity controller is commanded to (None when none runs)."""
        return self._ref

    def _poll_controller(self) -> bool:
        """Surface a control-thread error of the running controller; False if there was one."""
        try:
            self._panda.raise_error()
        except RuntimeError as e:
            self._fail_controller(f"velocity control stopped: {_one_line(e)}")
            return False
        return True

    def _fail_controller(self, reason: str) -> None:
        """Forget the dead controller and report ``reason``."""
        self._controller, self._ref = None, None
        self._set(MotionStatus.FAILED, reason)

    # ---------------------------------------------------------------- status and control
    def motion_status(self) -> MotionStatus:
        """Progress of the last motion command (polls the robot; never blocks)."""
        if self._controller is not None:
            self._poll_controller()
            with self._lock:
                if self._status == MotionStatus.MOVING and time.monotonic() >= self._twist_until:
                    self._status = MotionStatus.DONE
        with self._lock:
            return self._status

    def motion_error(self) -> str:
        """Why the last motion failed ("" when it did not)."""
        with self._lock:
            return self._error

    def stop(self) -> None:
        """Stop any motion: a velocity controller after bringing the arm to rest, a pose move
        at once (panda_py's ``stop_controller``; the robot then holds its pose)."""
        self._halt()

    def _decelerate(self, controller: Any) -> None:
        """Hold the measured pose until every joint is slower than :data:`STILL_DQ` (at most
        :data:`DECELERATE_S`): ending a controller while the arm moves is a reflex."""
        try:
            hold = Pose.from_matrix(np.asarray(self._panda.get_pose(), dtype=float))
            controller.set_control(hold.position, hold.quat, q_nullspace=self._q_posture)
            deadline = time.monotonic() + DECELERATE_S
            while time.monotonic() < deadline and self._panda.is_moving():
                if float(np.max(np.abs(self._panda.get_state().dq))) < STILL_DQ:
                    return
                time.sleep(DECELERATE_POLL_S)
        except RuntimeError as e:  # the controller died meanwhile: nothing left to slow down
            _LOG.info("decelerate: %s", _one_line(e))

    def _note_stop_error(self, message: str) -> None:
        self.stop_errors.append(message)
        _LOG.warning("stopping the arm left an error (cleared): %s", message)

    def _clear_stop_error(self) -> None:
        """Take the error a stop left in panda_py, so the next command does not report it."""
        try:
            self._panda.raise_error()
        except RuntimeError as e:
            self._note_stop_error(_one_line(e))

    def _halt(self) -> bool:
        """Stop the running move or controller; False (and FAILED) if a move did not return."""
        worker, controller = self._worker, self._controller
        if controller is None and (worker is None or not worker.is_alive()):
            return True
        self._stop_requested = True
        if controller is not None:
            self._decelerate(controller)
        self._controller, self._ref = None, None
        deadline, stopped, last = time.monotonic() + STOP_JOIN_S, False, ""
        while True:
            # A stop that lands before the worker's move has started its controller is a no-op
            # in panda_py, and the move would then run; a stop may also be refused while a
            # read or the move's start holds libfranka's lock: repeat until the motion is over.
            try:
                self._panda.stop_controller()
                stopped = True
            except RuntimeError as e:
                last = _one_line(e)
            if worker is not None:
                worker.join(STOP_RETRY_S)
                stopped = stopped or not worker.is_alive()
                if not worker.is_alive() or time.monotonic() >= deadline:
                    break
            elif stopped or time.monotonic() >= deadline:
                break
            else:
                time.sleep(STOP_RETRY_S)
        if worker is not None and worker.is_alive():
            self._set(MotionStatus.FAILED, f"the arm did not stop within {STOP_JOIN_S:.0f} s")
            return False
        if not stopped:
            self._set(MotionStatus.FAILED, f"cannot stop the arm: {last}")
            return False
        if controller is not None:
            self._clear_stop_error()
        with self._lock:
            if self._status == MotionStatus.MOVING:
                self._status = MotionStatus.DONE
        return True

    def recover(self) -> None:
        """Clear a reflex/error state so that commands are accepted again.

        Raises:
            HardwareError: The robot refuses to recover (e.g. the user stop is pressed).
        """
        self._halt()
        try:
            self._panda.raise_error()  # discard the error already reported as FAILED
        except RuntimeError:  # already reported through motion_error()
            pass
        try:
            self._panda.recover()
        except RuntimeError as e:
            raise HardwareError(f"cannot recover the robot at {self.host}: {_one_line(e)}") from e
        self._set(MotionStatus.IDLE, "")

    def _set(self, status: MotionStatus, error: str) -> None:
        with self._lock:
            self._status, self._error = status, error


class PandaGripper:
    """The Franka hand over ``libfranka.Gripper``; commands run in a worker thread.

    At connect the hand is homed when its ``max_width`` is off (never homed, or lost), and it
    opens to the homed width (at most ``hw.max_width``). ``read_once`` blocks for the next state
    packet (~0.1 s on the real hand), so :meth:`width` and :meth:`is_grasped` share one read
    per control period (:meth:`sample`).

    Args:
        host: Hostname or IP address of the robot's control unit.
        hw: Robot configuration (``max_width``, ``grasp_epsilon``, ``period``).
        panda_module: The ``panda_py`` module or a stand-in (default: import ``panda_py``).
        speed: Finger speed in m/s.

    Raises:
        HardwareUnavailable: The gripper cannot be reached or homed.
    """

    def __init__(self, host: str, hw: HardwareConfig, panda_module: ModuleType | Any | None = None,
                 speed: float = GRIPPER_SPEED) -> None:
        pp = import_panda_py(panda_module)
        try:
            self._gripper = pp.libfranka.Gripper(host)
        except RuntimeError as e:
            raise HardwareUnavailable(f"cannot reach the gripper at {host}: {_one_line(e)}") from e
        self.host, self.hw, self.speed = host, hw, speed
        self._worker: threading.Thread | None = None
        self._result: bool | None = None  # what the last command returned (None while running)
        self._error = ""
        self._sample: HandSample | None = None
        self._sampled_at = -np.inf  # monotonic s of the last read
        self.homed = self._home_if_needed()
        self._open_width = min(hw.max_width, self.sample().max_width)

    def _home_if_needed(self) -> bool:
        """Home the hand when its ``max_width`` is more than 5 mm short; True if it homed."""
        reported = self.sample().max_width
        if reported >= self.hw.max_width - MAX_WIDTH_SLACK:
            return False
        try:
            ok = bool(self._gripper.homing())
        except RuntimeError as e:
            raise HardwareUnavailable(f"cannot home the gripper at {self.host}: {_one_line(e)}") from e
        after = self.sample(fresh=True).max_width
        if not ok or after < self.hw.max_width - MAX_WIDTH_SLACK:
            raise HardwareUnavailable(f"the gripper reports max_width {after * 1000:.0f} mm after "
                                      f"homing, expected {self.hw.max_width * 1000:.0f} mm "
                                      "(config gripper.max_width)")
        _LOG.warning("the gripper reported max_width %.0f mm: homed it", reported * 1000)
        return True

    @property
    def max_width(self) -> float:
        """Largest opening in metres (``hw.max_width``)."""
        return self.hw.max_width

    def open(self) -> None:
        """Start opening to the homed width (at most ``hw.max_width``); returns at once."""
        self._start("open", lambda: self._gripper.move(self._open_width, self.speed))

    def grasp(self, width: float, force: float) -> None:
        """Start a grasp; returns at once.

        libfranka closes the fingers with ``force`` and counts the grasp successful (and keeps
        ``is_grasped``) when they stop within ``width - epsilon_inner`` .. ``width +
        epsilon_outer``. Inner epsilon is ``hw.grasp_epsilon``; outer epsilon reaches the full
        opening, so any stop between ``width`` and open counts: with ``width=0`` (Close Gripper)
        the fingers close to contact whether the firmware stops at ``width`` or at the object,
        and a compliant object that keeps yielding is not let go (panda-py issue #50).

        Args:
            width: Target opening in metres, clipped to [0, ``max_width``].
            force: Grasp force in newtons, in (0, 140].
        """
        if not 0.0 < force <= MAX_GRASP_FORCE:
            raise InputError(f"grasp force must be in (0, {MAX_GRASP_FORCE:.0f}] N, got {force}")
        width = float(np.clip(width, 0.0, self.hw.max_width))
        inner = self.hw.grasp_epsilon
        outer = max(self.hw.grasp_epsilon, self.hw.max_width - width)
        self._start("grasp", lambda: self._gripper.grasp(width, self.speed, force,
                                                        epsilon_inner=inner, epsilon_outer=outer))

    def _start(self, what: str, command: Callable[[], bool]) -> None:
        """Abort a running command, then run ``command`` in a worker thread."""
        if self.busy():
            try:
                self._gripper.stop()
            except RuntimeError as e:
                self._error = f"cannot stop the gripper: {_one_line(e)}"
            assert self._worker is not None
            self._worker.join(STOP_JOIN_S)
        self._result, self._error = None, ""
        self._sample = None

        def run() -> None:
            try:
                result, error = bool(command()), ""
            except Exception as e:  # anything: an uncaught error would leave busy() misleading
                result, error = False, f"gripper {what} failed: {_describe(e)}"
            if self._worker is threading.current_thread():  # not superseded ("Command aborted!")
                self._result, self._error = result, error
                self._sample = None

        self._worker = threading.Thread(target=run, name=f"panda-gripper-{what}", daemon=True)
        self._worker.start()

    def busy(self) -> bool:
        """Whether the last open/grasp is still running."""
        return self._worker is not None and self._worker.is_alive()

    def last_result(self) -> bool | None:
        """What libfranka returned for the last command (None while it runs or before any)."""
        return self._result

    def last_error(self) -> str:
        """Why the last command raised ("" when it did not)."""
        return self._error

    def sample(self, fresh: bool = False) -> HandSample:
        """One hand state packet, read at most once per control period (``hw.period``).

        Args:
            fresh: Read now even if this period's packet was already read.

        Raises:
            HardwareError: The gripper state cannot be read.
        """
        now = time.monotonic()
        if not fresh and self._sample is not None and now - self._sampled_at < self.hw.period:
            return self._sample
        try:
            state = self._gripper.read_once()
        except RuntimeError as e:
            raise HardwareError(f"cannot read the gripper state: {_one_line(e)}") from e
        self._sample = HandSample(float(state.width), bool(state.is_grasped), float(state.max_width))
        self._sampled_at = time.monotonic()
        return self._sample

    def width(self) -> float:
        """Current opening in metres (this period's :meth:`sample`)."""
        return self.sample().width

    def is_grasped(self) -> bool:
        """Whether the hand reports an object held (this period's :meth:`sample`)."""
        return self.sample().is_grasped
