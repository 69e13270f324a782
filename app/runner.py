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

from app.errors import OutputWriteError
from app.logs import RunLog
from app.outputs import write_guard
from app.robot.boundary import leaf_robot
from app.robot.interfaces import Robot

#: Blackboard keys logged when they change (images are recorded separately with --record).
LOGGED_KEYS = ("pose_step", "action", "vs_mode", "vs_iterations", "vs_error", "vs_gain", "vs_twist", "vs_targets",
               "linear_converged", "vs_converged", "vs_fallbacks", "z_g", "mask_source", "regrasps",
               "reacquisitions", "lost_since", "static_blobs_found",
               "last_pick", "picks_done")  # the last two: clear_table picks (behaviours/clearing.py)
STAGE_NAMES = {"Acquire Frame": "acquire", "Adapt To Sim": "adapt", "Segment Object": "segment",
               "Segment Raw Image": "segment", "Extract Features": "features"}


class NodeTimer(py_trees.visitors.VisitorBase):
    """Wall time of each node in one tick: its own, and inclusive of its children.

    The tree yields every node right after its own work of the tick (a leaf after ``update()``,
    a composite or decorator after its children and its own ``update()``), and the visitor runs
    at each yield, so the time since the previous yield is the yielded node's own time.
    Inclusive time is then a node's own time plus its ticked children's inclusive times.
    """

    def __init__(self, now: Callable[[], float] = time.perf_counter) -> None:
        """``now``: the clock read (s), ``time.perf_counter`` unless a test fakes it."""
        super().__init__(full=False)
        self.own: dict[Any, float] = {}
        self._now = now
        self._last = 0.0

    def initialise(self) -> None:
        """Start of a tick: forget the last one."""
        self.own = {}
        self._last = self._now()

    def run(self, behaviour: py_trees.behaviour.Behaviour) -> None:
        """Charge the time since the previous yield to ``behaviour``."""
        now = self._now()
        self.own[behaviour.id] = self.own.get(behaviour.id, 0.0) + now - self._last
        self._last = now

    def inclusive(self, root: py_trees.behaviour.Behaviour) -> dict[Any, float]:
        """Inclusive seconds of every node ticked this tick, under ``root``."""
        out: dict[Any, float] = {}

        def walk(node: py_trees.behaviour.Behaviour) -> float:
            total = self.own.get(node.id, 0.0) + sum(walk(c) for c in node.children)
            if node.id in self.own:
                out[node.id] = total
            return total

        walk(root)
        return out


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
    static_blobs: int = 0  # blobs rejected as fixed in the image ("Blob Moves With Scene?")
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


leaf_failure = _leaf_failure  # public: the clear_table loop names each failed pick with it


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


def _blob(features: Any) -> dict[str, Any] | None:
    """The tracked blob of :class:`~app.controllers.features.BlobFeatures` as JSON (pixels, rad)."""
    if features is None or not getattr(features, "ok", False):
        return None
    return {"centroid_px": [round(float(c), 2) for c in features.centroid_px], "bbox": [int(b) for b in features.bbox],
            "alpha": round(float(features.alpha), 5), "use_alpha": bool(features.use_alpha),
            "area_px": int(features.area_px)}


def _intrinsics(frame: Any) -> dict[str, float] | None:
    """Intrinsics (px) of the frame on the blackboard, to draw normalised targets in pixels."""
    k = getattr(frame, "intrinsics", None)
    return None if k is None else {"fx": k.fx, "fy": k.fy, "cx": k.cx, "cy": k.cy, "width": k.width, "height": k.height}


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
        robot: The session's backends. Leaves get them only through :func:`app.robot.boundary.leaf_robot`
            (the protocols and nothing else, the arm behind the safety envelope); the runner
            keeps the full robot to advance the clock.
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
    timer = NodeTimer()
    tree.add_visitor(timer)
    tree.setup(robot=leaf_robot(robot), models=models)
    t_wall, t_sim0 = time.perf_counter(), robot.clock.now()
    previous: dict[str, Any] = {}
    modes: list[str] = []
    result = EpisodeResult("timeout")
    try:
        for tick in range(1, max_ticks + 1):
            t0 = time.perf_counter()
            try:
                tree.tick()
            except OutputWriteError:  # a log write inside a leaf (safety warnings): stop the run
                raise
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
            inclusive = timer.inclusive(root)
            for node in root.iterate():
                if node.id in snapshot.visited:
                    # own_ms: the node's own work (a leaf's whole time); incl_ms: with its children.
                    visited.append({"node": node.name, "status": node.status.value,
                                    "message": node.feedback_message, "leaf": not node.children,
                                    "own_ms": round(timer.own.get(node.id, 0.0) * 1000, 3),
                                    "incl_ms": round(inclusive.get(node.id, 0.0) * 1000, 3)})
                    if node.name in STAGE_NAMES and hasattr(node, "latency_ms"):
                        stage = STAGE_NAMES[node.name]  # both segmenters of a fallback tick add up
                        stages[stage] = round(stages.get(stage, 0.0) + node.latency_ms, 3)
            changes = {}
            for key, v in [*((k, _bb_value(k)) for k in LOGGED_KEYS), ("blob", _blob(_bb_value("features"))),
                           ("intrinsics", _intrinsics(_bb_value("frame")))]:
                if _changed(v, previous.get(key)):
                    changes[key] = v
                    previous[key] = v
            mode = _bb_value("vs_mode")
            if mode and (not modes or modes[-1] != mode):
                modes.append(mode)
            if log is not None:
                pose = robot.arm.pose()  # the gripper after this tick's commands, before the clock advances
                log.log.info("tick", tick=tick, sim_time=round(robot.clock.now() - t_sim0, 4),
                             wall_time=round(time.perf_counter() - t_wall, 4), tick_ms=round(tick_ms, 3),
                             root=root.status.value, nodes=visited, blackboard=changes, latency_ms=stages,
                             gripper=[*np.round(pose.position, 5).tolist(), *np.round(pose.quat, 6).tolist()])
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
    result.static_blobs = int(_bb_value("static_blobs_found") or 0)
    result.sim_time = robot.clock.now() - t_sim0
    result.wall_time = time.perf_counter() - t_wall
    if log is not None:
        log.log.info("episode_end", **asdict(result))
    return result


def _record(record_dir: Path, tick: int) -> None:
    """Save the raw, model (adapted) and mask images of this tick, when they changed.

    Raises:
        OutputWriteError: An image could not be written (``cv2.imwrite`` would only return False).
    """
    import cv2

    frame, model_frame, mask = _bb_value("frame"), _bb_value("model_frame"), _bb_value("mask")
    if frame is None:
        return
    stem = record_dir / f"{tick:05d}"
    images = [("raw", cv2.cvtColor(frame.rgb, cv2.COLOR_RGB2BGR)),
              ("raw_depth", np.round(frame.depth / 0.000125).astype(np.uint16))]  # SR300 units
    if model_frame is not None and model_frame is not frame:
        images.append(("adapted", cv2.cvtColor(model_frame.rgb, cv2.COLOR_RGB2BGR)))
    if mask is not None:
        images.append(("mask", (mask * 120).astype(np.uint8)))  # 0, 120, 240: visible classes
    with write_guard(record_dir):
        record_dir.mkdir(parents=True, exist_ok=True)
    for name, image in images:
        path = Path(f"{stem}_{name}.png")
        ok, png = cv2.imencode(".png", image)
        if not ok:  # an image the encoder refuses is a bug here, not a disk problem
            raise RuntimeError(f"cv2.imencode refused {name} of tick {tick}")
        with write_guard(path):
            path.write_bytes(png.tobytes())
