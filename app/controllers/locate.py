"""Find the object in one RGB-D view from depth alone: the blob that stands above the table.

Used where no model may be trusted yet, e.g. the real data collection of a new lab (the
CycleGAN that would segment its images is what the collection is for). The table plane is fitted
to the depth image (:func:`app.controllers.depth_gate.fit_table_plane`, never ground truth);
pixels between ``min_height`` and ``max_height`` above it are object; the object blob is chosen
and cleaned as visual servoing does (:func:`app.controllers.features.extract_features`), its
distance is the median depth over it (:func:`app.controllers.depth.object_distance_or_surround`),
and its centroid, back-projected at that distance, is moved into the gripper frame through the
camera mount (the hand-eye calibration).

Frames: depth along the camera optical axis (x right, y down, z forward), metres; the result is
the (x, y) of the object's top centre in the gripper frame of the pose the view was taken at.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from app.controllers.depth import DepthParams, object_distance_or_surround
from app.controllers.depth_gate import OBJECT_CLASS, DepthGateParams, fit_table_plane, height_map
from app.controllers.features import FeatureParams, extract_features
from app.robot.interfaces import Intrinsics
from app.transforms import Pose
from app.types import Depth, Mask


@dataclass(frozen=True)
class LocateParams:
    """Parameters of :func:`locate_object`.

    Attributes:
        gate: Table-plane fit and the smallest height (m) above it that counts as object.
        max_height: Largest height (m) above the table that counts as object: anything higher
            is not on the table (the fingers, on a camera that reads them).
        features: Blob clean-up and the smallest blob (px).
        depth: Depth read-out over the blob.
        first: Which blob when several stand on the table: ``"nearest_centre"`` or ``"largest"``.
    """

    gate: DepthGateParams = field(default_factory=DepthGateParams)
    max_height: float = 0.25  # m: taller than any object the 8 cm gripper takes, ~0.35 m below the fingers in the start view
    features: FeatureParams = field(default_factory=FeatureParams)
    depth: DepthParams = field(default_factory=DepthParams)
    first: str = "nearest_centre"  # the object the person put under the camera


@dataclass(frozen=True)
class Sighting:
    """Where the object is in one view, or why it was not found.

    Attributes:
        offset: (x, y) of the object's top centre in the gripper frame (m), or None.
        reason: Why ``offset`` is None, in words ("" when found).
        centroid_px: (u, v) blob centroid (px) in the view (nan when not found).
        distance: Median depth over the blob along the optical axis (m; nan when not found).
        area_px: Blob area (px).
    """

    offset: np.ndarray | None
    reason: str = ""
    centroid_px: tuple[float, float] = (float("nan"), float("nan"))
    distance: float = float("nan")
    area_px: int = 0

    @property
    def found(self) -> bool:
        """Whether the object was found."""
        return self.offset is not None


def above_table(depth: Depth, k: Intrinsics, params: LocateParams) -> tuple[Mask | None, str]:
    """Class mask of the pixels standing ``gate.min_height`` to ``max_height`` above the table.

    Args:
        depth: (H, W) depth along the optical axis (m), 0 where there is no reading.
        k: Intrinsics of ``depth``.
        params: Height band and plane fit.

    Returns:
        ((H, W) uint8 mask, object pixels :data:`~app.controllers.depth_gate.OBJECT_CLASS`, else
        0; "") or (None, why no table plane could be fitted).
    """
    plane = fit_table_plane(depth, k, params.gate)
    if plane is None:
        valid = float(np.count_nonzero(depth > 0)) / depth.size
        return None, (f"no table plane: {valid:.0%} of the view has depth "
                      f"(< {params.gate.min_valid_fraction:.0%} needed)")
    h = height_map(depth, k, plane, params.gate.fill_px)
    obj = np.isfinite(h) & (h >= params.gate.min_height) & (h <= params.max_height)
    return np.where(obj, OBJECT_CLASS, 0).astype(np.uint8), ""


def locate_object(depth: Depth, k: Intrinsics, mount: Pose, params: LocateParams | None = None) -> Sighting:
    """The object standing on the table in one view, as an (x, y) offset in the gripper frame.

    Args:
        depth: (H, W) depth along the optical axis (m), 0 where there is no reading.
        k: Intrinsics of ``depth`` (the frame's).
        mount: Camera optical frame in the gripper frame (``Arm.camera_mount``, hand-eye).
        params: Thresholds (default :class:`LocateParams`).

    Returns:
        The sighting: the offset (m, gripper frame of the view's pose), or None and the reason
        (no table plane, nothing above it, only specks, no depth over the blob).
    """
    params = params or LocateParams()
    depth = np.asarray(depth, dtype=np.float32)
    mask, why = above_table(depth, k, params)
    if mask is None:
        return Sighting(None, why)
    f = extract_features(mask, k, params.features, first=params.first)
    if not f.ok or f.mask is None:
        return Sighting(None, f"nothing stands above the table: {f.reason}")
    est = object_distance_or_surround(depth, f.mask, params.depth)
    if est.z is None:
        return Sighting(None, f"no depth over the blob: {est.reason}", f.centroid_px, area_px=f.area_px)
    x, y = k.normalise(*f.centroid_px)
    in_camera = np.array([float(x) * est.z, float(y) * est.z, est.z])  # m, camera optical frame
    offset = mount.apply(in_camera)[:2]
    return Sighting(np.asarray(offset, dtype=float), "", f.centroid_px, est.z, f.area_px)
