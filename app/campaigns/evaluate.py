"""The evaluation campaign: ``python -m app evaluate`` — the paper's experiment, in simulation.

Every tree x object x trial is one simulated episode, seeded by (campaign seed, object, trial)
only, so every tree sees the same placements. Episodes run in spawned worker processes (one
torch thread each, the model bundle loaded once per process when a tree needs it), and each
ends as one whole, fsync'ed line of ``DIR/results.jsonl``. ``--resume`` skips the trials
already there and drops a line torn by ``kill -9``. Each trial is scored two ways: the physics
lift test, and the paper's (gripper within 4 cm horizontally of a good grasp just before
closing). ``DIR/summary.json``, ``DIR/summary.md`` and the figures are rebuilt from
``results.jsonl`` alone (:func:`summarize`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.campaigns.engine import (
    RESUME_HINT,
    RUNS,
    Campaign,
    ResultsWriter,
    add_campaign_arguments,
    cached,
    execute,
    resume_state,
    split_names,
    trial_seed,
)
from app.campaigns.report import RESULTS, summarize
from app.command import standalone_main, standalone_parser
from app.episode import run_sim_episode
from app.errors import ConfigError
from app.hardware_config import load_hardware
from app.outputs import check_output_dir, hinted, owned, prepare_output_dir

if TYPE_CHECKING:  # app.trees imports torch: loaded only where a campaign runs, not by `--help`
    from app.tree_config import TreeConfig

# ------------------------------------------------------------------------------ the plan
@dataclass(frozen=True)
class Trial:
    """One episode to run: the key (tree, object, trial) and how to load its parts."""

    tree: str
    tree_ref: str  # name or path that load_tree_config takes
    object_set: str
    set_ref: str  # path that load_object_set takes
    object: str
    object_index: int  # position in its set (figure order)
    trial: int
    seed: int
    scene: str = "single"  # "single" or "multi:N" (then set_ref holds every set's path, comma-separated)

    @property
    def key(self) -> tuple[str, str, int]:
        """(tree, object, trial): what resume matches on."""
        return self.tree, self.object, self.trial


def plan_trials(trees: Sequence[TreeConfig], sets: Sequence[Any], trials: int, base_seed: int,
                only_object: str | None = None, split: str | None = None, scene: str = "single") -> list[Trial]:
    """Every (tree, object, trial), trees innermost so a partial campaign stays balanced.

    Args:
        trees: Tree variants (names must differ).
        sets: :class:`app.sim.objects.ObjectSet` s (object names must differ across them).
        trials: Trials per object per tree.
        base_seed: The campaign's ``--seed``.
        only_object: Keep only the object of this name.
        split: Seed stream (:func:`app.campaigns.engine.trial_seed`).
        scene: "single", or "multi:N": then each trial is one scene of N objects drawn from all the
            sets, keyed (tree, "multi:N", trial), seeded by (split, campaign seed, "multi:N", trial).
    """
    names = [t.name for t in trees]
    if len(set(names)) != len(names):
        raise ConfigError(f"--trees: tree names must differ, found {names}")
    objects = [o.name for s in sets for o in s.objects]
    dup = sorted({n for n in objects if objects.count(n) > 1})
    if dup:
        raise ConfigError(f"--objects: object names must differ across sets, found {dup} twice")
    if scene != "single":
        refs = ",".join(s.path for s in sets)
        return [Trial(cfg.name, cfg.path, scene, refs, scene, 0, k, trial_seed(base_seed, scene, k, split), scene)
                for k in range(trials) for cfg in trees]
    plan = [Trial(cfg.name, cfg.path, s.name, s.path, o.name, i, k, trial_seed(base_seed, o.name, k, split))
            for s in sets for i, o in enumerate(s.objects) if only_object in (None, o.name)
            for k in range(trials) for cfg in trees]
    if not plan:
        raise ConfigError(f"--object: no object {only_object!r} in the selected sets")
    return plan


# ------------------------------------------------------------------------------ workers
def _run_job(t: Trial, c: Campaign) -> dict[str, Any]:
    """Run one trial in this process (worker or main) and return its results line."""
    from app.perception import load_perception
    from app.sim.domain import load_domain
    from app.sim.gap import load_gap
    from app.sim.objects import load_object_set
    from app.tree_config import load_tree_config
    from models.fast_infer import campaign_options

    cfg = cached(("tree", t.tree_ref), lambda: load_tree_config(t.tree_ref))
    if t.scene != "single" or cfg.clear is not None:
        return _run_scene_job(t, c, cfg)
    spec = cached(("set", t.set_ref), lambda: load_object_set(t.set_ref)).get(t.object)
    models = (cached(("models", str(c.weights)), lambda: load_perception(c.weights, threads=1, hardware=c.hardware,
                                                                                                   options=campaign_options()))
              if cfg.uses_models else None)
    domain = cached(("domain", c.domain), lambda: load_domain(c.domain))
    hw = cached(("hardware", str(c.hardware)), lambda: load_hardware(c.hardware))
    gap = cached(("gap", c.gap), lambda: load_gap(c.gap))
    t0 = time.perf_counter()
    ep = run_sim_episode(cfg, spec, t.seed, domain, models, Path(c.out) / RUNS, hardware=hw, trial=t.trial,
                         record=c.record, gap=gap)
    return {"tree": t.tree, "object": t.object, "object_set": t.object_set, "trial": t.trial, "seed": t.seed,
            "success": ep["success"], "paper_success": ep["paper_success"], "outcome": ep["tree_outcome"],
            "failed_node": ep["failed_node"], "reason": ep["reason"], "pose_error": ep["pose_error"],
            **{k: ep[k] for k in ("pose_steps", "vs_iterations", "vs_fallbacks", "vs_mode_switches", "mask_source", "ticks",
                                  "sim_time", "wall_time", "safety_refusals", "safety_clamps", "table_strikes",
                                  "object_pushed_m", "self_collisions_or_limits", "audit", "gap_sample")},
            "regrasps": int(ep.get("regrasps") or 0), "reacquisitions": int(ep.get("reacquisitions") or 0),
            "static_blobs": int(ep.get("static_blobs") or 0),
            "trial_wall_time": round(time.perf_counter() - t0, 3), "run_dir": os.path.relpath(ep["run_dir"], c.out),
            "object_index": t.object_index, "base_seed": c.base_seed, "domain": c.domain,
            "domain_sha256": c.domain_sha256, "hardware": c.hardware, "weights": c.weights if cfg.uses_models else None,
            "gap": c.gap, "gap_sha256": c.gap_sha256, "split": c.split}


def _run_scene_job(t: Trial, c: Campaign, cfg: TreeConfig) -> dict[str, Any]:
    """One multi-object scene (a grasp tree) or one clearing run (a clear_table tree)."""
    from app.perception import load_perception
    from app.scene_episode import run_clear_episode, run_scene_episode
    from app.sim.domain import load_domain
    from app.sim.gap import load_gap
    from app.sim.objects import load_object_set
    from app.sim.scene import parse_scene

    n = parse_scene(t.scene).n
    pool = [o for ref in split_names(t.set_ref) for o in cached(("set", ref), lambda ref=ref: load_object_set(ref)).objects]
    if t.scene == "single":  # a clear_table tree on a one-object table: that object
        pool = [o for o in pool if o.name == t.object]
    from models.fast_infer import campaign_options

    models = (cached(("models", str(c.weights)), lambda: load_perception(c.weights, threads=1, hardware=c.hardware,
                                                                         options=campaign_options()))
              if cfg.uses_models else None)
    domain = cached(("domain", c.domain), lambda: load_domain(c.domain))
    hw = cached(("hardware", str(c.hardware)), lambda: load_hardware(c.hardware))
    gap = cached(("gap", c.gap), lambda: load_gap(c.gap))
    run = run_clear_episode if cfg.clear is not None else run_scene_episode
    t0 = time.perf_counter()
    ep = run(cfg, pool, n, t.seed, domain, models, Path(c.out) / RUNS, hardware=hw, trial=t.trial, record=c.record,
             gap=gap)
    keep = ("scene_objects", "pose_steps", "vs_iterations", "vs_fallbacks", "vs_mode_switches", "mask_source", "ticks",
            "sim_time", "wall_time", "safety_refusals", "safety_clamps", "table_strikes", "lifted", "off_table",
            "grasped_object", "objects", "placed", "cleared", "n_placed", "n_cleared", "picks_attempted",
            "picks_placed", "picks", "pick_failures", "picks_per_hour", "end", "self_collisions_or_limits", "audit",
            "final_positions", "gap_sample")
    return {"tree": t.tree, "object": t.object, "object_set": t.object_set, "trial": t.trial, "seed": t.seed,
            "scene": t.scene, "success": ep["success"], "paper_success": ep["paper_success"],
            "outcome": ep["tree_outcome"], "failed_node": ep["failed_node"], "reason": ep["reason"],
            "pose_error": ep["pose_error"], **{k: ep[k] for k in keep if k in ep},
            "trial_wall_time": round(time.perf_counter() - t0, 3), "run_dir": os.path.relpath(ep["run_dir"], c.out),
            "object_index": t.object_index, "base_seed": c.base_seed, "domain": c.domain,
            "domain_sha256": c.domain_sha256, "hardware": c.hardware, "gap": c.gap, "gap_sha256": c.gap_sha256,
            "split": c.split}


# ------------------------------------------------------------------------------ the command
def run_evaluate(args: argparse.Namespace) -> int:
    """Run (or resume) a campaign, then write its summary files. Returns 0 when it completed."""
    from tqdm import tqdm

    from app.sim.domain import load_domain
    from app.sim.gap import gap_argument, load_gap
    from app.sim.objects import load_object_set
    from app.tree_config import load_tree_config

    out = check_output_dir(args.out, "--out")
    if getattr(args, "summarize_only", False):
        with owned(prepare_output_dir(out, command="evaluate --summarize-only", lock=True) if out.is_dir() else None):
            _summaries(out)
        return 0
    if getattr(args, "backend", "sim") != "sim":
        raise ConfigError("evaluate: campaigns run on the simulator (--backend sim)")
    if args.trials < 1 or (args.workers is not None and args.workers < 1):
        raise ConfigError(f"evaluate: expected --trials >= 1 and --workers >= 1, found {args.trials}, {args.workers}")
    trees = [load_tree_config(t) for t in split_names(args.trees)]
    sets = [load_object_set(s) for s in split_names(args.objects)]
    if not trees or not sets:
        raise ConfigError(f"evaluate: expected trees and object sets, found {args.trees!r} and {args.objects!r}")
    from app.sim.scene import parse_scene

    scene = str(parse_scene(getattr(args, "scene", "single")))
    split = getattr(args, "split", None)
    plan = plan_trials(trees, sets, args.trials, args.seed, getattr(args, "object", None), split, scene)
    domain = load_domain(args.domain)
    gap_ref = gap_argument(args)
    c = Campaign(str(out), args.seed, args.domain, domain.sha256, getattr(args, "config", None),
                 bool(getattr(args, "record", False)), getattr(args, "weights", None), gap=gap_ref,
                 gap_sha256=load_gap(gap_ref).sha256, split=split)
    if any(t.uses_models for t in trees):
        from app.weights_domain import warn_domain

        warn_domain(c.weights, args.domain)
    with owned(prepare_output_dir(out, "--out", command="evaluate", lock=True)):
        done = resume_state(out, args.resume, c)
        todo = [t for t in plan if t.key not in done]
        workers = min(args.workers or os.cpu_count() or 1, max(1, len(todo)))
        writer = ResultsWriter(out / RESULTS)
        grasped = 0
        try:
            with tqdm(total=len(plan), initial=len(plan) - len(todo), desc="evaluate", unit="trial",
                      file=sys.stderr, dynamic_ncols=True) as bar, hinted(RESUME_HINT):
                for rec in execute(_run_job, todo, c, workers):
                    writer.append(rec)
                    grasped += bool(rec["success"])
                    bar.set_postfix(grasped=grasped, refresh=False)
                    bar.update()
        finally:
            writer.close()
        summary = _summaries(out)
    print(f"{len(todo)} trials run ({len(plan) - len(todo)} already done); summary in {out / 'summary.md'}")
    for tree, by_set in summary["trees"].items():
        print("  " + tree + ": " + ", ".join(f"{s} {v['successes']}/{v['trials']}" for s, v in by_set.items()))
    return 0


def _summaries(out: Path) -> dict[str, Any]:
    """The grasp summary (:func:`summarize`), and the clearing summary when the campaign ran
    clear_table trees (:mod:`app.campaigns.clear_report`)."""
    from app.campaigns.clear_report import summarize_clearing

    summary = summarize(out)
    clearing = summarize_clearing(out)
    if clearing is not None:
        for tree, v in clearing["trees"].items():
            print(f"  {tree}: cleared {v['objects_cleared']}/{v['objects']} objects, placed {v['objects_placed']}, "
                  f"{v['picks_attempted']} picks, {v['picks_per_hour']:.0f} picks/h of simulated time; "
                  f"summary in {out / 'clearing.md'}")
    return summary


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The evaluate command's own flags (``--objects``, ``--domain``, ``--seed``, ``--config``,
    ``--object``, ``--record`` come from :func:`app.command.add_common`)."""
    p.add_argument("--trees", default="drl_gan_vs,drl_gan,vs_only", help="comma-separated tree names or YAML paths")
    p.add_argument("--trials", type=int, default=3, help="trials per object per tree (the paper: 3)")
    p.add_argument("--out", required=True, help="campaign directory (results.jsonl, summary files, runs/)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: the number of cores)")
    p.add_argument("--resume", action="store_true", help="skip the trials already in OUT/results.jsonl")
    add_campaign_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m app.campaigns.evaluate``: the CLI's common flags plus :func:`add_arguments`."""
    return standalone_parser("python -m app.campaigns.evaluate", __doc__, add_arguments)


def main(argv: list[str] | None = None) -> int:
    """``python -m app.campaigns.evaluate ...``: the evaluate command on its own, same flags and exit codes as the CLI."""
    return standalone_main("python -m app.campaigns.evaluate", __doc__, add_arguments, run_evaluate, argv)


if __name__ == "__main__":
    # Import under the package name, so that what workers unpickle is app.campaigns.evaluate's, not __main__'s.
    from app.campaigns.evaluate import main as _main

    sys.exit(_main())
