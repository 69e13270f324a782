"""The VS law: targets, error, gain, clamping, config, the sign check and closed-loop kinematics.

The closed-loop tests are pure numpy: a rectangular object lies on the table, the gripper
points down with the camera on the configured mount, the features come from projecting the
object (or from a rendered mask and depth image), and the camera moves by the commanded
camera-frame twist for one period per tick.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from app.controllers.depth import object_distance
from app.controllers.features import BlobFeatures, extract_features
from app.controllers.vs import (
    VSMode,
    VSParams,
    VSTargets,
    adaptive_gain,
    clamp_twist,
    compute_targets,
    control_law,
    feature_error,
    is_converged,
    load_vs_params,
    vs_step,
)
from app.errors import ConfigError, InputError
from app.hardware_config import load_hardware
from app.robot.interfaces import Intrinsics
from app.transforms import Pose, delta_pose, rot_x, rot_z, twist_to_pose

MOUNT = Pose(np.array([0.0, 0.055, -0.10]), np.eye(3))  # config/hardware.yaml's mount
PARAMS = VSParams()
DT = 1.0 / 30.0  # s, one control period at 30 fps


def feats(x: float, y: float, alpha: float = 0.0, use_alpha: bool = True) -> BlobFeatures:
    return BlobFeatures(ok=True, x_g=x, y_g=y, alpha=alpha, use_alpha=use_alpha)


# ---------------------------------------------------------------- targets


def test_targets_default_mount_by_hand() -> None:
    # Grasp axis = camera line (0, -0.055, z): x* = 0, y* = -0.055 / Z, alpha* = pi/2.
    t = compute_targets(0.25, MOUNT)
    assert (t.x, t.y, t.alpha) == pytest.approx((0.0, -0.22, np.pi / 2))
    assert compute_targets(0.25, MOUNT, fixed_y_target=-0.2).y == -0.2


def test_targets_camera_turned_90_degrees() -> None:
    # Camera x = gripper y: the grasp point is at camera (-0.055, 0, 0.10), the finger line
    # along camera -y (image angle -pi/2), so alpha* = 0.
    t = compute_targets(0.25, Pose(MOUNT.position, rot_z(np.pi / 2)))
    assert (t.x, t.y, t.alpha) == pytest.approx((-0.22, 0.0, 0.0), abs=1e-12)


def test_targets_tilted_camera_lie_on_the_grasp_axis() -> None:
    mount = Pose(MOUNT.position, rot_x(np.radians(15)))
    t = compute_targets(0.3, mount)
    cam = mount.inverse()
    # The grasp-axis point at camera depth 0.3 projects onto (x*, y*).
    s = np.linspace(0.0, 0.5, 50001)
    pts = cam.apply(np.stack([np.zeros_like(s), np.zeros_like(s), s], axis=1))
    p = pts[np.argmin(np.abs(pts[:, 2] - 0.3))]
    assert (t.x, t.y) == pytest.approx((p[0] / p[2], p[1] / p[2]), abs=1e-4)
    assert t.alpha == pytest.approx(np.pi / 2)  # the finger line stays along camera x


def test_targets_refuse_bad_distances() -> None:
    with pytest.raises(InputError, match="positive number of metres"):
        compute_targets(0.0, MOUNT)
    with pytest.raises(InputError, match="parallel to the image plane"):
        compute_targets(0.3, Pose(MOUNT.position, rot_x(np.pi / 2)))


# ---------------------------------------------------------------- error, law, gain


def test_feature_error_by_hand() -> None:
    targets = VSTargets(0.0, -0.2, np.pi / 2)
    e = feature_error(feats(0.1, -0.1, 1.2), targets, 0.25, "full")
    assert e == pytest.approx([0.025, 0.025, np.pi / 2 - 1.2])  # theta = -(1.2 - pi/2) = 0.3708
    assert feature_error(feats(0.1, -0.1, 1.2), targets, 0.25, "linear")[2] == 0.0
    assert feature_error(feats(0.1, -0.1, 1.2, use_alpha=False), targets, 0.25, "full")[2] == 0.0


@pytest.mark.parametrize(("alpha", "target", "theta"), [
    (-1.4, np.pi / 2, -(np.pi - 1.4 - np.pi / 2)),  # axis at 1.7416 rad: 0.1708 past pi/2
    (1.4, np.pi / 2, np.pi / 2 - 1.4),
    (0.0, np.pi / 2, np.pi / 2),  # exactly across: +pi/2 (the half-open wrap keeps +pi/2)
    (0.3, 0.0, -0.3),
])
def test_theta_is_wrapped_to_half_pi(alpha: float, target: float, theta: float) -> None:
    e = feature_error(feats(0.0, 0.0, alpha), VSTargets(0.0, 0.0, target), 0.3, "full")
    assert e[2] == pytest.approx(theta) and -np.pi / 2 < e[2] <= np.pi / 2


def test_control_law_by_hand() -> None:
    assert control_law(np.array([0.02, -0.01, 0.0]), 0.5) == pytest.approx([0.01, -0.005, 0.0])
    # theta = pi/6: cos = 0.8660, sin = 0.5; t = (0.02, 0.01), lambda = 0.5
    v = control_law(np.array([0.02, 0.01, np.pi / 6]), 0.5)
    assert v == pytest.approx([0.5 * (0.017320508 + 0.005), 0.5 * (-0.01 + 0.008660254),
                               -0.5 * np.pi / 6])


def test_gain_curve() -> None:
    assert adaptive_gain(0.0, 0.7, 0.3, 4.0) == pytest.approx(0.7)
    assert adaptive_gain(1e3, 0.7, 0.3, 4.0) == pytest.approx(0.3)
    assert adaptive_gain(0.1, 0.7, 0.3, 4.0) == pytest.approx(0.4 * np.exp(-1.0) + 0.3)  # 0.447
    grid = np.linspace(0.0, 2.0, 201)
    gains = np.array([adaptive_gain(e, 0.7, 0.3, 4.0) for e in grid])
    assert np.all(np.diff(gains) < 0) and np.all((gains > 0.3) & (gains <= 0.7))
    slope = (adaptive_gain(1e-6, 0.7, 0.3, 4.0) - 0.7) / 1e-6
    assert slope == pytest.approx(-4.0, rel=1e-4)  # lambda0' is minus the slope at 0
    assert adaptive_gain(0.5, 0.4, 0.4, 4.0) == 0.4  # equal ends: a constant gain


def test_clamp_scales_the_whole_twist() -> None:
    twist = np.array([0.06, 0.08, 0.0, 0.0, 0.0, 0.1])  # |v| = 0.1 m/s
    out, sat = clamp_twist(twist, 0.05, 1.0)
    assert sat and out == pytest.approx(twist * 0.5)  # direction and v/omega ratio kept
    out, sat = clamp_twist(twist, 1.0, 0.05)
    assert sat and out == pytest.approx(twist * 0.5)
    out, sat = clamp_twist(twist, 1.0, 1.0)
    assert not sat and np.array_equal(out, twist)
    out, sat = clamp_twist(np.zeros(6), 0.05, 0.5)
    assert not sat and not out.any()


def test_convergence_thresholds() -> None:
    p = replace(PARAMS, position_tolerance=0.003, angle_tolerance=np.radians(2))
    assert is_converged(np.array([0.002, -0.003, 0.5]), "linear", p)  # theta ignored
    assert not is_converged(np.array([0.002, -0.003, 0.5]), "full", p)
    assert is_converged(np.array([0.002, -0.003, 0.03]), "full", p)
    assert not is_converged(np.array([0.0031, 0.0, 0.0]), "linear", p)


def test_vs_step_by_hand() -> None:
    # Z = 0.25, x_g = 0.1 -> t_x = 0.025 m; y on target; alpha 15 deg off: e = 0.2618 rad.
    targets = VSTargets(0.0, -0.22, np.pi / 2)
    f = feats(0.1, -0.22, np.pi / 2 + np.radians(15))
    cmd = vs_step(f, targets, 0.25, "full", PARAMS)
    lam = 0.4 * np.exp(-4.0 * np.radians(15) / 0.4) + 0.3
    assert cmd.gain == pytest.approx(lam) and cmd.error_norm == pytest.approx(np.radians(15))
    theta = -np.radians(15)
    expected = lam * np.array([np.cos(theta) * 0.025, -np.sin(theta) * 0.025, -theta])
    assert cmd.twist[[0, 1, 5]] == pytest.approx(expected)
    assert not cmd.twist[[2, 3, 4]].any() and not cmd.converged and not cmd.saturated
    lin = vs_step(f, targets, 0.25, "linear", PARAMS)
    assert lin.twist[5] == 0.0 and lin.twist[0] == pytest.approx(adaptive_gain(0.025, 0.7, 0.3, 4.0) * 0.025)
    far = vs_step(feats(0.5, -0.22), targets, 0.25, "linear", PARAMS)  # 12.5 cm off
    assert far.saturated and np.linalg.norm(far.twist[:3]) == pytest.approx(PARAMS.max_linear_speed)


def test_vs_step_input_errors() -> None:
    targets = VSTargets(0.0, 0.0, 0.0)
    with pytest.raises(InputError, match="no features to servo on: blob lost"):
        vs_step(BlobFeatures.failure("blob lost"), targets, 0.3, "full", PARAMS)
    with pytest.raises(InputError, match="VS mode"):
        vs_step(feats(0.0, 0.0), targets, 0.3, "angular", PARAMS)  # type: ignore[arg-type]
    with pytest.raises(InputError, match="positive number of metres"):
        vs_step(feats(0.0, 0.0), targets, float("nan"), "full", PARAMS)


# ---------------------------------------------------------------- the sign check


def test_printed_sign_diverges_ours_converges() -> None:
    # A static point at camera (X, Y, Z); a camera translation v for dt moves it to p - v dt and
    # a rotation w_z about the optical axis turns the object's image axis by -w_z dt.
    p = np.array([0.02, -0.01, 0.25])
    alpha, alpha_star, x_star = 1.2, np.pi / 2, np.zeros(2)
    e = feature_error(feats(p[0] / p[2], p[1] / p[2], alpha), VSTargets(0.0, 0.0, alpha_star),
                      p[2], "full")
    ours = control_law(e, 0.5)
    printed = -0.5 * np.array([np.cos(e[2]) * e[0] + np.sin(e[2]) * e[1],
                               -np.sin(e[2]) * e[0] + np.cos(e[2]) * e[1], e[2]])
    dt = 0.01  # s

    def after(v: np.ndarray) -> tuple[float, float]:
        q = p - np.array([v[0], v[1], 0.0]) * dt
        return (float(np.linalg.norm(q[:2] / q[2] - x_star)), abs(alpha - v[2] * dt - alpha_star))

    before = (float(np.linalg.norm(p[:2] / p[2])), abs(alpha - alpha_star))
    assert after(ours)[0] < before[0] and after(ours)[1] < before[1]
    assert after(printed)[0] > before[0]  # the paper's translational sign moves away
    assert after(printed)[1] < before[1]  # its rotational sign is right
    assert printed[2] == pytest.approx(ours[2])


# ---------------------------------------------------------------- closed loop

TABLE_TO_CAMERA = 0.30  # m, camera height at the start (after the two 15 cm pose steps)
OBJECT_HEIGHT = 0.03  # m, so Z_g = 0.27 m: a 7 cm diagonal offset still starts in view


def ideal_grasp(centre: np.ndarray, object_yaw: float) -> Pose:
    """Gripper pose over the object, finger line across the object's long axis."""
    height = TABLE_TO_CAMERA + MOUNT.position[2]  # camera = gripper + 0.10 m up
    return Pose.top_down(np.array([centre[0], centre[1], height]), object_yaw + np.pi / 2)


def point_features(cam: Pose, centre: np.ndarray, object_yaw: float) -> tuple[BlobFeatures, float]:
    """Features of the object's top face by projecting its centre and its long axis."""
    axis = np.array([np.cos(object_yaw), np.sin(object_yaw), 0.0]) * 0.05
    c, a, b = cam.inverse().apply(np.stack([centre, centre - axis, centre + axis]))
    x, y = c[0] / c[2], c[1] / c[2]
    alpha = float(np.arctan2(b[1] / b[2] - a[1] / a[2], b[0] / b[2] - a[0] / a[2]))
    assert abs(x) < 0.5 and abs(y) < 0.5, "the object left the field of view"  # ~53 deg FOV
    return feats(x, y, (alpha + np.pi / 2) % np.pi - np.pi / 2), float(c[2])


def servo(start: Pose, sense: Callable[[Pose], tuple[BlobFeatures, float]],
          params: VSParams) -> tuple[Pose, list[str]]:
    """Linear VS until it converges, then full VS until it converges; the gripper's end pose."""
    grip, trace = start, []
    mode: VSMode = "linear"
    for _ in range(params.max_iterations):
        cam = grip @ MOUNT
        f, z = sense(cam)
        cmd = vs_step(f, compute_targets(z, MOUNT, params.fixed_y_target), z, mode, params)
        if not trace or trace[-1] != mode:
            trace.append(mode)
        if cmd.converged:
            if mode == "full":
                trace.append("converged")
                return grip, trace
            mode = "full"
            continue
        grip = (cam @ twist_to_pose(cmd.twist, DT)) @ MOUNT.inverse()
    raise AssertionError(f"no convergence in {params.max_iterations} ticks ({trace})")


def check_grasp(grip: Pose, centre: np.ndarray, object_yaw: float, pos_tol: float,
                angle_tol: float) -> None:
    offset = grip.inverse().apply(centre)  # object centre in the gripper frame
    assert np.max(np.abs(offset[:2])) <= pos_tol, offset
    axis = np.array([np.cos(object_yaw), np.sin(object_yaw), 0.0])
    assert abs(float(grip.matrix[:, 0] @ axis)) <= np.sin(angle_tol)  # finger line across it


OFFSETS = [(dx, dy, dyaw) for dx in (-0.05, 0.05) for dy in (-0.05, 0.05) for dyaw in (-45.0, 45.0)]
OFFSETS += [(0.05, 0.0, 0.0), (0.0, -0.05, 0.0), (0.0, 0.0, 45.0), (0.0, 0.0, -45.0),
            (0.03, -0.02, 30.0)]


@pytest.mark.parametrize(("dx", "dy", "dyaw"), OFFSETS)
def test_closed_loop_converges_from_offsets(dx: float, dy: float, dyaw: float) -> None:
    # Expected trace: linear VS converges, then full VS converges, within max_iterations; the
    # object ends on the grasp axis (within the position tolerance) and across the fingers.
    centre, object_yaw = np.array([0.5, 0.02, OBJECT_HEIGHT]), np.radians(20)
    start = ideal_grasp(centre, object_yaw) @ delta_pose(dx, dy, 0.0, np.radians(dyaw))
    grip, trace = servo(start, lambda cam: point_features(cam, centre, object_yaw), PARAMS)
    assert trace == ["linear", "full", "converged"]
    check_grasp(grip, centre, object_yaw, PARAMS.position_tolerance + 1e-9,
                PARAMS.angle_tolerance + 1e-6)
    assert abs(grip.position[2] - start.position[2]) < 1e-9  # VS never moves along z


def test_closed_loop_with_fixed_y_target_misses_in_y() -> None:
    # The paper's fixed y*_g is right for one height only: y* = -0.15 is right at
    # Z = 0.055 / 0.15 = 0.367 m; servoing at Z = 0.27 m the object ends at camera
    # y = -0.15 * 0.27 = -0.0405 m, i.e. 0.055 - 0.0405 = 14.5 mm off the grasp axis.
    centre, object_yaw = np.array([0.5, 0.0, OBJECT_HEIGHT]), 0.0
    params = replace(PARAMS, fixed_y_target=-0.15)
    start = ideal_grasp(centre, object_yaw) @ delta_pose(0.02, 0.02, 0.0, 0.0)
    grip, _ = servo(start, lambda cam: point_features(cam, centre, object_yaw), params)
    z = TABLE_TO_CAMERA - OBJECT_HEIGHT
    assert grip.inverse().apply(centre)[1] == pytest.approx(0.055 - 0.15 * z, abs=0.0031)


def render(cam: Pose, centre: np.ndarray, object_yaw: float, size: tuple[float, float],
           k: Intrinsics, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Class mask and depth (m, 20 % holes, 2 mm noise) of a box seen by a top-down camera."""
    v, u = np.mgrid[0:k.height, 0:k.width].astype(float)
    xn, yn = k.normalise(u, v)
    z_top = cam.position[2] - centre[2]  # the optical axis points straight down
    world = cam.apply(np.stack([xn * z_top, yn * z_top, np.full_like(xn, z_top)], axis=-1))
    d = world[..., :2] - centre[:2]
    along = d[..., 0] * np.cos(object_yaw) + d[..., 1] * np.sin(object_yaw)
    across = -d[..., 0] * np.sin(object_yaw) + d[..., 1] * np.cos(object_yaw)
    inside = (np.abs(along) <= size[0] / 2) & (np.abs(across) <= size[1] / 2)
    depth = np.where(inside, z_top, cam.position[2]) + rng.normal(0.0, 0.002, inside.shape)
    depth[rng.random(inside.shape) < 0.2] = 0.0
    return inside.astype(np.uint8), depth.astype(np.float32)


@pytest.mark.parametrize(("dx", "dy", "dyaw"), [(0.05, -0.05, 45.0), (-0.04, -0.03, -45.0)])
def test_closed_loop_on_rendered_masks(dx: float, dy: float, dyaw: float) -> None:
    # The whole pipeline on images: mask -> tracked blob -> moments; depth -> median Z_g.
    params = load_vs_params()
    k, rng = load_hardware().intrinsics, np.random.default_rng(0)
    centre, object_yaw = np.array([0.5, 0.0, OBJECT_HEIGHT]), np.radians(-30)
    previous: list[BlobFeatures] = []

    def sense(cam: Pose) -> tuple[BlobFeatures, float]:
        mask, depth = render(cam, centre, object_yaw, (0.08, 0.03), k, rng)
        f = extract_features(mask, k, params.features, previous[-1] if previous else None)
        assert f.ok, f.reason
        assert f.association in ("largest", "overlap")
        previous.append(f)
        z = object_distance(depth, f.mask, params.depth).z
        assert z is not None
        return f, z

    start = ideal_grasp(centre, object_yaw) @ delta_pose(dx, dy, 0.0, np.radians(dyaw))
    grip, trace = servo(start, sense, params)
    assert trace == ["linear", "full", "converged"]
    check_grasp(grip, centre, object_yaw, params.position_tolerance + 0.001,
                params.angle_tolerance + np.radians(0.5))  # pixel quantisation and depth noise


# ---------------------------------------------------------------- config


def test_default_config_loads() -> None:
    p = load_vs_params()
    assert (p.gain_near, p.gain_far) == (0.7, 0.3)
    assert p.angle_tolerance == pytest.approx(np.radians(2.0))
    assert p.max_angular_speed == pytest.approx(np.radians(30.0))
    assert p.fixed_y_target is None and p.source.endswith("vs.yaml")


def _write(tmp_path: Path, old: str, new: str) -> Path:
    from app import CONFIG_DIR

    text = (CONFIG_DIR / "vs.yaml").read_text(encoding="utf-8")
    assert old in text
    path = tmp_path / "vs.yaml"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")
    return path


def test_fixed_y_target_option(tmp_path: Path) -> None:
    path = _write(tmp_path, "y_target: geometry", "y_target: fixed")
    assert load_vs_params(path).fixed_y_target == -0.2


@pytest.mark.parametrize(("old", "new", "match"), [
    ("near: 0.7", "near: fast", r"key 'gain.near': expected a number"),
    ("near: 0.7", "near: 0.2", r"key 'gain.near': expected a number >= gain.far"),
    ("max_jump_px: 12.0", "max_jump_px: -1", r"key 'features.tracking.max_jump_px'"),
    ("max_linear_speed:", "max_speed:", r"unknown key 'limits.max_speed'"),
    ("y_target: geometry", "y_target: auto", r"key 'targets.y_target': expected one of"),
    ("max_iterations: 900", "max_iterations: 6.5", r"key 'convergence.max_iterations'"),
    ("depth:", "depths:", r"unknown key 'depths'"),
])
def test_config_errors_name_the_key(tmp_path: Path, old: str, new: str, match: str) -> None:
    with pytest.raises(ConfigError, match=match):
        load_vs_params(_write(tmp_path, old, new))


def test_tree_overrides_of_the_vs_file_are_validated_like_it(tmp_path) -> None:
    import pytest

    from app.controllers.vs import load_vs_params
    from app.errors import ConfigError

    p = load_vs_params(None, {"gain": {"near": 1.4}, "convergence": {"border_patience": 30}}, "tree.yaml")
    assert p.gain_near == 1.4 and p.gain_far == 0.3 and p.border_patience == 30
    assert load_vs_params().border_patience is None and load_vs_params().gain_near == 0.7
    with pytest.raises(ConfigError, match=r"tree.yaml vs_overrides: unknown key 'gain.nearr'"):
        load_vs_params(None, {"gain": {"nearr": 1.4}}, "tree.yaml")
    with pytest.raises(ConfigError, match=r"tree.yaml: vs_overrides.gian: expected a section"):
        load_vs_params(None, {"gian": {"near": 1.4}}, "tree.yaml")
    with pytest.raises(ConfigError, match=r"gain.near"):
        load_vs_params(None, {"gain": {"near": 0.1}}, "tree.yaml")  # below gain.far


def test_shape_gate_is_off_by_default_and_set_by_a_tree_with_its_keys_checked() -> None:
    """``features.shape_gate``: null in vs.yaml (the paper), set through a tree's vs_overrides
    without dropping the other feature keys; a wrong value names the key."""
    from app.controllers.features import ShapeGateParams
    from app.tree_config import load_tree_config

    assert load_vs_params().features.shape_gate is None
    assert load_tree_config("drl_gan_vs").vs.features.shape_gate is None
    clear = load_tree_config("clear_table").vs.features
    assert clear.shape_gate == ShapeGateParams(4.0, 15.0, 1.3, 10) and clear.min_iou == 0.2
    gate = {"max_shift_px": 4.0, "max_turn_deg": 15.0, "max_area_ratio": 0.5, "accept_after": 10}
    with pytest.raises(ConfigError, match=r"features.shape_gate.max_area_ratio"):
        load_vs_params(None, {"features": {"shape_gate": gate}}, "tree.yaml")
    with pytest.raises(ConfigError, match=r"unknown key 'features.shape_gate.max_shift'"):
        load_vs_params(None, {"features": {"shape_gate": {"max_shift": 4.0}}}, "tree.yaml")
