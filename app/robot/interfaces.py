"""Hardware interfaces: what a behaviour may know about the camera, the arm and the gripper.

Sim and real backends implement these ``Protocol`` s, so every tree runs unchanged on both.
Nothing here gives access to simulator ground truth (object pose, true mask, exact depth): that
lives behind the simulator's separate evaluation accessor (:mod:`app.sim.truth`).

Frames: ``"base"`` is the robot base (z up, table at z = 0); ``"gripper"`` has its origin at
the grasp point between the fingertips, x along the finger line, z along the approach;
``"camera"`` is the optical frame (same axis convention, origin at the optical centre).
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, replace
from typing import Literal, Protocol, runtime_checkable

import numpy as np

from app.transforms import Pose
from app.types import RGB, Depth

FrameName = Literal["base", "gripper", "camera"]


@dataclass(frozen=True)
class Intrinsics:
    """Pinhole intrinsics in pixels for an image of ``width`` x ``height``."""

    fx: float
    fy: float
    cx: float
    cy: float
    width: int
    height: int

    def crop_square(self) -> Intrinsics:
        """Intrinsics after a centred square crop of side ``min(width, height)``."""
        side = min(self.width, self.height)
        ox, oy = (self.width - side) / 2, (self.height - side) / 2
        return Intrinsics(self.fx, self.fy, self.cx - ox, self.cy - oy, side, side)

    def resize(self, width: int, height: int) -> Intrinsics:
        """Intrinsics after resizing the image to ``width`` x ``height`` (pixel-centre model)."""
        sx, sy = width / self.width, height / self.height
        return Intrinsics(self.fx * sx, self.fy * sy, (self.cx + 0.5) * sx - 0.5,
                          (self.cy + 0.5) * sy - 0.5, width, height)

    def normalise(self, u: np.ndarray | float, v: np.ndarray | float) -> tuple[np.ndarray, np.ndarray]:
        """Pixel coordinates to normalised image coordinates ((u - cx)/fx, (v - cy)/fy)."""
        return (np.asarray(u) - self.cx) / self.fx, (np.asarray(v) - self.cy) / self.fy

    def project(self, points_cam: np.ndarray) -> np.ndarray:
        """Project points (N, 3) in the camera frame (m) to pixels (N, 2)."""
        p = np.asarray(points_cam, dtype=float).reshape(-1, 3)
        return np.stack([self.fx * p[:, 0] / p[:, 2] + self.cx, self.fy * p[:, 1] / p[:, 2] + self.cy], axis=1)

    def fov_deg(self) -> tuple[float, float]:
        """Horizontal and vertical field of view in degrees."""
        return (float(np.degrees(2 * np.arctan(self.width / 2 / self.fx))),
                float(np.degrees(2 * np.arctan(self.height / 2 / self.fy))))


@dataclass(frozen=True)
class Frame:
    """One RGB-D frame, colour and depth registered to one stream (the camera profile's `register_to`).

    Attributes:
        rgb: (H, W, 3) uint8 colour image.
        depth: (H, W) float32 depth along the optical axis in metres; 0 = no reading.
        intrinsics: Intrinsics of both images.
        timestamp: Capture time in seconds (simulated time in the simulator).
        seq: Frame counter from the device (increases by one per new frame).
    """

    rgb: RGB
    depth: Depth
    intrinsics: Intrinsics
    timestamp: float
    seq: int

    def with_images(self, rgb: RGB, depth: Depth) -> Frame:
        """A copy holding other images of the same shape (for adapted frames)."""
        return replace(self, rgb=rgb, depth=depth)


class MotionStatus(enum.Enum):
    """State of the last motion command."""

    IDLE = "idle"  # nothing commanded yet
    MOVING = "moving"
    DONE = "done"  # target reached within tolerance
    FAILED = "failed"  # unreachable, joint limit, reflex; see ``Arm.motion_error()``


@runtime_checkable
class Camera(Protocol):
    """A wrist RGB-D camera."""

    @property
    def intrinsics(self) -> Intrinsics:
        """Intrinsics of the frames :meth:`get_frame` returns."""

    def get_frame(self) -> Frame:
        """The newest frame. Raises :class:`~app.errors.HardwareError` on a timeout."""

    def close(self) -> None:
        """Release the device."""


@runtime_checkable
class Arm(Protocol):
    """A 7-DoF arm carrying the gripper and the camera; poses are of the gripper frame."""

    @property
    def camera_mount(self) -> Pose:
        """Camera frame expressed in the gripper frame (the hand-eye calibration)."""

    def pose(self) -> Pose:
        """Current gripper pose in the base frame."""

    def camera_pose(self) -> Pose:
        """Current camera pose in the base frame."""

    def move_to(self, target: Pose) -> None:
        """Start a motion of the gripper to ``target`` (base frame). Returns at once."""

    def move_relative(self, delta: Pose, frame: FrameName = "gripper") -> None:
        """Start a motion by ``delta`` expressed in ``frame`` (the current gripper/camera frame)."""

    def move_to_joints(self, q: np.ndarray | tuple[float, ...]) -> None:
        """Start a joint-space motion to the posture ``q`` (7 angles, rad): the gripper does not
        move in a straight line (homing, unwinding the wrist). Returns at once."""

    def motion_status(self) -> MotionStatus:
        """Progress of the last motion command (polled; never blocks)."""

    def motion_error(self) -> str:
        """Why the last motion failed ("" when it did not)."""

    def command_velocity(self, twist: np.ndarray, frame: FrameName = "camera") -> None:
        """Command a twist (vx, vy, vz in m/s, wx, wy, wz in rad/s) in ``frame`` for one period."""

    def stop(self) -> None:
        """Stop any motion now."""

    def recover(self) -> None:
        """Clear a reflex/error state so that commands are accepted again."""


@dataclass(frozen=True)
class HandSample:
    """One gripper state sample: opening (m), the grasped flag, full opening (m)."""

    width: float
    is_grasped: bool
    max_width: float


@runtime_checkable
class Gripper(Protocol):
    """A parallel-jaw gripper."""

    @property
    def max_width(self) -> float:
        """Largest opening in metres."""

    def open(self) -> None:
        """Start opening fully. Returns at once."""

    def grasp(self, width: float, force: float) -> None:
        """Start closing towards ``width`` (m) with ``force`` (N). Returns at once."""

    def busy(self) -> bool:
        """Whether the last open/grasp is still running."""

    def width(self) -> float:
        """Current opening in metres."""

    def is_grasped(self) -> bool:
        """Whether an object is held between the fingers."""

    def sample(self) -> HandSample:
        """Width and grasped flag from one state sample (one read on a hand whose reads block)."""

    def last_result(self) -> bool | None:
        """What the hand returned for its last command (None: unknown, running or none yet)."""

    def last_error(self) -> str:
        """Why the last command failed ("" when it did not, or the backend cannot say)."""


class Clock(Protocol):
    """Advances the world by one control period: stepping physics in the simulator, waiting
    for the next camera frame on the real robot."""

    period: float  # seconds per control tick (one camera frame)

    def advance(self) -> None:
        """Let one control period pass."""

    def now(self) -> float:
        """Seconds since the session started (simulated time in the simulator)."""


@dataclass
class Robot:
    """The backends one session drives: what ``setup()`` of every behaviour receives."""

    camera: Camera
    arm: Arm
    gripper: Gripper
    clock: Clock
    backend: str  # "sim" or "real"
