"""Perception leaves (:mod:`behaviours.perception`) on hand-made frames, without a simulator."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import py_trees
import pytest

from app.robot.interfaces import Intrinsics
from behaviours.perception import SegmentObject

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
