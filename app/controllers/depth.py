"""Object distance from the depth image, and the final descent along the approach axis.

Depth images hold the distance along the optical axis (camera z) in metres, 0 where the sensor
gave no reading (``Frame.depth``). Blob edges mix object and table readings and the SR300 drops
pixels on dark or specular surfaces, so the object distance ``Z_g`` is the *median* of the valid
readings inside the blob shrunk by an erosion, and is refused when too few readings are valid.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from app.errors import InputError
from app.transforms import Pose
from app.types import Depth, Mask


@dataclass(frozen=True)
class DepthParams:
    """Parameters of the depth read-out and of the descent.

    Attributes:
        erode_px: Side of the elliptical erosion kernel (px) that trims the blob's edges before
            reading depth; <= 1 disables it. If erosion leaves nothing, the whole blob is used.
        min_valid_fraction: Smallest fraction of the (eroded) blob's pixels with a valid
            reading (finite and > 0; the camera already reports 0 outside its range).
        tip_clearance: Distance (m) the fingertips keep above the table at the end of the
            descent (the grasp point keeps this plus the hardware's ``fingertip_reach``).
    """

    erode_px: int = 3  # px, trims ~1 px of mixed object/table readings at the blob's edge
    min_valid_fraction: float = 0.3  # the SR300 drops up to ~half the pixels of shiny objects
    tip_clearance: float = 0.0045  # m: with the Panda's 8.5 mm fingertip reach, the grasp point stays 13 mm up


@dataclass(frozen=True)
class DepthEstimate:
    """A depth read-out over a blob.

    Attributes:
        z: Median distance along the camera z (m), or None when too few readings were valid.
        reason: Why ``z`` is None, in words ("" when it is not).
        valid_fraction: Fraction of the blob's pixels that had a valid reading.
        n_valid: Number of valid readings used.
    """

    z: float | None
    reason: str
    valid_fraction: float
    n_valid: int


def _check(depth: np.ndarray, mask: np.ndarray) -> None:
    if not isinstance(depth, np.ndarray) or depth.ndim != 2:
        raise InputError(f"depth: expected a 2-D array in metres, found shape {getattr(depth, 'shape', None)}")
    if not isinstance(mask, np.ndarray) or mask.shape != depth.shape:
        raise InputError(f"mask: expected shape {depth.shape} (the depth image's), "
                         f"found {getattr(mask, 'shape', None)}")


def _median_over(depth: Depth, region: np.ndarray, params: DepthParams, what: str) -> DepthEstimate:
    total = int(np.count_nonzero(region))
    if total == 0:
        return DepthEstimate(None, f"empty {what}", 0.0, 0)
    values = depth[region]
    valid = values[np.isfinite(values) & (values > 0)]
    fraction = valid.size / total
    if fraction < params.min_valid_fraction:
        return DepthEstimate(None, f"too few depth readings on the {what}: {fraction:.0%} valid < "
                                   f"{params.min_valid_fraction:.0%}", fraction, int(valid.size))
    return DepthEstimate(float(np.median(valid)), "", fraction, int(valid.size))


def object_distance(depth: Depth, blob_mask: Mask, params: DepthParams) -> DepthEstimate:
    """Distance to the object along the camera z: median of the valid readings in the blob.

    Args:
        depth: (H, W) depth along the optical axis in metres, 0 = no reading.
        blob_mask: (H, W) mask of the object blob (non-zero inside), same size as ``depth``.
        params: Erosion, validity range and minimum valid fraction.

    Returns:
        The estimate; ``z`` is None (with a reason) when the blob is empty or too few of its
        pixels hold a valid reading.

    Raises:
        InputError: If the arrays are not 2-D or differ in shape.
    """
    _check(depth, blob_mask)
    region = (np.asarray(blob_mask) > 0).astype(np.uint8)
    if params.erode_px > 1:
        kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (params.erode_px, params.erode_px))
        eroded = cv2.erode(region, kernel)
        if np.any(eroded):  # a blob thinner than the kernel keeps its own pixels
            region = eroded
    return _median_over(np.asarray(depth, dtype=np.float64), region.astype(bool), params, "object blob")


def object_distance_or_surround(depth: Depth, blob_mask: Mask, params: DepthParams,
                                ring_px: int = 7) -> DepthEstimate:
    """:func:`object_distance`, or, when the blob itself reads too little depth, the table
    right around it.

    Structured-light sensors such as the SR300 read nothing on dark or shiny objects (a black
    marker loses most of its pixels). The median depth of a ring just outside the blob is the
    table under the object: an upper bound of the object distance that is off by the object's
    height, which is harmless for VS (it scales the error and shifts y* by a few pixels) and for
    the descent (capped by the table clearance). The estimate's ``reason`` then says so.

    Args:
        depth: (H, W) depth along the optical axis in metres, 0 = no reading.
        blob_mask: (H, W) mask of the object blob (non-zero inside).
        params: As for :func:`object_distance`.
        ring_px: Width of the ring around the blob (px).
    """
    est = object_distance(depth, blob_mask, params)
    if est.z is not None:
        return est
    blob = (np.asarray(blob_mask) > 0).astype(np.uint8)
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * ring_px + 1, 2 * ring_px + 1))
    ring = (cv2.dilate(blob, kernel) > 0) & (blob == 0)
    table = _median_over(np.asarray(depth, dtype=np.float64), ring, params, "ring around the blob")
    if table.z is None:
        return DepthEstimate(None, f"{est.reason}; {table.reason}", est.valid_fraction, est.n_valid)
    return DepthEstimate(table.z, f"object depth missing ({est.reason}): used the table around it",
                         est.valid_fraction, table.n_valid)


def background_distance(depth: Depth, class_mask: Mask, params: DepthParams) -> DepthEstimate:
    """Distance to the table along the camera z: median of the valid background readings.

    Meaningful when the camera looks roughly straight down at the table (as during VS).

    Args:
        depth: (H, W) depth along the optical axis in metres, 0 = no reading.
        class_mask: (H, W) class mask (0 background, 1 object, 2 gripper), same size as ``depth``.
        params: Validity range and minimum valid fraction.

    Returns:
        The estimate, ``z`` None with a reason when too few background readings are valid.
    """
    _check(depth, class_mask)
    return _median_over(np.asarray(depth, dtype=np.float64), np.asarray(class_mask) == 0, params,
                        "background")


def descent_distance(z_g: float, mount: Pose, finger_depth: float,
                     table_distance: float | None = None, table_clearance: float = 0.005) -> float:
    """How far the gripper must move along its approach axis (gripper z) to grasp the object.

    Geometry (frames of ``app/transforms.py``): the grasp point is the gripper frame's origin,
    between the fingertips; the camera frame sits at ``mount.position`` in the gripper frame,
    i.e. ``-mount.position[2]`` metres *behind* the grasp point along z (0.10 m for the default
    mount). The object's top surface is ``z_g`` metres in front of the camera along the camera
    z, which for a mount whose z is parallel to the gripper z is ``z_g + mount.position[2]`` in
    front of the grasp point (in general: the gripper-z component of the camera-frame point
    ``(0, 0, z_g)``). The fingers should close ``finger_depth`` below the top surface, so that
    the pads, which reach ``finger_depth`` above the grasp point, cover the object's upper part::

        descent = z_g + mount.position[2] + finger_depth        (parallel axes)

    capped at ``table_distance - table_clearance`` so the fingertips never hit the table.

    Args:
        z_g: Object distance along the camera z (m), e.g. :func:`object_distance`.
        mount: Camera frame in the gripper frame (``HardwareConfig.mount``).
        finger_depth: How far the finger pads reach above the grasp point (m).
        table_distance: Distance of the table from the camera along the camera z (m), e.g.
            :func:`background_distance`; None for no cap.
        table_clearance: Distance the grasp point keeps above the table (m).

    Returns:
        Distance in metres to move along the gripper z (positive: towards the object). It is
        negative when the grasp point is already past the grasp height (move back).

    Raises:
        InputError: If ``z_g`` is not a positive finite distance.
    """
    if not np.isfinite(z_g) or z_g <= 0:
        raise InputError(f"object distance must be a positive number of metres, found {z_g}")

    def ahead_of_grasp_point(z_cam: float) -> float:  # gripper-z of the camera point (0, 0, z_cam)
        return float(mount.apply(np.array([0.0, 0.0, z_cam]))[2])

    descent = ahead_of_grasp_point(z_g) + finger_depth
    if table_distance is not None:
        descent = min(descent, ahead_of_grasp_point(table_distance) - table_clearance)
    return descent
