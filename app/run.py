"""The main job: ``python -m app --tree NAME`` runs episodes of a tree and prints a summary.

Simulator (default): real-looking domain, a seen object, seed 0, one episode. Exit 0 when every
episode grasped, 1 when any failed. Ground truth is locked for every tree but ``oracle`` and is
read only by the scoring here, after the tree has finished.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Any

from app.episode import run_sim_episode, safe_robot
from app.errors import ConfigError
from app.hardware_config import load_hardware
from app.logs import RunLog, finish_run_dir, make_run_dir
from app.outputs import check_output_dir, check_output_file, write_guard
from app.runner import EpisodeResult, run_episode
from app.tree_config import TreeConfig, load_tree_config
from app.trees import build_tree, render_tree


def pick_objects(args: argparse.Namespace) -> list[tuple[str, Any]]:
    """(set name, ObjectSpec) pairs selected by ``--objects`` and ``--object``; episode ``k``
    uses pair ``k mod n`` (one episode: the first object of the first set)."""
    from app.sim.objects import load_objects

    pairs = load_objects(args.objects)
    if args.object:
        chosen = [(s.name, o) for s, o in pairs if o.name == args.object]
        if not chosen:
            raise ConfigError(f"--object: no object {args.object!r} in {args.objects!r} "
                              f"(expected one of {[o.name for _, o in pairs]})")
        return chosen
    return [(s.name, o) for s, o in pairs]  # episodes cycle through the set(s)


def run_episodes(args: argparse.Namespace) -> int:
    """Entry point of the main job."""
    if args.show_tree is None:
        check_output_dir(args.log_dir, "--log-dir")  # before any work: one line and exit 2
    elif args.show_tree != "-":
        check_output_file(f"{args.show_tree}.dot", "--show-tree")
    cfg = load_tree_config(args.tree)
    hw = load_hardware(args.config)
    if args.show_tree is not None:
        truth = object() if cfg.builder == "oracle" else None
        print(render_tree(build_tree(cfg, hw, truth=truth), args.show_tree))
        return 0
    if args.episodes < 1:
        raise ConfigError(f"--episodes: expected >= 1, found {args.episodes}")
    if args.backend == "real":
        if getattr(args, "gap", None):
            raise ConfigError("--gap: the physical gap is simulated; the real robot brings its own (drop --gap "
                              "or use --backend sim)")
        return _run_real(args, cfg, hw)
    models = None
    if cfg.uses_models:
        from app.perception import load_perception
        from app.weights_domain import warn_domain

        models = load_perception(args.weights, hardware=args.config)
        warn_domain(args.weights, args.domain)
    from app.sim.gap import gap_argument, load_gap

    gap = load_gap(gap_argument(args))  # validated before any episode runs
    from app.sim.scene import parse_scene

    scene = parse_scene(getattr(args, "scene", "single"))
    objects = pick_objects(args)
    if scene.multi or cfg.clear is not None:
        return _run_scenes(args, cfg, scene.n, [o for _, o in objects], models, gap)
    failures = 0
    for ep in range(args.episodes):
        set_name, spec = objects[ep % len(objects)]
        seed = args.seed + ep
        r = run_sim_episode(cfg, spec, seed, args.domain, models, args.log_dir, hardware=args.config,
                            record=args.record, trial=ep, gap=gap)
        failures += not r["success"]
        _print_summary(r, set_name)
    return 0 if failures == 0 else 1


def _run_scenes(args: argparse.Namespace, cfg: TreeConfig, n: int, pool: list[Any], models: Any, gap: Any) -> int:
    """Episodes on multi-object scenes (``--scene multi:N``), or clear_table runs (``n`` objects), in
    the physical gap ``gap`` (a :class:`~app.sim.gap.GapConfig`)."""
    from app.scene_episode import run_clear_episode, run_scene_episode

    run = run_clear_episode if cfg.clear is not None else run_scene_episode
    failures = 0
    for ep in range(args.episodes):
        r = run(cfg, pool, n, args.seed + ep, args.domain, models, args.log_dir, hardware=args.config,
                record=args.record, trial=ep, gap=gap)
        failures += not r["success"]
        head = "CLEARED" if cfg.clear is not None and r["success"] else "GRASPED" if r["success"] else "FAILED"
        why = "" if r["success"] or not r.get("failed_node") else f" at '{r['failed_node']}': {r['reason']}"
        print(f"{head}{why}\n  tree {r['tree']}, scene of {n} ({', '.join(r.get('scene_objects', []))}), seed {r['seed']}")
        if cfg.clear is not None and "picks_attempted" in r:
            fails = ", ".join(f"{k} {v}" for k, v in r["pick_failures"].items()) or "none"
            print(f"  placed {r['n_placed']}/{r['objects']} in the bin, cleared {r['n_cleared']}/{r['objects']}, "
                  f"{r['picks_attempted']} picks (failed: {fails}), off the table {len(r['off_table'])}, "
                  f"table strikes {r['table_strikes']}, {r['picks_per_hour']:.0f} picks/h; {r['end']}")
        elif "lifted" in r:
            print(f"  grasped {r['grasped_object'] or '-'}, lifted {r['lifted'] or '-'}, off the table {r['off_table'] or '-'}, "
                  f"close target {r['pose_error'].get('target', '-')}")
        print(f"  ticks {r['ticks']}, sim {r['sim_time']:.1f} s, wall {r['wall_time']:.1f} s\n  run directory {r['run_dir']}")
        sys.stdout.flush()
    return 0 if failures == 0 else 1


def _print_summary(r: dict[str, Any], set_name: str) -> None:
    outcome = "GRASPED" if r["success"] else "FAILED"
    why = "" if r["success"] else f" at '{r['failed_node']}': {r['reason']}"
    print(f"{outcome}{why}\n  tree {r['tree']}, object {r['object']} ({set_name}), seed {r['seed']}\n"
          f"  pose steps {r['pose_steps']}, VS iterations {r['vs_iterations']} "
          f"(border fallbacks {r['vs_fallbacks']}{', mask from the raw image' if r.get('mask_source') == 'raw' else ''}), ticks {r['ticks']}, sim {r['sim_time']:.1f} s, "
          f"wall {r['wall_time']:.1f} s\n  run directory {r['run_dir']}"
          + (f"\n  physical gap {r['gap']}; audit: table strikes {r['table_strikes']}, object pushed "
             f"{r['object_pushed_m'] * 1000:.0f} mm before closing, limits/unreachable "
             f"{r['self_collisions_or_limits']}" if "gap" in r else ""))
    sys.stdout.flush()


def _run_real(args: argparse.Namespace, cfg: TreeConfig, hw: Any) -> int:
    """Run on the RealSense + panda_py backends (same trees), inside the session lifecycle:
    connect → home → execute (reflexes recovered) → shut down (also on Ctrl-C)."""
    if cfg.builder == "oracle":
        raise ConfigError(f"{cfg.path}: the oracle tree needs simulator ground truth (use --backend sim)")
    from app.hardware.real_session import RealSession
    from app.lifecycle import RobotSession
    from app.perception import load_perception

    models = load_perception(args.weights, hardware=args.config) if cfg.uses_models else None
    if cfg.uses_models:  # the live frames are the profile's; the weights must have seen the same
        from app.hardware_config import check_training_camera
        from app.perception import WEIGHTS_DIR

        check_training_camera(args.weights or WEIGHTS_DIR, hw)
    failures = 0
    from app.robot.safety import load_safety

    with write_guard(args.log_dir):
        Path(args.log_dir).mkdir(parents=True, exist_ok=True)
    with RobotSession(lambda: RealSession(hw, args.robot_host).robot, hw.start_pose(),
                      log=RunLog(Path(args.log_dir) / "session.jsonl"), limits=load_safety(),
                      home_joints=hw.home_joints, place_height=hw.place_height) as rs:
        rs.start()
        for ep in range(args.episodes):
            rs.home()
            run_dir = make_run_dir(args.log_dir, cfg.name, "real", args.seed, ep)
            log = RunLog(run_dir / "ticks.jsonl")
            try:
                log.log.info("episode_start", tree=cfg.name, backend="real")
                res: EpisodeResult = rs.execute(lambda robot, log=log, run_dir=run_dir: run_episode(
                    build_tree(cfg, hw), safe_robot(robot, log, hw), models, cfg.max_ticks, log,
                    record_dir=run_dir / "images" if args.record else None))
                rec = {"tree": cfg.name, "object": "real", "seed": args.seed, "success": res.success,
                       **asdict(res), "run_dir": str(run_dir)}
                finish_run_dir(run_dir, rec)
            finally:
                log.close()
            failures += not res.success
            _print_summary(rec, "real")
    return 0 if failures == 0 else 1
