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
import threading
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from app.errors import HardwareError, HardwareUnavailable, InputError
from app.hardware_config import HardwareConfig
from app.robot.interfaces import FrameName, MotionStatus
from app.transforms import Pose, twist_to_pose

# Rotation from our gripper frame (x along the finger line) to the panda EE/hand frame (fingers
# move along y): the same constant as app.sim.pybullet_world.HAND_FROM_GRIPPER (a test keeps the
# two equal; the simulator module is not imported here).
HAND_FROM_GRIPPER = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
DEFAULT_SPEED_FACTOR = 0.2  # fraction of panda_py's velocity limits for pose moves (its default)
STOP_JOIN_S = 2.0  # s to wait for an interrupted move or grasp to return
STOP_RETRY_S = 0.01  # s between repeated stop requests to a move that has not returned
# The velocity reference leads the measured pose by about one period of motion; if it leads by
# more than this the arm is blocked (or was pushed): re-anchor instead of winding up force.
MAX_REF_LEAD_M = 0.02  # m
MAX_REF_LEAD_RAD = np.radians(5.0)  # rad
GRIPPER_SPEED = 0.05  # m/s finger speed for open and grasp (the hand's maximum is ~0.1 m/s)
MAX_GRASP_FORCE = 140.0  # N, the Franka hand's maximum (70 N continuous)


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


class PandaArm:
    """The Panda arm: non-blocking pose moves and per-period velocity commands.

    Args:
        host: Hostname or IP address of the robot's control unit (FCI).
        hw: Robot configuration (camera mount, control period, speed limits).
        panda_module: The ``panda_py`` module or a stand-in (default: import ``panda_py``).
        speed_factor: Fraction (0, 1] of panda_py's velocity limits for :meth:`move_to`.

    Raises:
        HardwareUnavailable: The robot cannot be reached.
    """

    def __init__(self, host: str, hw: HardwareConfig, panda_module: ModuleType | Any | None = None,
                 speed_factor: float = DEFAULT_SPEED_FACTOR) -> None:
        if not 0.0 < speed_factor <= 1.0:
            raise InputError(f"speed_factor must be in (0, 1], got {speed_factor}")
        self._pp = import_panda_py(panda_module)
        try:
            self._panda = self._pp.Panda(host)
        except RuntimeError as e:  # libfranka's exceptions all reach Python as RuntimeError
            raise HardwareUnavailable(f"cannot reach the robot at {host}: {_one_line(e)}") from e
        self.host, self.hw, self.speed_factor = host, hw, speed_factor
        self._mount = hw.mount
        self._lock = threading.Lock()  # guards status and error, written by the move worker
        self._status = MotionStatus.IDLE
        self._error = ""
        self._worker: threading.Thread | None = None
        self._stop_requested = False
        self._controller: Any = None  # the running CartesianImpedance, if any
        self._ref: Pose | None = None  # gripper reference the impedance controller tracks
        self._twist_until = 0.0  # monotonic s when the current velocity period ends
        self.commands = 0  # motion commands accepted (for logs and tests)

    # ---------------------------------------------------------------- state
    @property
    def camera_mount(self) -> Pose:
        """Camera optical frame in the gripper frame (``hw.mount``)."""
        return self._mount

    def pose(self) -> Pose:
        """Current gripper pose in the base frame (from the robot's O_T_EE).

        Raises:
            HardwareError: The robot state cannot be read.
        """
        try:
            o_t_ee = np.asarray(self._panda.get_pose(), dtype=float)
        except RuntimeError as e:
            raise HardwareError(f"cannot read the robot pose: {_one_line(e)}") from e
        return hand_to_gripper(Pose.from_matrix(o_t_ee))

    def camera_pose(self) -> Pose:
        """Current camera optical frame in the base frame."""
        return self.pose() @ self._mount

    # ---------------------------------------------------------------- pose moves
    def move_to(self, target: Pose) -> None:
        """Start a move of the gripper to ``target`` (base frame); returns at once."""
        self.commands += 1
        if not target.is_finite():
            self._set(MotionStatus.FAILED, "unreachable target: pose is not finite")
            return
        if not self._halt():
            return
        hand = gripper_to_hand(target)
        self._stop_requested = False
        self._set(MotionStatus.MOVING, "")
        self._worker = threading.Thread(target=self._run_move, args=(hand, target),
                                        name="panda-move", daemon=True)
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

    def _run_move(self, hand: Pose, target: Pose) -> None:
        """Worker thread: run panda_py's blocking move and record how it ended."""
        x, y, z = target.position
        where = f"move to ({x:.3f}, {y:.3f}, {z:.3f}) m"
        if self._stop_requested:  # stopped before the move began
            self._set(MotionStatus.DONE, "")
            return
        try:
            reached = bool(self._panda.move_to_pose(hand.position, hand.quat,
                                                    speed_factor=self.speed_factor))
            self._panda.raise_error()  # a reflex ends the move early and is stored, not raised
        except Exception as e:  # anything: an uncaught error would leave the status MOVING
            self._set(MotionStatus.FAILED, f"{where} failed: {_describe(e)}")
            return
        if reached or self._stop_requested:
            self._set(MotionStatus.DONE, "")
            return
        d, r = self.pose().distance(target)
        self._set(MotionStatus.FAILED, f"{where} ended {d * 100:.1f} cm / {np.degrees(r):.1f} deg "
                                       "short of the target (blocked by contact?)")

    # ---------------------------------------------------------------- velocity
    def command_velocity(self, twist: np.ndarray, frame: FrameName = "camera") -> None:
        """Track a twist for one control period.

        The reference pose of the Cartesian impedance controller advances by the twist
        integrated over ``hw.period`` (:func:`~app.transforms.twist_to_pose`) in the moving
        ``frame``. Speeds beyond ``hw.max_linear_speed`` / ``hw.max_angular_speed`` are scaled
        down.

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
                controller = self._pp.controllers.CartesianImpedance()  # panda_py's default gains
                self._panda.start_controller(controller)
            except RuntimeError as e:
                self._set(MotionStatus.FAILED, f"cannot start velocity control: {_one_line(e)}")
                return
            self._controller = controller
            self._ref = self.pose()
        elif not self._poll_controller():
            return
        assert self._ref is not None
        measured = self.pose()
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
            self._controller.set_control(hand.position, hand.quat)
        except RuntimeError as e:
            self._fail_controller(f"velocity control failed: {_one_line(e)}")
            return
        self._twist_until = time.monotonic() + self.hw.period
        self._set(MotionStatus.MOVING, "")

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
        """Stop any motion now: interrupt a pose move or end velocity control (panda_py's
        ``stop_controller``; the robot then holds its pose)."""
        self._halt()

    def _halt(self) -> bool:
        """Stop the running move or controller; False (and FAILED) if a move did not return."""
        worker, controller = self._worker, self._controller
        if controller is None and (worker is None or not worker.is_alive()):
            return True
        self._stop_requested = True
        try:
            self._panda.stop_controller()
        except RuntimeError as e:
            self._set(MotionStatus.FAILED, f"cannot stop the arm: {_one_line(e)}")
            return False
        finally:
            self._controller, self._ref = None, None
        if worker is not None:
            # A stop that lands before the worker's move has started its controller is a no-op
            # in panda_py, and the move would then run: repeat it until the worker returns.
            deadline = time.monotonic() + STOP_JOIN_S
            worker.join(STOP_RETRY_S)
            while worker.is_alive() and time.monotonic() < deadline:
                try:
                    self._panda.stop_controller()
                except RuntimeError:
                    pass  # the first stop's error, if any, was reported above
                worker.join(STOP_RETRY_S)
            if worker.is_alive():
                self._set(MotionStatus.FAILED, f"the arm did not stop within {STOP_JOIN_S:.0f} s")
                return False
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

    Args:
        host: Hostname or IP address of the robot's control unit.
        hw: Robot configuration (``max_width``, ``grasp_epsilon``).
        panda_module: The ``panda_py`` module or a stand-in (default: import ``panda_py``).
        speed: Finger speed in m/s.

    Raises:
        HardwareUnavailable: The gripper cannot be reached.
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

    @property
    def max_width(self) -> float:
        """Largest opening in metres (``hw.max_width``)."""
        return self.hw.max_width

    def open(self) -> None:
        """Start opening to ``max_width``; returns at once."""
        self._start("open", lambda: self._gripper.move(self.hw.max_width, self.speed))

    def grasp(self, width: float, force: float) -> None:
        """Start a grasp; returns at once.

        libfranka closes the fingers until they stop on something (or reach ``width``) and
        holds ``force``. The grasp counts as successful, and :meth:`is_grasped` as true, when
        the fingers stop within ``width - epsilon`` .. ``width + epsilon`` with the wide
        ``hw.grasp_epsilon`` on both sides: tight epsilons make the hand let go of compliant
        objects that keep yielding (panda-py issue #50).

        Args:
            width: Target opening in metres, clipped to [0, ``max_width``].
            force: Grasp force in newtons, in (0, 140].
        """
        if not 0.0 < force <= MAX_GRASP_FORCE:
            raise InputError(f"grasp force must be in (0, {MAX_GRASP_FORCE:.0f}] N, got {force}")
        width = float(np.clip(width, 0.0, self.hw.max_width))
        eps = self.hw.grasp_epsilon
        self._start("grasp", lambda: self._gripper.grasp(width, self.speed, force,
                                                        epsilon_inner=eps, epsilon_outer=eps))

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

        def run() -> None:
            try:
                result, error = bool(command()), ""
            except Exception as e:  # anything: an uncaught error would leave busy() misleading
                result, error = False, f"gripper {what} failed: {_describe(e)}"
            if self._worker is threading.current_thread():  # not superseded by a newer command
                self._result, self._error = result, error

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

    def _state(self) -> Any:
        try:
            return self._gripper.read_once()
        except RuntimeError as e:
            raise HardwareError(f"cannot read the gripper state: {_one_line(e)}") from e

    def width(self) -> float:
        """Current opening in metres."""
        return float(self._state().width)

    def is_grasped(self) -> bool:
        """Whether the hand reports an object held (the last grasp ended within its epsilons)."""
        return bool(self._state().is_grasped)
