"""The visual-servoing law (Pedersen et al. 2020, eqs. 7-8): targets, error, adaptive gain, twist.

Features (``features.py``): the object centroid (x_g, y_g) in normalised image coordinates and
the orientation alpha of its primary axis, all in the camera frame of ``app/transforms.py``
(x along the finger line, y perpendicular, z along the approach; image u along x, v along y).
Targets: (x*_g, y*_g) is where the grasp axis (the gripper z through the grasp point) crosses
the depth of the object, so descending along z brings the object between the fingers; alpha*
is perpendicular to the finger line, so that the fingers close across the object's primary axis.

The error, with ``Z_g`` the object distance along the camera z (``depth.py``)::

    t_x = Z_g (x_g - x*_g)     t_y = Z_g (y_g - y*_g)     (metres)
    theta = -(alpha - alpha*)  wrapped to (-pi/2, pi/2]     (radians; 0 when alpha is ignored)

and the camera-frame twist (v_x, v_y in m/s, omega_z in rad/s)::

    v_x     =  lambda (cos theta t_x + sin theta t_y)
    v_y     =  lambda (-sin theta t_x + cos theta t_y)
    omega_z = -lambda theta

**Sign convention.** The paper prints ``v = -lambda [cos theta t_x + sin theta t_y,
-sin theta t_x + cos theta t_y, theta]``. In our frames the rotational row is right but the
translational rows must carry ``+lambda``: a static point seen at ``x = X/Z`` moves in the
image as ``dx/dt = -v_x/Z + y omega_z`` when the camera moves, so ``v_x = -lambda t_x`` would
give ``d(x - x*)/dt = +lambda (x - x*)`` (divergence; ``tests/test_vs.py`` shows it), while
``alpha`` changes as ``d alpha/dt = -omega_z`` so ``omega_z = -lambda theta = lambda
(alpha - alpha*)`` converges. The law is position-based visual servoing (v = -lambda R^T c*t_c,
omega = -lambda theta u, Chaumette & Hutchinson 2006) with c*R_c = R_z(theta) and
c*t_c ~ -(t_x, t_y, 0): the camera must move *by* +t to bring the object onto its target, and
the paper's ``t`` is that displacement, not the current camera position in the desired frame
that PBVS negates. Its rotation matrix is exactly PBVS's R^T; only the translational sign
differs (it would match for velocities expressed in a frame turned by 180 degrees about z from
the optical frame, which the paper does not state). The closed-loop tests converge from 5 cm
and 45 degrees offsets with this sign.

**Gain.** ``lambda(e) = (l0 - linf) exp(-l0' e / (l0 - linf)) + linf`` (ViSP's adaptive gain)
with ``l0 = 0.7`` at convergence and ``linf = 0.3`` far from it, in 1/s, and ``e`` the infinity
norm of the error (t_x, t_y in metres, theta in radians: 1 cm counts like 0.01 rad ~ 0.6 deg).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from app import CONFIG_DIR
from app.config import Section, load_yaml
from app.controllers.depth import DepthParams
from app.controllers.features import BlobFeatures, FeatureParams, ShapeGateParams
from app.controllers.motion_check import MotionCheckParams
from app.errors import ConfigError, InputError
from app.transforms import Pose, wrap_half_pi

VSMode = Literal["linear", "full"]  # linear: x, y only (omega_z = 0); full: x, y and alpha
VS_MODES: tuple[str, ...] = ("linear", "full")
_PARALLEL_EPS = 1e-6  # |cos| below which the grasp axis counts as parallel to the image plane


@dataclass(frozen=True)
class VSParams:
    """Parameters of visual servoing (``config/vs.yaml``). Lengths in m, angles in rad.

    Attributes:
        gain_near: lambda0, gain at zero error (1/s).
        gain_far: lambda_inf, gain for a large error (1/s).
        gain_slope: lambda0', slope of the gain at zero error (1/s per m or rad of error).
        position_tolerance: Converged when |t_x| and |t_y| are below this (m).
        angle_tolerance: ... and, in full VS, |theta| below this (rad).
        max_iterations: Control ticks the whole VS may take before it fails.
        border_patience: Ticks in a row that linear VS may stay converged with the object at
            the image border before VS counts as converged in position alone (the orientation
            as the pose steps left it); None: never (the paper: full VS must converge).
        max_linear_speed: Largest |(v_x, v_y)| commanded (m/s).
        max_angular_speed: Largest |omega_z| commanded (rad/s).
        fixed_y_target: The paper's fixed y*_g (normalised image y), or None for the target
            computed from the mount and the object distance.
        features: Feature-extraction parameters.
        motion_check: The check that the tracked blob moves with the scene, or None (off).
        depth: Depth read-out and descent parameters.
        source: The file the parameters came from ("" for defaults).
    """

    gain_near: float = 0.7  # 1/s, lambda0 (paper)
    gain_far: float = 0.3  # 1/s, lambda_inf (paper)
    gain_slope: float = 4.0  # 1/s per m: the gain is ~0.54 at a 5 cm error
    position_tolerance: float = 0.003  # m, ~1.5 px at 0.25 m in a 128 px image
    angle_tolerance: float = float(np.radians(2.0))  # rad
    max_iterations: int = 900  # ticks, 30 s at 30 fps
    border_patience: int | None = None  # ticks; None: the paper's rule (full VS only away from the border)
    max_linear_speed: float = 0.05  # m/s
    max_angular_speed: float = float(np.radians(30.0))  # rad/s
    fixed_y_target: float | None = None  # None: y*_g from the geometry
    features: FeatureParams = field(default_factory=FeatureParams)
    motion_check: MotionCheckParams | None = field(default_factory=MotionCheckParams)
    depth: DepthParams = field(default_factory=DepthParams)
    source: str = ""


@dataclass(frozen=True)
class VSTargets:
    """Target features: (x, y) normalised image coordinates and alpha (rad), camera frame."""

    x: float
    y: float
    alpha: float


@dataclass(frozen=True)
class VSCommand:
    """One VS step.

    Attributes:
        twist: (6,) camera-frame twist (v_x, v_y, v_z in m/s, w_x, w_y, w_z in rad/s); only
            v_x, v_y and w_z are non-zero.
        error: (3,) feature error (t_x, t_y in m, theta in rad; theta 0 in linear mode or when
            alpha is ignored).
        error_norm: Infinity norm of ``error`` (m or rad).
        gain: Adaptive gain used (1/s).
        converged: Whether the error is within the tolerances of ``mode``.
        saturated: Whether the twist was scaled down to the velocity limits.
        mode: "linear" or "full".
    """

    twist: np.ndarray
    error: np.ndarray
    error_norm: float
    gain: float
    converged: bool
    saturated: bool
    mode: VSMode


def compute_targets(z_g: float, mount: Pose, fixed_y_target: float | None = None) -> VSTargets:
    """Target features for an object at distance ``z_g``, from the camera mount.

    The grasp axis is the gripper z axis through the grasp point (gripper origin). Its point at
    camera depth ``z_g``, projected, gives (x*, y*): an object seen there lies on the axis, so a
    descent along z brings it between the fingers. For the default mount (camera 5.5 cm beside
    the hand along +y, axes parallel) x* = 0 and y* = -0.055 / z_g. alpha* is the image
    direction of the finger line (the gripper x axis through that point) plus pi/2, i.e.
    pi/2 for parallel axes: the object's primary axis across the finger line.

    Args:
        z_g: Object distance along the camera z (m).
        mount: Camera frame in the gripper frame (``HardwareConfig.mount``).
        fixed_y_target: If given, y* is this normalised value instead (the paper's option).

    Returns:
        The targets (normalised image coordinates and rad, camera frame).

    Raises:
        InputError: If ``z_g`` is not positive or the grasp axis never reaches depth ``z_g``.
    """
    if not np.isfinite(z_g) or z_g <= 0:
        raise InputError(f"object distance must be a positive number of metres, found {z_g}")
    cam_from_grip = mount.inverse()
    origin = cam_from_grip.apply(np.zeros(3))  # grasp point, camera frame (m)
    axis = cam_from_grip.matrix[:, 2]  # gripper z, camera frame
    finger = cam_from_grip.matrix[:, 0]  # gripper x (finger line), camera frame
    if abs(axis[2]) < _PARALLEL_EPS:
        raise InputError("the grasp axis is parallel to the image plane: check the camera mount")
    s = (z_g - origin[2]) / axis[2]
    point = origin + s * axis  # on the grasp axis at camera depth z_g
    x, y = point[0] / point[2], point[1] / point[2]
    # Image direction of the 3-D line through `point` along `finger` (derivative of x = X/Z).
    du, dv = finger[0] - x * finger[2], finger[1] - y * finger[2]
    alpha = wrap_half_pi(float(np.arctan2(dv, du)) + np.pi / 2)
    return VSTargets(float(x), float(y) if fixed_y_target is None else float(fixed_y_target), alpha)


def adaptive_gain(error_norm: float, gain_near: float, gain_far: float, gain_slope: float) -> float:
    """ViSP's adaptive gain: ``(l0 - linf) exp(-l0' e / (l0 - linf)) + linf``.

    Args:
        error_norm: e >= 0, infinity norm of the error (m or rad).
        gain_near: l0, the gain at e = 0 (1/s).
        gain_far: linf, the limit for e -> infinity (1/s), <= ``gain_near``.
        gain_slope: l0', minus the slope at e = 0 (1/s per unit of e).

    Returns:
        The gain in 1/s, decreasing from ``gain_near`` to ``gain_far`` as e grows.
    """
    span = gain_near - gain_far
    if span <= 0:
        return gain_far
    return float(span * np.exp(-gain_slope * max(error_norm, 0.0) / span) + gain_far)


def feature_error(features: BlobFeatures, targets: VSTargets, z_g: float, mode: VSMode) -> np.ndarray:
    """The error (t_x, t_y, theta) of eq. 7.

    Args:
        features: Current blob features (must be ``ok``).
        targets: Target features.
        z_g: Object distance along the camera z (m).
        mode: "linear" (theta = 0) or "full".

    Returns:
        (3,) array: t_x, t_y in metres (camera frame), theta in rad in (-pi/2, pi/2], 0 in
        linear mode or when the blob's orientation is ignored.

    Raises:
        InputError: On failed features, a non-positive distance or an unknown mode.
    """
    if not features.ok:
        raise InputError(f"no features to servo on: {features.reason}")
    if not np.isfinite(z_g) or z_g <= 0:
        raise InputError(f"object distance must be a positive number of metres, found {z_g}")
    if mode not in VS_MODES:
        raise InputError(f"VS mode must be one of {list(VS_MODES)}, found {mode!r}")
    theta = wrap_half_pi(-(features.alpha - targets.alpha)) if mode == "full" and features.use_alpha else 0.0
    return np.array([z_g * (features.x_g - targets.x), z_g * (features.y_g - targets.y), theta])


def control_law(error: np.ndarray, gain: float) -> np.ndarray:
    """Eq. 8 with the sign that converges in our frames (see the module docstring).

    Args:
        error: (3,) error (t_x, t_y in m, theta in rad).
        gain: lambda (1/s).

    Returns:
        (3,) camera-frame (v_x, v_y in m/s, omega_z in rad/s).
    """
    t_x, t_y, theta = (float(e) for e in error)
    c, s = np.cos(theta), np.sin(theta)
    return gain * np.array([c * t_x + s * t_y, -s * t_x + c * t_y, -theta])


def clamp_twist(twist: np.ndarray, max_linear: float, max_angular: float) -> tuple[np.ndarray, bool]:
    """Scale a twist down (whole vector, direction kept) to the speed limits.

    Args:
        twist: (6,) twist (m/s, rad/s).
        max_linear: Largest norm of the linear part (m/s).
        max_angular: Largest norm of the angular part (rad/s).

    Returns:
        (the scaled twist, whether it was scaled).
    """
    twist = np.asarray(twist, dtype=float)
    lin, ang = float(np.linalg.norm(twist[:3])), float(np.linalg.norm(twist[3:]))
    scale = min(1.0, max_linear / lin if lin > 0 else 1.0, max_angular / ang if ang > 0 else 1.0)
    return twist * scale, scale < 1.0


def is_converged(error: np.ndarray, mode: VSMode, params: VSParams) -> bool:
    """Whether |t_x|, |t_y| (and |theta| in full mode) are within the tolerances."""
    position_ok = max(abs(float(error[0])), abs(float(error[1]))) <= params.position_tolerance
    return position_ok and (mode == "linear" or abs(float(error[2])) <= params.angle_tolerance)


def vs_step(features: BlobFeatures, targets: VSTargets, z_g: float, mode: VSMode,
            params: VSParams) -> VSCommand:
    """Error, gain, twist and convergence of one VS iteration.

    Args:
        features: Current blob features (must be ``ok``).
        targets: Target features (:func:`compute_targets`).
        z_g: Object distance along the camera z (m).
        mode: "linear" (x, y only, omega_z = 0) or "full" (x, y and alpha).
        params: Gains, tolerances and velocity limits.

    Returns:
        The command; its twist is in the camera frame.

    Raises:
        InputError: On failed features, a non-positive distance or an unknown mode.
    """
    error = feature_error(features, targets, z_g, mode)
    norm = float(np.max(np.abs(error)))
    gain = adaptive_gain(norm, params.gain_near, params.gain_far, params.gain_slope)
    v_x, v_y, w_z = control_law(error, gain)
    twist, saturated = clamp_twist(np.array([v_x, v_y, 0.0, 0.0, 0.0, w_z]),
                                   params.max_linear_speed, params.max_angular_speed)
    return VSCommand(twist=twist, error=error, error_norm=norm, gain=gain,
                     converged=is_converged(error, mode, params), saturated=saturated, mode=mode)


_TOP_KEYS = {"gain", "convergence", "limits", "targets", "features", "depth"}


def load_vs_params(path: str | Path | None = None, overrides: Mapping[str, Any] | None = None,
                   overrides_source: str = "") -> VSParams:
    """Load and validate ``config/vs.yaml`` (or ``path``).

    Args:
        path: The VS file (default ``config/vs.yaml``).
        overrides: Sections whose keys replace the file's (a tree's ``vs_overrides``), e.g.
            ``{"gain": {"near": 1.4}}``; validated as the file's own.
        overrides_source: Where the overrides come from (named in error messages).

    Raises:
        ConfigError: One line naming the file and the key that is missing or wrong.
    """
    path = Path(path) if path else CONFIG_DIR / "vs.yaml"
    data = load_yaml(path)
    source: str | Path = path
    if overrides:
        data = copy.deepcopy(data)
        for name, section in overrides.items():
            if not isinstance(section, Mapping) or not isinstance(data.get(name), Mapping):
                raise ConfigError(f"{overrides_source or path}: vs_overrides.{name}: expected a section of {path.name} "
                                  f"({', '.join(k for k, v in data.items() if isinstance(v, Mapping))}), got {section!r}")
            data[name] = {**data[name], **section}
        source = f"{path} with {overrides_source} vs_overrides" if overrides_source else path
    root = Section(data, source)
    root.unknown_keys(_TOP_KEYS)
    gain, conv, lim = root.section("gain"), root.section("convergence"), root.section("limits")
    tgt, feat, dep = root.section("targets"), root.section("features"), root.section("depth")
    track = feat.section("tracking")
    for sec, keys in ((gain, {"near", "far", "slope"}),
                      (conv, {"position_tolerance", "angle_tolerance", "max_iterations", "border_patience"}),
                      (lim, {"max_linear_speed", "max_angular_speed"}),
                      (tgt, {"y_target", "fixed_y_target"}),
                      (feat, {"open_kernel_px", "close_kernel_px", "min_blob_area_px",
                              "axis_ratio_threshold", "border_margin_px", "tracking", "motion_check",
                              "shape_gate"}),
                      (track, {"min_iou", "max_jump_px"}),
                      (dep, {"erode_px", "min_valid_fraction", "tip_clearance"})):
        sec.unknown_keys(keys)
    near, far = gain.number("near", lo=0.0, hi=10.0), gain.number("far", lo=0.0, hi=10.0)
    if near < far:
        raise gain.error("near", f"a number >= gain.far ({far})", near)
    motion = None  # features.motion_check: null (or absent) turns the check off
    if feat.has("motion_check") and feat.data.get("motion_check") is not None:
        mc = feat.section("motion_check")
        mc.unknown_keys({"min_predicted_shift_px", "min_follow_ratio", "windows_to_reject"})
        motion = MotionCheckParams(min_predicted_shift_px=mc.number("min_predicted_shift_px", lo=1.0, hi=1000.0),
                                   min_follow_ratio=mc.number("min_follow_ratio", lo=0.0, hi=1.0),
                                   windows_to_reject=mc.integer("windows_to_reject", lo=1, hi=100))
    shape_gate = None  # features.shape_gate: null (or absent) uses every frame
    if feat.has("shape_gate") and feat.data.get("shape_gate") is not None:
        sg = feat.section("shape_gate")
        sg.unknown_keys({"max_shift_px", "max_turn_deg", "max_area_ratio", "accept_after"})
        shape_gate = ShapeGateParams(max_shift_px=sg.number("max_shift_px", lo=0.1, hi=1000.0),
                                     max_turn_deg=sg.number("max_turn_deg", lo=0.1, hi=90.0),
                                     max_area_ratio=sg.number("max_area_ratio", lo=1.0, hi=100.0),
                                     accept_after=sg.integer("accept_after", lo=1, hi=10_000))
    fixed = None  # y*_g from the geometry
    if tgt.string("y_target", choices=["geometry", "fixed"]) == "fixed":
        fixed = tgt.number("fixed_y_target", lo=-2.0, hi=2.0)  # normalised image y
    return VSParams(
        gain_near=near, gain_far=far, gain_slope=gain.number("slope", lo=0.0, hi=1000.0),
        position_tolerance=conv.number("position_tolerance", lo=1e-5, hi=0.1),
        angle_tolerance=float(np.radians(conv.number("angle_tolerance", lo=0.01, hi=45.0))),
        max_iterations=conv.integer("max_iterations", lo=1, hi=100_000),
        border_patience=(conv.integer("border_patience", lo=1, hi=100_000)
                         if conv.data.get("border_patience") is not None else None),
        max_linear_speed=lim.number("max_linear_speed", lo=1e-4, hi=1.0),
        max_angular_speed=float(np.radians(lim.number("max_angular_speed", lo=0.1, hi=180.0))),
        fixed_y_target=fixed,
        features=FeatureParams(
            open_kernel_px=feat.integer("open_kernel_px", lo=0, hi=63),
            close_kernel_px=feat.integer("close_kernel_px", lo=0, hi=63),
            min_blob_area_px=feat.integer("min_blob_area_px", lo=1, hi=1_000_000),
            min_iou=track.number("min_iou", lo=0.0, hi=1.0),
            max_jump_px=track.number("max_jump_px", lo=0.0, hi=10_000.0),
            axis_ratio_threshold=feat.number("axis_ratio_threshold", lo=0.0, hi=1.0),
            border_margin_px=feat.integer("border_margin_px", lo=0, hi=1000),
            shape_gate=shape_gate,
        ),
        motion_check=motion,
        depth=DepthParams(
            erode_px=dep.integer("erode_px", lo=0, hi=63),
            min_valid_fraction=dep.number("min_valid_fraction", lo=0.0, hi=1.0),
            tip_clearance=dep.number("tip_clearance", lo=0.0, hi=0.1),
        ),
        source=str(path),
    )
