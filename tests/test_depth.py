"""Depth over the blob (median, holes, erosion) and the descent distance."""

from __future__ import annotations

import numpy as np
import pytest

from app.controllers.depth import (
    DepthParams,
    background_distance,
    descent_distance,
    object_distance,
)
from app.errors import InputError
from app.transforms import Pose, rot_x, rot_z

SIZE = 64  # px
PARAMS = DepthParams()
MOUNT = Pose(np.array([0.0, 0.055, -0.10]), np.eye(3))  # config/hardware.yaml's mount


def scene(top: float = 0.25, table: float = 0.40) -> tuple[np.ndarray, np.ndarray]:
    """Depth (m) and blob mask: a 20 x 30 px object at ``top`` on a table at ``table``."""
    depth = np.full((SIZE, SIZE), table, np.float32)
    blob = np.zeros((SIZE, SIZE), np.uint8)
    blob[20:40, 15:45] = 1
    depth[blob > 0] = top
    return depth, blob


def test_median_ignores_holes_and_outliers() -> None:
    depth, blob = scene()
    rng = np.random.default_rng(0)
    inside = np.argwhere(blob > 0)
    pick = rng.permutation(len(inside))
    holes, outliers = inside[pick[:240]], inside[pick[240:300]]  # 40 % holes, 10 % outliers
    depth[holes[:, 0], holes[:, 1]] = 0.0
    depth[outliers[:, 0], outliers[:, 1]] = 0.9
    est = object_distance(depth, blob, DepthParams(erode_px=0))
    assert est.z == pytest.approx(0.25) and est.reason == ""
    assert est.n_valid == 600 - 240 and est.valid_fraction == pytest.approx(0.6)


def test_noise_is_averaged_out_by_the_median() -> None:
    depth, blob = scene()
    depth += np.random.default_rng(1).normal(0.0, 0.003, depth.shape).astype(np.float32)  # 3 mm
    assert object_distance(depth, blob, PARAMS).z == pytest.approx(0.25, abs=0.001)


def test_erosion_drops_the_edge_pixels() -> None:
    # The 3 x 3 elliptical kernel is a cross: erosion removes the 1-px border of the rectangle,
    # leaving 18 x 28 = 504 pixels, so mixed table readings on the edge are never used.
    depth, blob = scene()
    edge = blob.astype(bool) & ~np.pad(blob[1:-1, 1:-1].astype(bool), 1)
    depth[edge] = 0.40
    est = object_distance(depth, blob, PARAMS)
    assert est.n_valid == 18 * 28 and est.z == pytest.approx(0.25)
    assert object_distance(depth, blob, DepthParams(erode_px=0)).n_valid == 600


def test_thin_blob_keeps_its_pixels() -> None:
    depth, _ = scene()
    line = np.zeros((SIZE, SIZE), np.uint8)
    line[30, 10:50] = 1  # 1 px wide: erosion would leave nothing
    depth[30, 10:50] = 0.3
    est = object_distance(depth, line, PARAMS)
    assert est.z == pytest.approx(0.3) and est.n_valid == 40


def test_too_few_readings_gives_none_with_a_reason() -> None:
    depth, blob = scene()
    depth[20:36, 15:45] = 0.0  # 16 of the 20 rows: no reading
    est = object_distance(depth, blob, DepthParams(erode_px=0))
    assert est.z is None and est.valid_fraction == pytest.approx(0.2)
    assert est.reason == "too few depth readings on the object blob: 20% valid < 30%"
    depth[:] = np.nan
    assert object_distance(depth, blob, PARAMS).z is None


def test_empty_blob() -> None:
    depth, _ = scene()
    est = object_distance(depth, np.zeros((SIZE, SIZE), np.uint8), PARAMS)
    assert est.z is None and est.reason == "empty object blob"


def test_background_distance_reads_the_table() -> None:
    depth, blob = scene()
    depth[:5] = 0.0  # no reading in the top rows
    class_mask = blob.copy()
    class_mask[0:8, 0:8] = 2  # gripper pixels are not background
    depth[0:8, 0:8] = 0.12
    assert background_distance(depth, class_mask, PARAMS).z == pytest.approx(0.40)


def test_shape_errors() -> None:
    depth, blob = scene()
    with pytest.raises(InputError, match="expected shape"):
        object_distance(depth, blob[:10], PARAMS)
    with pytest.raises(InputError, match="2-D array"):
        object_distance(depth[None], blob, PARAMS)


def test_descent_distance_by_hand() -> None:
    # Camera 0.10 m behind the grasp point, object top 0.25 m from the camera, pads 18 mm deep:
    # 0.25 - 0.10 + 0.018 = 0.168 m.
    assert descent_distance(0.25, MOUNT, 0.018) == pytest.approx(0.168)
    # A table 0.30 m from the camera (object 5 cm tall) is 0.20 m from the grasp point: no cap.
    assert descent_distance(0.25, MOUNT, 0.018, table_distance=0.30) == pytest.approx(0.168)
    # A 1 cm flat object: capped at 0.26 - 0.10 - 0.005 = 0.155 m.
    assert descent_distance(0.25, MOUNT, 0.018, table_distance=0.26, table_clearance=0.005) == \
        pytest.approx(0.155)
    # Already past the grasp height: move back.
    assert descent_distance(0.05, MOUNT, 0.018) == pytest.approx(-0.032)


def test_descent_distance_general_mount() -> None:
    # A camera rotated about its optical axis reads the same distance; one tilted by 10 deg
    # about x sees the point (0, 0, z) at gripper z = z cos 10 deg - 0.10.
    yawed = Pose(MOUNT.position, rot_z(0.7))
    assert descent_distance(0.25, yawed, 0.018) == pytest.approx(0.168)
    tilted = Pose(MOUNT.position, rot_x(np.radians(10)))
    assert descent_distance(0.25, tilted, 0.0) == pytest.approx(0.25 * np.cos(np.radians(10)) - 0.10)


@pytest.mark.parametrize("z", [0.0, -0.1, float("nan")])
def test_descent_distance_refuses_bad_distances(z: float) -> None:
    with pytest.raises(InputError, match="positive number of metres"):
        descent_distance(z, MOUNT, 0.018)


def test_dark_object_falls_back_to_the_table_around_it() -> None:
    """A blob that reads no depth (a black marker on an SR300) takes the table's distance."""
    from app.controllers.depth import object_distance_or_surround

    depth = np.full((64, 64), 0.30, np.float32)
    blob = np.zeros((64, 64), np.uint8)
    blob[28:36, 20:44] = 1
    depth[blob > 0] = 0.0  # no reading on the object
    est = object_distance_or_surround(depth, blob, DepthParams())
    assert est.z == pytest.approx(0.30)
    assert "used the table around it" in est.reason
    depth[blob > 0] = 0.28  # readable object: its own distance, no fallback
    est = object_distance_or_surround(depth, blob, DepthParams())
    assert est.z == pytest.approx(0.28) and est.reason == ""
    depth[:] = 0.0  # nothing anywhere: no estimate, both reasons given
    est = object_distance_or_surround(depth, blob, DepthParams())
    assert est.z is None and "ring around the blob" in est.reason
