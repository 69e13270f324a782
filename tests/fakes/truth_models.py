"""A test double of the model bundle that answers from simulator ground truth.

Only tests use it: it lets tree tests exercise the behaviours' logic (statuses, switching,
fallbacks) without trained weights, with a perfect "segmentation" and a scripted policy.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from app.interfaces import Frame


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
