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
import hashlib
import json
import os
import sys
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.episode import run_sim_episode
from app.errors import ConfigError, SimulationError
from app.hardware_config import load_hardware
from app.report import RESULTS, read_results, summarize

if TYPE_CHECKING:  # app.trees imports torch: loaded only where a campaign runs, not by `--help`
    from app.trees import TreeConfig

RUNS = "runs"
WATCH_PERIOD_S = 0.5  # s between a worker's checks that the campaign process is still alive


# ------------------------------------------------------------------------------ the plan
def trial_seed(base_seed: int, obj: str, trial: int) -> int:
    """Seed of one trial: a function of the campaign seed, the object's name and the trial index
    only (never of the tree), so every tree meets the same placements and sensor noise."""
    digest = hashlib.sha256(f"{base_seed}/{obj}/{trial}".encode()).digest()
    return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF  # 31 bits: numpy and PyBullet take it


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

    @property
    def key(self) -> tuple[str, str, int]:
        """(tree, object, trial): what resume matches on."""
        return self.tree, self.object, self.trial


@dataclass(frozen=True)
class Campaign:
    """What every trial of a campaign shares."""

    out: str
    base_seed: int
    domain: str
    domain_sha256: str
    hardware: str | None
    record: bool = False


def plan_trials(trees: Sequence[TreeConfig], sets: Sequence[Any], trials: int, base_seed: int,
                only_object: str | None = None) -> list[Trial]:
    """Every (tree, object, trial), trees innermost so a partial campaign stays balanced.

    Args:
        trees: Tree variants (names must differ).
        sets: :class:`app.sim.objects.ObjectSet` s (object names must differ across them).
        trials: Trials per object per tree.
        base_seed: The campaign's ``--seed``.
        only_object: Keep only the object of this name.
    """
    names = [t.name for t in trees]
    if len(set(names)) != len(names):
        raise ConfigError(f"--trees: tree names must differ, found {names}")
    objects = [o.name for s in sets for o in s.objects]
    dup = sorted({n for n in objects if objects.count(n) > 1})
    if dup:
        raise ConfigError(f"--objects: object names must differ across sets, found {dup} twice")
    plan = [Trial(cfg.name, cfg.path, s.name, s.path, o.name, i, k, trial_seed(base_seed, o.name, k))
            for s in sets for i, o in enumerate(s.objects) if only_object in (None, o.name)
            for k in range(trials) for cfg in trees]
    if not plan:
        raise ConfigError(f"--object: no object {only_object!r} in the selected sets")
    return plan


# ------------------------------------------------------------------------------ workers
_CACHE: dict[tuple[str, ...], Any] = {}  # per process: trees, sets, domains, hardware, models


def _cached(key: tuple[str, ...], make: Callable[[], Any]) -> Any:
    if key not in _CACHE:
        _CACHE[key] = make()
    return _CACHE[key]


def _watch_parent(parent_pid: int) -> None:
    """Exit when the campaign process is gone (``kill -9``): no orphan keeps simulating."""
    while os.getppid() == parent_pid:
        time.sleep(WATCH_PERIOD_S)
    os._exit(1)


def _init_worker(parent_pid: int) -> None:
    """Worker start: one torch thread, and the parent watch."""
    import torch

    torch.set_num_threads(1)
    threading.Thread(target=_watch_parent, args=(parent_pid,), daemon=True, name="parent-watch").start()


def _run_job(t: Trial, c: Campaign) -> dict[str, Any]:
    """Run one trial in this process (worker or main) and return its results line."""
    from app.perception import load_perception
    from app.sim.domain import load_domain
    from app.sim.objects import load_object_set
    from app.trees import load_tree_config

    cfg = _cached(("tree", t.tree_ref), lambda: load_tree_config(t.tree_ref))
    spec = _cached(("set", t.set_ref), lambda: load_object_set(t.set_ref)).get(t.object)
    models = _cached(("models",), lambda: load_perception(threads=1)) if cfg.uses_models else None
    domain = _cached(("domain", c.domain), lambda: load_domain(c.domain))
    hw = _cached(("hardware", str(c.hardware)), lambda: load_hardware(c.hardware))
    t0 = time.perf_counter()
    ep = run_sim_episode(cfg, spec, t.seed, domain, models, Path(c.out) / RUNS, hardware=hw, trial=t.trial, record=c.record)
    return {"tree": t.tree, "object": t.object, "object_set": t.object_set, "trial": t.trial, "seed": t.seed,
            "success": ep["success"], "paper_success": ep["paper_success"], "outcome": ep["tree_outcome"],
            "failed_node": ep["failed_node"], "reason": ep["reason"], "pose_error": ep["pose_error"],
            **{k: ep[k] for k in ("pose_steps", "vs_iterations", "vs_fallbacks", "vs_mode_switches", "mask_source", "ticks",
                                  "sim_time", "wall_time", "safety_refusals", "safety_clamps")},
            "regrasps": int(ep.get("regrasps") or 0), "reacquisitions": int(ep.get("reacquisitions") or 0),
            "trial_wall_time": round(time.perf_counter() - t0, 3), "run_dir": os.path.relpath(ep["run_dir"], c.out),
            "object_index": t.object_index, "base_seed": c.base_seed, "domain": c.domain,
            "domain_sha256": c.domain_sha256, "hardware": c.hardware}


def _execute(todo: list[Trial], c: Campaign, workers: int) -> Iterator[dict[str, Any]]:
    """Results lines of ``todo`` as they end: in this process (1 worker) or a spawned pool."""
    if workers <= 1:
        for t in todo:
            yield _run_job(t, c)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the workers before they import torch
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(os.getpid(),))
    try:
        for f in as_completed([pool.submit(_run_job, t, c) for t in todo]):
            yield f.result()
    except BrokenProcessPool as e:
        raise SimulationError(f"a worker process died ({e}); the finished trials are saved: rerun with "
                              f"--resume") from e
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------------------ results file
class ResultsWriter:
    """Appends one whole line per trial: a single ``write``, then flush to disk (``fsync``)."""

    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one JSON line and make it durable."""
        data = memoryview((json.dumps(record, separators=(",", ":")) + "\n").encode())
        while data:  # a regular file takes it in one write; loop only if the OS splits it
            data = data[os.write(self.fd, data):]
        os.fsync(self.fd)

    def close(self) -> None:
        """Close the file."""
        os.close(self.fd)


def _resume_state(out: Path, resume: bool, c: Campaign) -> set[tuple[str, str, int]]:
    """Keys of the trials already done; repairs a torn last line. Refuses to mix campaigns."""
    path = out / RESULTS
    records, good = read_results(path)
    if not resume:
        if path.exists() and path.stat().st_size:
            raise ConfigError(f"{path} exists: pass --resume to continue that campaign, or another --out")
        return set()
    if path.exists() and path.stat().st_size != good:
        with path.open("r+b") as f:  # drop the torn tail, durably, before appending
            f.truncate(good)
            os.fsync(f.fileno())
    for r in records[:1]:
        if (r.get("base_seed"), r.get("domain_sha256")) != (c.base_seed, c.domain_sha256):
            raise ConfigError(f"{path}: --resume with another --seed or --domain (found seed "
                              f"{r.get('base_seed')}, domain {r.get('domain')!r})")
    return {(r["tree"], r["object"], r["trial"]) for r in records}


# ------------------------------------------------------------------------------ the command
def _split(value: str) -> list[str]:
    return [v.strip() for v in value.split(",") if v.strip()]


def run_evaluate(args: argparse.Namespace) -> int:
    """Run (or resume) a campaign, then write its summary files. Returns 0 when it completed."""
    from tqdm import tqdm

    from app.sim.domain import load_domain
    from app.sim.objects import load_object_set
    from app.trees import load_tree_config

    out = Path(args.out)
    if getattr(args, "summarize_only", False):
        summarize(out)
        return 0
    if getattr(args, "backend", "sim") != "sim":
        raise ConfigError("evaluate: campaigns run on the simulator (--backend sim)")
    if args.trials < 1 or (args.workers is not None and args.workers < 1):
        raise ConfigError(f"evaluate: expected --trials >= 1 and --workers >= 1, found {args.trials}, {args.workers}")
    trees = [load_tree_config(t) for t in _split(args.trees)]
    sets = [load_object_set(s) for s in _split(args.objects)]
    if not trees or not sets:
        raise ConfigError(f"evaluate: expected trees and object sets, found {args.trees!r} and {args.objects!r}")
    plan = plan_trials(trees, sets, args.trials, args.seed, getattr(args, "object", None))
    domain = load_domain(args.domain)
    c = Campaign(str(out), args.seed, args.domain, domain.sha256, getattr(args, "config", None),
                 bool(getattr(args, "record", False)))
    out.mkdir(parents=True, exist_ok=True)
    done = _resume_state(out, args.resume, c)
    todo = [t for t in plan if t.key not in done]
    workers = min(args.workers or os.cpu_count() or 1, max(1, len(todo)))
    writer = ResultsWriter(out / RESULTS)
    grasped = 0
    try:
        with tqdm(total=len(plan), initial=len(plan) - len(todo), desc="evaluate", unit="trial",
                  file=sys.stderr, dynamic_ncols=True) as bar:
            for rec in _execute(todo, c, workers):
                writer.append(rec)
                grasped += bool(rec["success"])
                bar.set_postfix(grasped=grasped, refresh=False)
                bar.update()
    finally:
        writer.close()
    summary = summarize(out)
    print(f"{len(todo)} trials run ({len(plan) - len(todo)} already done); summary in {out / 'summary.md'}")
    for tree, by_set in summary["trees"].items():
        print("  " + tree + ": " + ", ".join(f"{s} {v['successes']}/{v['trials']}" for s, v in by_set.items()))
    return 0


def add_arguments(p: argparse.ArgumentParser) -> None:
    """The evaluate command's own flags (``--objects``, ``--domain``, ``--seed``, ``--config``,
    ``--object``, ``--record`` come from :func:`app.cli.add_common`)."""
    p.add_argument("--trees", default="drl_gan_vs,drl_gan,vs_only", help="comma-separated tree names or YAML paths")
    p.add_argument("--trials", type=int, default=3, help="trials per object per tree (the paper: 3)")
    p.add_argument("--out", required=True, help="campaign directory (results.jsonl, summary files, runs/)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: the number of cores)")
    p.add_argument("--resume", action="store_true", help="skip the trials already in OUT/results.jsonl")
    p.add_argument("--summarize-only", action="store_true", help="rebuild the summary files from results.jsonl")
    p.set_defaults(objects="seen,unseen")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m app.evaluate``: the CLI's common flags plus :func:`add_arguments`."""
    from app.cli import standalone_parser

    return standalone_parser("python -m app.evaluate", __doc__, add_arguments)


def main(argv: list[str] | None = None) -> int:
    """``python -m app.evaluate ...``: the evaluate command on its own, same flags and exit codes as the CLI."""
    from app.cli import standalone_main

    return standalone_main("python -m app.evaluate", __doc__, add_arguments, run_evaluate, argv)


if __name__ == "__main__":
    # Import under the package name, so that what workers unpickle is app.evaluate's, not __main__'s.
    from app.evaluate import main as _main

    sys.exit(_main())
