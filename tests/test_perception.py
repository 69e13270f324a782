"""Perception leaves (:mod:`behaviours.perception`) on hand-made frames, without a simulator."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import py_trees
import pytest

from app.controllers.features import FeatureParams, ShapeGateParams
from app.robot.interfaces import Intrinsics
from behaviours.perception import ExtractFeatures, SegmentObject

K = Intrinsics(128.0, 128.0, 63.5, 63.5, 128, 128)  # px: the model resolution, principal point centred
TABLE = 0.6  # m, camera to table along the optical axis


@pytest.mark.parametrize(("raised", "feedback"), [
    (True, "(depth)"),  # a 10 cm block on the table: its pixels, and no reason
    (False, "(depth): no table plane: 0% of the view has depth (< 20% needed)"),  # a view without depth
])
def test_depth_segmentation_reports_why_it_found_nothing(raised: bool, feedback: str) -> None:
    """``source: depth`` segments the pixels above the fitted table plane; when no plane can be
    fitted the mask is empty and the node's feedback says why (the reason is not dropped)."""
    py_trees.blackboard.Blackboard.clear()
    depth = np.full((K.height, K.width), TABLE, np.float32) if raised else np.zeros((K.height, K.width), np.float32)
    if raised:
        depth[70:80, 40:50] = TABLE - 0.10
    bb = py_trees.blackboard.Client(name="test")
    for key in ("frame", "model_frame", "mask_source"):
        bb.register_key(key, access=py_trees.common.Access.WRITE)
    bb.frame = bb.model_frame = SimpleNamespace(depth=depth, intrinsics=K)
    bb.mask_source = None
    leaf = SegmentObject("Segment By Depth", source="depth")
    leaf.setup(robot=SimpleNamespace())
    leaf.tick_once()
    assert leaf.status == py_trees.common.Status.SUCCESS
    mask = py_trees.blackboard.Blackboard.get("mask")
    assert int((mask == 1).sum()) == (100 if raised else 0)
    assert leaf.feedback_message == f"{100 if raised else 0} object px {feedback}"
    assert py_trees.blackboard.Blackboard.get("mask_source") == "depth"


def _bar(rows: slice) -> np.ndarray:
    """A class mask with one vertical bar of object pixels over ``rows``, columns 60-69."""
    mask = np.zeros((K.height, K.width), np.uint8)
    mask[rows, 60:70] = 1
    return mask


@pytest.mark.parametrize("gated", [True, False])
def test_shape_gate_skips_a_flickering_split_and_takes_a_lasting_change(gated: bool) -> None:
    """The bug it guards against: among touching objects the tracked blob flickered between the
    whole object and a part split off at a neck, and VS, servoing on both, settled between
    them for 900 ticks. With the gate, the split frame is skipped (RUNNING, the whole blob's
    features kept); a change that lasts ``accept_after`` frames in a row is taken. Without it
    (the paper) every frame's blob is used at once."""
    py_trees.blackboard.Blackboard.clear()
    bb = py_trees.blackboard.Client(name="test")
    for key in ("mask", "model_frame", "features", "static_blobs", "mask_source"):
        bb.register_key(key, access=py_trees.common.Access.WRITE)
    bb.model_frame = SimpleNamespace(intrinsics=K)
    bb.features, bb.static_blobs, bb.mask_source = None, None, "adapted"
    gate = ShapeGateParams(max_shift_px=4.0, max_turn_deg=15.0, max_area_ratio=1.3, accept_after=3)
    leaf = ExtractFeatures(FeatureParams(shape_gate=gate if gated else None))
    leaf.setup(robot=SimpleNamespace())
    whole, split = _bar(slice(20, 100)), _bar(slice(60, 100))  # the split keeps the lower half

    def tick(mask: np.ndarray) -> tuple[py_trees.common.Status, float]:
        bb.mask = mask
        leaf.tick_once()
        return leaf.status, py_trees.blackboard.Blackboard.get("features").centroid_px[1]

    S, R = py_trees.common.Status.SUCCESS, py_trees.common.Status.RUNNING
    assert tick(whole) == (S, 59.5)
    if not gated:
        assert tick(split) == (S, 79.5)
        return
    assert tick(split) == (R, 59.5)  # skipped: the whole blob's centroid kept
    assert leaf.feedback_message.startswith("tracked blob changed shape (centroid moved 20.0 px, area")
    assert tick(whole) == (S, 59.5)  # the flicker is over: the count starts again
    assert tick(split) == (R, 59.5) and tick(split) == (R, 59.5)
    assert tick(split) == (S, 79.5)  # the third changed frame in a row: taken
    assert leaf.feedback_message.startswith("shape change kept for 3 frames, taken")
