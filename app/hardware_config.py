"""The robot's geometry and camera as configured in ``config/hardware.yaml``."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from app import CONFIG_DIR
from app.config import Section, load_yaml
from app.robot.interfaces import Intrinsics
from app.transforms import Pose, rot_x, rot_y, rot_z


@dataclass(frozen=True)
class HardwareConfig:
    """Camera, mount, gripper and start pose. Lengths in metres, angles in radians."""

    native: Intrinsics
    resolution: int
    depth_range: tuple[float, float]
    depth_unit: float
    fps: float
    mount: Pose  # camera optical frame in the gripper frame
    max_width: float
    grasp_force: float
    grasp_epsilon: float
    finger_depth: float
    fingertip_reach: float  # m, lowest point of the fingers beyond the grasp point along z
    finger_thickness: float  # m, finger inner to outer face along x
    finger_half_depth: float  # m, half the fingers' extent along y
    start_position: np.ndarray
    start_yaw: float
    max_linear_speed: float
    max_angular_speed: float
    position_tolerance: float
    angle_tolerance: float
    object_xy_range: float
    source: str = ""

    @property
    def intrinsics(self) -> Intrinsics:
        """Intrinsics of the model-resolution square frames."""
        return self.native.crop_square().resize(self.resolution, self.resolution)

    @property
    def period(self) -> float:
        """Seconds per control tick (one camera frame)."""
        return 1.0 / self.fps

    def fingertip_corners(self, width: float | None = None) -> np.ndarray:
        """The four lowest corners of the fingertips (4, 3) in the gripper frame (m).

        A box around both fingers at ``width`` opening (default: fully open): x out to each
        finger's outer face, y across the pads, z at :attr:`fingertip_reach` beyond the grasp
        point. Every point of the fingers is at or above these corners for tilts below 90 deg.
        """
        half = (self.max_width if width is None else width) / 2 + self.finger_thickness
        return np.array([[sx * half, sy * self.finger_half_depth, self.fingertip_reach]
                         for sx in (-1, 1) for sy in (-1, 1)])

    def start_pose(self) -> Pose:
        """Gripper start pose in the base frame (top-down)."""
        return Pose.top_down(self.start_position, self.start_yaw)


def load_hardware(path: str | Path | None = None, resolution: int | None = None) -> HardwareConfig:
    """Load and validate ``config/hardware.yaml`` (or ``path``)."""
    path = Path(path) if path else CONFIG_DIR / "hardware.yaml"
    root = Section(load_yaml(path), path)
    cam = root.section("camera")
    nat = cam.section("native")
    native = Intrinsics(nat.number("fx", lo=1.0), nat.number("fy", lo=1.0), nat.number("cx"),
                        nat.number("cy"), nat.integer("width", lo=8), nat.integer("height", lo=8))
    mount = cam.section("mount")
    xyz = mount.vector("xyz", 3, lo=-1.0, hi=1.0)
    r, pt, y = np.radians(mount.vector("rpy", 3, lo=-360, hi=360))
    grip = root.section("gripper")
    arm = root.section("arm")
    dr = cam.vector("depth_range", 2, lo=0.0, hi=20.0)
    if dr[0] >= dr[1]:
        raise cam.error("depth_range", "[min, max] with min < max", dr)
    return HardwareConfig(
        native=native,
        resolution=resolution or cam.integer("resolution", lo=16, hi=1024),
        depth_range=(dr[0], dr[1]),
        depth_unit=cam.number("depth_unit", lo=1e-6, hi=0.01),
        fps=cam.number("fps", lo=1.0, hi=1000.0),
        mount=Pose(np.array(xyz), rot_z(y) @ rot_y(pt) @ rot_x(r)),
        max_width=grip.number("max_width", lo=0.01, hi=0.3),
        grasp_force=grip.number("grasp_force", lo=1.0, hi=140.0),
        grasp_epsilon=grip.number("epsilon", lo=0.0, hi=0.1),
        finger_depth=grip.number("finger_depth", lo=0.0, hi=0.1),
        fingertip_reach=grip.number("fingertip_reach", lo=0.0, hi=0.1),
        finger_thickness=grip.number("finger_thickness", lo=0.0, hi=0.1),
        finger_half_depth=grip.number("finger_half_depth", lo=0.0, hi=0.1),
        start_position=np.array(arm.vector("start_position", 3, lo=-1.5, hi=1.5)),
        start_yaw=float(np.radians(arm.number("start_yaw", lo=-180, hi=180))),
        max_linear_speed=arm.number("max_linear_speed", lo=0.01, hi=1.0),
        max_angular_speed=arm.number("max_angular_speed", lo=0.05, hi=3.0),
        position_tolerance=arm.number("position_tolerance", lo=1e-4, hi=0.05),
        angle_tolerance=float(np.radians(arm.number("angle_tolerance", lo=0.01, hi=20))),
        object_xy_range=root.section("workspace").number("object_xy_range", lo=0.0, hi=0.3),
        source=str(path),
    )
