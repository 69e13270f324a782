"""The robot's geometry and camera as configured in ``config/hardware.yaml``.

The camera is one of the file's ``camera_profiles`` (named by ``camera.profile``): its model,
native intrinsics (what the simulator renders and the models are trained on), the stream the
live frames are registered to, depth range and unit, and the librealsense versions that
support it. ``load_hardware`` resolves the named profile into :class:`HardwareConfig`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import yaml

from app import CONFIG_DIR
from app.config import Section, load_yaml
from app.errors import ConfigError
from app.robot.interfaces import Intrinsics
from app.transforms import Pose, rot_x, rot_y, rot_z

# Joint-space moves (``Arm.move_to_joints``), the same on the robot and in the simulator.
JOINT_SPEED_FACTOR = 0.1  # fraction of the Panda's joint velocity limits (panda_py's speed_factor; ~0.2 rad/s)
JOINT_TOLERANCE = 0.01  # rad, a joint move is done within this of its goal (panda-py's default)

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
    camera_profile: str = "custom"  # name of the profile in the file ("custom": inline keys)
    camera_model: str = ""  # substring of the device name librealsense reports ("" = any)
    register_to: str = "color"  # stream whose geometry live frames take: "color" or "depth"
    sdk_min: str = ""  # lowest librealsense version that supports the camera ("" = any)
    sdk_below: str = ""  # first librealsense version that no longer does ("" = none)
    fov_tolerance: float = 0.02  # relative focal-length mismatch tolerated at start-up
    # The real arm (optional keys of ``arm``; defaults are the Franka Hand and the start pose):
    tcp_offset: float = 0.1034  # m, flange to grasp point along z (Desk's F_T_EE, Franka Hand)
    # rad, a posture above the workspace whose grasp point is at the start pose (homing goes
    # there in joint space first); q7 at -45 deg leaves +-90 deg of yaw steps inside its range.
    home_joints: tuple[float, ...] = (0.0, -0.186, 0.0, -1.837, 0.0, 1.651, -0.785)
    place_height: float = 0.08  # m, grasp-point height at which homing puts down a held object

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


_PROFILE_KEYS = {"model", "native", "register_to", "depth_range", "depth_unit", "sdk_min",
                 "sdk_below", "note"}
_VERSION = re.compile(r"^\d+(\.\d+){0,3}$")


def _version(sec: Section, key: str) -> str:
    """An optional dotted version string ("2.55.1"), or "" when absent."""
    value = sec.string(key, default="")
    if value and not _VERSION.match(value):
        raise sec.error(key, "a version like '2.55.1'", value)
    return value


def camera_profile(root: Section) -> tuple[str, Section]:
    """The profile named by ``camera.profile`` (a section of ``camera_profiles``), or the
    ``camera`` section itself when it gives the keys inline (an older or custom file)."""
    cam = root.section("camera")
    if not cam.has("profile"):
        return "custom", cam
    name = cam.string("profile")
    profiles = root.section("camera_profiles")
    if not profiles.has(name):
        raise cam.error("profile", f"one of {sorted(profiles.data)} (camera_profiles)", name)
    prof = profiles.section(name)
    prof.unknown_keys(_PROFILE_KEYS)
    return name, prof


def load_hardware(path: str | Path | None = None, resolution: int | None = None,
                  profile: str | None = None) -> HardwareConfig:
    """Load and validate ``config/hardware.yaml`` (or ``path``).

    Args:
        path: Hardware file (default ``config/hardware.yaml``).
        resolution: Model resolution in pixels, replacing ``camera.resolution``.
        profile: Camera profile name, replacing ``camera.profile``.
    """
    path = Path(path) if path else CONFIG_DIR / "hardware.yaml"
    data = load_yaml(path)
    if profile is not None:
        data = {**data, "camera": {**(data.get("camera") or {}), "profile": profile}}
    root = Section(data, path)
    cam = root.section("camera")
    profile_name, prof = camera_profile(root)
    nat = prof.section("native")
    native = Intrinsics(nat.number("fx", lo=1.0), nat.number("fy", lo=1.0), nat.number("cx"),
                        nat.number("cy"), nat.integer("width", lo=8), nat.integer("height", lo=8))
    mount = cam.section("mount")
    xyz = mount.vector("xyz", 3, lo=-1.0, hi=1.0)
    r, pt, y = np.radians(mount.vector("rpy", 3, lo=-360, hi=360))
    grip = root.section("gripper")
    arm = root.section("arm")
    dr = prof.vector("depth_range", 2, lo=0.0, hi=20.0)
    if dr[0] >= dr[1]:
        raise prof.error("depth_range", "[min, max] with min < max", dr)
    return HardwareConfig(
        native=native,
        resolution=resolution or cam.integer("resolution", lo=16, hi=1024),
        depth_range=(dr[0], dr[1]),
        depth_unit=prof.number("depth_unit", lo=1e-6, hi=0.01),
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
        camera_profile=profile_name,
        camera_model=prof.string("model", default=""),
        register_to=prof.string("register_to", default="color", choices=["color", "depth"]),
        sdk_min=_version(prof, "sdk_min"),
        sdk_below=_version(prof, "sdk_below"),
        fov_tolerance=cam.number("fov_tolerance", default=0.02, lo=0.0, hi=0.5),
        **_real_arm_keys(arm),
    )


def _real_arm_keys(arm: Section) -> dict[str, object]:
    """The optional real-arm keys of the ``arm`` section that are present."""
    out: dict[str, object] = {}
    if arm.has("tcp_offset"):
        out["tcp_offset"] = arm.number("tcp_offset", lo=0.0, hi=0.5)
    if arm.has("home_joints"):
        out["home_joints"] = tuple(arm.vector("home_joints", 7, lo=-3.1, hi=3.8))
    if arm.has("place_height"):
        out["place_height"] = arm.number("place_height", lo=0.01, hi=0.5)
    return out


@dataclass(frozen=True)
class DepthRangeCheck:
    """Whether the camera reads depth at one gripper height (metres along the optical axis)."""

    descent: float  # m below the start pose
    table: float  # distance to the table top
    nearest: float  # distance to the top of the tallest object
    ok: bool  # both inside the camera profile's depth range


def depth_range_checks(hw: HardwareConfig, descents: tuple[float, ...],
                       tallest: float) -> list[DepthRangeCheck]:
    """Check the start pose and each height below it against the profile's depth range.

    Args:
        hw: Hardware file (start pose, mount, camera profile).
        descents: Metres below the start pose, e.g. the pose steps' and VS heights.
        tallest: Height of the tallest object (m): its top is the nearest surface.

    Returns:
        One check per descent: the table and the tallest object's top must both be readable.
    """
    lo, hi = hw.depth_range
    out = []
    for descent in descents:
        camera = hw.start_pose() @ Pose(np.array([0.0, 0.0, descent]), np.eye(3)) @ hw.mount
        axis_down = -float(camera.matrix[2, 2])  # cosine between the optical axis and straight down
        if axis_down <= 1e-6:  # looking sideways or up: the table is never in front of it
            out.append(DepthRangeCheck(descent, float("inf"), float("inf"), False))
            continue
        table = float(camera.position[2]) / axis_down  # the table top is the plane z = 0
        nearest = float(camera.position[2] - tallest) / axis_down
        out.append(DepthRangeCheck(descent, table, nearest, lo <= nearest and table <= hi))
    return out


TRAINING_CAMERA_FILE = "training_camera.yaml"  # beside the weights: the camera they were trained for


def write_training_camera(directory: str | Path, hw: HardwareConfig) -> Path:
    """Record, beside trained weights, the camera the simulator rendered for them.

    Args:
        directory: A training run directory or ``models/weights``.
        hw: The hardware configuration the training rendered with.

    Returns:
        The file written (:data:`TRAINING_CAMERA_FILE`).
    """
    k = hw.native
    record = {"profile": hw.camera_profile, "model": hw.camera_model, "register_to": hw.register_to,
              "resolution": hw.resolution,
              "native": {"width": k.width, "height": k.height, "fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy},
              "depth_range": list(hw.depth_range), "depth_unit": hw.depth_unit, "hardware": hw.source}
    path = Path(directory) / TRAINING_CAMERA_FILE
    path.write_text("# The camera these weights were trained for (written by the training; checked at\n"
                    "# start-up on the real robot against config/hardware.yaml's camera profile).\n"
                    + yaml.safe_dump(record, sort_keys=False), encoding="utf-8")
    return path


def check_training_camera(directory: str | Path, hw: HardwareConfig) -> None:
    """Refuse a camera profile whose frames differ from those the weights were trained on.

    The model-resolution intrinsics of both (native intrinsics cropped to the centred square
    and resized) must agree within ``hw.fov_tolerance`` (focal lengths relative, principal
    points as a fraction of the side), at the same resolution.

    Raises:
        ConfigError: One line naming the file, both cameras and the largest difference.
    """
    path = Path(directory) / TRAINING_CAMERA_FILE
    if not path.is_file():
        raise ConfigError(f"{path}: missing (the weights do not say which camera they were trained "
                          "for; a training run writes it, models.ship copies it)")
    root = Section(load_yaml(path), path)
    nat = root.section("native")
    resolution = root.integer("resolution", lo=16, hi=1024)
    native = Intrinsics(nat.number("fx", lo=1.0), nat.number("fy", lo=1.0), nat.number("cx"),
                        nat.number("cy"), nat.integer("width", lo=8), nat.integer("height", lo=8))
    trained = native.crop_square().resize(resolution, resolution)
    profile = root.string("profile", default="?")
    live = hw.intrinsics
    if resolution != hw.resolution:
        raise ConfigError(f"{path}: the weights were trained at {resolution} px, {hw.source} has "
                          f"camera.resolution {hw.resolution}")
    errors = {"fx": live.fx / trained.fx - 1.0, "fy": live.fy / trained.fy - 1.0,
              "cx": (live.cx - trained.cx) / resolution, "cy": (live.cy - trained.cy) / resolution}
    worst = max(errors, key=lambda key: abs(errors[key]))
    if abs(errors[worst]) > hw.fov_tolerance:
        raise ConfigError(
            f"{path}: the weights were trained for camera profile '{profile}' "
            f"({trained.fov_deg()[0]:.1f} deg at {resolution} px), {hw.source} has "
            f"'{hw.camera_profile}' ({live.fov_deg()[0]:.1f} deg): {worst} off by "
            f"{abs(errors[worst]):.1%}, over camera.fov_tolerance {hw.fov_tolerance:.1%} (train "
            f"for this camera, or set camera.profile: {profile})")
