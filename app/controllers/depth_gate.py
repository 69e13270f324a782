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
MAX_SPLIT_DEPTH = 4  # nested splits of one blob (up to 5 touching objects)
NECK_MARGIN_PX = 1.5  # px: every part must be this much thicker (half-width) than the neck it is split at


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
        split_touching: Whether blobs joined by a neck are split (:func:`split_touching`).
        max_split_erode_px: Largest erosion radius (px) :func:`split_touching` tries.
        min_core_px: Smallest core (px) that counts as one object in :func:`split_touching`.
        split_gap_px: Width (px) of the cut between split blobs; wider than the closing of
            feature extraction (``vs.yaml`` ``features.close_kernel_px``), which would join them.
    """

    min_height: float = 0.008  # m: above the SR300's ~1-2 mm noise and a printed sheet, below a 1.5 cm flat object
    inlier_tolerance: float = 0.004  # m: about 3x the depth noise at 0.6 m (FACTS.md SR300 model)
    iterations: int = 60  # hypotheses: P(no all-table sample) < 1e-6 when >= 50 % of pixels are table
    sample_points: int = 2000  # px of 16384 at 128x128: plenty for a plane, keeps it < 2 ms
    min_valid_fraction: float = 0.2  # of the image: below this the plane is not trusted
    fill_px: int = 5  # px: reaches over the ~2 px of dropped readings at object edges
    flatten: bool = False  # also paint the table plane of every frame (FlattenTable) before adaptation
    flatten_color: tuple[float, float, float] = (227.0, 210.0, 163.0)  # RGB 0-255: median table pixel of `real` frames
    split_touching: bool = False  # split object blobs joined by a neck (touching objects) into one blob each
    max_split_erode_px: int = 8  # px: erosion radius searched for a neck (a 2 cm neck at 0.3 m is ~8 px wide)
    min_core_px: int = 20  # px: a core that survives the erosion must be this large to count as an object
    split_gap_px: int = 7  # px: width of the cut between split blobs, wider than the features' 5-px closing


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
    if params.split_touching:
        kept = separate(split_touching(out == OBJECT_CLASS, params), params)
        out[(out == OBJECT_CLASS) & ~kept] = 0
    return GateResult(out, int((obj & ~low).sum()), int(low.sum()), plane)


def split_touching(obj: np.ndarray, params: DepthGateParams, _depth: int = 0) -> np.ndarray:
    """Object pixels with a cut between objects that touch: each blob joined by a neck becomes
    one blob per object.

    Two objects that touch make one blob whose centroid lies between them (VS then converges on
    nothing, or at the image border for ever). The blob is eroded with growing discs (radius 1 to
    ``max_split_erode_px``) until it falls apart into two or more cores of at least
    ``min_core_px`` pixels (the necks go first); its pixels are then given to the nearest core
    along paths inside the blob and a ``split_gap_px`` wide seam where two parts meet is
    cleared, so that the blobs stay apart after feature extraction's closing (their outer
    outlines stay). A blob that shrinks to one core or none (one object,
    or a thin one beside another) is left whole; each part of a split blob is split again (the
    narrowest neck goes first, the next one at a larger radius).

    Args:
        obj: (H, W) bool object mask.
        params: ``max_split_erode_px`` and ``min_core_px``.

    Returns:
        (H, W) bool mask, a subset of ``obj``.
    """
    out = obj.copy()
    n, labels = cv2.connectedComponents(obj.astype(np.uint8), connectivity=8)
    for comp in range(1, n):
        blob = _fill_holes((labels == comp).astype(np.uint8))  # holes (dark labels, highlights) would erode from inside
        if int(blob.sum()) < 2 * params.min_core_px:
            continue
        for r in range(1, params.max_split_erode_px + 1):
            core = cv2.erode(blob, cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * r + 1, 2 * r + 1)))
            m, core_lab, stats, _ = cv2.connectedComponentsWithStats(core, connectivity=8)
            big = [c for c in range(1, m) if stats[c, cv2.CC_STAT_AREA] >= params.min_core_px]
            if len(big) >= 2:
                dist = cv2.distanceTransform(blob, cv2.DIST_L2, 5)
                if min(float(dist[core_lab == c].max()) for c in big) < r + NECK_MARGIN_PX:
                    continue  # a uniform strip (a banana's arc) breaking up under erosion: no neck

                seeds = np.zeros(blob.shape, np.int32)
                for i, c in enumerate(big, start=1):
                    seeds[core_lab == c] = i
                regions, lines = _grow_regions(seeds, blob > 0)
                gap = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (params.split_gap_px, params.split_gap_px))
                lines = (cv2.dilate(lines.astype(np.uint8), gap) > 0) & (blob > 0)
                out[lines] = False
                if _depth < MAX_SPLIT_DEPTH:  # a part may hold more touching objects (a wide neck)
                    for i in range(1, len(big) + 1):
                        part = obj & ~lines & (regions == i)
                        out[part] = split_touching(part, params, _depth + 1)[part]
                break
            if not big:
                break
    return out


def separate(obj: np.ndarray, params: DepthGateParams) -> np.ndarray:
    """Blobs at least ``split_gap_px`` apart: the pixels of a blob closer than that to another
    blob (of at least ``min_core_px``) are cleared, so that feature extraction's closing does not
    join two objects that nearly touch (a can beside a box's corner)."""
    n, labels, stats, _ = cv2.connectedComponentsWithStats(obj.astype(np.uint8), connectivity=8)
    big = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= params.min_core_px]
    if len(big) < 2:
        return obj
    gap = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * params.split_gap_px - 1, 2 * params.split_gap_px - 1))
    out = obj.copy()
    for i in big:
        others = np.isin(labels, [j for j in big if j != i]).astype(np.uint8)
        out[(labels == i) & (cv2.dilate(others, gap) > 0)] = False
    return out


def _grow_regions(seeds: np.ndarray, blob: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every pixel of ``blob`` given to the seed it is nearest to along paths inside the blob
    (seeded region growing, one 3x3 ring a step), and the cut between the parts.

    Args:
        seeds: (H, W) int32 labels 1..K of the seeds, 0 elsewhere.
        blob: (H, W) bool pixels to share out.

    Returns:
        (labels (H, W) int32, 0 outside the blob and on the cut; cut (H, W) bool: pixels reached
        by two seeds at once and every pixel beside another part, so that the parts are apart
        under 8-connectivity).
    """
    square = np.ones((3, 3), np.uint8)
    none = np.float32(1e9)  # "no label" for the minimum filter
    lab = np.where(blob, seeds, 0).astype(np.float32)
    contested = np.zeros(blob.shape, bool)
    while True:
        hi = cv2.dilate(lab, square)
        lo = cv2.erode(np.where(lab > 0, lab, none), square)
        new = blob & (lab == 0) & ~contested & (hi > 0)
        if not new.any():
            break
        lab[new & (hi == lo)] = hi[new & (hi == lo)]
        contested |= new & (hi != lo)
    hi = cv2.dilate(lab, square)
    lo = cv2.erode(np.where(lab > 0, lab, none), square)
    cut = blob & (contested | ((lab > 0) & ((hi != lab) | (lo != lab))))
    labels = np.where(cut, 0, lab).astype(np.int32)
    return labels, cut


def _fill_holes(blob: np.ndarray) -> np.ndarray:
    """``blob`` (uint8 0/1) with its holes (background not connected to the image's edge) filled."""
    padded = np.pad(blob, 1)
    outside = padded.copy()
    cv2.floodFill(outside, None, (0, 0), 2)  # the background reachable from the edge
    return (outside[1:-1, 1:-1] != 2).astype(np.uint8)


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
