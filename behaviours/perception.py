"""Perception leaves: acquire a frame, adapt it to the sim look, segment, extract features.

Each tick of an iteration starts with "Acquire Frame" (gather), then the deciding leaves only
read the blackboard.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

import cv2
import numpy as np
import py_trees
from py_trees.common import Status

from app.controllers.features import FeatureParams, extract_features, shape_change
from app.controllers.motion_check import BlobMotionCheck, MotionCheckParams
from app.errors import AppError
from behaviours.base import Leaf

if TYPE_CHECKING:
    from app.controllers.depth_gate import DepthGateParams
    from app.controllers.locate import LocateParams

MASK_SOURCES = ("adapted", "raw", "depth")  # where a VS mask comes from, in fallback order
FALLBACK_SOURCES = MASK_SOURCES[1:]  # a mask from these means D_X's was given up (sticky)


class AcquireFrame(Leaf):
    """Take the newest camera frame and put it on the blackboard.

    A camera error or a frame that is not newer than the last frame on the blackboard (a
    dropped or stale frame, e.g. one taken before the last pose step) holds the tree for a tick
    (RUNNING: nothing new is decided, so the arm gets no new command); after ``max_missed`` such
    ticks in a row the leaf fails, naming the last error.

    Args:
        max_missed: Consecutive missed frames tolerated (config ``max_missed_frames``).
    """

    def __init__(self, name: str = "Acquire Frame", max_missed: int = 5) -> None:
        super().__init__(name, writes=("frame",))
        self.max_missed = max_missed
        self.latency_ms = 0.0
        self._missed = 0

    def _miss(self, why: str) -> Status:
        self._missed += 1
        if self._missed > self.max_missed:
            return self.fail(f"camera: {self._missed} frames missed in a row, last: {why}")
        self.feedback_message = f"holding: {why} ({self._missed}/{self.max_missed})"
        return Status.RUNNING

    def update(self) -> Status:
        """Read the camera (one frame period at most on the real camera)."""
        t0 = time.perf_counter()
        try:
            frame = self.robot.camera.get_frame()
        except AppError as e:
            return self._miss(str(e))
        self.latency_ms = (time.perf_counter() - t0) * 1000
        last = self.read("frame")  # shared by every Acquire Frame of the tree
        if last is not None and frame.seq <= last.seq:
            return self._miss(f"no new frame (seq {frame.seq})")
        self._missed = 0
        self.bb.frame = frame
        self.feedback_message = f"frame {frame.seq} at {frame.timestamp:.3f} s"
        return Status.SUCCESS


class AdaptToSim(Leaf):
    """Translate the real-looking frame into the sim look with the generator G_Y->X.

    The generator is not run when nothing would read its output: in a VS iteration whose masks
    come from the raw image (``skip_after_fallback``: once the episode has fallen back to D_Y,
    which is sticky); the raw frame is passed on instead (only its intrinsics are read then).

    Args:
        enabled: False passes the raw frame through (the ``drl_vs`` ablation, ``segmentation:
            raw`` VS trees).
        skip_after_fallback: Pass the raw frame through once ``mask_source`` is "raw" or "depth"
            (a fallback: nothing reads the adapted image any more).
    """

    def __init__(self, name: str = "Adapt To Sim", enabled: bool = True, skip_after_fallback: bool = False) -> None:
        super().__init__(name, reads=("frame", "mask_source"), writes=("model_frame",))
        self.enabled = enabled
        self.skip_after_fallback = skip_after_fallback
        self.latency_ms = 0.0

    def update(self) -> Status:
        """Run the generator on the blackboard frame (or pass it through, see the class)."""
        frame = self.bb.frame
        t0 = time.perf_counter()
        fallen_back = self.skip_after_fallback and self.read("mask_source") in FALLBACK_SOURCES
        run = self.enabled and not fallen_back
        self.bb.model_frame = self.models.adapt(frame) if run else frame
        self.latency_ms = (time.perf_counter() - t0) * 1000
        self.feedback_message = ("adapted" if run else f"skipped: masks come from the {self.read('mask_source')} image"
                                 if fallen_back
                                 else "raw (no adaptation)")
        return Status.SUCCESS


class SegmentObject(Leaf):
    """Segment the object: D_X on the model frame (the paper's run-time path: the adapted image),
    D_Y on the raw camera frame, or the depth image alone (pixels standing above the fitted table
    plane, :func:`app.controllers.locate.above_table`: an object in the table's colour).

    When the mask's source changes within an episode (a fallback), the tracked blob is dropped:
    blobs of two segmenters are not comparable, so the next features start from the largest blob.

    Args:
        source: "adapted" (D_X on ``model_frame``), "raw" (D_Y on the raw ``frame``) or "depth"
            (the raw ``frame``'s depth, no model).
        name: Node name.
    """

    def __init__(self, name: str = "Segment Object", source: str = "adapted") -> None:
        if source not in MASK_SOURCES:
            raise ValueError(f"{name}: source {source!r} (expected one of {list(MASK_SOURCES)})")
        super().__init__(name, reads=("model_frame", "frame", "mask_source"),
                         writes=("mask", "mask_source", "features"))
        self.source = source
        self.latency_ms = 0.0
        self._locate: LocateParams | None = None

    def _depth_mask(self) -> tuple[np.ndarray, str]:
        """Object pixels of the raw frame's depth, and "" or why none could be found (the mask
        is all 0 when no table plane can be fitted)."""
        from app.controllers.locate import LocateParams, above_table

        self._locate = self._locate or LocateParams()
        frame = self.bb.frame
        mask, why = above_table(np.asarray(frame.depth, dtype=np.float32), frame.intrinsics, self._locate)
        return (mask, "") if mask is not None else (np.zeros(np.shape(frame.depth), np.uint8), why)

    def update(self) -> Status:
        """Write the class mask and which image it came from."""
        t0 = time.perf_counter()
        why = ""
        if self.source == "adapted":
            mask = self.models.segment(self.bb.model_frame)
        elif self.source == "raw":
            mask = self.models.segment_raw(self.bb.frame)
        else:
            mask, why = self._depth_mask()
        previous = self.read("mask_source")
        if previous is not None and previous != self.source:
            self.bb.features = None  # re-acquire the blob in the new mask
        self.bb.mask = mask
        self.bb.mask_source = self.source
        self.latency_ms = (time.perf_counter() - t0) * 1000
        self.feedback_message = f"{int((mask == 1).sum())} object px ({self.source})" + (f": {why}" if why else "")
        return Status.SUCCESS


class AdaptedMaskInUse(Leaf):
    """Condition "Adapted Mask In Use?": the episode has not fallen back from D_X on the adapted
    image (to D_Y on the raw image, or to the depth image).

    The fallback is sticky: once a later source's mask has been used, the tree keeps it for the
    rest of the episode, so the tracked blob does not jump between two segmenters' masks.
    """

    def __init__(self, name: str = "Adapted Mask In Use?") -> None:
        super().__init__(name, reads=("mask_source",))

    def update(self) -> Status:
        """SUCCESS until a raw-image or depth mask has been used."""
        source = self.read("mask_source")
        fallen = source in FALLBACK_SOURCES
        self.feedback_message = f"fallen back to the {source} mask" if fallen else "D_X on the adapted image"
        return Status.FAILURE if fallen else Status.SUCCESS


class DepthMaskNotInUse(Leaf):
    """Condition "Depth Mask Not In Use?": the episode has not fallen back to the depth mask
    (sticky as :class:`AdaptedMaskInUse`: once used, D_Y is not asked again)."""

    def __init__(self, name: str = "Depth Mask Not In Use?") -> None:
        super().__init__(name, reads=("mask_source",))

    def update(self) -> Status:
        """SUCCESS until a depth mask has been used."""
        depth = self.read("mask_source") == "depth"
        self.feedback_message = "fallen back to the depth mask" if depth else "segmenters still in use"
        return Status.FAILURE if depth else Status.SUCCESS


class ExtractFeatures(Leaf):
    """Clean the mask, track the object blob, compute centroid and orientation.

    Fails (with the reason) when no blob is found or the tracked blob is lost. With a shape gate
    (``features.shape_gate``), a frame whose tracked blob changed shape beyond the gate
    (:func:`~app.controllers.features.shape_change`) is skipped: RUNNING, the last good features
    kept, so that no VS step runs on it (the last velocity command lapses after its period and
    the arm holds) instead of VS servoing on a blob that flickers between two shapes, and without
    a failure that would send an ``adapted_or_raw`` tree to D_Y for good. A change that lasts
    ``accept_after`` frames in a row is taken as the object's.
    """

    def __init__(self, params: FeatureParams, name: str = "Extract Features", first_blob: str = "largest") -> None:
        super().__init__(name, reads=("mask", "model_frame", "features", "static_blobs", "mask_source"),
                         writes=("features",))
        self.params = params
        self.first_blob = first_blob  # rule for the first blob of a track (tree YAML ``first_blob``)
        self.latency_ms = 0.0
        self.skipped = 0  # frames in a row skipped by the shape gate (kept across ticks: a leaf re-initialises each tick)

    def update(self) -> Status:
        """Track the blob from the previous features (if any)."""
        t0 = time.perf_counter()
        prev = self.read("features")
        exclude = (self.read("static_blobs") or {}).get(self.read("mask_source"))
        f = extract_features(self.bb.mask, self.bb.model_frame.intrinsics, self.params, prev, self.first_blob,
                             exclude)
        self.latency_ms = (time.perf_counter() - t0) * 1000
        if not f.ok:
            self.skipped = 0
            return self.fail(f.reason)
        gate, taken = self.params.shape_gate, ""
        if gate is not None and prev is not None and prev.ok and f.association in ("overlap", "nearest"):
            change = shape_change(prev, f, gate)
            if change and self.skipped + 1 < gate.accept_after:
                self.skipped += 1
                self.feedback_message = (f"tracked blob changed shape ({change}): frame skipped "
                                         f"({self.skipped}/{gate.accept_after})")
                return Status.RUNNING  # no VS step this tick: the last velocity command lapses, the arm holds
            if change:
                taken = f"shape change kept for {gate.accept_after} frames, taken ({change}); "
        self.skipped = 0
        self.bb.features = f
        chose = (f"chose the {'blob nearest the image centre' if f.association == 'nearest_centre' else 'largest blob'}"
                 f" of {f.n_components} at ({f.centroid_px[0]:.0f}, {f.centroid_px[1]:.0f}) px; "
                 if f.association in ("largest", "nearest_centre") else "")
        self.feedback_message = taken + chose + (f"x_g {f.x_g:+.3f} y_g {f.y_g:+.3f} alpha "
                                 f"{'%+.1f deg' % (f.alpha * 57.2958) if f.use_alpha else 'ignored'}")
        return Status.SUCCESS


class BlobMovesWithScene(Leaf):
    """Condition "Blob Moves With Scene?": the tracked blob moves in the image as a point of the
    scene would when the camera moves (:mod:`app.controllers.motion_check`).

    SUCCESS until the camera has moved enough for a verdict, and whenever the blob followed.
    FAILURE when it stayed put: the blob is recorded in ``static_blobs`` (per mask source), so
    "Extract Features" ignores it from then on, and the track is dropped. In an
    ``adapted_or_raw`` tree the failure sends the selector to D_Y on the raw image.

    Args:
        params: Thresholds of the check.
        name: Node name.
    """

    _DILATE_PX = 5  # px, the rejected blob's mask grows by this to cover its flicker between frames

    def __init__(self, params: MotionCheckParams, name: str = "Blob Moves With Scene?") -> None:
        super().__init__(name, reads=("features", "z_g", "model_frame", "mask_source", "static_blobs",
                                      "static_blobs_found"),
                         writes=("features", "static_blobs", "static_blobs_found"))
        self.check = BlobMotionCheck(params)

    def update(self) -> Status:
        """Update the sliding-window check with this tick's blob and camera pose."""
        f, z = self.bb.features, self.read("z_g")
        if f.association in ("largest", "nearest_centre"):  # the first frame of a track
            self.check.reset()
        if z is None:  # no depth yet: the first VS iteration reads it
            self.feedback_message = "waiting for the object distance"
            return Status.SUCCESS
        v = self.check.update(self.robot.arm.camera_pose(), f.x_g, f.y_g, float(z), self.bb.model_frame.intrinsics.fx)
        if not v.checked:
            self.feedback_message = f"camera moved {v.predicted_px:.1f} px worth: no verdict yet"
            return Status.SUCCESS
        if v.follows:
            self.feedback_message = f"followed {v.ratio:.0%} of a static point's {v.predicted_px:.0f} px shift"
            return Status.SUCCESS
        kernel = np.ones((2 * self._DILATE_PX + 1,) * 2, np.uint8)
        grown = cv2.dilate(f.mask, kernel)
        static = dict(self.read("static_blobs") or {})
        source = self.read("mask_source") or ""
        static[source] = grown if source not in static else np.maximum(static[source], grown)
        self.bb.static_blobs = static
        self.bb.static_blobs_found = self.read("static_blobs_found", 0) + 1
        self.bb.features = None  # look afresh, without this blob
        self.check.reset()
        u, v_px = f.centroid_px
        return self.fail(f"the blob at ({u:.0f}, {v_px:.0f}) px stayed put while the camera moved "
                         f"({self.check.params.windows_to_reject} windows in a row; last: {v.ratio:.0%} of a static "
                         f"point's {v.predicted_px:.0f} px shift): fixed in the image, not an object; ignored from now on")


class ObjectNearBorder(Leaf):
    """Condition "Object Near Border?": the blob's box is within the border margin."""

    def __init__(self, name: str = "Object Near Border?") -> None:
        super().__init__(name, reads=("features",))

    def update(self) -> Status:
        """SUCCESS when near the border."""
        f = self.bb.features
        near = bool(f.near_border)
        self.feedback_message = f"bbox {f.bbox}: {'near' if near else 'away from'} the border"
        return Status.SUCCESS if near else Status.FAILURE


class ObjectVisible(Leaf):
    """Condition "Object Visible?": the mask holds an object blob."""

    def __init__(self, params: FeatureParams, name: str = "Object Visible?") -> None:
        super().__init__(name, reads=("mask",))
        self.params = params

    def update(self) -> Status:
        """SUCCESS when at least ``min_blob_area_px`` object pixels are present."""
        n = int((self.bb.mask == 1).sum())
        self.feedback_message = f"{n} object px"
        return Status.SUCCESS if n >= self.params.min_blob_area_px else Status.FAILURE


SEGMENTATION_MODES = ("adapted", "raw", "adapted_or_raw", "adapted_or_raw_or_depth")


def find_object(params: FeatureParams, mode: str = "adapted", first_blob: str = "largest",
                depth_gate: DepthGateParams | None = None,
                motion: MotionCheckParams | None = None) -> py_trees.behaviour.Behaviour:
    """Segment → extract features, in one of three ways (tree YAML key ``segmentation``).

    Args:
        params: Mask clean-up and blob tracking parameters.
        mode: "adapted": D_X on the model frame (the paper); "raw": D_Y on the raw frame;
            "adapted_or_raw": D_X, and when its mask holds no trackable blob, D_Y on the raw
            frame for the rest of the episode (a selector: the fallback shows in the tick log);
            "adapted_or_raw_or_depth": as "adapted_or_raw", and when D_Y's mask holds no trackable
            blob either, the pixels standing above the table plane in depth (no model: an object
            in the table's colour), for the rest of the episode.
        first_blob: Rule for the first blob of a track ("largest" or "nearest_centre").
        depth_gate: :class:`app.controllers.depth_gate.DepthGateParams`: a "Gate By Depth" leaf
            after each segmenter; None: no gate.
        motion: A "Blob Moves With Scene?" check after each "Extract Features"; None: no check.
    """
    from behaviours.scene import GateByDepth

    def chain(segment: Leaf) -> list[Leaf]:
        gate = [GateByDepth(depth_gate)] if depth_gate is not None else []
        check = [BlobMovesWithScene(motion)] if motion is not None else []
        return [segment, *gate, ExtractFeatures(params, first_blob=first_blob), *check]

    if mode not in SEGMENTATION_MODES:
        raise ValueError(f"segmentation {mode!r} (expected one of {list(SEGMENTATION_MODES)})")
    if mode not in ("adapted_or_raw", "adapted_or_raw_or_depth"):
        return py_trees.composites.Sequence("Find Object", memory=False, children=chain(SegmentObject(source=mode)))
    adapted = py_trees.composites.Sequence("In Adapted Image", memory=False, children=[
        AdaptedMaskInUse(), *chain(SegmentObject(source="adapted"))])
    if mode == "adapted_or_raw":
        raw = py_trees.composites.Sequence("In Raw Image", memory=False, children=chain(
            SegmentObject("Segment Raw Image", source="raw")))
        return py_trees.composites.Selector("Find Object", memory=False, children=[adapted, raw])
    raw = py_trees.composites.Sequence("In Raw Image", memory=False, children=[
        DepthMaskNotInUse(), *chain(SegmentObject("Segment Raw Image", source="raw"))])
    depth = py_trees.composites.Sequence("In Depth", memory=False, children=chain(
        SegmentObject("Segment By Depth", source="depth")))
    return py_trees.composites.Selector("Find Object", memory=False, children=[adapted, raw, depth])
