"""Trees: structure, and ticked with the simulator, the status sequence of their key nodes.

Episodes here use :class:`tests.fakes.truth_models.TruthModels` (perfect segmentation,
scripted policy) so that they test the tree logic, not the trained weights.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import py_trees
import pytest

from app.hardware_config import load_hardware
from app.runner import run_episode
from app.transforms import Pose, rot_z
from app.tree_config import load_tree_config
from app.trees import build_tree, render_tree
from tests.fakes.truth_models import TruthModels

pytestmark = pytest.mark.slow


def _names(root: py_trees.behaviour.Behaviour) -> list[str]:
    return [n.name for n in root.iterate()]


def test_trees_built_from_config() -> None:
    hw = load_hardware()
    method = build_tree(load_tree_config("drl_gan_vs"), hw)
    names = _names(method)
    for key in ("Open Gripper", "Move By Policy 1", "Move By Policy 3", "Linear VS Step", "Full VS Step",
                "Object Near Border?", "Descend By Depth", "Close Gripper", "Lift And Verify"):
        assert key in names
    drl_gan = _names(build_tree(load_tree_config("drl_gan"), hw))
    assert "Move By Policy 3" in drl_gan and "Linear VS Step" not in drl_gan
    vs_only = _names(build_tree(load_tree_config("vs_only"), hw))
    assert "Move By Policy 1" not in vs_only
    # the VS subtree is one factory: identical in the method and in vs_only
    sub = lambda ns: ns[ns.index("Visual Servoing"):ns.index("Descend By Depth") + 1]  # noqa: E731
    assert sub(names) == sub(vs_only)
    text = render_tree(method)
    assert "Choose VS Mode" in text and "Full VS Step" in text


def test_oracle_tree_needs_truth() -> None:
    from app.errors import ConfigError

    with pytest.raises(ConfigError, match="ground truth"):
        build_tree(load_tree_config("oracle"), load_hardware())


def test_user_defined_variant(tmp_path) -> None:
    text = open(load_tree_config("drl_gan_vs").path).read().replace("pose_steps: 3", "pose_steps: 2")
    f = tmp_path / "two_steps.yaml"
    f.write_text(text.replace("name: drl_gan_vs", "name: two_steps"))
    names = _names(build_tree(load_tree_config(str(f)), load_hardware()))
    assert "Move By Policy 2" in names and "Move By Policy 3" not in names


def _trace(root: py_trees.behaviour.Behaviour, keys: tuple[str, ...]) -> list[tuple[str, str]]:
    return [(n.name, n.status.value) for n in root.iterate() if n.name in keys]


def test_vs_only_grasps_with_status_sequence(real_session, seen) -> None:
    s = real_session
    rest = s.reset(seen.get("sugar_box"), 11)
    cfg = load_tree_config("vs_only")
    root = build_tree(cfg, load_hardware())
    keys = ("Linear VS Step", "Full VS Step", "Until VS Converged", "Descend By Depth", "Close Gripper")
    trace: list[list[tuple[str, str]]] = []
    res = run_episode(root, s.robot, TruthModels(s), cfg.max_ticks,
                      on_tick=lambda t: trace.append(_trace(root, keys)))
    # Expected: Linear VS Step SUCCESS (several ticks) -> Full VS Step SUCCESS (several ticks)
    # -> Until VS Converged SUCCESS -> Descend By Depth RUNNING.. SUCCESS -> Close Gripper SUCCESS.
    assert res.success, (res.failed_node, res.reason)
    flat = [dict(t) for t in trace]
    first_linear = next(i for i, t in enumerate(flat) if t["Linear VS Step"] == "SUCCESS")
    first_full = next(i for i, t in enumerate(flat) if t["Full VS Step"] == "SUCCESS")
    converged = next(i for i, t in enumerate(flat) if t["Until VS Converged"] == "SUCCESS")
    descended = next(i for i, t in enumerate(flat) if t["Descend By Depth"] == "SUCCESS")
    closed = next(i for i, t in enumerate(flat) if t["Close Gripper"] == "SUCCESS")
    assert first_linear < first_full < converged < descended < closed
    assert res.vs_iterations > 10 and res.vs_mode_switches >= 1
    assert s.truth.object_lifted(rest.position[2], 0.09)


def test_border_fallback_switches_back_to_linear(real_session, seen, tmp_path) -> None:
    """Push the object near the image border once full VS runs: the tree falls back to linear
    VS (visible as a failing "Away From Border?"), re-converges, and still grasps."""
    s = real_session
    s.reset(seen.get("sugar_box"), 12)
    vs = tmp_path / "vs.yaml"  # a wide border margin (30 px) keeps the push short
    vs.write_text(open("config/vs.yaml").read().replace("border_margin_px: 4", "border_margin_px: 30"))
    tree = tmp_path / "tree.yaml"
    tree.write_text(open(load_tree_config("vs_only").path).read().replace("vs: vs.yaml", f"vs: {vs}"))
    cfg = load_tree_config(str(tree))
    root = build_tree(cfg, load_hardware())
    pushed = {"active": False, "done": False, "border_ticks": 0}

    def disturb(tick: int) -> None:
        names = dict(_trace(root, ("Full VS Step", "Away From Border?")))
        if names["Away From Border?"] == "FAILURE":
            pushed["border_ticks"] += 1
            pushed["active"], pushed["done"] = False, True
        if not pushed["done"] and names["Full VS Step"] == "SUCCESS":
            pushed["active"] = True
        if pushed["active"]:  # slide the object 8 mm per tick towards the image's left edge
            s.truth.locked = False
            obj = s.truth.object_pose()
            step = -0.008 * s.arm.camera_pose().matrix[:, 0] * np.array([1, 1, 0])
            s.world.set_object_pose(Pose(obj.position + step, obj.matrix))

    res = run_episode(root, s.robot, TruthModels(s), cfg.max_ticks, on_tick=disturb)
    assert pushed["done"], res
    assert pushed["border_ticks"] >= 1, res
    assert res.vs_fallbacks >= 1
    assert res.success, (res.failed_node, res.reason)


def test_lost_blob_fails_with_reason(real_session, seen) -> None:
    s = real_session
    s.reset(seen.get("sugar_box"), 13)
    cfg = load_tree_config("vs_only")
    root = build_tree(cfg, load_hardware())

    def vanish(tick: int) -> None:
        if tick == 5:  # the object leaves the scene: the tracked blob is lost
            s.world.set_object_pose(Pose(np.array([2.0, 2.0, 0.02]), rot_z(0.0)))

    res = run_episode(root, s.robot, TruthModels(s), cfg.max_ticks, on_tick=vanish)
    assert not res.success
    assert res.failed_node == "Reacquire Object"  # waited wait_s for it, then gave up (tests/test_recovery.py)
    assert "object not seen for 1.5 s" in res.reason


class _BlindAdaptedModels(TruthModels):
    """D_X sees nothing on the adapted image (as for the salmon fillet); D_Y sees the truth."""

    def segment(self, frame):
        self.calls["segment"] += 1
        t, was = self._truth()
        try:
            return np.zeros_like(t.last_mask())
        finally:
            t.locked = was

    def segment_raw(self, frame):
        self.calls["raw"] = self.calls.get("raw", 0) + 1
        t, was = self._truth()
        try:
            return t.last_mask().copy()
        finally:
            t.locked = was


def _variant(tmp_path, base: str, segmentation: str) -> str:
    f = tmp_path / f"{base}_{segmentation}.yaml"
    text = open(load_tree_config(base).path).read()
    text = "\n".join(line for line in text.splitlines() if not line.startswith("segmentation:"))
    f.write_text(text + f"\nsegmentation: {segmentation}\n")
    return str(f)


def test_segmentation_modes_build_their_subtrees(tmp_path) -> None:
    hw = load_hardware()
    adapted = _names(build_tree(load_tree_config(_variant(tmp_path, "vs_only", "adapted")), hw))
    assert "Segment Object" in adapted and "Segment Raw Image" not in adapted
    raw_root = build_tree(load_tree_config(_variant(tmp_path, "vs_only", "raw")), hw)
    seg = next(n for n in raw_root.iterate() if n.name == "Segment Object")
    assert seg.source == "raw"
    assert not next(n for n in raw_root.iterate() if n.name == "Adapt To Sim").enabled  # nothing reads G's output
    both = _names(build_tree(load_tree_config(_variant(tmp_path, "vs_only", "adapted_or_raw")), hw))
    assert both.index("Adapted Mask In Use?") < both.index("Segment Object") < both.index("Segment Raw Image")


def test_segmentation_key_is_checked(tmp_path) -> None:
    from app.errors import ConfigError

    with pytest.raises(ConfigError, match="segmentation"):
        load_tree_config(_variant(tmp_path, "vs_only", "otsu"))


def _blinded_episode(s: Any, seen: Any, tmp_path: Path, mode: str, models: Any,
                     keys: tuple[str, ...]) -> tuple[Any, list[dict[str, str]], Any, bool]:
    """``vs_only`` with segmentation ``mode`` on the sugar box (seed 14) with models that miss the
    object: (result, the VS ticks' statuses of ``keys``, the models, whether the box was lifted).
    The episode must grasp."""
    rest = s.reset(seen.get("sugar_box"), 14)
    cfg = load_tree_config(_variant(tmp_path, "vs_only", mode))
    root = build_tree(cfg, load_hardware())
    trace: list[dict[str, str]] = []
    res = run_episode(root, s.robot, models, cfg.max_ticks, on_tick=lambda t: trace.append(dict(_trace(root, keys))))
    assert res.success, (res.failed_node, res.reason)
    vs_ticks = [t for t in trace if t.get("Find Object") not in (None, "INVALID")]
    return res, vs_ticks, models, s.truth.object_lifted(rest.position[2], 0.09)


def test_adapted_mask_falls_back_to_raw_and_stays(real_session, seen, tmp_path) -> None:
    """D_X finds no object: the selector takes D_Y on the raw image, keeps it for the rest of the
    episode (the D_X branch is skipped by its condition), and the episode grasps."""
    keys = ("Adapted Mask In Use?", "Segment Object", "Segment Raw Image", "In Adapted Image", "Find Object")
    res, vs_ticks, models, lifted = _blinded_episode(real_session, seen, tmp_path, "adapted_or_raw",
                                                     _BlindAdaptedModels(real_session), keys)
    assert res.mask_source == "raw"
    # first VS tick: D_X tried (its branch fails), D_Y used; afterwards D_X is never asked again
    assert vs_ticks[0]["Segment Object"] == "SUCCESS" and vs_ticks[0]["In Adapted Image"] == "FAILURE"
    assert vs_ticks[0]["Segment Raw Image"] == "SUCCESS" and vs_ticks[0]["Find Object"] == "SUCCESS"
    later = vs_ticks[1:]
    assert later and all(t["Adapted Mask In Use?"] == "FAILURE" for t in later)
    assert models.calls["segment"] == 1 and models.calls["raw"] >= res.vs_iterations > 10
    assert models.calls["adapt"] == 1  # G_Y->X is skipped once nothing reads its output (issue 15)
    assert lifted


class _BlindModels(_BlindAdaptedModels):
    """Neither discriminator sees the object (an object in the table's colour)."""

    def segment_raw(self, frame):
        self.calls["raw"] = self.calls.get("raw", 0) + 1
        return np.zeros(np.shape(frame.depth), np.uint8)


def test_depth_mask_is_the_last_fallback_and_stays(real_session, seen, tmp_path) -> None:
    """D_X and D_Y both find nothing: ``adapted_or_raw_or_depth`` segments by depth (pixels
    standing above the fitted table plane, no model, no ground truth), keeps that source for the
    rest of the episode without asking either model again, and grasps."""
    names = _names(build_tree(load_tree_config(_variant(tmp_path, "vs_only", "adapted_or_raw_or_depth")), load_hardware()))
    assert names.index("Depth Mask Not In Use?") < names.index("Segment Raw Image") < names.index("Segment By Depth")
    keys = ("Segment Object", "Segment Raw Image", "Segment By Depth", "Find Object")
    res, vs_ticks, models, lifted = _blinded_episode(real_session, seen, tmp_path, "adapted_or_raw_or_depth",
                                                     _BlindModels(real_session), keys)
    assert res.mask_source == "depth"
    assert vs_ticks[0]["Segment Object"] == vs_ticks[0]["Segment Raw Image"] == "SUCCESS"  # both tried, once
    assert all(t["Segment By Depth"] == "SUCCESS" for t in vs_ticks)
    assert models.calls["segment"] == 1 and models.calls["raw"] == 1 and res.vs_iterations > 10
    assert lifted


def test_paper_modes_never_segment_by_depth(tmp_path) -> None:
    hw = load_hardware()
    for mode in ("adapted", "raw", "adapted_or_raw"):
        assert "Segment By Depth" not in _names(build_tree(load_tree_config(_variant(tmp_path, "vs_only", mode)), hw))


def test_adapted_mask_kept_when_it_sees_the_object(real_session, seen, tmp_path) -> None:
    s = real_session
    s.reset(seen.get("sugar_box"), 15)
    cfg = load_tree_config(_variant(tmp_path, "vs_only", "adapted_or_raw"))
    models = TruthModels(s)
    calls = {"raw": 0}
    models.segment_raw = lambda frame: calls.__setitem__("raw", calls["raw"] + 1)  # never called
    res = run_episode(build_tree(cfg, load_hardware()), s.robot, models, cfg.max_ticks)
    assert res.success and res.mask_source == "adapted" and calls["raw"] == 0


def test_fixed_target_ablation_differs_from_vs_only_only_in_y_target() -> None:
    from dataclasses import replace

    base, fixed = load_tree_config("vs_only"), load_tree_config("vs_only_fixed_y")
    assert base.vs.fixed_y_target is None and fixed.vs.fixed_y_target == pytest.approx(-0.20)
    assert replace(fixed.vs, fixed_y_target=None, source=base.vs.source) == base.vs
    assert replace(fixed, name=base.name, path=base.path, description=base.description, vs=base.vs) == base


def test_paper_path_tree_differs_from_the_method_only_in_segmentation() -> None:
    """``drl_gan_vs_adapted`` measures the paper's path (D_X on the adapted image, no D_Y fallback):
    any other difference from ``drl_gan_vs`` would make the comparison unfair."""
    from dataclasses import replace

    base, paper = load_tree_config("drl_gan_vs"), load_tree_config("drl_gan_vs_adapted")
    assert base.segmentation == "adapted_or_raw" and paper.segmentation == "adapted"
    assert replace(paper, name=base.name, path=base.path, description=base.description,
                   segmentation=base.segmentation, vs=replace(paper.vs, source=base.vs.source)) == base


def test_border_patience_ends_the_livelock_at_the_image_border(real_session, seen, tmp_path) -> None:
    """An object that stays at the image border once centred (the clearing campaign's tomato can
    at the top edge): with the paper's rule linear VS converges and full VS never starts, until
    the iteration budget; with ``vs_overrides: {convergence: {border_patience: 30}}`` the tree grasps after that many converged
    ticks at the border."""
    vs = tmp_path / "vs.yaml"  # a 60 px margin: every blob is "near the border" in a 128 px image
    vs.write_text(open("config/vs.yaml").read().replace("border_margin_px: 4", "border_margin_px: 60")
                  .replace("max_iterations: 900", "max_iterations: 300"))
    base = open(load_tree_config("vs_only").path).read().replace("vs: vs.yaml", f"vs: {vs}")
    outcomes = {}
    for name, extra in (("paper", ""), ("patient", "\nvs_overrides:\n  convergence:\n    border_patience: 30\n")):
        tree = tmp_path / f"{name}.yaml"
        tree.write_text(base.replace("name: vs_only", f"name: {name}") + extra)
        cfg = load_tree_config(str(tree))
        s = real_session
        s.reset(seen.get("sugar_box"), 14)
        root = build_tree(cfg, load_hardware())
        messages: list[str] = []
        def note(tick: int, root: py_trees.behaviour.Behaviour = root, messages: list[str] = messages) -> None:
            messages.extend(n.feedback_message for n in root.iterate() if n.name == "Linear VS Step")

        res = run_episode(root, s.robot, TruthModels(s), cfg.max_ticks, on_tick=note)
        outcomes[name] = (res, messages)
    paper, _ = outcomes["paper"]
    assert not paper.success and paper.failed_node == "Until VS Converged"
    assert "not converged after 300 ticks (" in paper.reason
    patient, messages = outcomes["patient"]
    assert patient.success, (patient.failed_node, patient.reason)
    assert any("at the image border for 30 ticks: converged in position only" in m for m in messages)
    assert patient.vs_iterations < 300
