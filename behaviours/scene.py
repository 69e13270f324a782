"""Leaves for cluttered and multi-object tables: the depth gate on the object mask.

"Gate By Depth" follows a segmenter in ``Find Object``: object pixels that do not stand above
the table plane (estimated from the camera's depth image, :mod:`app.controllers.depth_gate`)
become background, so printed clutter on the table is not tracked as an object.
"""

from __future__ import annotations

import time

from py_trees.common import Status

from app.controllers.depth_gate import DepthGateParams, flatten_table, gate_mask
from behaviours.base import Leaf


class GateByDepth(Leaf):
    """Keep only the object pixels at least ``min_height`` above the table plane.

    Reads the raw camera frame's depth (the sensor's, not the adapted one) and the mask; writes
    the gated mask. With too little valid depth to fit a plane the mask passes unchanged (said so
    in the tick log). With ``split_touching`` it also splits touching objects and keeps every
    blob apart from the others (``split_gap_px``).

    Args:
        params: Gate parameters (tree YAML ``depth_gate``).
        name: Node name.
    """

    def __init__(self, params: DepthGateParams, name: str = "Gate By Depth") -> None:
        super().__init__(name, reads=("mask", "frame"), writes=("mask",))
        self.params = params
        self.latency_ms = 0.0

    def update(self) -> Status:
        """Gate the blackboard mask (never fails: an empty mask fails later, in Extract Features)."""
        t0 = time.perf_counter()
        frame = self.bb.frame
        res = gate_mask(self.bb.mask, frame.depth, frame.intrinsics, self.params)
        self.bb.mask = res.mask
        self.latency_ms = (time.perf_counter() - t0) * 1000
        if res.plane is None:
            self.feedback_message = "no table plane (too little depth): mask ungated"
        else:
            self.feedback_message = (f"kept {res.kept_px} object px >= {self.params.min_height * 1000:.0f} mm above "
                                     f"the table, removed {res.removed_px}")
        return Status.SUCCESS


class FlattenTable(Leaf):
    """Paint the table plane of the raw frame in the plain training table's colour.

    Runs after "Acquire Frame" and before "Adapt To Sim": the generator, the policy and D_Y then
    see the object on a plain table, the background they were trained on, whatever is printed on
    the real one. Depth is untouched (flat clutter has the table's depth anyway).

    Args:
        params: Gate parameters (tree YAML ``depth_gate``).
        color: RGB (0-255) of the plain table in the training images (``depth_gate.flatten_color``).
        name: Node name.
    """

    def __init__(self, params: DepthGateParams, color: tuple[float, float, float], name: str = "Flatten Table") -> None:
        super().__init__(name, reads=("frame",), writes=("frame",))
        self.params, self.color = params, color
        self.latency_ms = 0.0
        self._done_seq = -1

    def update(self) -> Status:
        """Replace the blackboard frame by its flattened copy (same sequence number and time)."""
        frame = self.bb.frame
        if frame.seq == self._done_seq:  # already flattened (a held frame)
            return Status.SUCCESS
        t0 = time.perf_counter()
        rgb, n = flatten_table(frame.rgb, frame.depth, frame.intrinsics, self.params, self.color)
        self.bb.frame = frame.with_images(rgb, frame.depth)
        self._done_seq = frame.seq
        self.latency_ms = (time.perf_counter() - t0) * 1000
        self.feedback_message = f"painted {n} table-plane px" if n else "no table plane: frame unchanged"
        return Status.SUCCESS
