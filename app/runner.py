"""Ticks a tree on a robot until it succeeds, fails or runs out of ticks, logging every tick.

One tick = one control period: the tree is ticked, then the clock advances (physics steps in
the simulator, the next camera frame on the real robot).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import py_trees
from py_trees.common import Status

from app.interfaces import Robot
from app.logs import RunLog

#: Blackboard keys logged when they change (images are recorded separately with --record).
LOGGED_KEYS = ("pose_step", "action", "vs_mode", "vs_iterations", "vs_error", "vs_gain", "vs_twist",
               "linear_converged", "vs_converged", "vs_fallbacks", "z_g", "mask_source", "regrasps",
               "reacquisitions", "lost_since")
STAGE_NAMES = {"Acquire Frame": "acquire", "Adapt To Sim": "adapt", "Segment Object": "segment",
               "Segment Raw Image": "segment", "Extract Features": "features"}


@dataclass
class EpisodeResult:
    """How one episode ended."""

    outcome: str  # "success", "failure", "timeout"
    failed_node: str = ""
    reason: str = ""
    ticks: int = 0
    pose_steps: int = 0
    vs_iterations: int = 0
    vs_fallbacks: int = 0
    vs_mode_switches: int = 0
    mask_source: str = ""  # image the last VS mask came from: "adapted", "raw" (D_Y fallback), "" (no VS)
    regrasps: int = 0  # back-offs for another grasp attempt ("Re-grasp")
    reacquisitions: int = 0  # times a lost object was found again ("Reacquire Object")
    sim_time: float = 0.0
    wall_time: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def success(self) -> bool:
        """The tree reported a held object."""
        return self.outcome == "success"


def _leaf_failure(root: py_trees.behaviour.Behaviour) -> tuple[str, str]:
    """The first (depth-first) failed leaf of this tick that says why.

    A leaf whose failure only made a selector try its next child is passed over in favour of
    the last one the selector tried. Conditions (names ending in "?") are control flow (a failing "Object Near Border?" or
    "Linear VS Converged?" only picks another branch), so the failure is the first failed
    non-condition leaf with a feedback message.
    """
    for node in root.iterate():
        if (node.status == Status.FAILURE and not node.children and not node.name.endswith("?")
                and node.feedback_message and _last_resort(node)):
            return node.name, node.feedback_message
    for node in root.iterate():
        if (node.status == Status.FAILURE and not node.children and not node.name.endswith("?")
                and node.feedback_message):
            return node.name, node.feedback_message
    for node in root.iterate():  # then a decorator that says why (e.g. "Until VS Converged")
        if node.status == Status.FAILURE and node.feedback_message and not node.name.endswith("?"):
            return node.name, node.feedback_message
    for node in root.iterate():
        if node.status == Status.FAILURE and node.feedback_message:
            return node.name, node.feedback_message
    return root.name, root.feedback_message or "failed"


def _last_resort(node: py_trees.behaviour.Behaviour) -> bool:
    """Whether ``node`` 's failure was not just a fallback that a selector above it tried first:
    in every failed selector on its way up, it lies in the last child (e.g. "Reacquire Object"
    after "Find Object")."""
    child, parent = node, node.parent
    while parent is not None:
        if isinstance(parent, py_trees.composites.Selector) and parent.status == Status.FAILURE:
            tried = [c for c in parent.children if c.status == Status.FAILURE]
            if tried and tried[-1] is not child:
                return False
        child, parent = parent, parent.parent
    return True


def _raising_node(e: BaseException, default: str) -> str:
    """Name of the innermost behaviour whose method was on the stack when ``e`` was raised."""
    name, tb = default, e.__traceback__
    while tb is not None:
        owner = tb.tb_frame.f_locals.get("self")
        if isinstance(owner, py_trees.behaviour.Behaviour):
            name = owner.name
        tb = tb.tb_next
    return name


def _bb_value(key: str) -> Any:
    try:
        return py_trees.blackboard.Blackboard.get(key)
    except KeyError:
        return None


def _changed(a: Any, b: Any) -> bool:
    try:
        return bool(np.any(np.asarray(a) != np.asarray(b))) if a is not None and b is not None else a is not b
    except ValueError:
        return True


def run_episode(root: py_trees.behaviour.Behaviour, robot: Robot, models: Any, max_ticks: int,
                log: RunLog | None = None, record_dir: Path | None = None,
                on_tick: Callable[[int], None] | None = None) -> EpisodeResult:
    """Set up and tick ``root`` until it ends; return the outcome.

    Args:
        root: The tree (not yet set up).
        robot: Backends passed to every leaf's ``setup()``.
        models: Model bundle passed to every leaf's ``setup()``.
        max_ticks: Tick cap (episode time cap = max_ticks x period).
        log: Where tick records go (None: nowhere).
        record_dir: If set, raw/adapted/mask images are saved there at key ticks.
        on_tick: Called with the tick number after each tick, before the clock advances
            (disturbances and fault injection hook in here).
    """
    py_trees.blackboard.Blackboard.clear()
    tree = py_trees.trees.BehaviourTree(root)
    snapshot = py_trees.visitors.SnapshotVisitor()
    tree.add_visitor(snapshot)
    tree.setup(robot=robot, models=models)
    t_wall, t_sim0 = time.perf_counter(), robot.clock.now()
    previous: dict[str, Any] = {}
    modes: list[str] = []
    result = EpisodeResult("timeout")
    try:
        for tick in range(1, max_ticks + 1):
            t0 = time.perf_counter()
            try:
                tree.tick()
            except Exception as e:  # a leaf raised: the episode fails, naming the leaf and the error
                result = EpisodeResult("failure", failed_node=_raising_node(e, root.name),
                                       reason=f"unhandled {type(e).__name__}: {e}".splitlines()[0])
                result.extra["exception"] = True
                result.extra["exception_type"] = type(e).__name__
                if log is not None:
                    log.log.error("exception", tick=tick, node=result.failed_node, reason=result.reason)
                break
            tick_ms = (time.perf_counter() - t0) * 1000
            visited = []
            stages: dict[str, float] = {}
            for node in root.iterate():
                if node.id in snapshot.visited:
                    visited.append({"node": node.name, "status": node.status.value,
                                    "message": node.feedback_message})
                    if node.name in STAGE_NAMES and hasattr(node, "latency_ms"):
                        stage = STAGE_NAMES[node.name]  # both segmenters of a fallback tick add up
                        stages[stage] = round(stages.get(stage, 0.0) + node.latency_ms, 3)
            changes = {}
            for key in LOGGED_KEYS:
                v = _bb_value(key)
                if _changed(v, previous.get(key)):
                    changes[key] = v
                    previous[key] = v
            mode = _bb_value("vs_mode")
            if mode and (not modes or modes[-1] != mode):
                modes.append(mode)
            if log is not None:
                log.log.info("tick", tick=tick, sim_time=round(robot.clock.now() - t_sim0, 4),
                             wall_time=round(time.perf_counter() - t_wall, 4), tick_ms=round(tick_ms, 3),
                             root=root.status.value, nodes=visited, blackboard=changes, latency_ms=stages)
            if record_dir is not None:
                _record(record_dir, tick)
            if root.status == Status.SUCCESS:
                result = EpisodeResult("success")
                break
            if root.status == Status.FAILURE:
                node, reason = _leaf_failure(root)
                result = EpisodeResult("failure", failed_node=node, reason=reason)
                break
            if on_tick is not None:
                on_tick(tick)
            robot.clock.advance()
        else:
            running = [n for n in root.iterate() if n.status == Status.RUNNING and not n.children]
            result = EpisodeResult("timeout", failed_node=running[-1].name if running else root.name,
                                   reason=f"episode exceeded {max_ticks} ticks")
    finally:
        tree.interrupt()  # terminate() every running leaf: stops the arm
        tree.shutdown()
    result.ticks = tick
    result.pose_steps = int(_bb_value("pose_step") or 0)
    result.vs_iterations = int(_bb_value("vs_iterations") or 0)
    result.vs_fallbacks = int(_bb_value("vs_fallbacks") or 0)
    result.vs_mode_switches = max(0, len(modes) - 1)
    result.mask_source = str(_bb_value("mask_source") or "")
    result.regrasps = int(_bb_value("regrasps") or 0)
    result.reacquisitions = int(_bb_value("reacquisitions") or 0)
    result.sim_time = robot.clock.now() - t_sim0
    result.wall_time = time.perf_counter() - t_wall
    if log is not None:
        log.log.info("episode_end", **asdict(result))
    return result


def _record(record_dir: Path, tick: int) -> None:
    """Save the raw, model (adapted) and mask images of this tick, when they changed."""
    import cv2

    record_dir.mkdir(parents=True, exist_ok=True)
    frame, model_frame, mask = _bb_value("frame"), _bb_value("model_frame"), _bb_value("mask")
    if frame is None:
        return
    stem = record_dir / f"{tick:05d}"
    cv2.imwrite(f"{stem}_raw.png", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR))
    cv2.imwrite(f"{stem}_raw_depth.png", np.round(frame.depth / 0.000125).astype(np.uint16))  # SR300 units
    if model_frame is not None and model_frame is not frame:
        cv2.imwrite(f"{stem}_adapted.png", cv2.cvtColor(model_frame.rgb, cv2.COLOR_RGB2BGR))
    if mask is not None:
        cv2.imwrite(f"{stem}_mask.png", (mask * 120).astype(np.uint8))  # 0, 120, 240: visible classes
