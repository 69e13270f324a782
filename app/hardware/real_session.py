"""A real robot session: the Panda arm and hand, the wrist RealSense camera and a wall clock.

``RealSession.robot`` is the same :class:`~app.robot.interfaces.Robot` the simulator's session gives,
with ``backend="real"``; there is no ground-truth accessor.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from types import ModuleType
from typing import Any

from app.hardware.panda import PandaArm, PandaGripper
from app.hardware.realsense import RealSenseCamera
from app.hardware_config import HardwareConfig
from app.robot.interfaces import Camera, Robot
from app.robot.safety import SafetyLimits, load_safety


class RealClock:
    """Wall-clock control ticks of ``period`` seconds on a fixed grid.

    :meth:`advance` sleeps until the next tick of the grid ``start + k * period``. A caller that
    is late by a whole period or more does not get a burst of catch-up ticks: the grid restarts
    from now (counted in :attr:`overruns`).

    Args:
        period: Seconds per control tick (one camera frame).
        time_fn: Monotonic clock in seconds (injectable for tests).
        sleep_fn: Sleep for a number of seconds (injectable for tests).
    """

    def __init__(self, period: float, time_fn: Callable[[], float] = time.monotonic,
                 sleep_fn: Callable[[float], None] = time.sleep) -> None:
        if period <= 0:
            raise ValueError(f"period must be positive, got {period}")
        self.period = period
        self._time, self._sleep = time_fn, sleep_fn
        self._start = time_fn()
        self._next = self._start + period
        self.ticks = 0
        self.overruns = 0  # ticks that found the grid already a whole period behind

    def advance(self) -> None:
        """Wait until the next control period begins."""
        now = self._time()
        if now < self._next:
            self._sleep(self._next - now)
            self._next += self.period
        elif now < self._next + self.period:  # a little late: keep the grid, return at once
            self._next += self.period
        else:
            self.overruns += 1
            self._next = now + self.period
        self.ticks += 1

    def now(self) -> float:
        """Seconds since the clock was created."""
        return self._time() - self._start


class RealSession:
    """The real robot as one session (context manager).

    Connects to the arm, then the gripper, then the camera; if one fails, the ones opened are
    released before the error propagates.

    Args:
        hardware: Robot geometry, camera and control period (``config/hardware.yaml``).
        robot_host: Hostname or IP address of the Panda's control unit.
        camera: A camera to use instead of opening the RealSense (tests, replays prepared
            elsewhere).
        panda_module: The ``panda_py`` module or a stand-in (default: import ``panda_py``).
        speed_factor: A fixed fraction of panda_py's velocity limits for pose moves (default:
            derived per move from the envelope's speeds).
        limits: The safety envelope (default ``config/safety.yaml``); its speeds bound pose
            moves.
        **camera_kwargs: Passed to :class:`~app.hardware.realsense.RealSenseCamera`
            (``width``, ``height``, ``fps``, ``serial``, ``playback``, ``real_time``,
            ``timeout_ms``).

    Raises:
        HardwareUnavailable: The robot, the gripper or the camera cannot be reached.
    """

    def __init__(self, hardware: HardwareConfig, robot_host: str, *, camera: Camera | None = None,
                 panda_module: ModuleType | Any | None = None, speed_factor: float | None = None,
                 limits: SafetyLimits | None = None, **camera_kwargs: Any) -> None:
        self.hw = hardware
        limits = limits or load_safety()
        # Pose moves no faster than the envelope allows (nor than the hardware file says).
        max_speed = (min(hardware.max_linear_speed, limits.max_linear_speed),
                     min(hardware.max_angular_speed, limits.max_angular_speed))
        self.arm = PandaArm(robot_host, hardware, panda_module=panda_module,
                            speed_factor=speed_factor, max_speed=max_speed)
        for line in self.arm.report.lines:
            print(f"warning: {line}", file=sys.stderr)
        try:
            self.gripper = PandaGripper(robot_host, hardware, panda_module=panda_module)
            self.camera: Camera = camera if camera is not None else RealSenseCamera(hardware,
                                                                                    **camera_kwargs)
        except BaseException:
            self.arm.stop()
            raise
        self.clock = RealClock(hardware.period)
        self.robot = Robot(self.camera, self.arm, self.gripper, self.clock, backend="real")
        self._closed = False

    def close(self) -> None:
        """Stop the arm and close the camera (the gripper keeps holding). Idempotent."""
        if self._closed:
            return
        self._closed = True
        try:
            self.arm.stop()
        finally:
            self.camera.close()

    def __enter__(self) -> RealSession:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
