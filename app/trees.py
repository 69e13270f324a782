"""Behaviour trees, built by functions from shared subtree factories and ``config/trees/*.yaml``.

``grasp`` trees: [Open Gripper] → [DRL Pose Steps] → [Visual Servoing] → [Close Gripper] →
[Lift And Verify]; which parts exist and every parameter come from the tree's YAML, so a new
variant needs no code. ``oracle`` trees take the pose from simulator ground truth.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import py_trees

from app import CONFIG_DIR
from app.config import Section, load_yaml, resolve
from app.controllers.features import FIRST_BLOB_RULES
from app.controllers.vs import VSParams, load_vs_params
from app.errors import ConfigError
from app.hardware_config import HardwareConfig
from app.sim.pose_env import EnvConfig, load_env_config
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
    SEGMENTATION_MODES,
    AcquireFrame,
    AdaptToSim,
    ObjectNearBorder,
    find_object,
)
from behaviours.recovery import (
    BackOff,
    ReacquireParams,
    RegraspParams,
    RetryGrasp,
    ReturnAlongApproach,
    find_or_reacquire,
)
from behaviours.servo import FullVSStep, LinearConverged, LinearVSStep, UntilConverged

if TYPE_CHECKING:
    from app.clearing import ClearParams
    from app.controllers.depth_gate import DepthGateParams


@dataclass(frozen=True)
class TreeConfig:
    """A tree variant (``config/trees/NAME.yaml``)."""

    name: str
    path: str
    description: str
    builder: str  # "grasp" or "oracle"
    adapt: bool
    pose_steps: int
    last_step_z: str  # "agent" or "zero"
    visual_servoing: bool
    vs: VSParams
    lift_height: float
    hold_ticks: int
    max_ticks: int
    standoff: float
    max_reflex_recoveries: int = 1
    max_missed_frames: int = 15  # ticks a missed (dropped, stale, timed-out) frame may be held
    segmentation: str = "adapted"  # VS mask: "adapted" (D_X, the paper), "raw" (D_Y), "adapted_or_raw",
    #                                "adapted_or_raw_or_depth" (behaviours.perception.find_object)
    first_blob: str = "largest"  # which blob a VS track starts on: "largest" or "nearest_centre"
    depth_gate: DepthGateParams | None = None  # object pixels must stand above the table plane
    clear: ClearParams | None = None  # the ``clear`` section of a clear_table tree (app/clearing.py)
    settle_correction: bool = False  # final approach moves correct the arm's rest error once (behaviours/motion.py)
    regrasp: RegraspParams = RegraspParams(max_attempts=1)  # 1: no re-grasp (the paper)
    reacquire: ReacquireParams | None = None  # None: a lost object fails the VS iteration (the paper)

    @property
    def uses_models(self) -> bool:
        """Whether the tree needs the learned models."""
        return self.builder in ("grasp", "clear_table") and (self.pose_steps > 0 or self.visual_servoing)


def load_tree_config(name_or_path: str) -> TreeConfig:
    """Load a tree variant by name or path."""
    path = resolve(name_or_path, "trees")
    root = Section(load_yaml(path), path)
    root.unknown_keys({"name", "description", "builder", "adapt", "pose_steps", "last_step_z",
                       "visual_servoing", "vs", "lift_height", "hold_ticks", "max_ticks", "standoff",
                       "max_reflex_recoveries", "max_missed_frames", "segmentation", "first_blob",
                       "depth_gate", "clear", "settle_correction", "regrasp", "reacquire", "vs_overrides"})
    builder = root.string("builder", choices=["grasp", "oracle", "clear_table"])
    vs_file = root.string("vs", default="vs.yaml")
    vs_path = Path(vs_file) if "/" in vs_file else CONFIG_DIR / vs_file
    if not vs_path.is_file():
        raise ConfigError(f"{path}: key 'vs': file {vs_file!r} not found")
    grasp = builder in ("grasp", "clear_table")
    cfg = TreeConfig(
        name=root.string("name", default=path.stem), path=str(path),
        description=root.string("description", default=""), builder=builder,
        adapt=root.boolean("adapt") if grasp else False,
        pose_steps=root.integer("pose_steps", lo=0, hi=10) if grasp else 0,
        last_step_z=root.string("last_step_z", choices=["agent", "zero"]) if grasp else "zero",
        visual_servoing=root.boolean("visual_servoing") if grasp else False,
        vs=load_vs_params(vs_path, _vs_overrides(root), str(path)),
        lift_height=root.number("lift_height", lo=0.0, hi=0.3),
        hold_ticks=root.integer("hold_ticks", lo=0, hi=10_000),
        max_ticks=root.integer("max_ticks", lo=1, hi=1_000_000),
        standoff=root.number("standoff", default=0.10, lo=0.0, hi=0.4),
        max_reflex_recoveries=root.integer("max_reflex_recoveries", default=1, lo=0, hi=100),
        max_missed_frames=root.integer("max_missed_frames", default=15, lo=0, hi=10_000),  # 0.5 s at 30 fps
        segmentation=root.string("segmentation", default="adapted", choices=list(SEGMENTATION_MODES)),
        first_blob=root.string("first_blob", default="largest", choices=list(FIRST_BLOB_RULES)),
        depth_gate=load_depth_gate(root),
        clear=load_clear_params(root) if builder == "clear_table" else None,
        settle_correction=root.boolean("settle_correction", default=False),
    )
    if "regrasp" in root.data:
        r = root.section("regrasp")
        r.unknown_keys({"max_attempts", "back_off"})
        cfg = replace(cfg, regrasp=RegraspParams(max_attempts=r.integer("max_attempts", lo=1, hi=10),
                                                 back_off=r.number("back_off", default=0.08, lo=0.0, hi=0.2)))
    if "reacquire" in root.data:
        r = root.section("reacquire")
        r.unknown_keys({"wait_s", "search_speed", "search_distance"})
        cfg = replace(cfg, reacquire=ReacquireParams(
            wait_s=r.number("wait_s", lo=0.0, hi=30.0),
            search_speed=r.number("search_speed", default=0.02, lo=0.0, hi=0.05),  # m/s, below VS's 5 cm/s cap
            search_distance=r.number("search_distance", default=0.03, lo=0.0, hi=0.1)))
    if grasp and cfg.pose_steps == 0 and not cfg.visual_servoing:
        raise ConfigError(f"{path}: a grasp tree needs pose_steps > 0 or visual_servoing: true")
    return cfg


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


def _vs_overrides(root: Section) -> dict[str, Any] | None:
    """The tree's ``vs_overrides``: sections of the VS file whose keys this tree sets otherwise."""
    value = root.data.get("vs_overrides")
    if value is None:
        return None
    if not isinstance(value, dict):
        raise root.error("vs_overrides", "a mapping of vs.yaml sections, e.g. {gain: {near: 1.4}}", value)
    return value


def load_depth_gate(root: Section) -> DepthGateParams | None:
    """The tree's ``depth_gate`` mapping as DepthGateParams (absent or null: no gate)."""
    from app.controllers.depth_gate import DepthGateParams

    if not root.has("depth_gate") or root.data.get("depth_gate") is None:
        return None
    sec = root.section("depth_gate")
    sec.unknown_keys({"min_height", "inlier_tolerance", "iterations", "sample_points", "min_valid_fraction", "fill_px",
                      "flatten", "flatten_color", "split_touching", "max_split_erode_px", "min_core_px",
                      "split_gap_px"})
    d = DepthGateParams()
    return DepthGateParams(
        min_height=sec.number("min_height", default=d.min_height, lo=0.0, hi=0.1),
        inlier_tolerance=sec.number("inlier_tolerance", default=d.inlier_tolerance, lo=1e-4, hi=0.05),
        iterations=sec.integer("iterations", default=d.iterations, lo=1, hi=10_000),
        sample_points=sec.integer("sample_points", default=d.sample_points, lo=10, hi=1_000_000),
        min_valid_fraction=sec.number("min_valid_fraction", default=d.min_valid_fraction, lo=0.0, hi=1.0),
        fill_px=sec.integer("fill_px", default=d.fill_px, lo=0, hi=63),
        flatten=sec.boolean("flatten", default=d.flatten),
        flatten_color=tuple(sec.vector("flatten_color", 3, default=list(d.flatten_color), lo=0.0, hi=255.0)),
        split_touching=sec.boolean("split_touching", default=d.split_touching),
        max_split_erode_px=sec.integer("max_split_erode_px", default=d.max_split_erode_px, lo=1, hi=63),
        min_core_px=sec.integer("min_core_px", default=d.min_core_px, lo=1, hi=100_000),
        split_gap_px=sec.integer("split_gap_px", default=d.split_gap_px, lo=1, hi=63))


def load_clear_params(root: Section) -> ClearParams:
    """The ``clear`` section of a clear_table tree (see :mod:`app.clearing`)."""
    from app.clearing import parse_clear_params

    return parse_clear_params(root.section("clear"))


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


