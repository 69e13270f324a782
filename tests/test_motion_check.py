"""The blob motion check (app/controllers/motion_check.py) and its leaf "Blob Moves With Scene?".

The bug it is named for: in `real` + `lab`, D_X on the adapted image kept a blob in an image
corner while the salmon fillet had washed out; visual servoing drove towards that blob, whose
error never changed, until the workspace box refused the velocity.
"""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import py_trees
import pytest
from py_trees.common import Access, Status

from app.controllers.features import FeatureParams, extract_features
from app.controllers.motion_check import BlobMotionCheck, MotionCheckParams
from app.robot.interfaces import Intrinsics
from app.transforms import Pose
from behaviours.perception import BlobMovesWithScene

FX = 110.0  # px, focal length at the 128 px model resolution (about the D415's)
DOWN = np.diag([1.0, -1.0, -1.0])  # camera looking straight down (z to -Z of the base)
K = Intrinsics(width=128, height=128, fx=FX, fy=FX, cx=63.5, cy=63.5)


def _camera(x: float, y: float, yaw: float = 0.0, height: float = 0.3) -> Pose:
    c, s = np.cos(yaw), np.sin(yaw)
    return Pose(np.array([x, y, height]), DOWN @ np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]]))


def _seen(cam: Pose, point: np.ndarray) -> tuple[float, float, float]:
    p = cam.matrix.T @ (point - cam.position)
    return p[0] / p[2], p[1] / p[2], p[2]


def _run(check: BlobMotionCheck, cams: list[Pose], blob) -> list:
    return [check.update(cam, *blob(cam), FX) for cam in cams]


@pytest.mark.parametrize("yaw_step", [0.0, 0.02])  # rad per step: translation, and with rotation
def test_a_point_of_the_scene_follows_at_ratio_one(yaw_step: float) -> None:
    point = np.array([0.04, -0.03, 0.0])  # on the table, off the optical axis
    cams = [_camera(0.002 * i, 0.001 * i, yaw_step * i) for i in range(60)]  # 2 mm per tick
    verdicts = _run(BlobMotionCheck(MotionCheckParams()), cams, lambda cam: _seen(cam, point))
    checked = [v for v in verdicts if v.checked]
    assert checked and all(v.follows for v in verdicts)
    assert all(v.ratio == pytest.approx(1.0, abs=1e-6) for v in checked)
    assert all(v.predicted_px >= 8.0 for v in checked)
    assert not verdicts[0].checked and not verdicts[1].checked  # 2 mm is < 8 px: no verdict yet


def test_a_blob_fixed_in_the_image_is_caught_after_the_predicted_shift() -> None:
    cams = [_camera(0.002 * i, 0.0) for i in range(30)]
    verdicts = _run(BlobMotionCheck(MotionCheckParams()), cams, lambda cam: (-0.36, -0.47, 0.3))
    checked = [i for i, v in enumerate(verdicts) if v.checked]
    # 8 px at fx 110 px and 0.3 m is 2.2 cm of camera motion: the 12th step of 2 mm, then 11 more
    assert checked[:2] == [11, 22] and all(verdicts[i].ratio == pytest.approx(0.0) for i in checked)
    assert verdicts[11].follows and not verdicts[22].follows  # rejected after two windows in a row


def test_one_jump_does_not_reject_a_point_of_the_scene() -> None:
    """The object pushed once while the camera moves: one window reads low, the next follows."""
    point = np.array([0.03, 0.0, 0.0])
    cams = [_camera(0.002 * i, 0.0) for i in range(40)]
    check = BlobMotionCheck(MotionCheckParams())
    verdicts = []
    for i, cam in enumerate(cams):
        pushed = point + (np.array([0.022, 0.0, 0.0]) if i >= 11 else 0.0)  # moved with the camera once
        verdicts.append(check.update(cam, *_seen(cam, pushed), FX))
    checked = [v for v in verdicts if v.checked]
    assert checked[0].ratio < 0.3 and all(v.follows for v in verdicts)


def test_a_lagging_scene_point_still_follows() -> None:
    """Frames 3 ticks old (the lab gap's latency): the blob is where the camera was 3 ticks ago."""
    point = np.array([0.0, 0.02, 0.0])
    cams = [_camera(0.0016 * i, 0.0) for i in range(80)]  # 5 cm/s at 30 fps: the VS speed limit
    check = BlobMotionCheck(MotionCheckParams())
    verdicts = [check.update(cam, *_seen(cams[max(i - 3, 0)], point), FX) for i, cam in enumerate(cams)]
    checked = [v for v in verdicts if v.checked]
    assert checked and all(v.follows and v.ratio > 0.6 for v in checked)


# ----------------------------------------------------------------------------------- the leaf
class _Arm:
    def __init__(self) -> None:
        self.x = 0.0

    def camera_pose(self) -> Pose:
        return _camera(self.x, 0.0)


def _mask(*boxes: tuple[int, int, int, int]) -> np.ndarray:
    m = np.zeros((128, 128), np.uint8)
    for u, v, w, h in boxes:
        m[v:v + h, u:u + w] = 1
    return m


def test_leaf_rejects_a_fixed_blob_and_extract_features_then_ignores_it() -> None:
    py_trees.blackboard.Blackboard.clear()
    leaf = BlobMovesWithScene(MotionCheckParams())
    arm = _Arm()
    leaf.setup(robot=SimpleNamespace(arm=arm))
    bb = py_trees.blackboard.Client(name="test")
    for key in ("features", "z_g", "model_frame", "mask_source", "static_blobs", "static_blobs_found"):
        bb.register_key(key, access=Access.WRITE)
    corner, obj = (0, 0, 20, 20), (70, 60, 10, 8)  # the corner blob is the largest: chosen first
    mask = _mask(corner, obj)
    bb.z_g, bb.model_frame, bb.mask_source = 0.3, SimpleNamespace(intrinsics=K), "adapted"
    features = extract_features(mask, K, FeatureParams())
    assert features.association == "largest" and features.centroid_px[0] < 20
    statuses = []
    for _ in range(40):
        bb.features = features
        leaf.tick_once()
        statuses.append(leaf.status)
        if leaf.status == Status.FAILURE:
            break
        features = extract_features(mask, K, FeatureParams(), previous=features)  # the same place
        arm.x += 0.002
    assert statuses == [Status.SUCCESS] * 22 + [Status.FAILURE]
    assert "fixed in the image" in leaf.feedback_message
    assert bb.features is None and bb.static_blobs_found == 1
    exclude = bb.static_blobs["adapted"]
    after = extract_features(mask, K, FeatureParams(), exclude=exclude)
    assert after.ok and after.centroid_px == pytest.approx((74.5, 63.5))  # the other blob
    only_corner = extract_features(_mask(corner), K, FeatureParams(), exclude=exclude)
    assert not only_corner.ok and "fixed in the image" in only_corner.reason
    assert "raw" not in bb.static_blobs  # D_Y's mask on the raw image is another segmenter's


def test_motion_check_keys_are_validated(tmp_path) -> None:
    import yaml

    from app import CONFIG_DIR
    from app.controllers.vs import load_vs_params
    from app.errors import ConfigError

    assert load_vs_params().motion_check == MotionCheckParams()
    data = yaml.safe_load((CONFIG_DIR / "vs.yaml").read_text())
    data["features"]["motion_check"] = None
    (tmp_path / "off.yaml").write_text(yaml.safe_dump(data))
    assert load_vs_params(tmp_path / "off.yaml").motion_check is None
    data["features"]["motion_check"] = {"min_predicted_shift_px": 8.0, "min_follow_ratio": 3, "windows_to_reject": 2}
    (tmp_path / "bad.yaml").write_text(yaml.safe_dump(data))
    with pytest.raises(ConfigError, match="min_follow_ratio"):
        load_vs_params(tmp_path / "bad.yaml")


# ------------------------------------------------------------------------------ in the simulator
@pytest.mark.slow
@pytest.mark.parametrize("check", [True, False])
def test_vs_leaves_a_corner_artifact_for_the_object(real_session, seen, check: bool) -> None:
    """D_X's mask holds a 20 x 20 px blob in the top-left corner (larger than the object) in every
    frame, as the generator's artifact did. With the check, VS rejects it within a few cm and
    falls back to D_Y on the raw image, which grasps; without it, VS chases the corner until the
    arm is stopped (the bug)."""
    from dataclasses import replace

    from app.hardware_config import load_hardware
    from app.runner import run_episode
    from app.tree_config import load_tree_config
    from app.trees import build_tree
    from tests.fakes.truth_models import TruthModels

    class Artifact(TruthModels):
        def segment(self, frame):
            mask = super().segment(frame).copy()
            mask[:20, :20] = 1
            return mask

        def segment_raw(self, frame):
            return TruthModels.segment(self, frame)

    s = real_session
    s.reset(seen.get("sugar_box"), 5)
    cfg = load_tree_config("vs_only")
    if not check:
        cfg = replace(cfg, vs=replace(cfg.vs, motion_check=None))
    start = s.robot.arm.pose().position.copy()
    res = run_episode(build_tree(cfg, load_hardware()), s.robot, Artifact(s), cfg.max_ticks)
    if check:
        assert res.success, (res.failed_node, res.reason)
        assert res.static_blobs == 1 and res.mask_source == "raw"
    else:
        assert not res.success and res.static_blobs == 0
        assert np.linalg.norm(s.robot.arm.pose().position[:2] - start[:2]) > 0.1  # ran > 10 cm away
