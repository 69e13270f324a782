"""Blob features: moments of known shapes, clean-up, tracking, border test, input errors."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.controllers.features import (
    BlobFeatures,
    FeatureParams,
    ShapeGateParams,
    clean_mask,
    extract_features,
    moments_features,
    near_border,
    shape_change,
)
from app.errors import InputError
from app.robot.interfaces import Intrinsics

SIZE = 128  # px, the model resolution
K = Intrinsics(fx=100.0, fy=100.0, cx=63.5, cy=63.5, width=SIZE, height=SIZE)
PARAMS = FeatureParams()
RAW = FeatureParams(open_kernel_px=0, close_kernel_px=0, min_blob_area_px=1)  # no clean-up


def blank() -> np.ndarray:
    return np.zeros((SIZE, SIZE), np.uint8)


def rotated_rect(mask: np.ndarray, centre: tuple[float, float], length: float, width: float,
                 angle: float, value: int = 1) -> np.ndarray:
    """Set the pixels whose centres lie inside a rectangle with its long side at ``angle``.

    ``angle`` in rad, from +u towards +v; sizes in px. Sampling pixel centres is unbiased
    (``cv2.fillPoly`` includes boundary pixels on both sides, a bias of up to half a pixel).
    """
    v, u = np.mgrid[0:mask.shape[0], 0:mask.shape[1]].astype(float)
    du, dv = u - centre[0], v - centre[1]
    along = du * np.cos(angle) + dv * np.sin(angle)
    across = -du * np.sin(angle) + dv * np.cos(angle)
    mask[(np.abs(along) <= length / 2) & (np.abs(across) <= width / 2)] = value
    return mask


@pytest.mark.parametrize("deg", [-89.0, -60.0, -30.0, 0.0, 15.0, 45.0, 75.0, 90.0])
def test_rotated_rectangle_orientation_within_one_degree(deg: float) -> None:
    centre = (70.25, 50.25)  # off the pixel grid: no pixel centre lies on an edge
    mask = rotated_rect(blank(), centre, 60.0, 16.0, np.radians(deg))
    f = extract_features(mask, K, PARAMS)
    assert f.ok and f.use_alpha
    expected = np.radians(deg) if deg > -90 else np.radians(deg + 180)
    err = (f.alpha - expected + np.pi / 2) % np.pi - np.pi / 2  # axis difference modulo pi
    assert abs(err) < np.radians(1.0)
    assert -np.pi / 2 < f.alpha <= np.pi / 2
    assert f.centroid_px == pytest.approx(centre, abs=0.3)  # pixel sampling of the edges


def test_axis_aligned_rectangles_exact() -> None:
    # Rows 30..39, columns 20..79: centroid (49.5, 34.5) exactly; long side along u -> alpha 0.
    mask = blank()
    mask[30:40, 20:80] = 1
    f = extract_features(mask, K, RAW)
    assert f.centroid_px == (49.5, 34.5)
    assert f.x_g == pytest.approx((49.5 - 63.5) / 100) and f.y_g == pytest.approx((34.5 - 63.5) / 100)
    assert f.alpha == 0.0 and f.use_alpha
    assert f.bbox == (20, 30, 60, 10) and f.area_px == 600
    # Transposed: long side along v -> alpha = +pi/2 (the wrap keeps +pi/2, never -pi/2).
    f = extract_features(np.ascontiguousarray(mask.T), K, PARAMS)  # corners opened: symmetric
    assert f.alpha == pytest.approx(np.pi / 2) and f.centroid_px == (34.5, 49.5)


def test_diagonal_line_moments_by_hand() -> None:
    # Pixels (i, i): mu20 = mu02 = mu11, so alpha = 1/2 atan2(2 mu11, 0) = pi/4 and the minor
    # eigenvalue is 0 (a line).
    mask = blank()
    idx = np.arange(40, 80)
    mask[idx, idx] = 1
    (u, v), alpha, ratio = moments_features(mask, K)
    assert (u, v) == (59.5, 59.5)
    assert alpha == pytest.approx(np.pi / 4) and ratio == pytest.approx(0.0, abs=1e-12)
    # With fx = 2 fy the same pixels are the normalised direction (1/200, 1/100): atan(2).
    k2 = Intrinsics(fx=200.0, fy=100.0, cx=63.5, cy=63.5, width=SIZE, height=SIZE)
    assert moments_features(mask, k2)[1] == pytest.approx(np.arctan(2.0))
    f = extract_features(mask, K, RAW)
    assert f.ok and f.alpha == pytest.approx(np.pi / 4)


def test_disc_ignores_orientation_and_centroid_is_exact() -> None:
    mask = cv2.circle(blank(), (64, 40), 15, 1, -1)
    f = extract_features(mask, K, PARAMS)
    assert f.ok and not f.use_alpha and f.axis_ratio > 0.95
    assert f.centroid_px == pytest.approx((64.0, 40.0), abs=1e-9)
    assert f.x_g == pytest.approx(0.005) and f.y_g == pytest.approx(-0.235)


def test_square_ignores_orientation() -> None:
    mask = rotated_rect(blank(), (64.0, 64.0), 30.0, 30.0, np.radians(20))
    assert not extract_features(mask, K, PARAMS).use_alpha


def test_threshold_decides_use_alpha() -> None:
    # A 40 x 30 rectangle: eigenvalue ratio (30/40)^2 = 0.5625.
    mask = blank()
    mask[50:80, 40:80] = 1
    f = extract_features(mask, K, RAW)
    assert f.axis_ratio == pytest.approx(0.5625, rel=1e-3)
    assert f.use_alpha
    assert not extract_features(mask, K, FeatureParams(axis_ratio_threshold=0.5)).use_alpha


def test_clean_up_removes_speckles_and_fills_holes() -> None:
    mask = blank()
    mask[40:70, 30:90] = 1
    mask[55, 60] = 0  # a one-pixel hole (specular highlight)
    mask[5, 5] = mask[100, 20] = mask[120, 120] = 1  # isolated false positives
    mask[10:14, 100:104] = 2  # gripper pixels are not the object
    cleaned = clean_mask(mask, PARAMS)
    assert cleaned[55, 60] == 1 and cleaned[5, 5] == 0 and cleaned[100, 20] == 0
    assert cleaned[12, 102] == 0
    f = extract_features(mask, K, PARAMS)
    assert f.n_components == 1 and f.area_px == pytest.approx(30 * 60, abs=8)  # corners rounded


def test_largest_component_is_chosen_first() -> None:
    mask = blank()
    mask[10:20, 10:20] = 1  # 100 px
    mask[60:90, 60:100] = 1  # 1200 px
    f = extract_features(mask, K, RAW)
    assert f.association == "largest" and f.area_px == 1200 and f.n_components == 2


def test_no_object_reasons() -> None:
    f = extract_features(blank(), K, PARAMS)
    assert not f.ok and f.reason == "no object pixels in the mask"
    mask = blank()
    mask[10:14, 10:14] = 1  # 16 px < 20 px minimum
    f = extract_features(mask, K, FeatureParams(open_kernel_px=0))  # opening would trim corners
    assert not f.ok and "16 px < 20 px minimum" in f.reason


def test_tracking_keeps_the_tracked_blob_over_a_larger_distractor() -> None:
    # Expected trace: frame 1 (one object) -> "largest"; frame 2 (object moved 3 px, a larger
    # distractor appears) -> "overlap" keeps the object; without tracking the distractor wins.
    first = rotated_rect(blank(), (40.0, 40.0), 30.0, 10.0, 0.3)
    f1 = extract_features(first, K, PARAMS)
    second = rotated_rect(blank(), (43.0, 41.0), 30.0, 10.0, 0.3)
    second[70:110, 70:120] = 1  # distractor of 2000 px
    f2 = extract_features(second, K, PARAMS, previous=f1)
    assert f1.association == "largest"
    assert f2.ok and f2.association == "overlap" and f2.area_px < 400
    assert f2.centroid_px == pytest.approx((43.0, 41.0), abs=0.2)
    assert extract_features(second, K, RAW).area_px == 2000


def test_tracking_by_nearest_centroid_when_no_overlap() -> None:
    first = blank()
    first[40:46, 40:46] = 1
    second = blank()
    second[40:46, 48:54] = 1  # jumped 8 px: no overlap, within the 12 px jump
    second[90:120, 90:120] = 1  # larger, 70 px away
    f = extract_features(second, K, PARAMS, previous=extract_features(first, K, PARAMS))
    assert f.ok and f.association == "nearest" and f.centroid_px == pytest.approx((50.5, 42.5))


def test_lost_blob_is_a_failure_with_a_reason() -> None:
    first = blank()
    first[40:50, 40:50] = 1
    second = blank()
    second[90:120, 90:120] = 1  # the object vanished; only a far-away distractor is left
    f = extract_features(second, K, PARAMS, previous=extract_features(first, K, PARAMS))
    assert not f.ok and f.reason.startswith("blob lost") and "px away" in f.reason
    # After a failure the next frame re-acquires the largest blob.
    assert extract_features(second, K, PARAMS, previous=f).association == "largest"


def test_near_border_by_hand() -> None:
    shape = (128, 128)
    assert near_border((0, 50, 10, 10), shape, 0)  # touches the left edge
    assert not near_border((1, 50, 10, 10), shape, 0)
    assert near_border((4, 50, 10, 10), shape, 4) and not near_border((5, 50, 10, 10), shape, 4)
    assert near_border((50, 50, 74, 10), shape, 4)  # right edge at 124 = 128 - 4
    assert not near_border((50, 50, 73, 10), shape, 4)
    assert near_border((50, 114, 10, 10), shape, 4)  # bottom edge at 124


@pytest.mark.parametrize(("cols", "touches", "near"), [(slice(0, 20), True, True),
                                                        (slice(3, 23), False, True),
                                                        (slice(40, 60), False, False)])
def test_border_flags(cols: slice, touches: bool, near: bool) -> None:
    mask = blank()
    mask[50:70, cols] = 1
    f = extract_features(mask, K, PARAMS)
    assert (f.touches_border, f.near_border) == (touches, near)


def test_input_errors() -> None:
    with pytest.raises(InputError, match="2-D uint8"):
        extract_features(np.zeros((SIZE, SIZE)), K, PARAMS)
    with pytest.raises(InputError, match="2-D uint8"):
        extract_features(np.zeros((SIZE, SIZE, 3), np.uint8), K, PARAMS)
    with pytest.raises(InputError, match="does not match the intrinsics"):
        extract_features(np.zeros((64, 64), np.uint8), K, PARAMS)
    with pytest.raises(InputError, match="empty blob"):
        moments_features(blank(), K)
    bad_prev = BlobFeatures(ok=True, centroid_px=(1.0, 1.0), mask=np.ones((8, 8), np.uint8))
    mask = blank()
    mask[40:60, 40:60] = 1
    with pytest.raises(InputError, match="previous blob mask"):
        extract_features(mask, K, PARAMS, previous=bad_prev)


# ------------------------------------------------------------------ the chosen-object rule (issue 13)
def _two_blobs(big_at: tuple[int, int], small_at: tuple[int, int]) -> np.ndarray:
    m = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(m, big_at, 14, 1, -1)  # the larger blob
    cv2.circle(m, small_at, 8, 1, -1)
    return m


def test_first_blob_rule_largest_or_nearest_centre() -> None:
    from app.controllers.features import extract_features as ef

    m = _two_blobs((20, 20), (66, 60))
    largest = ef(m, K, FeatureParams())
    assert largest.association == "largest" and abs(largest.centroid_px[0] - 20) < 1
    centre = ef(m, K, FeatureParams(), first="nearest_centre")
    assert centre.association == "nearest_centre" and abs(centre.centroid_px[0] - 66) < 1
    with pytest.raises(InputError, match="first blob rule"):
        ef(m, K, FeatureParams(), first="leftmost")


def test_chosen_blob_is_kept_when_another_gets_bigger_and_more_central() -> None:
    """Once chosen, the track stays on its blob: the other object growing and moving to the
    centre (the camera approaching it) does not make VS hop."""
    from app.controllers.features import extract_features as ef

    f1 = ef(_two_blobs((25, 64), (85, 64)), K, FeatureParams(), first="nearest_centre")
    assert f1.association == "nearest_centre" and abs(f1.centroid_px[0] - 85) < 1  # 21.5 px from centre vs 38.5
    m2 = np.zeros((SIZE, SIZE), np.uint8)
    cv2.circle(m2, (55, 64), 18, 1, -1)  # the other object: now larger and nearer the centre
    cv2.circle(m2, (87, 64), 8, 1, -1)  # the chosen one moved 2 px
    f2 = ef(m2, K, FeatureParams(), f1, first="nearest_centre")
    assert f2.association == "overlap" and abs(f2.centroid_px[0] - 87) < 1 and f2.n_components == 2


def test_shape_change_names_each_jump_beyond_the_gate() -> None:
    """A blob that moved a pixel and turned a degree passes the gate; one that split at a neck
    (half its area, centroid moved) or turned as a merge turns it is named, with the figures."""
    gate = ShapeGateParams(max_shift_px=4.0, max_turn_deg=15.0, max_area_ratio=1.3, accept_after=10)
    bar = extract_features(rotated_rect(blank(), (64, 64), 60, 10, np.radians(90)), K, RAW)
    moved = extract_features(rotated_rect(blank(), (65, 64), 60, 10, np.radians(91)), K, RAW)
    assert shape_change(bar, moved, gate) == ""
    half = extract_features(rotated_rect(blank(), (64, 79), 30, 10, np.radians(90)), K, RAW)
    assert shape_change(bar, half, gate) == f"centroid moved 15.0 px, area {bar.area_px} -> {half.area_px} px"
    turned = extract_features(rotated_rect(blank(), (64, 64), 60, 10, np.radians(60)), K, RAW)
    assert shape_change(bar, turned, gate) in ("turned 29 deg", "turned 30 deg")  # 30 deg, rasterised
    wrapped = extract_features(rotated_rect(blank(), (64, 64), 60, 10, np.radians(-85)), K, RAW)
    assert shape_change(bar, wrapped, gate) == ""  # 90 and -85 deg are 5 deg apart as axes
