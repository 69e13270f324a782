"""``python -m app bench campaign``: wall time against simulated time of a few fixed trials.

The trials are those of an evaluation campaign (:func:`app.evaluate.plan_trials`: the first
``--per-tree`` objects of the ``seen`` set, trial 0, placements seeded by ``--seed``), run one
after the other in this process with one torch thread, as one campaign worker runs them. The
model bundle is loaded before the clock starts (a worker loads it once).

Per tree: ``wall_over_sim`` = the trials' episode wall time / their simulated time (the tree's
ticks; the issue's target is <= 0.5 for ``drl_gan_vs`` and ``vs_only``), and
``trial_wall_over_sim`` = the whole trial (reset, the object's settling, the episode, scoring)
over the same simulated time. Every trial's outcome is in the JSON, so a run before and after a
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


def bench_campaign(trees: str = DEFAULT_TREES, objects: str = "seen", per_tree: int = 3, seed: int = 0,
                   threads: int = 1) -> dict[str, Any]:
    """Run the fixed trials and time them.

    Args:
        trees: Comma-separated tree names.
        objects: Object set; its first ``per_tree`` objects are used, one trial each.
        per_tree: Trials per tree.
        seed: Campaign seed (placements and sensor noise: :func:`app.evaluate.trial_seed`).
        threads: Torch threads (a campaign worker uses 1).

    Returns:
        ``{"trees": {tree: {"wall_over_sim", "trial_wall_over_sim", "sim_s", "wall_s",
        "trial_wall_s", "trials"}}, "trials": [one record per trial], ...}`` (seconds).
    """
    import torch

    from app.evaluate import Campaign, _cached, _run_job, plan_trials
    from app.perception import load_perception
    from app.sim.domain import load_domain
    from app.sim.objects import load_object_set
    from app.trees import load_tree_config

    torch.set_num_threads(threads)
    cfgs = [load_tree_config(t.strip()) for t in trees.split(",") if t.strip()]
    oset = load_object_set(objects)
    names = [o.name for o in oset.objects[:per_tree]]
    plan = [t for name in names for t in plan_trials(cfgs, [oset], 1, seed, name)]
    if any(c.uses_models for c in cfgs):
        _cached(("models",), lambda: load_perception(threads=threads))  # loaded once, as in a worker
    domain = load_domain("real")
    records: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="bench_campaign_") as out:
        c = Campaign(out, seed, "real", domain.sha256, None)
        for t in plan:
            r = _run_job(t, c)
            records.append({"tree": t.tree, "object": t.object, "seed": t.seed, "sim_time": r["sim_time"],
                            "wall_time": r["wall_time"], "trial_wall_time": r["trial_wall_time"],
                            **{k: r[k] for k in OUTCOME_KEYS}})
    per: dict[str, Any] = {}
    for cfg in cfgs:
        rs = [r for r in records if r["tree"] == cfg.name]
        sim, wall, trial = (sum(r[k] for r in rs) for k in ("sim_time", "wall_time", "trial_wall_time"))
        per[cfg.name] = {"wall_over_sim": wall / sim if sim else None, "trial_wall_over_sim": trial / sim if sim else None,
                         "sim_s": sim, "wall_s": wall, "trial_wall_s": trial, "trials": len(rs)}
    return {"trees": per, "trials": records, "seed": seed, "objects": objects, "per_tree": per_tree,
            "threads": threads, "target_wall_over_sim": 0.5}


def run_campaign_bench(args: argparse.Namespace) -> int:
    """Entry point of ``python -m app bench campaign``."""
    res = bench_campaign(getattr(args, "trees", None) or DEFAULT_TREES, "seen", max(1, getattr(args, "per_tree", 3)),
                         args.seed, getattr(args, "threads", None) or 1)
    if getattr(args, "out", None):
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(res, indent=1) + "\n")
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"campaign trials, one worker, {res['threads']} torch thread(s), seed {res['seed']}:")
    for r in res["trials"]:
        print(f"  {r['tree']:12s} {r['object']:14s} {r['outcome']:8s} sim {r['sim_time']:6.2f} s  "
              f"wall {r['wall_time']:6.2f} s  (trial {r['trial_wall_time']:6.2f} s)")
    for tree, v in res["trees"].items():
        print(f"  {tree:12s} wall / sim = {v['wall_over_sim']:.2f} (whole trials {v['trial_wall_over_sim']:.2f}; "
              f"target <= {res['target_wall_over_sim']})")
    return 0
