"""Finding the object from depth alone (:mod:`app.controllers.locate`): hand-made depth images of
a flat table 0.6 m below a top-down camera, intrinsics of the model resolution."""

from __future__ import annotations

import numpy as np
import pytest

from app.controllers.locate import locate_object
from app.robot.interfaces import Intrinsics
from app.transforms import Pose

K = Intrinsics(128.0, 128.0, 63.5, 63.5, 128, 128)  # px: ~53 deg square view, principal point centred
TABLE = 0.6  # m, camera to table along the optical axis
MOUNT = Pose(np.array([0.0, 0.055, -0.10]), np.eye(3))  # camera in the gripper frame (config/hardware.yaml)


def _table() -> np.ndarray:
    return np.full((K.height, K.width), TABLE, np.float32)


def test_block_offset_is_its_centroid_through_the_mount() -> None:
    depth = _table()
    depth[70:80, 40:50] = 0.5  # a 10 cm tall block, centroid (u, v) = (44.5, 74.5) px
    seen = locate_object(depth, K, MOUNT)
    assert seen.found and seen.area_px == 100 - 4  # px: the clean-up's 3 px elliptic opening cuts the corners
    assert seen.centroid_px == pytest.approx((44.5, 74.5))
    x, y = (44.5 - 63.5) / 128 * 0.5, (74.5 - 63.5) / 128 * 0.5 + 0.055  # m, gripper frame by hand
    np.testing.assert_allclose(seen.offset, (x, y), atol=1e-6)


def test_no_depth_means_no_table_and_says_so() -> None:
    seen = locate_object(np.zeros((K.height, K.width), np.float32), K, MOUNT)
    assert not seen.found and seen.offset is None
    assert seen.reason == "no table plane: 0% of the view has depth (< 20% needed)"


@pytest.mark.parametrize(("patch", "z", "why"), [
    ((slice(60, 63), slice(60, 63)), 0.5, "nothing stands above the table: no object blob: largest component"),
    ((slice(0, 12), slice(0, 30)), 0.1, "nothing stands above the table: no object pixels in the mask"),
    ((slice(60, 70), slice(60, 70)), 0.596, "nothing stands above the table: no object pixels in the mask"),
])
def test_specks_fingers_and_flat_things_are_not_objects(patch: tuple[slice, slice], z: float, why: str) -> None:
    # A 3x3 px speck; the fingers read 0.5 m above the table (a camera that sees them); a 4 mm
    # thin sheet (below the gate's 8 mm).
    depth = _table()
    depth[patch] = z
    seen = locate_object(depth, K, MOUNT)
    assert not seen.found and seen.reason.startswith(why)
