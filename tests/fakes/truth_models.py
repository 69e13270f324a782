"""A test double of the model bundle that answers from simulator ground truth.

Only tests use it: it lets tree tests exercise the behaviours' logic (statuses, switching,
fallbacks) without trained weights, with a perfect "segmentation" and a scripted policy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.robot.interfaces import Frame


class TruthModels:
    """Adapt = identity, segment = the true mask, policy = ``policy_fn(frame)``.

    Args:
        session: The SimSession whose ground truth answers (read with the lock lifted).
        policy_fn: Scripted policy; default: no correction.
    """

    def __init__(self, session, policy_fn: Callable[[Frame], np.ndarray] | None = None) -> None:
        self.session = session
        self.policy_fn = policy_fn or (lambda f: np.zeros(4, np.float32))
        self.calls = {"adapt": 0, "segment": 0, "policy": 0}

    def _truth(self):
        t = self.session.truth
        was, t.locked = t.locked, False
        return t, was

    def adapt(self, frame: Frame) -> Frame:
        self.calls["adapt"] += 1
        return frame

    def segment(self, frame: Frame) -> np.ndarray:
        self.calls["segment"] += 1
        t, was = self._truth()
        try:
            return t.last_mask().copy()
        finally:
            t.locked = was

    segment_raw = segment

    def policy(self, frame: Frame) -> np.ndarray:
        self.calls["policy"] += 1
        return np.asarray(self.policy_fn(frame), np.float32)


class ColourModels:
    """A model bundle that never touches ground truth: in the ``sim`` domain the table is flat
    grey and the gripper dark, so "saturated or clearly off-grey" pixels are the object.

    Used to prove that non-oracle trees run with the ground-truth accessor locked.
    """

    TABLE_TOLERANCE = 25  # 0-255: distance from the table's grey that counts as "not table"

    def __init__(self, table_rgb: tuple[int, int, int] = (209, 209, 209)) -> None:
        self.table = np.array(table_rgb, dtype=np.int16)

    def adapt(self, frame: Frame) -> Frame:
        return frame

    def segment(self, frame: Frame) -> np.ndarray:
        rgb = frame.rgb.astype(np.int16)
        off_table = np.abs(rgb - self.table).max(axis=2) > self.TABLE_TOLERANCE
        grey = (rgb.max(axis=2) - rgb.min(axis=2)) < 12  # 12/255: unsaturated
        dark_grey = grey & (rgb.mean(axis=2) < 120)  # the sim gripper is dark grey (0.35)
        mask = np.zeros(rgb.shape[:2], np.uint8)
        mask[off_table & ~dark_grey] = 1
        mask[dark_grey] = 2
        return mask

    segment_raw = segment

    def policy(self, frame: Frame) -> np.ndarray:
        return np.zeros(4, np.float32)
