"""The campaign engine shared by :mod:`app.campaigns.evaluate` and :mod:`app.campaigns.faults`.

Seeds of trials, the per-process cache of loaded parts, the worker pool (spawned processes, one
torch thread each, gone when the campaign process dies), the fsync'ed append-only
``results.jsonl`` writer, and ``--resume`` (skip the trials already there, drop a line torn by
``kill -9``, refuse to mix campaigns). A campaign module plans its trials, writes a module-level
job function (trial, shared) -> results line, and hands both to :func:`execute`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from app.campaigns.report import RESULTS, read_results
from app.command import add_gap
from app.errors import ConfigError, SimulationError
from app.outputs import AppendFile, write_guard

RUNS = "runs"  # the campaign directory's folder of run directories
WATCH_PERIOD_S = 0.5  # s between a worker's checks that the campaign process is still alive
_T = TypeVar("_T")  # a campaign's trial
_C = TypeVar("_C")  # what every trial of a campaign shares


# ------------------------------------------------------------------------------ seeds
SPLITS = ("dev", "test")
SPLIT_PARITY = {"dev": 0, "test": 1}  # dev seeds are even, test seeds odd: the streams never meet


def trial_seed(base_seed: int, obj: str, trial: int, split: str | None = None) -> int:
    """Seed of one trial: a function of the split, the campaign seed, the object's name and the
    trial index only (never of the tree), so every tree meets the same placements, sensor noise
    and physical gap.

    Args:
        base_seed: The campaign's ``--seed``.
        obj: Object name.
        trial: Trial index.
        split: ``dev`` (tune on it: even seeds from sha256('dev/SEED/OBJECT/TRIAL')), ``test``
            (report it: odd seeds from sha256('test/SEED/OBJECT/TRIAL')), or None for the legacy
            stream sha256('SEED/OBJECT/TRIAL') that every campaign before issue 10 used.
    """
    if split is None:
        digest = hashlib.sha256(f"{base_seed}/{obj}/{trial}".encode()).digest()
        return int.from_bytes(digest[:4], "big") & 0x7FFFFFFF  # 31 bits: numpy and PyBullet take it
    if split not in SPLIT_PARITY:
        raise ConfigError(f"--split: expected one of {list(SPLITS)}, found {split!r}")
    digest = hashlib.sha256(f"{split}/{base_seed}/{obj}/{trial}".encode()).digest()
    return ((int.from_bytes(digest[:4], "big") & 0x3FFFFFFF) << 1) | SPLIT_PARITY[split]  # 31 bits


@dataclass(frozen=True)
class Campaign:
    """What every trial of a campaign shares."""

    out: str
    base_seed: int
    domain: str
    domain_sha256: str
    hardware: str | None
    record: bool = False
    weights: str | None = None  # weights directory of the models (None: the shipped ones)
    gap: str = "none"  # name or path that load_gap takes
    gap_sha256: str = ""
    split: str | None = None  # dev, test, or None (the legacy seed stream)



# ------------------------------------------------------------------------------ workers
_CACHE: dict[tuple[str, ...], Any] = {}  # per process: trees, sets, domains, hardware, models


def cached(key: tuple[str, ...], make: Callable[[], Any]) -> Any:
    """``make()``, built once per process under ``key`` (workers keep it across trials)."""
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


def execute(job: Callable[[_T, _C], dict[str, Any]], todo: Sequence[_T], shared: _C,
            workers: int) -> Iterator[dict[str, Any]]:
    """Results lines of ``job(trial, shared)`` for each trial of ``todo``, as they end: in this
    process (1 worker) or a spawned pool (one torch thread per worker; a worker exits when the
    campaign process dies). ``job`` must be a module-level function, so workers can unpickle it."""
    if workers <= 1:
        for t in todo:
            yield job(t, shared)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    os.environ["OMP_NUM_THREADS"] = "1"  # inherited by the workers before they import torch
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(os.getpid(),))
    try:
        for f in as_completed([pool.submit(job, t, shared) for t in todo]):
            yield f.result()
    except BrokenProcessPool as e:
        raise SimulationError(f"a worker process died ({e}); the finished trials are saved: rerun with "
                              f"--resume") from e
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


# ------------------------------------------------------------------------------ results file
RESUME_HINT = "fix it and rerun the same command with --resume"


class ResultsWriter:
    """Appends one whole line per trial: a single ``write``, then flush to disk (``fsync``).

    A write cut by a full disk is cut back to the last whole line, and a results file whose
    folder was removed is refused (:class:`~app.outputs.AppendFile`).

    Raises:
        OutputWriteError: The line could not be written (exit code 4; the campaign resumes).
    """

    def __init__(self, path: Path) -> None:
        self.file = AppendFile(path, sync=True, hint=RESUME_HINT)

    def append(self, record: dict[str, Any]) -> None:
        """Write ``record`` as one JSON line and make it durable."""
        self.file.append((json.dumps(record, separators=(",", ":")) + "\n").encode())

    def close(self) -> None:
        """Close the file."""
        self.file.close()


def resume_state(out: Path, resume: bool, c: Campaign) -> set[tuple[str, str, int]]:
    """Keys of the trials already done; repairs a torn last line. Refuses to mix campaigns."""
    path = out / RESULTS
    records, good = read_results(path)
    if not resume:
        if path.exists() and path.stat().st_size:
            raise ConfigError(f"{path} exists: pass --resume to continue that campaign, or another --out")
        return set()
    if path.exists() and path.stat().st_size != good:
        with write_guard(path, RESUME_HINT), path.open("r+b") as f:  # drop the torn tail, durably
            f.truncate(good)
            os.fsync(f.fileno())
    for r in records[:1]:
        if (r.get("base_seed"), r.get("domain_sha256")) != (c.base_seed, c.domain_sha256):
            raise ConfigError(f"{path}: --resume with another --seed or --domain (found seed "
                              f"{r.get('base_seed')}, domain {r.get('domain')!r})")
        if (r.get("gap_sha256", ""), r.get("split")) != (c.gap_sha256, c.split):
            raise ConfigError(f"{path}: --resume with another --gap or --split (found gap {r.get('gap')!r}, "
                              f"split {r.get('split')!r})")
    return {(r["tree"], r["object"], r["trial"]) for r in records}


def split_names(value: str) -> list[str]:
    """The non-empty, stripped items of a comma-separated flag value."""
    return [v.strip() for v in value.split(",") if v.strip()]


def add_campaign_arguments(p: argparse.ArgumentParser) -> None:
    """The flags every campaign command shares after its own: ``--summarize-only``, ``--gap``,
    ``--split``, and ``seen,unseen`` as the default object sets."""
    p.add_argument("--summarize-only", action="store_true", help="rebuild the summary files from results.jsonl")
    add_gap(p)
    p.add_argument("--split", choices=SPLITS, default=None,
                   help="seed stream: dev (tune on it) or test (report it); default: the legacy stream of "
                        "the campaigns before the split existed")
    p.set_defaults(objects="seen,unseen")
