"""Episodes on multi-object scenes (``--scene multi:N``), scored from ground truth.

Two kinds, one set-up (:func:`build_scene`, the arm behind the safety envelope, ground truth
locked while the tree runs):

- a grasp tree (:func:`run_scene_episode`): success = exactly one object lifted and held by both
  fingers, none off the table. Named failures: "two objects lifted" (the gripper took more than
  the chosen object), "knocked off the table". The paper's pose error is measured against the
  object nearest the gripper when Close Gripper starts (the one the tree went for).
- a ``clear_table`` tree (:func:`run_clear_episode`): objects placed in the bin, objects cleared
  from the camera's start view, picks attempted and their failures by node, table strikes,
  simulated time and picks per hour of simulated time.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import py_trees
from py_trees.common import Status

from app.episode import CLOSE_NODE, paper_success, pose_errors, safe_robot
from app.errors import MotionError, SimulationError
from app.hardware_config import HardwareConfig, load_hardware
from app.logs import RunLog, finish_run_dir, make_run_dir
from app.runner import EpisodeResult, run_episode
from app.sim.scene import SceneScore, build_scene, draw_objects
from app.transforms import Pose, wrap_half_pi

if TYPE_CHECKING:
    from app.sim.objects import ObjectSpec
    from app.sim.scene import SceneObject
    from app.tree_config import TreeConfig

LIFT_FRACTION = 0.9  # an object counts as lifted at >= 90 % of the tree's lift height (as for single objects)


def scene_objects(pool: list[ObjectSpec], n: int, seed: int) -> list[ObjectSpec]:
    """The ``n`` objects of the scene of ``seed`` (drawn from ``pool``; placement uses ``seed`` too)."""
    return draw_objects(pool, n, np.random.default_rng((seed, 1)))  # (seed, 1): a stream apart from placement


def _axis_yaw(spec: ObjectSpec, pose: Pose) -> float | None:
    """Yaw (rad, modulo pi) of the finger line that closes across the object's narrow side."""
    if spec.round:
        return None
    ext = spec.extents
    axis = pose.matrix[:, 1] if ext[0] >= ext[1] else pose.matrix[:, 0]
    return wrap_half_pi(float(np.arctan2(axis[1], axis[0])))


class SceneCloseProbe:
    """``on_tick`` hook: at the first tick of Close Gripper, the pose error against the object
    nearest the gripper (scoring: ground truth opened for this read only)."""

    def __init__(self, root: py_trees.behaviour.Behaviour, session: Any, score: SceneScore) -> None:
        self.node = next((n for n in root.iterate() if n.name == CLOSE_NODE), None)
        self.session, self.score = session, score
        self.measured: dict[str, Any] | None = None

    def __call__(self, tick: int) -> None:
        if self.measured is None and self.node is not None and self.node.status != Status.INVALID:
            self.measured = self.measure("close", tick)

    def measure(self, at: str, tick: int | None = None) -> dict[str, Any]:
        """Errors of the gripper's pose against the nearest object's good grasps."""
        truth = self.session.truth
        was, truth.locked = truth.locked, False
        try:
            gripper = self.session.arm.pose()
            obj = self.score.nearest(gripper.position[:2])
            pose = truth.world().body_pose(obj.body)
            return {"at": at, "tick": tick, "target": obj.spec.name,
                    **pose_errors(gripper, obj.spec.grasp_poses(pose), _axis_yaw(obj.spec, pose))}
        finally:
            truth.locked = was


class StrikeProbe:
    """``on_tick`` hook: counts table strikes (the hand or a finger newly touching the table) and
    joint-limit hits (a joint newly within :data:`app.sim.audit.LIMIT_MARGIN_RAD` of a limit);
    with the targets IK could not reach, the latter make ``self_collisions_or_limits`` as in
    single-object episodes (:class:`app.sim.audit.PhysicalAudit`)."""

    def __init__(self, session: Any) -> None:
        self.session, self.strikes, self._touching = session, 0, False
        self.limit_hits, self._at_limit = 0, False
        self._unreachable0 = session.arm.unreachable

    def __call__(self, tick: int) -> None:
        from app.sim.audit import at_joint_limit

        truth = self.session.truth
        was, truth.locked = truth.locked, False
        try:
            w = truth.world()
            touching = w.gripper_touches_table()
            at_limit = at_joint_limit(w)
        finally:
            truth.locked = was
        self.strikes += touching and not self._touching
        self._touching = touching
        self.limit_hits += at_limit and not self._at_limit
        self._at_limit = at_limit

    def audit(self) -> dict[str, Any]:
        """The audit keys of a results line."""
        unreachable = self.session.arm.unreachable - self._unreachable0
        return {"table_strikes": self.strikes, "self_collisions_or_limits": int(self.limit_hits + unreachable),
                "audit": {"joint_limit_hits": int(self.limit_hits), "unreachable_targets": int(unreachable)}}


def _chain(*hooks: Any) -> Any:
    def call(tick: int) -> None:
        for h in hooks:
            h(tick)
    return call


def _run(cfg: TreeConfig, pool: list[ObjectSpec], n: int, seed: int, domain: Any, models: Any,
         log_dir: str | Path, hardware: HardwareConfig | str | None, trial: int, record: bool,
         score_fn: Any, gap: Any = None) -> dict[str, Any]:
    """Shared set-up of both episode kinds; ``score_fn(session, root, result, objects, score,
    close_probe, cfg)`` returns the scored part of the record. The physical gap is drawn from
    ``seed`` as for one object (:func:`app.episode.run_sim_episode`): camera, arm, table, objects."""
    from app.sim.gap import GapConfig, draw_gap, load_gap
    from app.sim.session import SimSession
    from app.trees import build_tree

    hw = hardware if isinstance(hardware, HardwareConfig) else load_hardware(hardware)
    gap_cfg = gap if isinstance(gap, GapConfig) else load_gap(gap or "none")
    sample = draw_gap(gap_cfg, seed)
    specs = scene_objects(pool, n, seed)
    s = SimSession(hw, domain=domain, seed=seed)
    s.set_gap(sample)
    run_dir = make_run_dir(log_dir, cfg.name, f"multi{n}", seed, trial)
    log = RunLog(run_dir / "ticks.jsonl")
    base = {"tree": cfg.name, "object": f"multi:{n}", "scene_objects": [o.name for o in specs], "seed": seed,
            "run_dir": str(run_dir), "domain_sha256": s.domain.sha256, "gap": gap_cfg.name,
            "gap_sha256": gap_cfg.sha256, "gap_sample": sample.record()}
    try:
        if cfg.clear is not None:
            s.world.set_table_height(sample.table_dz)  # the bin stands on the table as the gap puts it
            s.world.add_bin(cfg.clear.bin_position, cfg.clear.bin_inner, cfg.clear.bin_wall_height)
        try:
            objects = build_scene(s, specs, seed)
            log.log.info("episode_start", tree=cfg.name, scene=f"multi:{n}", objects=[o.name for o in specs],
                         seed=seed, trial=trial, domain=s.domain.name, domain_sha256=s.domain.sha256,
                         gap=gap_cfg.name, gap_sha256=gap_cfg.sha256, backend="sim")
            root = build_tree(cfg, hw)
            score = SceneScore(s, objects)
            close, strikes = SceneCloseProbe(root, s, score), StrikeProbe(s)
            robot = safe_robot(s.robot, log, hw)
            s.truth.locked = True
            try:
                res = run_episode(root, robot, models, cfg.max_ticks, log,
                                  record_dir=run_dir / "images" if record else None, on_tick=_chain(close, strikes))
            finally:
                s.truth.locked = False
        except (SimulationError, MotionError) as e:
            res = EpisodeResult("error", "(simulation)", f"{type(e).__name__}: {e}".splitlines()[0])
            rec = {**base, "success": False, "paper_success": False, "pose_error": {"at": "none"},
                   "tree_outcome": res.outcome, **asdict(res), "safety_refusals": 0, "safety_clamps": 0}
            log.log.error("simulation_error", reason=res.reason)
            finish_run_dir(run_dir, rec)
            return rec
        rec = {**base, "tree_outcome": res.outcome, **asdict(res), **strikes.audit(),
               "safety_refusals": sum(e.kind == "refused" for e in robot.arm.events),
               "safety_clamps": sum(e.kind == "clamped" for e in robot.arm.events),
               **score_fn(s, root, res, objects, score, close, cfg)}
        log.log.info("scored", **{k: rec[k] for k in ("success", "failed_node", "reason")})
        finish_run_dir(run_dir, rec)
        return rec
    finally:
        log.close()
        s.close()


def _score_grasp(s: Any, root: Any, res: EpisodeResult, objects: list[SceneObject], score: SceneScore,
                 close: SceneCloseProbe, cfg: TreeConfig) -> dict[str, Any]:
    lifted = score.lifted(LIFT_FRACTION * cfg.lift_height) if cfg.lift_height else []
    held = set(score.held())
    lifted_held = [n for n in lifted if n in held]
    off = score.off_table()
    error = close.measured or close.measure("close" if res.failed_node == CLOSE_NODE else "end")
    out: dict[str, Any] = {"lifted": lifted, "off_table": off, "grasped_object": lifted_held[0] if len(lifted_held) == 1 else "",
                           "pose_error": error, "paper_success": paper_success(error),
                           "physics_lifted": bool(lifted_held)}
    ok = res.success and len(lifted_held) == 1 and len(lifted) == 1 and not off
    if len(lifted) >= 2:
        out["failed_node"], out["reason"] = "Lift And Verify", f"scoring: two objects lifted at once ({', '.join(lifted)})"
    elif off:
        out["failed_node"], out["reason"] = res.failed_node or "(scene)", f"scoring: knocked off the table ({', '.join(off)})"
    elif res.success and not lifted_held:
        out["failed_node"], out["reason"] = "Lift And Verify", "scoring: object not held 10 cm up"
    out["success"] = bool(ok)
    return out


def run_scene_episode(cfg: TreeConfig, pool: list[ObjectSpec], n: int, seed: int, domain: Any, models: Any,
                      log_dir: str | Path, *, hardware: HardwareConfig | str | None = None, trial: int = 0,
                      record: bool = False, gap: Any = None) -> dict[str, Any]:
    """One grasp episode of ``cfg`` on a scene of ``n`` objects from ``pool`` (placement and physical
    gap from ``seed``; ``gap``: a :class:`~app.sim.gap.GapConfig`, a name or path, None for ``none``).

    Returns:
        The record: the runner's keys plus ``success`` (one object lifted and held, none off the
        table), ``grasped_object``, ``lifted``, ``off_table``, ``pose_error`` (against the object
        nearest the gripper at Close Gripper: ``target``), ``paper_success``, ``table_strikes``.
    """
    return _run(cfg, pool, n, seed, domain, models, log_dir, hardware, trial, record, _score_grasp, gap)


def _in_start_view(s: Any, position: np.ndarray) -> bool:
    """Whether a base-frame point projects into the camera image at the start pose."""
    cam = s.hw.start_pose() @ s.arm.camera_mount
    p = cam.matrix.T @ (position - cam.position)
    if p[2] <= 0:
        return False
    k = s.camera.intrinsics
    u, v = k.fx * p[0] / p[2] + k.cx, k.fy * p[1] / p[2] + k.cy
    return bool(-0.5 <= u < k.width - 0.5 and -0.5 <= v < k.height - 0.5)


def _score_clear(s: Any, root: Any, res: EpisodeResult, objects: list[SceneObject], score: SceneScore,
                 close: SceneCloseProbe, cfg: TreeConfig) -> dict[str, Any]:
    p = cfg.clear
    loop = next(n for n in root.iterate() if type(n).__name__ == "UntilTableClear")
    picks = list(loop.picks)
    world = s.truth.world()
    placed, cleared, final = [], [], {}
    for o in objects:
        pos = world.body_pose(o.body).position
        final[o.spec.name] = [round(float(c), 3) for c in pos]
        in_bin = (abs(pos[0] - p.bin_position[0]) <= p.bin_inner / 2 and abs(pos[1] - p.bin_position[1]) <= p.bin_inner / 2
                  and pos[2] > score.cfg.off_table_z)
        placed += [o.spec.name] if in_bin else []
        cleared += [o.spec.name] if not _in_start_view(s, pos) and pos[2] > score.cfg.off_table_z else []
    off = score.off_table()
    failures = Counter(pk["failed_node"] for pk in picks if pk["outcome"] == "failed")
    hours = res.sim_time / 3600.0
    return {"objects": len(objects), "placed": placed, "cleared": cleared, "off_table": off,
            "n_placed": len(placed), "n_cleared": len(cleared), "picks_attempted": len(picks),
            "picks_placed": sum(pk["outcome"] == "placed" for pk in picks), "picks": picks,
            "pick_failures": dict(failures), "end": loop.feedback_message, "final_positions": final,
            "picks_per_hour": round(len(placed) / hours, 1) if hours > 0 else 0.0,
            "success": bool(len(cleared) == len(objects) and not off), "paper_success": False,
            "pose_error": {"at": "none"}, "physics_lifted": False}


def run_clear_episode(cfg: TreeConfig, pool: list[ObjectSpec], n: int, seed: int, domain: Any, models: Any,
                      log_dir: str | Path, *, hardware: HardwareConfig | str | None = None, trial: int = 0,
                      record: bool = False, gap: Any = None) -> dict[str, Any]:
    """One clear_table run on a scene of ``n`` objects (a bin beside the table), in the physical gap
    ``gap`` drawn from ``seed`` (a :class:`~app.sim.gap.GapConfig`, a name or path, None for ``none``).

    Returns:
        The record: the runner's keys plus ``placed`` / ``cleared`` (names of objects in the bin /
        out of the start view), ``picks_attempted``, ``picks`` (one entry per pick: outcome,
        failing node, reason), ``pick_failures`` (by node), ``off_table``, ``table_strikes``,
        ``picks_per_hour`` (objects placed per hour of simulated time) and ``success`` (every
        object cleared, none off the table).
    """
    if cfg.clear is None:
        raise ValueError(f"{cfg.name}: not a clear_table tree")
    return _run(cfg, pool, n, seed, domain, models, log_dir, hardware, trial, record, _score_clear, gap)



