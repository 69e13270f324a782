"""Behaviour trees, built by functions from shared subtree factories and ``config/trees/*.yaml``.

``grasp`` trees: [Open Gripper] → [DRL Pose Steps] → [Visual Servoing] → [Close Gripper] →
[Lift And Verify]; which parts exist and every parameter come from the tree's YAML, so a new
variant needs no code. ``oracle`` trees take the pose from simulator ground truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import py_trees

from app.errors import ConfigError
from app.hardware_config import HardwareConfig
from app.sim.pose_env import EnvConfig, load_env_config
from app.tree_config import TreeConfig
from behaviours.motion import (
    CloseGripper,
    Descend,
    DescendByDepth,
    LiftAndVerify,
    OpenGripper,
    OraclePose,
    PoseStep,
    RecoverFromReflex,
)
from behaviours.perception import (
    AcquireFrame,
    AdaptToSim,
    ObjectNearBorder,
    find_object,
)
from behaviours.recovery import (
    BackOff,
    RetryGrasp,
    ReturnAlongApproach,
    find_or_reacquire,
)
from behaviours.servo import FullVSStep, LinearConverged, LinearVSStep, UntilConverged


def guard(node: py_trees.behaviour.Behaviour, cfg: TreeConfig) -> py_trees.behaviour.Behaviour:
    """``node`` retried after an arm reflex (``max_reflex_recoveries`` times), or as is."""
    if cfg.max_reflex_recoveries <= 0:
        return node
    return RecoverFromReflex(node, cfg.max_reflex_recoveries)


def perceive(cfg: TreeConfig, adapt_leaf: AdaptToSim | None = None) -> list[py_trees.behaviour.Behaviour]:
    """Acquire Frame → (Flatten Table, when the tree's depth gate says so) → Adapt To Sim."""
    from behaviours.scene import FlattenTable

    gate = cfg.depth_gate
    flatten = [FlattenTable(gate, gate.flatten_color)] if gate is not None and gate.flatten else []
    return [AcquireFrame(max_missed=cfg.max_missed_frames), *flatten,
            adapt_leaf if adapt_leaf is not None else AdaptToSim(enabled=cfg.adapt)]


def pose_steps_subtree(cfg: TreeConfig, env: EnvConfig) -> py_trees.behaviour.Behaviour:
    """DRL pose steps: each is acquire → adapt → policy → move (memory: one pass per step)."""
    steps = []
    for k in range(1, cfg.pose_steps + 1):
        move = PoseStep(k, cfg.pose_steps, env.step_z, env.max_xy, env.max_yaw, env.z_range, cfg.last_step_z,
                        name=f"Move By Policy {k}")
        steps.append(py_trees.composites.Sequence(f"Pose Step {k}", memory=True, children=[
            *perceive(cfg), guard(move, cfg)]))
    return py_trees.composites.Sequence("DRL Pose Steps", memory=True, children=steps)


def vs_subtree(cfg: TreeConfig, finger_depth: float, fingertips: np.ndarray) -> py_trees.behaviour.Behaviour:
    """Visual servoing: per tick acquire → adapt → find object (segment → features, see
    :func:`behaviours.perception.find_object`) → choose mode → command;
    linear VS until converged, then full VS unless the object is near the border (fallback to
    linear); repeat until full VS converges; then descend by depth."""
    params, adapt = cfg.vs, cfg.adapt
    descend = DescendByDepth(params.depth, finger_depth, fingertips)
    descend.correct_settle = cfg.settle_correction
    full = py_trees.composites.Sequence("Full VS", memory=False, children=[
        LinearConverged(),
        py_trees.decorators.Inverter("Away From Border?", ObjectNearBorder()),
        FullVSStep(params)])
    choose = py_trees.composites.Selector("Choose VS Mode", memory=False, children=[full, LinearVSStep(params)])
    # G_Y->X only where its output is read: not in `segmentation: raw` trees, not after the fallback.
    adapt_leaf = AdaptToSim(enabled=adapt and cfg.segmentation != "raw",
                            skip_after_fallback=cfg.segmentation in ("adapted_or_raw", "adapted_or_raw_or_depth"))
    find = find_object(params.features, cfg.segmentation, cfg.first_blob, cfg.depth_gate, params.motion_check)
    if cfg.reacquire is not None:
        find = find_or_reacquire(find, cfg.reacquire)
    iteration = py_trees.composites.Sequence("VS Iteration", memory=False, children=[
        *perceive(cfg, adapt_leaf), find, choose])
    return py_trees.composites.Sequence("Visual Servoing", memory=True, children=[
        UntilConverged(guard(iteration, cfg), params.max_iterations),
        guard(descend, cfg)])


def build_tree(cfg: TreeConfig, hw: HardwareConfig, truth: object | None = None,
               env: EnvConfig | None = None) -> py_trees.behaviour.Behaviour:
    """The root behaviour of a tree variant.

    Args:
        cfg: The variant.
        hw: Hardware geometry (grasp force, finger depth).
        truth: Simulator ground truth; required by (and only given to) the oracle builder.
        env: Pose-step scaling (default ``config/env.yaml``, as in training).
    """
    if cfg.builder == "clear_table":
        from app.clearing import clear_table_tree

        return clear_table_tree(cfg, hw, grasp_children(cfg, hw, env=env)[1:], perceive)
    return py_trees.composites.Sequence(f"Grasp ({cfg.name})", memory=True,
                                        children=grasp_children(cfg, hw, truth, env))


def grasp_children(cfg: TreeConfig, hw: HardwareConfig, truth: object | None = None,
                   env: EnvConfig | None = None) -> list[py_trees.behaviour.Behaviour]:
    """The grasp subtrees in order: open → (oracle pose | DRL pose steps → VS) → close → lift."""
    children: list[py_trees.behaviour.Behaviour] = [OpenGripper()]
    approach: list[py_trees.behaviour.Behaviour] = []  # what each grasp attempt starts with
    if cfg.builder == "oracle":
        if truth is None:
            raise ConfigError(f"{cfg.path}: the oracle tree needs simulator ground truth (--backend sim)")
        above, down = OraclePose(truth, cfg.standoff), Descend(cfg.standoff, hw.fingertip_corners())
        above.correct_settle = down.correct_settle = cfg.settle_correction
        approach += [guard(above, cfg), guard(down, cfg)]
    else:
        env = env or load_env_config()
        if cfg.pose_steps:
            children.append(pose_steps_subtree(cfg, env))
        if cfg.visual_servoing:
            approach.append(vs_subtree(cfg, hw.finger_depth, hw.fingertip_corners()))
        elif cfg.regrasp.max_attempts > 1:
            approach.append(guard(ReturnAlongApproach(), cfg))
    grasp = [CloseGripper(hw.grasp_force), guard(LiftAndVerify(cfg.lift_height, cfg.hold_ticks), cfg)]
    if cfg.regrasp.max_attempts > 1:
        attempt = py_trees.composites.Sequence("Grasp Attempt", memory=True, children=approach + grasp)
        back_off = py_trees.composites.Sequence("Back Off", memory=True, children=[
            OpenGripper("Release"), guard(BackOff(cfg.regrasp.back_off), cfg)])
        children.append(RetryGrasp(attempt, back_off, cfg.regrasp))
    else:
        children += approach + grasp
    return children


def render_tree(root: py_trees.behaviour.Behaviour, target: str | None = None) -> str:
    """Unicode render of the tree; with ``target`` (path without extension) also dot/svg/png."""
    text = py_trees.display.unicode_tree(root)
    if target and target != "-":
        from app.outputs import atomic_write_text, write_guard

        p = Path(target)
        with write_guard(p.parent):
            p.parent.mkdir(parents=True, exist_ok=True)
        try:
            py_trees.display.render_dot_tree(root, name=p.name, target_directory=str(p.parent))
        except (OSError, FileNotFoundError):  # no graphviz binary: write the dot file only
            atomic_write_text(p.parent / f"{p.name}.dot", py_trees.display.dot_tree(root).to_string())
    return text


