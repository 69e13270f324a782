"""Structured logs: one JSON-lines file per run (structlog), plus a short console summary.

A run directory holds ``ticks.jsonl`` (one record per tick and an ``episode_end`` record),
``episode.json`` (the outcome, written last) and, while the episode runs, ``RUNNING`` (so an
interrupted run is never mistaken for a result).
"""

from __future__ import annotations

import datetime as _dt
import json
from pathlib import Path
from typing import Any

import numpy as np
import structlog

from app.outputs import AppendFile, atomic_write_text, sync_folder, write_guard


def _plain(obj: Any) -> Any:
    """JSON-friendly copy of numpy scalars/arrays and dataclass-like objects."""
    if isinstance(obj, (np.floating, np.integer)):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    return obj


def _to_plain(_: Any, __: str, event: dict[str, Any]) -> dict[str, Any]:
    return _plain(event)


class _LineFile:
    """The file-like end structlog writes to: each record one whole append (:class:`AppendFile`),
    so a full disk or a removed folder raises :class:`~app.errors.OutputWriteError` at once."""

    def __init__(self, path: Path) -> None:
        self.file = AppendFile(path)

    def write(self, text: str) -> None:
        self.file.append(text.encode("utf-8"))

    def flush(self) -> None:
        """Nothing to do: every record went to the OS whole."""

    @property
    def closed(self) -> bool:
        """Whether the file was closed."""
        return self.file.fd is None

    def close(self) -> None:
        self.file.close()


class RunLog:
    """A JSON-lines structlog logger bound to one file, closed with the run.

    Raises:
        OutputWriteError: When the file cannot be created or written (exit code 4).
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._file = _LineFile(path)
        self.log = structlog.wrap_logger(
            structlog.WriteLogger(self._file),  # type: ignore[arg-type]
            processors=[structlog.processors.add_log_level, _to_plain,
                        structlog.processors.JSONRenderer(default=str)],
        )

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def make_run_dir(log_dir: str | Path, tree: str, obj: str, seed: int, episode: int) -> Path:
    """A new run directory ``LOG_DIR/TREE__OBJECT__sSEED_eEP__TIME``, born with its RUNNING marker.

    The directory is made under a hidden staging name, given the marker, then renamed into place
    (a rename is atomic), so a kill -9 at any point never leaves a visible run directory without
    either ``RUNNING`` or ``episode.json``; at worst a hidden ``.new-*`` folder stays behind.
    """
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S-%f")
    name = f"{tree}__{obj}__s{seed}_e{episode}__{stamp}"
    d = Path(log_dir) / name
    staging = Path(log_dir) / f".new-{name}"
    with write_guard(d):
        staging.mkdir(parents=True, exist_ok=False)
        (staging / "RUNNING").write_text("episode in progress; absent once episode.json is written\n")
        if d.exists():
            raise FileExistsError(f"run directory already exists: {d}")
        staging.rename(d)
    return d


def finish_run_dir(run_dir: Path, summary: dict[str, Any]) -> None:
    """Write ``episode.json`` atomically, then remove the RUNNING marker.

    Raises:
        OutputWriteError: The write failed (the marker stays: the run is not a result).
    """
    # The marker goes right after the rename (a kill -9 between them is a microsecond window),
    # then both are made durable.
    atomic_write_text(run_dir / "episode.json", json.dumps(_plain(summary), indent=2), sync_dir=False)
    with write_guard(run_dir / "RUNNING"):
        (run_dir / "RUNNING").unlink(missing_ok=True)
    sync_folder(run_dir)
