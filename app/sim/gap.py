"""The physical reality gap: what differs between the robot as configured and the robot as built.

A gap file (``config/gaps/NAME.yaml``, selected with ``--gap NAME|PATH.yaml``) gives the size of
each component; :func:`draw_gap` draws one episode's concrete values (a :class:`GapSample`) from
the episode seed, on a random stream of its own, so the placements and the sensor noise of an
episode are the same under every gap. :func:`apply_gap` hands the values to the simulator's
backends, which keep them private: trees see only what ``Camera``, ``Arm`` and ``Gripper``
give (the configured mount and intrinsics, frames with their capture timestamps, the measured
arm pose). Only the scoring code and the ``oracle`` tree may read a drawn sample
(:meth:`app.sim.truth.GroundTruth.gap_sample`).

Components (all zero in ``none``, which is today's simulator exactly):

* ``hand_eye``: the true camera mount differs from ``config/hardware.yaml``'s by a translation
  (normal, per-axis standard deviation, metres) and a rotation (normal per roll/pitch/yaw, deg).
  The camera renders from the true mount; the arm reports and converts twists with the
  configured one, as a calibrated real robot does.
* ``intrinsics``: the true focal lengths differ by a uniform relative error and the principal
  point by a uniform error in native pixels; frames still report the configured intrinsics.
* ``latency``: a frame reaches the tree ``frames`` ± ``jitter_frames`` periods after capture
  (uniform integer per frame, never out of order), stamped with its capture time.
* ``arm``: velocity commands take effect ``delay_ticks`` control periods late, through a
  first-order lag of ``time_constant_s``; pose moves settle off their target by a steady-state
  error (normal, per-axis standard deviation, metres, base frame, fixed for the episode).
* ``objects``: mass, friction and size scaled by uniform relative errors.
* ``table``: the table surface raised or lowered by a uniform error (metres) from the z = 0
  the start pose and the safety envelope assume.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from app.config import Section, file_sha256, load_yaml, resolve
from app.robot.interfaces import Intrinsics
from app.transforms import Pose, rot_x, rot_y, rot_z

if TYPE_CHECKING:
    from app.sim.objects import ObjectSpec

GAP_STREAM = 0x6A70  # second seed word of the gap's random stream ("gp"): independent of placements/noise
COMPONENTS = ("hand_eye", "intrinsics", "latency", "arm", "objects", "table")
DEFAULT_FOR_DOMAIN = {"sim": "none"}  # every other domain (real, real_clutter, a user's) defaults to "lab"


@dataclass(frozen=True)
class GapConfig:
    """Sizes of the gap's components (a validated ``config/gaps/*.yaml``).

    Attributes:
        name: File stem. path: The file. sha256: Its content hash (recorded in summaries).
        mount_xyz_sd: Hand-eye translation error, standard deviation per axis (m).
        mount_rpy_sd: Hand-eye rotation error, standard deviation per roll/pitch/yaw (deg).
        focal_rel: Focal-length error, uniform in ±this fraction (fx and fy drawn apart).
        principal_px: Principal-point error, uniform in ±this many native pixels (cx, cy apart).
        latency_frames: Mean delay from capture to the tree, in frame periods.
        latency_jitter: Per-frame jitter, uniform integer in ±this many periods.
        arm_delay_ticks: Control periods before a velocity command takes effect.
        arm_time_constant: First-order lag of velocity tracking (s); 0 = none.
        arm_steady_error_sd: Steady-state error of pose moves, standard deviation per axis (m).
        mass_rel, friction_rel, size_rel: Object errors, uniform in ±this fraction.
        table_height: Table surface error, uniform in ±this many metres.
    """

    name: str
    path: str
    sha256: str
    mount_xyz_sd: float = 0.0
    mount_rpy_sd: float = 0.0
    focal_rel: float = 0.0
    principal_px: float = 0.0
    latency_frames: int = 0
    latency_jitter: int = 0
    arm_delay_ticks: int = 0
    arm_time_constant: float = 0.0
    arm_steady_error_sd: float = 0.0
    mass_rel: float = 0.0
    friction_rel: float = 0.0
    size_rel: float = 0.0
    table_height: float = 0.0


@dataclass(frozen=True)
class GapSample:
    """One episode's drawn gap (ground truth: scoring and the oracle only).

    Attributes:
        mount_xyz: True minus configured mount translation (m, gripper frame).
        mount_rpy: Extra rotation of the true mount after the configured one (deg, camera frame,
            R = Rz(yaw) Ry(pitch) Rx(roll)).
        focal_scale: (true fx / configured fx, true fy / configured fy).
        principal_shift: (true cx - configured cx, true cy - configured cy), native pixels.
        latency_frames, latency_jitter: As in :class:`GapConfig` (the per-frame delay is drawn
            as frames arrive, from ``latency_seed``).
        latency_seed: Seed of the per-frame jitter stream.
        arm_delay_ticks, arm_time_constant: As in :class:`GapConfig`.
        arm_steady_error: Offset at which pose moves settle (m, base frame).
        mass_scale, friction_scale, size_scale: Object multipliers.
        table_dz: Height of the true table surface above z = 0 (m).
    """

    mount_xyz: tuple[float, float, float] = (0.0, 0.0, 0.0)
    mount_rpy: tuple[float, float, float] = (0.0, 0.0, 0.0)
    focal_scale: tuple[float, float] = (1.0, 1.0)
    principal_shift: tuple[float, float] = (0.0, 0.0)
    latency_frames: int = 0
    latency_jitter: int = 0
    latency_seed: int = 0
    arm_delay_ticks: int = 0
    arm_time_constant: float = 0.0
    arm_steady_error: tuple[float, float, float] = (0.0, 0.0, 0.0)
    mass_scale: float = 1.0
    friction_scale: float = 1.0
    size_scale: float = 1.0
    table_dz: float = 0.0

    # ------------------------------------------------------------------ derived
    @property
    def mount_error(self) -> Pose:
        """True mount = configured mount @ this (a small pose in the configured camera frame)."""
        r, p, y = np.radians(self.mount_rpy)
        return Pose(np.asarray(self.mount_xyz, dtype=float), rot_z(y) @ rot_y(p) @ rot_x(r))

    def true_mount(self, configured: Pose) -> Pose:
        """The camera optical frame in the gripper frame as built.

        The translation error is in the gripper frame, the rotation error about the configured
        optical frame's own axes.
        """
        e = self.mount_error
        return Pose(configured.position + e.position, configured.matrix @ e.matrix)

    def true_native(self, native: Intrinsics) -> Intrinsics:
        """The native (e.g. 640x480) intrinsics as built."""
        return Intrinsics(native.fx * self.focal_scale[0], native.fy * self.focal_scale[1],
                          native.cx + self.principal_shift[0], native.cy + self.principal_shift[1],
                          native.width, native.height)

    @property
    def has_camera_error(self) -> bool:
        """Whether the camera renders from anything but the configured mount and intrinsics."""
        return (any(self.mount_xyz) or any(self.mount_rpy) or self.focal_scale != (1.0, 1.0)
                or any(self.principal_shift))

    @property
    def has_latency(self) -> bool:
        """Whether frames are delayed."""
        return self.latency_frames > 0 or self.latency_jitter > 0

    @property
    def has_arm_lag(self) -> bool:
        """Whether velocity commands are delayed or lagged."""
        return self.arm_delay_ticks > 0 or self.arm_time_constant > 0

    def record(self) -> dict[str, Any]:
        """The sample as a JSON-ready dict (``results.jsonl`` key ``gap_sample``), rounded."""
        out: dict[str, Any] = {}
        for k, v in asdict(self).items():
            if isinstance(v, (tuple, list)):
                out[k] = [round(float(x), 6) for x in v]
            elif isinstance(v, float):
                out[k] = round(v, 6)
            else:
                out[k] = v
        return out

    def scale_object(self, spec: ObjectSpec) -> ObjectSpec:
        """``spec`` as built: mass, friction and (rigid objects) size and grasps scaled.

        Soft objects keep their size: their tetrahedral mesh is a file.
        """
        if (self.mass_scale, self.friction_scale, self.size_scale) == (1.0, 1.0, 1.0):
            return spec
        s = self.size_scale if spec.shape != "soft" else 1.0
        return replace(spec, mass=spec.mass * self.mass_scale, friction=spec.friction * self.friction_scale,
                       size=tuple(x * s for x in spec.size),
                       scale=spec.scale * s if spec.shape in ("mesh", "urdf") else spec.scale,
                       grasps=tuple((x * s, y * s, z * s, yaw) for x, y, z, yaw in spec.grasps))


NONE_SAMPLE = GapSample()


def load_gap(name_or_path: str | Path) -> GapConfig:
    """Load and validate a gap file by name (``none``, ``lab``) or path.

    Raises:
        ConfigError: One line naming the file, the key and what was expected.
    """
    path = resolve(name_or_path, "gaps")
    root = Section(load_yaml(path), path)
    root.unknown_keys({"description", *COMPONENTS})
    he = root.section("hand_eye", {})
    he.unknown_keys({"xyz_sd_m", "rpy_sd_deg"})
    k = root.section("intrinsics", {})
    k.unknown_keys({"focal_rel", "principal_px"})
    lat = root.section("latency", {})
    lat.unknown_keys({"frames", "jitter_frames"})
    arm = root.section("arm", {})
    arm.unknown_keys({"delay_ticks", "time_constant_s", "steady_state_error_sd_m"})
    obj = root.section("objects", {})
    obj.unknown_keys({"mass_rel", "friction_rel", "size_rel"})
    tab = root.section("table", {})
    tab.unknown_keys({"height_m"})
    frames = lat.integer("frames", 0, lo=0, hi=30)  # 30 periods = 1 s at 30 fps: beyond any camera
    jitter = lat.integer("jitter_frames", 0, lo=0, hi=30)
    if jitter > frames:
        raise lat.error("jitter_frames", f"an integer <= latency.frames ({frames}): a frame cannot arrive "
                                         "before it is captured", jitter)
    return GapConfig(
        name=path.stem, path=str(path), sha256=file_sha256(path),
        mount_xyz_sd=he.number("xyz_sd_m", 0.0, lo=0.0, hi=0.05),  # 5 cm: beyond that it is not a calibration
        mount_rpy_sd=he.number("rpy_sd_deg", 0.0, lo=0.0, hi=10.0),
        focal_rel=k.number("focal_rel", 0.0, lo=0.0, hi=0.2),
        principal_px=k.number("principal_px", 0.0, lo=0.0, hi=50.0),
        latency_frames=frames, latency_jitter=jitter,
        arm_delay_ticks=arm.integer("delay_ticks", 0, lo=0, hi=30),
        arm_time_constant=arm.number("time_constant_s", 0.0, lo=0.0, hi=2.0),
        arm_steady_error_sd=arm.number("steady_state_error_sd_m", 0.0, lo=0.0, hi=0.02),
        mass_rel=obj.number("mass_rel", 0.0, lo=0.0, hi=0.9),  # < 1: a mass stays positive
        friction_rel=obj.number("friction_rel", 0.0, lo=0.0, hi=0.9),
        size_rel=obj.number("size_rel", 0.0, lo=0.0, hi=0.5),
        table_height=tab.number("height_m", 0.0, lo=0.0, hi=0.05),
    )


def default_gap(domain: str | Path) -> str:
    """The gap used when ``--gap`` is not given: ``none`` for the ``sim`` domain (name or file),
    ``lab`` for any other (``real`` above all)."""
    return DEFAULT_FOR_DOMAIN.get(Path(str(domain)).stem, "lab")


def gap_argument(args: Any) -> str:
    """The gap a command runs with: ``--gap``, or :func:`default_gap` of ``--domain``."""
    return getattr(args, "gap", None) or default_gap(getattr(args, "domain", "real"))


def draw_gap(cfg: GapConfig, seed: int) -> GapSample:
    """Draw one episode's gap from the episode ``seed`` (its own stream: placements unchanged).

    Every component is drawn whatever its size, so the same seed gives the same values for a
    component whether or not the others are switched on (the ablation compares like with like).
    """
    rng = np.random.default_rng([seed, GAP_STREAM])
    z3, r3 = rng.standard_normal(3), rng.standard_normal(3)
    uf, up = rng.uniform(-1, 1, 2), rng.uniform(-1, 1, 2)
    lat_seed = int(rng.integers(0, 2**31 - 1))
    ss = rng.standard_normal(3)
    um, uu, us, ut = rng.uniform(-1, 1, 4)
    return GapSample(
        mount_xyz=tuple(float(x) for x in z3 * cfg.mount_xyz_sd),  # type: ignore[arg-type]
        mount_rpy=tuple(float(x) for x in r3 * cfg.mount_rpy_sd),  # type: ignore[arg-type]
        focal_scale=tuple(float(1 + x * cfg.focal_rel) for x in uf),  # type: ignore[arg-type]
        principal_shift=tuple(float(x * cfg.principal_px) for x in up),  # type: ignore[arg-type]
        latency_frames=cfg.latency_frames, latency_jitter=cfg.latency_jitter, latency_seed=lat_seed,
        arm_delay_ticks=cfg.arm_delay_ticks, arm_time_constant=cfg.arm_time_constant,
        arm_steady_error=tuple(float(x) for x in ss * cfg.arm_steady_error_sd),  # type: ignore[arg-type]
        mass_scale=float(1 + um * cfg.mass_rel), friction_scale=float(1 + uu * cfg.friction_rel),
        size_scale=float(1 + us * cfg.size_rel), table_dz=float(ut * cfg.table_height),
    )


def apply_gap(session: Any, sample: GapSample) -> None:
    """Give a :class:`~app.sim.session.SimSession` 's backends this episode's gap (before ``reset``).

    The camera renders from the true mount and intrinsics and delays frames; the arm lags and
    settles off target; ``reset`` then builds the table and the object as drawn.
    """
    hw = session.hw
    session.gap = sample
    true_k = sample.true_native(hw.native).crop_square().resize(hw.resolution, hw.resolution)
    session.camera.set_physical(sample.true_mount(hw.mount) if sample.has_camera_error else None,
                                true_k if sample.has_camera_error else None,
                                sample.latency_frames, sample.latency_jitter, sample.latency_seed)
    session.arm.set_physical(sample.arm_delay_ticks, sample.arm_time_constant,
                             np.asarray(sample.arm_steady_error, dtype=float))
