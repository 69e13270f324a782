"""The classical segmentation baselines (Fig. 7) and the IoU that scores every method."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from app.baselines_seg import iou, kmeans_segment, watershed_segment
from app.errors import InputError


def test_iou_of_hand_made_masks() -> None:
    # a: 2x2 square at (0..1, 0..1); b: 2x2 square shifted one column -> overlap 2, union 6.
    a = np.zeros((4, 4), np.uint8)
    a[0:2, 0:2] = 1
    b = np.zeros((4, 4), np.uint8)
    b[0:2, 1:3] = 1
    assert iou(a, b) == pytest.approx(2 / 6)
    assert iou(a, a) == 1.0
    assert iou(a, np.zeros_like(a)) == 0.0
    assert iou(np.zeros_like(a), np.zeros_like(a)) == 1.0  # nothing to find, nothing found
    assert iou(a.astype(bool), a * 7) == 1.0  # any non-zero value is object


def test_iou_refuses_masks_of_different_shapes() -> None:
    with pytest.raises(InputError, match="expected masks of one shape"):
        iou(np.zeros((4, 4)), np.zeros((4, 5)))


def _scene(seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A red ellipse on a light, grainy, noisy table: (rgb, true mask)."""
    rng = np.random.default_rng(seed)
    h = w = 128
    streaks = cv2.resize(rng.normal(0, 1, (h, 8)), (w, h), interpolation=cv2.INTER_CUBIC)
    table = np.array([215, 200, 175], np.float64)[None, None] * (1 + 0.06 * streaks[..., None])
    rgb = table + rng.normal(0, 4, (h, w, 3))
    truth = np.zeros((h, w), np.uint8)
    cv2.ellipse(truth, (70, 55), (22, 13), 30, 0, 360, 1, -1)
    rgb[truth == 1] = (170, 40, 30) + rng.normal(0, 4, (int(truth.sum()), 3))
    return np.clip(rgb, 0, 255).astype(np.uint8), truth


@pytest.mark.parametrize("method", [kmeans_segment, watershed_segment])
def test_baseline_finds_a_coloured_blob_on_a_textured_table(method) -> None:
    rgb, truth = _scene()
    mask = method(rgb)
    assert mask.shape == truth.shape and mask.dtype == np.uint8
    assert set(np.unique(mask)) <= {0, 1}
    assert iou(mask, truth) > 0.7


@pytest.mark.parametrize("method", [kmeans_segment, watershed_segment])
def test_baseline_is_repeatable(method) -> None:
    rgb, _ = _scene(1)
    assert np.array_equal(method(rgb), method(rgb))


@pytest.mark.parametrize("bad", [np.zeros((8, 8), np.uint8), np.zeros((8, 8, 3), np.float32), "image"])
@pytest.mark.parametrize("method", [kmeans_segment, watershed_segment])
def test_baseline_refuses_a_bad_image(method, bad) -> None:
    with pytest.raises(InputError, match=r"rgb: expected \(H, W, 3\) uint8"):
        method(bad)


def test_kmeans_refuses_one_cluster() -> None:
    rgb, _ = _scene()
    with pytest.raises(InputError, match="expected k >= 2"):
        kmeans_segment(rgb, k=1)


def test_watershed_of_a_flat_table_is_empty() -> None:
    # Every pixel has the table colour: the colour-distance image is flat, nothing is object.
    rgb = np.full((64, 64, 3), 200, np.uint8)
    assert watershed_segment(rgb).sum() == 0
