"""A fake of the ``panda_py`` API: ``Panda``, ``controllers.CartesianImpedance``,
``libfranka.Gripper`` and ``libfranka.GripperState``, with the names and parameters of
panda-python 1.1.1 (``tests/test_panda.py`` checks them against the installed module).

Behaviour mirrors panda_py where the backend depends on it:

* ``Panda(hostname)`` connects in its constructor (and raises when it cannot);
* ``move_to_pose`` blocks until the move ends, first stopping any controller and recovering,
  and returns whether the goal was reached; a reflex ends it early, returning False, and the
  error surfaces only through ``raise_error()`` (panda_py stores control-loop exceptions);
* a started ``CartesianImpedance`` tracks its ``set_control`` reference (here: at once);
* ``Gripper.grasp`` blocks, succeeds when the fingers stop within the epsilons of ``width``,
  and ``read_once()`` reports ``width`` and ``is_grasped``.

Every call is recorded in :attr:`FakePandaPy.calls`. Failures are injected through
:class:`FakeOptions` and :meth:`FakePandaPy.trigger_reflex`.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import numpy as np

from app.transforms import matrix_to_quat, quat_to_matrix

REFLEX_MESSAGE = ('libfranka: Move command aborted: motion aborted by reflex! ["cartesian_reflex"]'
                  "\ncontrol_command_success_rate: 0.98")  # two lines, as libfranka's can be
REFUSED_MESSAGE = ("libfranka: Connection timeout\nCheck that the robot's FCI is activated "
                   "in Desk and the host is reachable.")
TICK_S = 0.002  # s, granularity of the simulated blocking calls


def _top_down_ee(position: tuple[float, float, float]) -> np.ndarray:
    """4x4 EE pose pointing down (hand z to -Z of the base) at ``position`` (m)."""
    t = np.eye(4)
    t[:3, :3] = np.diag([1.0, -1.0, -1.0])  # rotation by pi about x
    t[:3, 3] = position
    return t


@dataclass
class FakeOptions:
    """How the fake robot behaves. Lengths in metres, times in seconds."""

    refuse_connection: bool = False  # Panda(host) and Gripper(host) raise
    reflex_on_move: bool = False  # the next move_to_pose ends in a reflex halfway
    unreachable: bool = False  # move_to_pose stops short of the goal (returns False)
    grasp_fails: bool = False  # grasp() returns False and the hand reopens (panda-py issue #50)
    move_duration_s: float = 0.05  # how long move_to_pose blocks
    grasp_duration_s: float = 0.02  # how long grasp/move of the gripper block
    object_width: float | None = 0.05  # width of the object between the fingers (None: no object)
    start_pose: np.ndarray = field(default_factory=lambda: _top_down_ee((0.5, 0.0, 0.5)))


@dataclass
class Call:
    """One recorded call: ``name`` is ``Class.method``."""

    name: str
    args: tuple[Any, ...]
    kwargs: dict[str, Any]


class FakePandaPy:
    """Stands in for the ``panda_py`` module (attributes ``Panda``, ``controllers``,
    ``libfranka``); pass it as ``panda_module=``.

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
            Gripper=type("Gripper", (Gripper,), {"_fake": self}), GripperState=GripperState)

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

    def trigger_reflex(self) -> None:
        """A reflex on the last robot: its running controller dies, the error is stored."""
        self.panda._abort(RuntimeError(REFLEX_MESSAGE))


class Panda:
    """Fake ``panda_py.Panda``."""

    _fake: FakePandaPy

    def __init__(self, hostname: str, name: str = "panda") -> None:
        self._fake.record("Panda.__init__", hostname, name=name)
        if self._fake.options.refuse_connection:
            raise RuntimeError(REFUSED_MESSAGE)
        self.hostname = hostname
        self._lock = threading.Lock()
        self._pose = np.array(self._fake.options.start_pose, dtype=float)
        self._controller: CartesianImpedance | None = None
        self._error: Exception | None = None
        self._moving = False
        self._interrupt = threading.Event()
        self.reflex = False  # robot in reflex mode until recover()
        self._fake.robots.append(self)

    def get_pose(self) -> np.ndarray:
        """4x4 O_T_EE (base frame, metres)."""
        with self._lock:
            if self._controller is not None and self._controller._target is not None:
                self._pose = self._controller._target.copy()  # perfect tracking
            return self._pose.copy()

    def get_position(self) -> np.ndarray:
        """EE position (3,) in metres."""
        return self.get_pose()[:3, 3]

    def get_orientation(self, scalar_first: bool = False) -> np.ndarray:
        """EE orientation quaternion, (x, y, z, w) or (w, x, y, z)."""
        q = matrix_to_quat(self.get_pose()[:3, :3])
        return np.roll(q, 1) if scalar_first else q

    def move_to_pose(self, position: np.ndarray, orientation: np.ndarray,
                     speed_factor: float = 0.2) -> bool:
        """Blocking move of the EE to ``position`` (m) and ``orientation`` (x, y, z, w)."""
        self._fake.record("Panda.move_to_pose", np.array(position, dtype=float),
                          np.array(orientation, dtype=float), speed_factor=speed_factor)
        self.stop_controller()
        self.recover()
        goal = np.eye(4)
        goal[:3, :3] = quat_to_matrix(np.asarray(orientation, dtype=float))
        goal[:3, 3] = np.asarray(position, dtype=float).reshape(3)
        opts = self._fake.options
        self._interrupt.clear()
        self._moving = True
        start, fraction = time.monotonic(), 1.0
        try:
            while time.monotonic() - start < opts.move_duration_s:
                if self._interrupt.wait(TICK_S):
                    fraction = (time.monotonic() - start) / opts.move_duration_s
                    break
                if opts.reflex_on_move and time.monotonic() - start > opts.move_duration_s / 2:
                    opts.reflex_on_move = False
                    with self._lock:
                        self._error, self.reflex = RuntimeError(REFLEX_MESSAGE), True
                    fraction = 0.5
                    break
        finally:
            self._moving = False
        if opts.unreachable:
            fraction = min(fraction, 0.5)
        with self._lock:
            self._pose[:3, 3] += fraction * (goal[:3, 3] - self._pose[:3, 3])
            if fraction >= 1.0:
                self._pose[:3, :3] = goal[:3, :3]
        return fraction >= 1.0

    def start_controller(self, controller: CartesianImpedance) -> None:
        """Run ``controller`` asynchronously (stops the previous one, recovers first)."""
        self._fake.record("Panda.start_controller", controller)
        self.stop_controller()
        self.recover()
        with self._lock:
            controller._target = None
            self._controller = controller

    def stop_controller(self) -> None:
        """Stop the running controller or interrupt a move; the arm holds where it is."""
        self._fake.record("Panda.stop_controller")
        self.get_pose()  # freeze at the tracked reference
        with self._lock:
            self._controller = None
        self._interrupt.set()

    def is_moving(self) -> bool:
        """Whether a controller or move is running."""
        return self._moving or self._controller is not None

    def raise_error(self) -> None:
        """Raise (once) the error the control loop stored."""
        with self._lock:
            error, self._error = self._error, None
        if error is not None:
            raise error

    def recover(self) -> None:
        """Leave reflex mode (automatic error recovery)."""
        self._fake.record("Panda.recover")
        self.reflex = False

    def _abort(self, error: Exception) -> None:
        """Control-loop failure: the controller stops and ``error`` is stored."""
        self.get_pose()
        with self._lock:
            self._controller, self._error, self.reflex = None, error, True
        self._interrupt.set()


class CartesianImpedance:
    """Fake ``panda_py.controllers.CartesianImpedance``."""

    _fake: FakePandaPy

    def __init__(self, impedance: np.ndarray | None = None, damping_ratio: float = 1.0,
                 nullspace_stiffness: float = 0.5, filter_coeff: float = 1.0) -> None:
        self._fake.record("CartesianImpedance.__init__", impedance=impedance,
                          damping_ratio=damping_ratio)
        self._target: np.ndarray | None = None

    def set_control(self, position: np.ndarray, orientation: np.ndarray,
                    q_nullspace: np.ndarray | None = None) -> None:
        """New reference: EE ``position`` (m) and ``orientation`` (x, y, z, w), base frame."""
        position = np.array(position, dtype=float).reshape(3)
        orientation = np.array(orientation, dtype=float).reshape(4)
        self._fake.record("CartesianImpedance.set_control", position, orientation)
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
        """Opening after homing (m)."""
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
        self._width = 0.08  # m, open
        self._grasped = False
        self._interrupt = threading.Event()
        self._fake.grippers.append(self)

    def _block(self) -> bool:
        """Wait the command's duration; False if :meth:`stop` interrupted it."""
        self._interrupt.clear()
        return not self._interrupt.wait(self._fake.options.grasp_duration_s)

    def grasp(self, width: float, speed: float, force: float, epsilon_inner: float = 0.005,
              epsilon_outer: float = 0.005) -> bool:
        """Close towards ``width`` (m); True if the fingers stop within the epsilons."""
        self._fake.record("Gripper.grasp", width, speed, force, epsilon_inner=epsilon_inner,
                          epsilon_outer=epsilon_outer)
        if not self._block():
            return False
        opts = self._fake.options
        obj = opts.object_width
        self._width = obj if obj is not None and width < obj < self._width else width
        ok = width - epsilon_inner <= self._width <= width + epsilon_outer
        if opts.grasp_fails:
            self._width, ok = 0.08, False  # the hand lets go and reopens
        self._grasped = ok
        return ok

    def move(self, width: float, speed: float) -> bool:
        """Move the fingers to ``width`` (m)."""
        self._fake.record("Gripper.move", width, speed)
        if not self._block():
            return False
        self._width, self._grasped = width, False
        return True

    def homing(self) -> bool:
        """Calibrate the fingers (opens fully)."""
        self._fake.record("Gripper.homing")
        return self.move(0.08, 0.1)

    def stop(self) -> bool:
        """Abort the running command."""
        self._fake.record("Gripper.stop")
        self._interrupt.set()
        return True

    def read_once(self) -> GripperState:
        """The current gripper state."""
        return GripperState(self._width, self._grasped)
