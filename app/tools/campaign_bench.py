"""``python -m app bench campaign``: wall time against simulated time of a few fixed trials.

The trials are those of an evaluation campaign (:func:`app.campaigns.evaluate.plan_trials`: the first
``--per-tree`` objects of the ``seen`` set, trial 0, placements seeded by ``--seed``), run one
after the other in this process with one torch thread, as one campaign worker runs them (the
shipped levers: :mod:`app.sim.speed`, ``config/inference.yaml`` with ``campaign_compile``). The
model bundle is loaded (and compiled) before the clock starts: a worker does that once.
``--compare`` runs every trial also with every lever off ("before"), interleaved, in one run.

Per tree: ``wall_over_sim`` = the trials' episode wall time / their simulated time (the tree's
ticks; the issue's target is <= 0.5 for ``drl_gan_vs`` and ``vs_only``), and
``trial_wall_over_sim`` = the whole trial (reset, the object's settling, the episode, scoring)
over the same simulated time, and ``trial_cpu_over_sim`` its process CPU time over the simulated
time (with one torch thread, what the wall time would be on an idle core: a check when the
machine is shared). Every trial's outcome is in the JSON, so a run before and after a
change can be compared (``tests/test_campaign_bench.py`` pins two of them).
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

DEFAULT_TREES = "drl_gan_vs,vs_only"
OUTCOME_KEYS = ("success", "paper_success", "outcome", "failed_node", "pose_steps", "vs_iterations",
                "mask_source", "ticks", "pose_error")


CONFIGS = ("before", "after")  # before: the simulation and inference of before issue 15; after: the levers


def _levers(name: str) -> tuple[Any, Any]:
    """(sim speed levers, inference options) of a configuration."""
    from app.sim.speed import EXACT, FAST
    from models.fast_infer import EAGER, campaign_options

    return (EXACT, EAGER) if name == "before" else (FAST, campaign_options())


_config = _levers  # looked up at call time: tests swap it (e.g. no compilation)


def bench_campaign(trees: str = DEFAULT_TREES, objects: str = "seen", per_tree: int = 3, seed: int = 0,
                   threads: int = 1, configs: tuple[str, ...] = ("after",),
                   only: list[tuple[str, str]] | None = None) -> dict[str, Any]:
    """Run the fixed trials in each configuration and time them.

    Args:
        trees: Comma-separated tree names.
        objects: Object set; its first ``per_tree`` objects are used, one trial each.
        per_tree: Trials per tree.
        seed: Campaign seed (placements and sensor noise: :func:`app.campaigns.engine.trial_seed`).
        threads: Torch threads (a campaign worker uses 1).
        configs: "after" (the shipped levers, as a campaign worker runs) and/or "before" (every
            lever off); with both, each trial runs in both one after the other (same load).
        only: Keep only these (tree, object) trials (tests).

    Returns:
        ``{"configs": {config: {"trees": {tree: {"wall_over_sim", "trial_wall_over_sim", "sim_s",
        "wall_s", "trial_wall_s", "trials"}}, "trials": [...]}}, ...}`` (seconds).
    """
    import time

    import torch

    from app.campaigns.evaluate import plan_trials
    from app.episode import run_sim_episode
    from app.hardware_config import load_hardware
    from app.perception import load_perception
    from app.sim.domain import load_domain
    from app.sim.objects import load_object_set
    from app.sim.speed import sim_speed
    from app.tree_config import load_tree_config

    torch.set_num_threads(threads)
    cfgs = {c.name: c for c in (load_tree_config(t.strip()) for t in trees.split(",") if t.strip())}
    oset = load_object_set(objects)
    names = [o.name for o in oset.objects[:per_tree]] if only is None else sorted({o for _, o in only})
    plan = [t for name in names for t in plan_trials(list(cfgs.values()), [oset], 1, seed, name)
            if only is None or (t.tree, t.object) in only]
    hw, domain = load_hardware(None), load_domain("real")
    models: dict[str, Any] = {}
    for c in configs:  # loaded (and compiled) once, before the clock starts, as in a worker
        if any(cfg.uses_models for cfg in cfgs.values()):
            models[c] = load_perception(threads=threads, options=_config(c)[1])
            warm = getattr(models[c].gan, "warm_up", None)
            if warm is not None:
                warm()
    records: dict[str, list[dict[str, Any]]] = {c: [] for c in configs}
    with tempfile.TemporaryDirectory(prefix="bench_campaign_") as out:
        for t in plan:
            for c in configs:
                speed, _ = _config(c)
                t0, c0 = time.perf_counter(), time.process_time()
                with sim_speed(speed):
                    ep = run_sim_episode(cfgs[t.tree], oset.get(t.object), t.seed, domain, models.get(c), Path(out) / c,
                                         hardware=hw, trial=t.trial)
                records[c].append({"tree": t.tree, "object": t.object, "seed": t.seed, "sim_time": ep["sim_time"],
                                   "wall_time": ep["wall_time"], "trial_wall_time": time.perf_counter() - t0,
                                   "trial_cpu_time": time.process_time() - c0,
                                   "outcome": ep["tree_outcome"], **{k: ep[k] for k in OUTCOME_KEYS if k != "outcome"}})
    res: dict[str, Any] = {}
    for c in configs:
        per: dict[str, Any] = {}
        for name in cfgs:
            rs = [r for r in records[c] if r["tree"] == name]
            sim, wall, trial, cpu = (sum(r[k] for r in rs) for k in ("sim_time", "wall_time", "trial_wall_time",
                                                                     "trial_cpu_time"))
            per[name] = {"wall_over_sim": wall / sim if sim else None,
                         "trial_wall_over_sim": trial / sim if sim else None,
                         "trial_cpu_over_sim": cpu / sim if sim else None,
                         "sim_s": sim, "wall_s": wall, "trial_wall_s": trial, "trials": len(rs)}
        res[c] = {"trees": per, "trials": records[c]}
    return {"configs": res, "seed": seed, "objects": objects, "per_tree": per_tree, "threads": threads,
            "target_wall_over_sim": 0.5}


def run_campaign_bench(args: argparse.Namespace) -> int:
    """Entry point of ``python -m app bench campaign``."""
    configs = CONFIGS if getattr(args, "compare", False) else ("after",)
    res = bench_campaign(getattr(args, "trees", None) or DEFAULT_TREES, "seen", max(1, getattr(args, "per_tree", 3)),
                         args.seed, getattr(args, "threads", None) or 1, configs)
    if getattr(args, "out", None):
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"campaign trials, one worker, {res['threads']} torch thread(s), seed {res['seed']}:")
    for c, cr in res["configs"].items():
        for r in cr["trials"]:
            print(f"  {c:6s} {r['tree']:12s} {r['object']:14s} {r['outcome']:8s} sim {r['sim_time']:6.2f} s  "
                  f"wall {r['wall_time']:6.2f} s  (trial {r['trial_wall_time']:6.2f} s)  ticks {r['ticks']}")
        for tree, v in cr["trees"].items():
            print(f"  {c:6s} {tree:12s} wall / sim = {v['wall_over_sim']:.2f} (whole trials "
                  f"{v['trial_wall_over_sim']:.2f}, their CPU time {v['trial_cpu_over_sim']:.2f}; "
                  f"target <= {res['target_wall_over_sim']})")
    return 0
