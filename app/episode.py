"""One simulated episode, scored: the unit of the main job and of every campaign.

Only the scoring here (and the oracle tree) reads simulator ground truth, and only after or
outside the tree's ticks (:class:`CloseProbe` unlocks it for one read and locks it again).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import py_trees
from py_trees.common import Status

from app.errors import MotionError, SimulationError
from app.hardware_config import HardwareConfig, load_hardware
from app.logs import RunLog, finish_run_dir, make_run_dir
from app.robot.interfaces import Robot
from app.robot.safety import SafeArm, load_safety
from app.runner import EpisodeResult, run_episode
from app.transforms import Pose, wrap_half_pi

if TYPE_CHECKING:
    from app.tree_config import TreeConfig

PAPER_RADIUS_M = 0.04  # m: the paper's success radius, horizontal, gripper vs good grasp
LIFT_FRACTION = 0.9  # physics score: the object rises >= 90 % of the gripper's lift (1 cm of a 10 cm lift for slip and sag)
CLOSE_NODE = "Close Gripper"
MIN_AXIS_Z = 0.1  # |z| of the gripper axis below which it is taken as horizontal (no projection)


def safe_robot(robot: Robot, log: RunLog | None = None, hardware: HardwareConfig | None = None) -> Robot:
    """The same robot with its arm behind the safety envelope (``config/safety.yaml``, with the
    fingertips of ``hardware``, default ``config/hardware.yaml``)."""
    arm = SafeArm(robot.arm, load_safety(hardware=hardware), robot.clock.period,
                  log=log.log.warning if log else None)
    return replace(robot, arm=arm)


# ------------------------------------------------------------------------------ scoring
def pose_errors(gripper: Pose, grasps: Sequence[Pose], grasp_axis_yaw: float | None) -> dict[str, float | None]:
    """Gripper pose against the good grasps, all in the robot base frame.

    Args:
        gripper: Gripper (TCP) pose.
        grasps: Good grasps as gripper poses.
        grasp_axis_yaw: Yaw (rad, modulo pi) the finger line should have; None for round objects.

    Returns:
        ``position_m``: horizontal distance (m) from the gripper's approach axis, taken at the
        grasp's height, to the nearest good grasp; ``height_m``: gripper height above that grasp
        (m); ``yaw_deg``: angle (deg, 0-90) between the finger line and the grasp axis. None
        where there is no grasp or no axis.
    """
    axis = gripper.matrix[:, 2]  # approach direction (gripper z) in the base frame
    best: tuple[float, float] | None = None
    for g in grasps:
        point = gripper.position
        if abs(axis[2]) > MIN_AXIS_Z:
            point = point + (g.position[2] - point[2]) / axis[2] * axis
        d = float(np.hypot(*(point[:2] - g.position[:2])))
        if best is None or d < best[0]:
            best = (d, float(gripper.position[2] - g.position[2]))
    yaw = None if grasp_axis_yaw is None else abs(math.degrees(wrap_half_pi(gripper.yaw - grasp_axis_yaw)))
    return {"position_m": None if best is None else round(best[0], 6),
            "height_m": None if best is None else round(best[1], 6),
            "yaw_deg": None if yaw is None else round(yaw, 4)}


def paper_success(error: dict[str, Any]) -> bool:
    """The "4 cm score": as Close Gripper started, the gripper's approach axis passed within 4 cm
    (horizontally) of a good grasp. Looser than the paper's "successful pose estimation": it
    ignores the gripper's height above the grasp and its yaw (both are in ``error``)."""
    d = error.get("position_m")
    return error.get("at") == "close" and d is not None and d <= PAPER_RADIUS_M


@contextmanager
def _scoring_read(truth: Any) -> Iterator[Any]:
    """Ground truth opened for the scoring code, locked again after."""
    was, truth.locked = truth.locked, False
    try:
        yield truth
    finally:
        truth.locked = was


class CloseProbe:
    """``on_tick`` hook: measures :func:`pose_errors` when ``Close Gripper`` first runs.

    The hook runs after the tick and before the clock advances, so the gripper has not yet moved.
    """

    def __init__(self, root: py_trees.behaviour.Behaviour, session: Any, audit: Any = None) -> None:
        self.node = next((n for n in root.iterate() if n.name == CLOSE_NODE), None)
        self.session = session
        self.audit = audit  # PhysicalAudit: the object's push is measured up to this moment
        self.measured: dict[str, Any] | None = None

    def __call__(self, tick: int) -> None:
        if self.measured is None and self.node is not None and self.node.status != Status.INVALID:
            self.measured = self.measure("close", tick)
            if self.audit is not None:
                self.audit.freeze()

    def measure(self, at: str, tick: int | None = None) -> dict[str, Any]:
        """Errors of the gripper's current pose; ``at``: "close" or "end" (of the episode)."""
        with _scoring_read(self.session.truth) as truth:
            grasps, axis = truth.good_grasps(), truth.grasp_axis_yaw()
        return {"at": at, "tick": tick, **pose_errors(self.session.arm.pose(), grasps, axis)}


def run_sim_episode(cfg: TreeConfig, spec: Any, seed: int, domain: Any, models: Any, log_dir: str | Path, *,
              hardware: HardwareConfig | str | None = None, session: Any = None, trial: int = 0,
              record: bool = False, gap: Any = None) -> dict[str, Any]:
    """One simulated episode of ``cfg`` on ``spec``, scored two ways (physics lift, paper radius)
    and audited physically (table strikes, object push, limits).

    Reset (the placement and the physical gap depend only on ``seed``, so every tree sees the
    same ones), the tree built with ground truth only for the oracle, the arm behind the safety
    envelope, ground truth locked while the tree runs, then scoring.

    Args:
        gap: The physical gap: a :class:`~app.sim.gap.GapConfig`, a name or path, or None for
            ``none`` (the simulator exactly as configured).

    Returns:
        The episode record: run_sim_episode's keys plus ``pose_error``, ``paper_success``,
        ``gap_sample`` and the audit's keys (:class:`~app.sim.audit.PhysicalAudit`).
    """
    from app.sim.audit import PhysicalAudit
    from app.sim.gap import GapConfig, draw_gap, load_gap
    from app.sim.session import SimSession
    from app.trees import build_tree

    hw = hardware if isinstance(hardware, HardwareConfig) else load_hardware(hardware)
    gap_cfg = gap if isinstance(gap, GapConfig) else load_gap(gap or "none")
    sample = draw_gap(gap_cfg, seed)
    own = session is None
    s = session or SimSession(hw, domain=domain, seed=seed, deformable=spec.shape == "soft")
    s.set_gap(sample)
    run_dir = make_run_dir(log_dir, cfg.name, spec.name, seed, trial)
    log = RunLog(run_dir / "ticks.jsonl")
    base = {"tree": cfg.name, "object": spec.name, "seed": seed, "run_dir": str(run_dir),
            "domain_sha256": s.domain.sha256, "gap": gap_cfg.name, "gap_sha256": gap_cfg.sha256,
            "gap_sample": sample.record()}
    audit: PhysicalAudit | None = None
    try:
        try:
            rest = s.reset(spec, seed)
            log.log.info("episode_start", tree=cfg.name, object=spec.name, seed=seed, trial=trial,
                         domain=s.domain.name, domain_sha256=s.domain.sha256, gap=gap_cfg.name,
                         gap_sha256=gap_cfg.sha256, backend="sim")
            oracle = cfg.builder == "oracle"
            root = build_tree(cfg, hw, truth=s.truth if oracle else None)
            audit = PhysicalAudit(s)
            probe = CloseProbe(root, s, audit)
            robot = safe_robot(s.robot, log, hw)  # the arm behind the safety envelope, as in every run
            s.truth.locked = not oracle
            try:
                with audit:
                    res = run_episode(root, robot, models, cfg.max_ticks, log,
                                      record_dir=run_dir / "images" if record else None, on_tick=probe)
            finally:
                s.truth.locked = False
        except (SimulationError, MotionError) as e:  # this trial's world broke: a failed trial, not a campaign
            res = EpisodeResult("error", "(simulation)", f"{type(e).__name__}: {e}".splitlines()[0])
            audited = audit.record() if audit is not None else {
                "table_strikes": 0, "object_pushed_m": 0.0, "self_collisions_or_limits": 0, "audit": {}}
            rec = {**base, "success": False, "paper_success": False, "pose_error": {"at": "none"},
                   "tree_outcome": res.outcome, "physics_lifted": False, **asdict(res), "safety_refusals": 0,
                   "safety_clamps": 0, **audited}
            log.log.error("simulation_error", reason=res.reason)
            finish_run_dir(run_dir, rec)
            return rec
        # Physics score: held >= LIFT_FRACTION of the lift above the rest height by both fingers.
        min_lift = LIFT_FRACTION * cfg.lift_height
        lifted = bool(cfg.lift_height) and s.truth.object_lifted(rest.position[2], min_lift=min_lift)
        # Close Gripper failing on its first tick ends the episode before the hook: same pose.
        error = probe.measured or probe.measure("close" if res.failed_node == CLOSE_NODE else "end")
        rec = {**base, "success": bool(res.success and lifted), "paper_success": paper_success(error),
               "pose_error": error, "tree_outcome": res.outcome, "physics_lifted": bool(lifted), **asdict(res),
               "safety_refusals": sum(e.kind == "refused" for e in robot.arm.events),
               "safety_clamps": sum(e.kind == "clamped" for e in robot.arm.events), **audit.record()}
        if res.success and not lifted:
            rec["failed_node"], rec["reason"] = ("Lift And Verify",
                                                 f"scoring: object not held {min_lift * 100:.0f} cm up")
        log.log.info("scored", success=rec["success"], paper_success=rec["paper_success"], pose_error=error,
                     table_strikes=rec["table_strikes"], object_pushed_m=rec["object_pushed_m"],
                     self_collisions_or_limits=rec["self_collisions_or_limits"])
        finish_run_dir(run_dir, rec)
        return rec
    finally:
        log.close()
        if own:
            s.close()


