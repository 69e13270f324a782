"""Honest simulation: only the oracle tree (and scoring) may read simulator ground truth."""

from __future__ import annotations

import numpy as np
import pytest

from app.episode import run_sim_episode
from app.sim.objects import load_object_set
from app.sim.truth import GroundTruthLocked
from app.tree_config import load_tree_config
from tests.fakes.truth_models import ColourModels

pytestmark = pytest.mark.slow


@pytest.mark.parametrize("tree", ["vs_only", "drl_gan"])
def test_non_oracle_trees_never_read_ground_truth(tree, tmp_path) -> None:
    spec = load_object_set("seen").get("sugar_box")
    rec = run_sim_episode(load_tree_config(tree), spec, 3, "sim", ColourModels(), tmp_path)
    # Any read of the locked accessor raises GroundTruthLocked inside a leaf, which the runner
    # turns into a failure naming it; none happened.
    assert "GroundTruthLocked" not in rec["reason"]
    assert not rec.get("extra", {}).get("exception")
    if tree == "vs_only":
        assert rec["success"], (rec["failed_node"], rec["reason"])


def test_a_leaf_reading_ground_truth_is_caught(tmp_path, monkeypatch) -> None:
    """Positive control: a tree that reaches for the accessor while locked fails, naming it."""
    import behaviours.motion as motion

    original = motion.PoseStep.target_delta

    def cheating(self):  # reads the object pose through a leaked accessor
        self.leaked_truth.object_pose()
        return original(self)

    from app.sim import session as session_mod

    sessions = []
    real_init = session_mod.SimSession.__init__

    def spy_init(self, *a, **k):
        real_init(self, *a, **k)
        sessions.append(self)

    monkeypatch.setattr(session_mod.SimSession, "__init__", spy_init)
    monkeypatch.setattr(motion.PoseStep, "target_delta", cheating)
    monkeypatch.setattr(motion.PoseStep, "leaked_truth", property(lambda self: sessions[-1].truth), raising=False)
    rec = run_sim_episode(load_tree_config("drl_gan"), load_object_set("seen").get("sugar_box"), 3, "sim",
                          ColourModels(), tmp_path)
    assert not rec["success"]
    assert "GroundTruthLocked" in rec["reason"]
    assert rec["failed_node"] == "Move By Policy 1"


def test_the_drawn_gap_is_locked_like_ground_truth(tmp_path, monkeypatch) -> None:
    """Under the lab gap, a tree runs on the configured mount and intrinsics only; a leaf that
    reaches for the drawn gap while locked fails, naming it (positive control)."""
    import behaviours.motion as motion
    from app.sim import session as session_mod

    sessions = []
    real_init = session_mod.SimSession.__init__

    def spy_init(self, *a, **k):
        real_init(self, *a, **k)
        sessions.append(self)

    monkeypatch.setattr(session_mod.SimSession, "__init__", spy_init)
    spec = load_object_set("seen").get("sugar_box")
    rec = run_sim_episode(load_tree_config("vs_only"), spec, 3, "sim", ColourModels(), tmp_path / "a", gap="lab")
    assert "GroundTruthLocked" not in rec["reason"] and rec["gap"] == "lab"
    s = sessions[-1]
    assert s.gap.has_camera_error and s.gap.record() == rec["gap_sample"]
    true_mount = s.gap.true_mount(s.hw.mount)
    assert not np.allclose(true_mount.homogeneous, s.hw.mount.homogeneous)
    assert np.array_equal(s.robot.arm.camera_mount.homogeneous, s.hw.mount.homogeneous)  # what trees see
    assert s.robot.camera.get_frame().intrinsics == s.hw.intrinsics
    s.truth.locked = True
    with pytest.raises(GroundTruthLocked):
        s.truth.gap_sample()
    s.truth.locked = False

    original = motion.PoseStep.target_delta

    def cheating(self):  # corrects the pose step by the drawn mount error
        self.leaked_truth.gap_sample()
        return original(self)

    monkeypatch.setattr(motion.PoseStep, "target_delta", cheating)
    monkeypatch.setattr(motion.PoseStep, "leaked_truth", property(lambda self: sessions[-1].truth), raising=False)
    rec = run_sim_episode(load_tree_config("drl_gan"), spec, 3, "sim", ColourModels(), tmp_path / "b", gap="lab")
    assert not rec["success"] and "GroundTruthLocked" in rec["reason"]
    assert rec["failed_node"] == "Move By Policy 1"


def test_a_leaf_reading_the_true_mask_through_the_camera_is_caught(tmp_path, monkeypatch) -> None:
    """The locked accessor is not the only door: a leaf that asks the camera for the raw render
    (true mask, exact depth) gets a CapabilityError from the leaf boundary, and the episode fails
    naming it."""
    import behaviours.motion as motion

    original = motion.PoseStep.target_delta

    def cheating(self):
        self.robot.camera.last_raw().mask  # noqa: B018 - the read is the point
        return original(self)

    monkeypatch.setattr(motion.PoseStep, "target_delta", cheating)
    rec = run_sim_episode(load_tree_config("drl_gan"), load_object_set("seen").get("sugar_box"), 3, "sim",
                          ColourModels(), tmp_path)
    assert not rec["success"] and rec["extra"].get("exception")
    assert rec["reason"].startswith("unhandled CapabilityError: 'last_raw' is outside the Camera protocol")
    assert rec["failed_node"] == "Move By Policy 1"
