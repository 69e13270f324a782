"""Visual features of the object blob: clean-up, tracking, centroid and orientation.

Input is a class mask at the model resolution (``Mask``: 0 background, 1 object, 2 gripper).
The object pixels are cleaned with a morphological opening (removes speckles) then a closing
(fills pin holes), split into 8-connected components, and one component is chosen: the largest
on the first frame, then the one that overlaps the previous frame's blob most (IoU), or failing
that the one whose centroid is nearest to the previous centroid within a maximum jump. A blob
that cannot be associated is *lost*: a failure with a reason, never a silent switch to another
object.

Image conventions (``app/transforms.py``): pixel ``(u, v)`` with u to the right (camera x) and
v down (camera y), pixel centres at integer coordinates (OpenCV's, and ``Intrinsics``'). The
orientation of the blob's primary axis comes from the central moments,
``alpha = 1/2 atan2(2 mu11, mu20 - mu02)``, measured from the camera x axis towards the camera y
axis (a positive rotation about the optical axis z), computed in normalised image coordinates
(so that it is exact when ``fx != fy``) and wrapped to (-pi/2, pi/2] since an axis is defined
modulo pi. When the two principal axes are of similar length the orientation is meaningless and
``use_alpha`` is False.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from app.errors import InputError
from app.robot.interfaces import Intrinsics
from app.transforms import wrap_half_pi
from app.types import Mask

OBJECT_CLASS = 1  # class id of "object" pixels in the semantic mask (0 background, 2 gripper)
_CONNECTIVITY = 8  # pixel connectivity of the connected components


@dataclass(frozen=True)
class ShapeGateParams:
    """How far the tracked blob may change between two frames before the frame is skipped.

    At VS speeds (5 cm/s, 30 deg/s, 30 fps) the object moves in the image by about a pixel and a
    degree per frame. A larger change is the segmentation, not the object: a blob that splits at
    a neck in one frame and not in the next, or a neighbour joining it. Servoing on such frames
    makes VS settle between the two shapes, within tolerance of neither.

    Attributes:
        max_shift_px: Largest centroid move from the tracked blob (px).
        max_turn_deg: Largest change of the orientation (deg), when both frames use it.
        max_area_ratio: Largest ratio of the larger area to the smaller.
        accept_after: Consecutive changed frames after which the new shape is taken as the
            object's (the change persisted: it is the object, not a flicker).
    """

    max_shift_px: float = 4.0  # px: ~1 cm at 0.3 m, several frames' worth of VS motion
    max_turn_deg: float = 15.0  # deg: fifteen frames' worth of the 30 deg/s limit
    max_area_ratio: float = 1.3  # a split or a merge changes the area by far more
    accept_after: int = 10  # frames (0.33 s at 30 fps), well inside reacquire.wait_s


@dataclass(frozen=True)
class FeatureParams:
    """Parameters of feature extraction; pixel sizes are at the mask's resolution.

    Attributes:
        open_kernel_px: Side of the elliptical opening kernel (px); <= 1 disables it.
        close_kernel_px: Side of the elliptical closing kernel (px); <= 1 disables it.
        min_blob_area_px: Components smaller than this (px) are ignored as noise.
        min_iou: Smallest overlap (intersection over union) with the previous blob that
            associates a component with it.
        max_jump_px: Largest centroid displacement (px) between frames for an association by
            nearest centroid when no component overlaps enough.
        axis_ratio_threshold: Minor/major eigenvalue ratio of the second-moment matrix above
            which the principal axes count as similar and the orientation is ignored (in [0, 1];
            1 is a disc or a square).
        border_margin_px: The object is "near the border" when its bounding box comes within
            this many pixels of an image edge.
        shape_gate: Skip frames whose tracked blob changed shape more than this allows
            (:func:`shape_change`); None: every frame is used (the paper).
    """

    open_kernel_px: int = 3  # px, removes isolated misclassified pixels
    close_kernel_px: int = 5  # px, fills small holes (specular highlights, labels)
    min_blob_area_px: int = 20  # px, ~0.1 % of a 128 x 128 image
    min_iou: float = 0.2  # a blob moves by far less than its size per frame at VS speeds
    max_jump_px: float = 12.0  # px, ~10 % of a 128 px image per frame
    axis_ratio_threshold: float = 0.7  # eigenvalue ratio, i.e. axis lengths within ~16 %
    border_margin_px: int = 4  # px, ~3 % of a 128 px image
    shape_gate: ShapeGateParams | None = None


@dataclass(frozen=True)
class BlobFeatures:
    """Features of the tracked object blob in one frame.

    Attributes:
        ok: Whether a blob was found (and, when tracking, associated with the previous one).
        reason: Why not, in words ("" when ``ok``).
        centroid_px: (u, v) centroid in pixels.
        x_g: Centroid x in normalised image coordinates ((u - cx) / fx), camera frame.
        y_g: Centroid y in normalised image coordinates ((v - cy) / fy), camera frame.
        alpha: Orientation of the primary axis (rad, in (-pi/2, pi/2]), from camera x towards y.
        use_alpha: False when the principal axes are of similar size (``alpha`` meaningless).
        axis_ratio: Minor/major eigenvalue ratio of the second-moment matrix (0 line, 1 disc).
        area_px: Blob area in pixels.
        bbox: (x, y, width, height) bounding box in pixels.
        touches_border: Whether the bounding box touches an image edge.
        near_border: Whether the bounding box is within the border margin of an image edge.
        n_components: Number of object components (above the minimum area) in the frame.
        association: How the blob was chosen: "largest" or "nearest_centre" (first frame of a
            track), "overlap" or "nearest" (tracked) ("" on failure).
        mask: (H, W) uint8 mask of the blob (1 inside, 0 outside), kept for tracking and depth.
    """

    ok: bool
    reason: str = ""
    centroid_px: tuple[float, float] = (float("nan"), float("nan"))
    x_g: float = float("nan")
    y_g: float = float("nan")
    alpha: float = 0.0
    use_alpha: bool = False
    axis_ratio: float = float("nan")
    area_px: int = 0
    bbox: tuple[int, int, int, int] = (0, 0, 0, 0)
    touches_border: bool = False
    near_border: bool = False
    n_components: int = 0
    association: str = ""
    mask: Mask | None = field(default=None, repr=False, compare=False)

    @staticmethod
    def failure(reason: str, n_components: int = 0) -> BlobFeatures:
        """A failed extraction with ``reason``."""
        return BlobFeatures(ok=False, reason=reason, n_components=n_components)


def _check_mask(class_mask: np.ndarray) -> None:
    if not isinstance(class_mask, np.ndarray) or class_mask.ndim != 2 or class_mask.dtype != np.uint8:
        shape = getattr(class_mask, "shape", None)
        dtype = getattr(class_mask, "dtype", type(class_mask).__name__)
        raise InputError(f"class mask: expected a 2-D uint8 array, found shape {shape} dtype {dtype}")


def _kernel(size: int) -> np.ndarray:
    return cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (size, size))


def clean_mask(class_mask: Mask, params: FeatureParams) -> Mask:
    """Binary object mask after a morphological opening then closing.

    Args:
        class_mask: (H, W) uint8 class mask (0 background, 1 object, 2 gripper).
        params: Kernel sizes.

    Returns:
        (H, W) uint8 mask, 1 on object pixels, 0 elsewhere.
    """
    _check_mask(class_mask)
    binary = (class_mask == OBJECT_CLASS).astype(np.uint8)
    if params.open_kernel_px > 1:
        binary = cv2.morphologyEx(binary, cv2.MORPH_OPEN, _kernel(params.open_kernel_px))
    if params.close_kernel_px > 1:
        binary = cv2.morphologyEx(binary, cv2.MORPH_CLOSE, _kernel(params.close_kernel_px))
    return binary


def near_border(bbox: tuple[int, int, int, int], shape: tuple[int, int], margin_px: int) -> bool:
    """Whether a bounding box comes within ``margin_px`` of an image edge.

    Args:
        bbox: (x, y, width, height) in pixels.
        shape: (height, width) of the image in pixels.
        margin_px: Margin in pixels; 0 means "touches the edge".
    """
    x, y, w, h = bbox
    rows, cols = shape
    return x <= margin_px or y <= margin_px or x + w >= cols - margin_px or y + h >= rows - margin_px


def moments_features(blob: Mask, intrinsics: Intrinsics) -> tuple[tuple[float, float], float, float]:
    """Centroid, primary-axis orientation and axis ratio of a binary blob from image moments.

    Args:
        blob: (H, W) uint8 mask, non-zero inside the blob (must not be empty).
        intrinsics: Intrinsics of the image (for the normalised-coordinate orientation).

    Returns:
        ((u, v) centroid in pixels, alpha in rad in (-pi/2, pi/2] from camera x towards y,
        minor/major eigenvalue ratio of the second-moment matrix in [0, 1]).
    """
    m = cv2.moments(blob, binaryImage=True)
    if m["m00"] <= 0:
        raise InputError("moments of an empty blob")
    u, v = m["m10"] / m["m00"], m["m01"] / m["m00"]
    # Central second moments per unit area, in normalised image coordinates (x = u / fx ...).
    mu20 = m["mu20"] / m["m00"] / intrinsics.fx**2
    mu02 = m["mu02"] / m["m00"] / intrinsics.fy**2
    mu11 = m["mu11"] / m["m00"] / (intrinsics.fx * intrinsics.fy)
    alpha = wrap_half_pi(0.5 * float(np.arctan2(2.0 * mu11, mu20 - mu02)))
    half_sum, root = 0.5 * (mu20 + mu02), float(np.hypot(0.5 * (mu20 - mu02), mu11))
    major, minor = half_sum + root, half_sum - root
    ratio = float(np.clip(minor / major, 0.0, 1.0)) if major > 0 else 1.0
    return (float(u), float(v)), alpha, ratio


def shape_change(previous: BlobFeatures, current: BlobFeatures, gate: ShapeGateParams) -> str:
    """How the tracked blob changed between two frames beyond the gate, or "" within it.

    Args:
        previous: The tracked blob's features in the last frame used.
        current: This frame's features of the blob associated with it.
        gate: The largest changes allowed.

    Returns:
        A description of every change beyond the gate ("" when none).
    """
    changes = []
    shift = float(np.hypot(current.centroid_px[0] - previous.centroid_px[0],
                           current.centroid_px[1] - previous.centroid_px[1]))
    if shift > gate.max_shift_px:
        changes.append(f"centroid moved {shift:.1f} px")
    if previous.use_alpha and current.use_alpha:
        turn = abs(float(np.degrees(wrap_half_pi(current.alpha - previous.alpha))))
        if turn > gate.max_turn_deg:
            changes.append(f"turned {turn:.0f} deg")
    small, large = sorted((max(previous.area_px, 1), max(current.area_px, 1)))
    if large / small > gate.max_area_ratio:
        changes.append(f"area {previous.area_px} -> {current.area_px} px")
    return ", ".join(changes)


FIRST_BLOB_RULES = ("largest", "nearest_centre")  # how the first blob of a track is chosen


def _choose(labels: np.ndarray, stats: np.ndarray, centroids: np.ndarray, ids: list[int],
            previous: BlobFeatures | None, params: FeatureParams,
            first: str = "largest") -> tuple[int | None, str, str]:
    """Pick a component id: (id or None, association, failure reason)."""
    if previous is None or not previous.ok or previous.mask is None:
        if first == "nearest_centre":  # the blob whose centroid is nearest the image centre
            cu, cv = (labels.shape[1] - 1) / 2, (labels.shape[0] - 1) / 2
            return (min(ids, key=lambda i: float(np.hypot(centroids[i, 0] - cu, centroids[i, 1] - cv))),
                    "nearest_centre", "")
        return max(ids, key=lambda i: int(stats[i, cv2.CC_STAT_AREA])), "largest", ""
    prev = previous.mask.astype(bool)
    if prev.shape != labels.shape:
        raise InputError(f"previous blob mask {prev.shape} does not match the class mask {labels.shape}")
    best_iou, best_id = 0.0, None
    for i in ids:
        comp = labels == i
        union = int(np.count_nonzero(comp | prev))
        iou = np.count_nonzero(comp & prev) / union if union else 0.0
        if iou > best_iou:
            best_iou, best_id = iou, i
    if best_id is not None and best_iou >= params.min_iou:
        return best_id, "overlap", ""
    pu, pv = previous.centroid_px
    dists = {i: float(np.hypot(centroids[i, 0] - pu, centroids[i, 1] - pv)) for i in ids}
    nearest = min(dists, key=dists.__getitem__)
    if dists[nearest] <= params.max_jump_px:
        return nearest, "nearest", ""
    return None, "", (f"blob lost: best overlap {best_iou:.2f} < {params.min_iou:.2f} and nearest "
                      f"centroid {dists[nearest]:.1f} px > {params.max_jump_px:.1f} px away")


def extract_features(class_mask: Mask, intrinsics: Intrinsics, params: FeatureParams,
                     previous: BlobFeatures | None = None, first: str = "largest",
                     exclude: Mask | None = None) -> BlobFeatures:
    """Clean the mask, choose (or track) the object blob and compute its features.

    Args:
        class_mask: (H, W) uint8 class mask (0 background, 1 object, 2 gripper), the same size as
            the image ``intrinsics`` describes.
        intrinsics: Intrinsics of the mask's image (pixels to normalised coordinates).
        params: Clean-up, tracking and orientation parameters.
        previous: The previous frame's features to track from; None (or a failed one) picks the
            component ``first`` names.
        first: Rule for the first blob of a track (no previous blob): "largest" (the most
            object pixels) or "nearest_centre" (centroid nearest the image centre; in a
            multi-object scene the object the pose steps brought under the camera).
        exclude: (H, W) mask, non-zero where blobs were found fixed in the image (not objects,
            :mod:`app.controllers.motion_check`); components overlapping it are ignored.

    Returns:
        The blob's features, or a failure (``ok`` False) with a reason: no object pixels, only
        components below the minimum area, or the tracked blob lost.

    Raises:
        InputError: If the mask is not a 2-D uint8 array or does not match ``intrinsics``.
    """
    _check_mask(class_mask)
    rows, cols = class_mask.shape
    if (cols, rows) != (intrinsics.width, intrinsics.height):
        raise InputError(f"class mask {cols}x{rows} does not match the intrinsics "
                         f"{intrinsics.width}x{intrinsics.height}")
    binary = clean_mask(class_mask, params)
    n, labels, stats, centroids = cv2.connectedComponentsWithStats(binary, connectivity=_CONNECTIVITY)
    ids = [i for i in range(1, n) if stats[i, cv2.CC_STAT_AREA] >= params.min_blob_area_px]
    if not ids:
        if n > 1:
            largest = int(stats[1:, cv2.CC_STAT_AREA].max())
            return BlobFeatures.failure(f"no object blob: largest component {largest} px < "
                                        f"{params.min_blob_area_px} px minimum")
        return BlobFeatures.failure("no object pixels in the mask")
    if exclude is not None:
        if exclude.shape != labels.shape:
            raise InputError(f"exclusion mask {exclude.shape} does not match the class mask {labels.shape}")
        kept = [i for i in ids if not np.any(exclude[labels == i])]
        if not kept:
            return BlobFeatures.failure(f"no object blob: the {len(ids)} component(s) overlap blobs found "
                                        f"fixed in the image", n_components=len(ids))
        ids = kept
    if first not in FIRST_BLOB_RULES:
        raise InputError(f"first blob rule {first!r} (expected one of {list(FIRST_BLOB_RULES)})")
    chosen, association, reason = _choose(labels, stats, centroids, ids, previous, params, first)
    if chosen is None:
        return BlobFeatures.failure(reason, n_components=len(ids))
    blob = (labels == chosen).astype(np.uint8)
    (u, v), alpha, ratio = moments_features(blob, intrinsics)
    x_g, y_g = intrinsics.normalise(u, v)
    x, y, w, h = (int(stats[chosen, k]) for k in (cv2.CC_STAT_LEFT, cv2.CC_STAT_TOP,
                                                  cv2.CC_STAT_WIDTH, cv2.CC_STAT_HEIGHT))
    bbox = (x, y, w, h)
    return BlobFeatures(
        ok=True, centroid_px=(u, v), x_g=float(x_g), y_g=float(y_g), alpha=alpha,
        use_alpha=ratio < params.axis_ratio_threshold, axis_ratio=ratio,
        area_px=int(stats[chosen, cv2.CC_STAT_AREA]), bbox=bbox,
        touches_border=near_border(bbox, (rows, cols), 0),
        near_border=near_border(bbox, (rows, cols), params.border_margin_px),
        n_components=len(ids), association=association, mask=blob,
    )
