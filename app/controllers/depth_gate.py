"""Depth gate: only mask pixels that stand above the table plane count as object.

Printed clutter (paper, packaging lying flat) is part of the table plane; an object stands above
it. The plane is estimated from the depth image alone (RANSAC on the back-projected valid
pixels, then a least-squares refit on its inliers), never from ground truth; each object pixel's
height above it decides whether it stays "object". Pixels without a depth reading (edges, dark
surfaces) take the largest height of their valid neighbours within ``fill_px``.

Frames: camera optical frame (x right, y down, z along the optical axis), metres.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.robot.interfaces import Intrinsics
from app.types import Mask

OBJECT_CLASS = 1  # "object" in the class mask (0 background, 1 object, 2 gripper)


@dataclass(frozen=True)
class DepthGateParams:
    """Parameters of the depth gate (tree YAML key ``depth_gate``).

    Attributes:
        min_height: Height (m) above the table plane an object pixel needs to stay "object".
        inlier_tolerance: Distance (m) from a plane hypothesis within which a point is an inlier.
        iterations: RANSAC hypotheses.
        sample_points: Valid pixels sampled for RANSAC (the fit is on a random subset).
        min_valid_fraction: Fraction of the image with depth needed to fit a plane; below it the
            mask passes ungated.
        fill_px: Side (px) of the square neighbourhood whose largest height a pixel without a
            reading takes.
        flatten: Whether frames are flattened (:func:`flatten_table`) before the models see them.
        flatten_color: The colour the table plane is painted with.
    """

    min_height: float = 0.008  # m: above the SR300's ~1-2 mm noise and a printed sheet, below a 1.5 cm flat object
    inlier_tolerance: float = 0.004  # m: about 3x the depth noise at 0.6 m (FACTS.md SR300 model)
    iterations: int = 60  # hypotheses: P(no all-table sample) < 1e-6 when >= 50 % of pixels are table
    sample_points: int = 2000  # px of 16384 at 128x128: plenty for a plane, keeps it < 2 ms
    min_valid_fraction: float = 0.2  # of the image: below this the plane is not trusted
    fill_px: int = 5  # px: reaches over the ~2 px of dropped readings at object edges
    flatten: bool = False  # also paint the table plane of every frame (FlattenTable) before adaptation
    flatten_color: tuple[float, float, float] = (227.0, 210.0, 163.0)  # RGB 0-255: median table pixel of `real` frames


@dataclass(frozen=True)
class Plane:
    """A plane ``n . p + d = 0`` in the camera frame; ``n`` unit, pointing to the camera (d > 0)."""

    normal: np.ndarray
    d: float
    inliers: int


def back_project(depth: np.ndarray, k: Intrinsics) -> tuple[np.ndarray, np.ndarray]:
    """(N, 3) camera-frame points (m) of the valid pixels and their flat indices."""
    rows, cols = depth.shape
    v, u = np.mgrid[0:rows, 0:cols]
    valid = depth > 0
    z = depth[valid].astype(np.float64)
    x = (u[valid] - k.cx) / k.fx * z
    y = (v[valid] - k.cy) / k.fy * z
    return np.stack([x, y, z], axis=1), np.flatnonzero(valid)


def _orient(n: np.ndarray, d: float) -> tuple[np.ndarray, float]:
    return (n, d) if d > 0 else (-n, -d)


def fit_table_plane(depth: np.ndarray, k: Intrinsics, params: DepthGateParams,
                    seed: int = 0) -> Plane | None:
    """The dominant plane of the depth image (the table), or None when too little depth is valid.

    Args:
        depth: (H, W) depth along the optical axis (m), 0 where there is no reading.
        k: Intrinsics of the depth image.
        params: Tolerances and sampling.
        seed: RANSAC's random source (fixed: the same image gives the same plane).
    """
    pts, _ = back_project(depth, k)
    if len(pts) < params.min_valid_fraction * depth.size or len(pts) < 3:
        return None
    rng = np.random.default_rng(seed)
    sample = pts[rng.choice(len(pts), size=min(params.sample_points, len(pts)), replace=False)]
    best_n, best_d, best_count = None, 0.0, -1
    for _ in range(params.iterations):
        a, b, c = sample[rng.choice(len(sample), 3, replace=False)]
        n = np.cross(b - a, c - a)
        norm = np.linalg.norm(n)
        if norm < 1e-9:
            continue
        n = n / norm
        d = -float(n @ a)
        count = int(np.count_nonzero(np.abs(sample @ n + d) < params.inlier_tolerance))
        if count > best_count:
            best_n, best_d, best_count = n, d, count
    if best_n is None:
        return None
    inl = sample[np.abs(sample @ best_n + best_d) < params.inlier_tolerance]
    centroid = inl.mean(axis=0)
    _, _, vt = np.linalg.svd(inl - centroid, full_matrices=False)  # least-squares refit on the inliers
    n = vt[2]
    n, d = _orient(n, -float(n @ centroid))
    return Plane(n, d, len(inl))


def height_map(depth: np.ndarray, k: Intrinsics, plane: Plane, fill_px: int) -> np.ndarray:
    """Height (m) of each pixel above ``plane`` towards the camera; pixels without a reading take
    the largest valid height within ``fill_px`` (or -inf when none)."""
    pts, idx = back_project(depth, k)
    h = np.full(depth.size, -np.inf, np.float32)
    h[idx] = pts @ plane.normal + plane.d
    h = h.reshape(depth.shape)
    if fill_px > 1:
        filled = cv2.dilate(h, np.ones((fill_px, fill_px), np.uint8))
        h = np.where(depth > 0, h, filled)
    return h


@dataclass(frozen=True)
class GateResult:
    """The gated class mask and what the gate did."""

    mask: Mask
    kept_px: int
    removed_px: int
    plane: Plane | None


def gate_mask(class_mask: Mask, depth: np.ndarray, k: Intrinsics, params: DepthGateParams) -> GateResult:
    """Object pixels lower than ``min_height`` above the table plane become background.

    Args:
        class_mask: (H, W) uint8 class mask (0 background, 1 object, 2 gripper).
        depth: (H, W) depth (m) of the same view (resized to the mask when it differs).
        k: Intrinsics of the mask's image.
        params: Gate parameters.

    Returns:
        The gated mask (a copy; unchanged when no plane could be fitted) and counts.
    """
    if depth.shape != class_mask.shape:
        depth = cv2.resize(depth, (class_mask.shape[1], class_mask.shape[0]), interpolation=cv2.INTER_NEAREST)
    obj = class_mask == OBJECT_CLASS
    plane = fit_table_plane(depth, k, params)
    if plane is None:
        return GateResult(class_mask.copy(), int(obj.sum()), 0, None)
    low = obj & (height_map(depth, k, plane, params.fill_px) < params.min_height)
    out = class_mask.copy()
    out[low] = 0
    return GateResult(out, int((obj & ~low).sum()), int(low.sum()), plane)


def flatten_table(rgb: np.ndarray, depth: np.ndarray, k: Intrinsics, params: DepthGateParams,
                  color: tuple[float, float, float]) -> tuple[np.ndarray, int]:
    """Paint the pixels that lie on the table plane in one colour: printed clutter disappears.

    Pixels whose height above the plane (see :func:`height_map`) is below ``min_height`` take
    ``color``; pixels with no height at all (no reading near them: the fingers, dark surfaces)
    are left as they are. With no plane fitted the image is returned unchanged.

    Args:
        rgb: (H, W, 3) uint8 image.
        depth: (H, W) depth (m) of the same view.
        k: Intrinsics of the images.
        params: Gate parameters.
        color: RGB (0-255) to paint the table with: the plain table as the training images show it.

    Returns:
        (the painted copy, the number of pixels painted).
    """
    plane = fit_table_plane(depth, k, params)
    if plane is None:
        return rgb, 0
    h = height_map(depth, k, plane, params.fill_px)
    table = np.isfinite(h) & (h < params.min_height)
    out = rgb.copy()
    out[table] = np.asarray(color, dtype=np.float64).round().clip(0, 255).astype(np.uint8)
    return out, int(table.sum())
