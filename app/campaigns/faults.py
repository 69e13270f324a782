"""The fault campaign: ``python -m app faults`` measures how a tree copes with each fault.

Every (trial, kind) is one simulated episode with the robot behind the fault wrappers of
:mod:`app.robot.fault_injection` (``config/faults.yaml`` says when each kind fires and how), or,
for the checkpoint kinds, one load of the models from a damaged weights directory. Trials run on
the campaign engine (:mod:`app.campaigns.engine`: seeds, workers, the fsync'ed resumable
``results.jsonl``, torn-line repair); ``DIR/summary.json`` and ``DIR/summary.md`` are rebuilt
from ``results.jsonl`` alone (:func:`app.campaigns.fault_report.summarize_faults`).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from app import CONFIG_DIR
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
from app.campaigns.fault_report import BASELINE, summarize_faults
from app.campaigns.report import RESULTS, read_results
from app.command import standalone_main, standalone_parser
from app.config import file_sha256
from app.errors import CheckpointError, ConfigError, OutputWriteError
from app.outputs import check_output_dir, hinted, owned, prepare_output_dir
from app.robot.fault_injection import (
    CHECKPOINT_KINDS,
    KINDS,
    FaultSpec,
    faulty_weights,
    inject_sim,
    load_faults,
)

SHOWN_INJECTIONS = 5  # injections kept per results line


# ------------------------------------------------------------------------------ model loader
def checkpoint_trial(spec: FaultSpec, source: Path, rng: np.random.Generator) -> dict[str, Any]:
    """Load the models from a damaged copy; the fault is handled when the loader refuses it with
    a one-line :class:`~app.errors.CheckpointError` (exit code 2) before any tick."""
    from app.perception import load_perception

    with tempfile.TemporaryDirectory(prefix="faulty_weights_") as tmp:
        weights = faulty_weights(spec, source, Path(tmp), rng)
        try:
            load_perception(weights, threads=1)
        except CheckpointError as e:
            reason = str(e).replace(tmp, "<weights>")
            ok = e.exit_code == 2 and bool(reason) and "\n" not in reason
            return {"success": ok, "outcome": "refused", "failed_node": "(model loader)", "reason": reason,
                    "exit_code": e.exit_code, "exception": False, "ticks": 0}
        except Exception as e:  # any other escape is what the campaign counts
            return {"success": False, "outcome": "error", "failed_node": "(model loader)",
                    "reason": f"unhandled {type(e).__name__}: {e}".splitlines()[0], "exit_code": 1,
                    "exception": True, "exception_type": type(e).__name__, "ticks": 0}
    return {"success": False, "outcome": "loaded", "failed_node": "(model loader)", "exit_code": 0,
            "reason": f"the loader accepted a {spec.kind} weights directory", "exception": False, "ticks": 0}


# ------------------------------------------------------------------------------ campaign
@dataclass(frozen=True)
class FaultTrial:
    """One episode (or loader trial) of the campaign."""

    kind: str
    tree: str
    tree_ref: str
    object_set: str
    set_ref: str
    object: str
    object_index: int
    trial: int
    seed: int

    @property
    def case(self) -> str:
        """``TREE:KIND``: the results line's ``tree`` field, so evaluate's resume keys fit."""
        return f"{self.tree}:{self.kind}"

    @property
    def key(self) -> tuple[str, str, int]:
        """(case, object, trial): what resume matches on."""
        return self.case, self.object, self.trial


@dataclass(frozen=True)
class FaultCampaign:
    """What every trial shares: the evaluate campaign's fields, the faults and the models."""

    campaign: Campaign
    faults: dict[str, FaultSpec]
    faults_sha256: str
    weights: str  # weights directory: the models, and the source of the damaged copies
    models_factory: Callable[[Any], Any] | None = None  # session -> model bundle (tests)


def plan_faults(tree: Any, sets: Sequence[Any], kinds: Sequence[str], trials: int, base_seed: int,
                split: str | None = None) -> list[FaultTrial]:
    """Every (trial, kind), kinds innermost; trial ``k`` uses object ``k mod n`` over the sets, with
    :func:`app.campaigns.engine.trial_seed` (of ``split``), so every kind meets the same placements."""
    objects = [(s, i, o) for s in sets for i, o in enumerate(s.objects)]
    if not objects:
        raise ConfigError("faults: no objects in the selected sets")
    plan = []
    for k in range(trials):
        s, i, o = objects[k % len(objects)]
        plan += [FaultTrial(kind, tree.name, tree.path, s.name, s.path, o.name, i, k,
                            trial_seed(base_seed, o.name, k, split)) for kind in kinds]
    return plan


def _kind_rng(t: FaultTrial) -> np.random.Generator:
    return np.random.default_rng([t.seed, (KINDS + (BASELINE,)).index(t.kind)])


def _episode(t: FaultTrial, fc: FaultCampaign) -> dict[str, Any]:
    """One simulated episode of ``t`` with its fault, scored by :func:`app.episode.run_sim_episode`."""
    from app.episode import run_sim_episode
    from app.hardware_config import load_hardware
    from app.perception import load_perception
    from app.sim.domain import load_domain
    from app.sim.gap import load_gap
    from app.sim.objects import load_object_set
    from app.sim.session import SimSession
    from app.tree_config import load_tree_config

    c = fc.campaign
    cfg = cached(("tree", t.tree_ref), lambda: load_tree_config(t.tree_ref))
    spec = cached(("set", t.set_ref), lambda: load_object_set(t.set_ref)).get(t.object)
    domain = cached(("domain", c.domain), lambda: load_domain(c.domain))
    hw = cached(("hardware", str(c.hardware)), lambda: load_hardware(c.hardware))
    gap = cached(("gap", c.gap), lambda: load_gap(c.gap))
    session = SimSession(hw, domain=domain, seed=t.seed, deformable=spec.shape == "soft")
    try:
        specs = [] if t.kind == BASELINE else [fc.faults[t.kind]]
        inj = inject_sim(session, specs, _kind_rng(t))
        if fc.models_factory is not None:
            models = fc.models_factory(session)
        else:
            models = (cached(("models", fc.weights), lambda: load_perception(fc.weights, threads=1))
                      if cfg.uses_models else None)
        ep = run_sim_episode(cfg, spec, t.seed, domain, models, Path(c.out) / RUNS / t.kind, hardware=hw,
                             session=session, trial=t.trial, gap=gap)
    finally:
        session.close()
    extra = ep.get("extra") or {}
    assert inj.arm is not None
    return {"success": ep["success"], "outcome": ep["tree_outcome"], "failed_node": ep["failed_node"],
            "reason": ep["reason"], "exception": bool(extra.get("exception")),
            "exception_type": extra.get("exception_type"), "exit_code": None,
            "commands": inj.arm.commands, "refused_in_reflex": inj.arm.refused,
            "injected": len(inj.events), "injections": [asdict(e) for e in inj.events[:SHOWN_INJECTIONS]],
            **{k: ep[k] for k in ("ticks", "sim_time", "wall_time", "vs_iterations", "safety_refusals",
                                  "safety_clamps", "table_strikes", "object_pushed_m", "self_collisions_or_limits",
                                  "audit", "gap_sample")},
            "regrasps": int(ep.get("regrasps") or 0), "reacquisitions": int(ep.get("reacquisitions") or 0),
            "static_blobs": int(ep.get("static_blobs") or 0),
            "run_dir": os.path.relpath(ep["run_dir"], c.out)}


def run_fault_job(t: FaultTrial, fc: FaultCampaign) -> dict[str, Any]:
    """Run one trial in this process and return its results line (never raises an app error:
    anything that escapes the episode is recorded as an unhandled exception)."""
    t0 = time.perf_counter()
    try:
        if t.kind in CHECKPOINT_KINDS:
            body = checkpoint_trial(fc.faults[t.kind], Path(fc.weights), _kind_rng(t))
            body.update(injected=1, table_strikes=0, self_collisions_or_limits=0)
        else:
            body = _episode(t, fc)
    except OutputWriteError:  # the campaign's own output failed: stop it (not the tree's fault)
        raise
    except Exception as e:  # counted, never hidden: the campaign's "unhandled exceptions"
        body = {"success": False, "outcome": "error", "failed_node": "(fault campaign)",
                "reason": f"unhandled {type(e).__name__}: {e}".splitlines()[0], "exception": True,
                "exception_type": type(e).__name__, "table_strikes": 0, "self_collisions_or_limits": 0,
                "injected": 0}
    c = fc.campaign
    spec = fc.faults.get(t.kind)
    return {"tree": t.case, "tree_name": t.tree, "kind": t.kind, "object": t.object, "object_set": t.object_set,
            "object_index": t.object_index, "trial": t.trial, "seed": t.seed, **body,
            "fault": asdict(spec) if spec and t.kind != BASELINE else None,
            "trial_wall_time": round(time.perf_counter() - t0, 3), "base_seed": c.base_seed, "domain": c.domain,
            "domain_sha256": c.domain_sha256, "hardware": c.hardware, "faults_sha256": fc.faults_sha256,
            "gap": c.gap, "gap_sha256": c.gap_sha256, "split": c.split}


def run_faults(args: argparse.Namespace, models_factory: Callable[[Any], Any] | None = None) -> int:
    """Run (or resume) a fault campaign, then write its summary files.

    Args:
        args: The parsed flags (:func:`add_arguments` and :func:`app.command.add_common`).
        models_factory: Builds the model bundle from the episode's session instead of loading
            the weights (tests: ``TruthModels``); None loads ``--weights``.

    Returns:
        0 when it completed with no table strike, no joint-limit hit or unreachable target, no
        unhandled exception and no unnamed failure; 1 otherwise.
    """
    from tqdm import tqdm

    from app.perception import WEIGHTS_DIR, load_perception
    from app.sim.domain import load_domain
    from app.sim.gap import gap_argument, load_gap
    from app.sim.objects import load_object_set
    from app.tree_config import load_tree_config

    out = check_output_dir(args.out, "--out")
    if args.summarize_only:
        with owned(prepare_output_dir(out, command="faults --summarize-only", lock=True) if out.is_dir() else None):
            return _report(summarize_faults(out))
    if args.backend != "sim":
        raise ConfigError("faults: campaigns run on the simulator (--backend sim)")
    if args.trials < 1 or (args.workers is not None and args.workers < 1):
        raise ConfigError(f"faults: expected --trials >= 1 and --workers >= 1, found {args.trials}, {args.workers}")
    kinds = split_names(args.kinds) if args.kinds else list(KINDS)
    unknown = [k for k in kinds if k not in (*KINDS, BASELINE)]
    if unknown or not kinds:
        raise ConfigError(f"--kinds: unknown {unknown or kinds} (expected some of {[*KINDS, BASELINE]})")
    kinds += [] if args.no_baseline or BASELINE in kinds else [BASELINE]
    faults_path = Path(args.faults) if args.faults else CONFIG_DIR / "faults.yaml"
    faults = load_faults(faults_path)
    tree = load_tree_config(args.tree)
    weights = str(Path(args.weights) if args.weights else WEIGHTS_DIR)
    if tree.uses_models and models_factory is None and set(kinds) - CHECKPOINT_KINDS:
        load_perception(weights, threads=1)  # no weights: exit 2 now, not one failure per trial
        from app.weights_domain import warn_domain

        warn_domain(weights, args.domain)
    sets = [load_object_set(s) for s in split_names(args.objects)]
    split = getattr(args, "split", None)
    plan = plan_faults(tree, sets, kinds, args.trials, args.seed, split)
    domain = load_domain(args.domain)
    gap_ref = gap_argument(args)
    c = Campaign(str(out), args.seed, args.domain, domain.sha256, args.config, gap=gap_ref,
                 gap_sha256=load_gap(gap_ref).sha256, split=split)
    fc = FaultCampaign(c, faults, file_sha256(faults_path), weights, models_factory)
    with owned(prepare_output_dir(out, "--out", command="faults", lock=True)):
        done = resume_state(out, args.resume, c)
        previous, _ = read_results(out / RESULTS)
        if previous and previous[0].get("faults_sha256") != fc.faults_sha256:
            raise ConfigError(f"{out / RESULTS}: --resume with another faults file than {faults_path}")
        todo = [t for t in plan if t.key not in done]
        workers = min(args.workers or os.cpu_count() or 1, max(1, len(todo)))
        writer = ResultsWriter(out / RESULTS)
        try:
            with tqdm(total=len(plan), initial=len(plan) - len(todo), desc="faults", unit="trial",
                      file=sys.stderr, dynamic_ncols=True) as bar, hinted(RESUME_HINT):
                for rec in execute(run_fault_job, todo, fc, workers):
                    writer.append(rec)
                    bar.update()
        finally:
            writer.close()
        print(f"{len(todo)} trials run ({len(plan) - len(todo)} already done); summary in {out / 'summary.md'}")
        return _report(summarize_faults(out))


def _report(summary: dict[str, Any]) -> int:
    for kind, v in summary["faults"].items():
        print(f"  {kind}: {v['successes']}/{v['trials']} ({v['outcomes']}), table strikes {v['table_strikes']}, "
              f"limits/unreachable {v['self_collisions_or_limits']}, "
              f"unhandled {v['unhandled_exceptions']}, unnamed {v['unnamed_failures']}")
    return 0 if summary["checks"]["all_zero"] else 1


# ------------------------------------------------------------------------------ the command
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The faults command's own flags (``--objects``, ``--domain``, ``--seed``, ``--config`` come
    from :func:`app.command.add_common`)."""
    p.add_argument("--out", required=True, help="campaign directory (results.jsonl, summary files, runs/)")
    p.add_argument("--trials", type=int, default=20, help="trials per fault kind (objects cycled over the sets)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: the number of cores)")
    p.add_argument("--resume", action="store_true", help="skip the trials already in OUT/results.jsonl")
    p.add_argument("--kinds", default=None, help=f"comma-separated fault kinds (default: all of {', '.join(KINDS)})")
    p.add_argument("--tree", default="drl_gan_vs", help="tree name or YAML path")
    p.add_argument("--faults", default=None, help="fault file (default config/faults.yaml)")
    p.add_argument("--no-baseline", action="store_true", help="skip the fault-free trials ('none')")
    add_campaign_arguments(p)


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m app.campaigns.faults``: the CLI's common flags plus :func:`add_arguments`."""
    return standalone_parser("python -m app.campaigns.faults", __doc__, add_arguments)


def main(argv: list[str] | None = None) -> int:
    """``python -m app.campaigns.faults ...``: the faults command on its own, same flags and exit codes as the CLI."""
    return standalone_main("python -m app.campaigns.faults", __doc__, add_arguments, run_faults, argv)


if __name__ == "__main__":
    # Import under the package name, so that what workers unpickle is app.campaigns.faults', not __main__'s.
    from app.campaigns.faults import main as _main

    sys.exit(_main())
