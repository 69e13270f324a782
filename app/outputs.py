"""Where results go: checks before a command starts, safe writes while it runs, one owner per folder.

Every command that writes calls these, so a bad output path is one line and exit code 2 before
any work, and a write that fails during the run is one line and exit code 4
(:class:`~app.errors.OutputWriteError`) with what was already written intact:

* :func:`check_output_dir` / :func:`check_output_file`: before any work — can the folder (file)
  be created and written? Not a file where a folder is expected, not inside a file, not
  read-only (probed by really creating a file there: :func:`os.access` says yes to root on a
  read-only sysfs), not a full disk. Nothing is left behind by the check.
* :func:`prepare_output_dir`: the check, then the folder created and, with ``lock=True``, owned
  by this process (:class:`OutputLock`) — what a new command that writes a folder (``lab``,
  ``view``) calls first.
* :class:`AppendFile`: whole lines only (a write cut by a full disk is cut back), optionally
  ``fsync``'ed, refusing to write into a file whose folder was removed.
* :func:`atomic_write_bytes` / :func:`atomic_write_text` / :func:`atomic_save`: temporary file,
  ``fsync``, :func:`os.replace` — a failed save never replaces a good file with a truncated one.
* :func:`write_guard`: any other write (figures, images) turns an :class:`OSError` into the
  one-line :class:`~app.errors.OutputWriteError`.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime as _dt
import errno
import fcntl
import json
import os
import socket
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from app.errors import OutputError, OutputWriteError

LOCK_NAME = "LOCK"  # the lock file inside a folder owned by one command at a time
MIN_FREE_BYTES = 1 << 20  # 1 MiB: below this a folder counts as full before any work
PROBE_PREFIX = ".write-probe-"  # name of the file that proves a folder writable (removed at once)
LOCK_ATTEMPTS = 3  # retries when the lock file was replaced between open and flock (a race)

#: What each errno means to a user, in the one line.
REASONS = {
    errno.ENOSPC: "no space left on the device",
    errno.EDQUOT: "disk quota exceeded",
    errno.ENOENT: "the folder was removed",
    errno.ENOTDIR: "a part of the path is not a folder",
    errno.EACCES: "permission denied",
    errno.EPERM: "operation not permitted",
    errno.EROFS: "read-only file system",
    errno.EIO: "input/output error",
    errno.EFBIG: "file too large",
    errno.ENAMETOOLONG: "name too long",
    errno.EISDIR: "is a folder, expected a file",
    errno.EEXIST: "exists already",
}

# The OS calls the writers use, as module attributes: the seam where tests inject an OSError
# (ENOSPC, ENOENT, EACCES) "at the writer" without touching the os module everyone shares.
_write = os.write
_fsync = os.fsync
_replace = os.replace
_statvfs = os.statvfs


def reason(e: OSError) -> str:
    """The user's words for an OS error (``strerror`` when it has none here)."""
    return REASONS.get(e.errno or 0) or (e.strerror or type(e).__name__).lower()


def _label(path: str | Path, flag: str | None) -> str:
    return f"{flag} {path}" if flag else str(path)


# ------------------------------------------------------------------------------ checks
def _first_existing(path: Path) -> tuple[Path, list[Path]]:
    """The nearest existing ancestor-or-self of ``path`` and the missing parts below it (top first)."""
    missing: list[Path] = []
    p = path
    while not os.path.lexists(p):
        missing.insert(0, p)
        if p.parent == p:
            break
        p = p.parent
    return p, missing


def _probe(folder: Path, label: str) -> None:
    """Really create (and remove) a file in ``folder``: the only check that holds for root."""
    try:
        fd, name = tempfile.mkstemp(prefix=PROBE_PREFIX, dir=folder)
    except OSError as e:
        raise OutputError(f"{label}: not writable ({reason(e)})") from e
    os.close(fd)
    os.unlink(name)


def _check_space(folder: Path, label: str) -> None:
    try:
        st = _statvfs(folder)
    except OSError:  # no statvfs here (an odd file system): the probe already wrote
        return
    free = st.f_bavail * st.f_frsize
    if free < MIN_FREE_BYTES:
        raise OutputError(f"{label}: no space left on the device ({free} bytes free)")


def _not_a_folder(p: Path) -> str:
    return "a file" if p.is_file() else "not a folder"


def _check_dir(p: Path, label: str, what: str) -> None:
    """:func:`check_output_dir` of folder ``p``; messages start with ``label`` (the path the user
    gave: the folder itself, or a file in it when ``what`` is "file")."""
    existing, missing = _first_existing(p)
    if not missing:
        if not p.is_dir():
            raise OutputError(f"{label}: {p} is {_not_a_folder(p)}, expected a folder"
                              if what == "file" else f"{label}: is {_not_a_folder(p)}, expected a folder")
        _probe(p, label)
        _check_space(p, label)
        return
    if not existing.is_dir():
        raise OutputError(f"{label}: cannot be created inside {existing}: it is {_not_a_folder(existing)}")
    created: list[Path] = []
    try:
        for part in missing:
            try:
                part.mkdir()
            except OSError as e:
                raise OutputError(f"{label}: cannot be created ({reason(e)} in {part.parent})") from e
            created.append(part)
        _probe(p, label)
        _check_space(p, label)
    finally:
        for part in reversed(created):
            with contextlib.suppress(OSError):
                part.rmdir()


def check_output_dir(path: str | Path, flag: str | None = "--out") -> Path:
    """Check, before any work, that ``path`` can be created as a folder and written.

    Nothing is left behind: folders the check had to create are removed again.

    Args:
        path: The output folder (it may not exist yet).
        flag: The command-line flag that named it, for the message (None: the path alone).

    Returns:
        ``path`` as a Path.

    Raises:
        OutputError: One line naming the path and the problem (exit code 2).
    """
    if str(path) == "":
        raise OutputError(f"{flag or 'output'}: expected a folder, found an empty path")
    p = Path(path)
    _check_dir(p, _label(path, flag), "folder")
    return p


def check_output_file(path: str | Path, flag: str | None = None) -> Path:
    """Check, before any work, that the file ``path`` can be written (its folder created).

    Raises:
        OutputError: One line naming the path and the problem (exit code 2).
    """
    p = Path(path)
    label = _label(path, flag)
    if p.is_dir():
        raise OutputError(f"{label}: is a folder, expected a file")
    if os.path.lexists(p) and not p.is_file():  # a device (/dev/null), a socket: never replaced
        raise OutputError(f"{label}: is not a regular file")
    _check_dir(p.parent, label, "file")
    if os.path.lexists(p):
        try:  # open for appending, write nothing: the check root passes only where it can write
            os.close(os.open(p, os.O_WRONLY | os.O_APPEND))
        except OSError as e:
            raise OutputError(f"{label}: not writable ({reason(e)})") from e
    return p


def prepare_output_dir(path: str | Path, flag: str | None = "--out", *, command: str = "",
                       lock: bool = False) -> OutputLock | None:
    """Check ``path`` (:func:`check_output_dir`), create it, and with ``lock`` own it.

    Returns:
        The held :class:`OutputLock` (release it, or use it as a context manager), or None.

    Raises:
        OutputError: Not a usable folder, or (``lock``) another live process owns it.
    """
    p = check_output_dir(path, flag)
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as e:  # it changed since the check
        raise OutputError(f"{_label(path, flag)}: cannot be created ({reason(e)})") from e
    if not lock:
        return None
    held = OutputLock(p, command or " ".join([Path(sys.argv[0]).name, *sys.argv[1:]]))
    held.acquire()
    return held


# ------------------------------------------------------------------------------ one owner
def _host() -> str:
    return socket.gethostname()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, someone else's
        return True
    return True


class OutputLock:
    """One process at a time writes a folder: ``FOLDER/LOCK`` holds its pid, host and command.

    The file is held with ``flock`` (the kernel drops it when the process dies, even by
    ``kill -9``), so a lock file left by a crash is stale: it is taken over with a warning on
    stderr. Where the file system has no ``flock``, a lock of a live pid on this host, or of
    any other host, is respected and one of a dead local pid is taken over.

    Args:
        folder: The folder (it exists).
        command: What owns it, for the other process's message.
    """

    def __init__(self, folder: str | Path, command: str) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self.command = command
        self.fd: int | None = None
        self.taken_over: dict[str, Any] | None = None  # the stale owner, when one was replaced

    def _read(self, fd: int) -> dict[str, Any]:
        try:
            data = os.pread(fd, 4096, 0)  # a lock record is ~200 bytes
            info = json.loads(data.decode("utf-8")) if data.strip() else {}
        except (OSError, ValueError):
            return {"pid": "?", "host": "?", "command": "(unreadable lock file)"}
        return info if isinstance(info, dict) else {}

    def _refuse(self, info: dict[str, Any]) -> OutputError:
        who = f"pid {info.get('pid', '?')} on {info.get('host', '?')}"
        since = f", since {info['started']}" if info.get("started") else ""
        what = f" ({info['command']})" if info.get("command") else ""
        return OutputError(f"{self.folder}: in use by another run{what}, {who}{since}: wait for it to end or "
                           f"use another folder (lock {self.path})")

    def acquire(self) -> None:
        """Take the folder, or raise.

        Raises:
            OutputError: Another live process holds it (one line naming it), or the lock file
                cannot be written.
        """
        for _ in range(LOCK_ATTEMPTS):
            try:
                fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
            except OSError as e:
                raise OutputError(f"{self.path}: cannot create the lock file ({reason(e)})") from e
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                info = self._read(fd)
                os.close(fd)
                raise self._refuse(info) from None
            except OSError:  # no flock on this file system: trust the pid and host
                info = self._read(fd)
                if info.get("pid") not in (None, os.getpid()) and (
                        info.get("host") != _host() or _pid_alive(int(info["pid"]))):
                    os.close(fd)
                    raise self._refuse(info) from None
            try:
                same = os.stat(self.path).st_ino == os.fstat(fd).st_ino
            except FileNotFoundError:
                same = False
            if not same:  # released (unlinked) between our open and flock: take the new file
                os.close(fd)
                continue
            self._claim(fd)
            return
        raise OutputError(f"{self.path}: the lock kept changing hands; try again")

    def _claim(self, fd: int) -> None:
        old = self._read(fd)
        if old.get("pid") is not None:
            self.taken_over = old
            print(f"warning: {self.path}: taking over a stale lock of pid {old.get('pid')} on {old.get('host')} "
                  f"({old.get('command', '?')}, since {old.get('started', '?')}), which ended without releasing it",
                  file=sys.stderr)
        record = {"pid": os.getpid(), "host": _host(), "command": self.command,
                  "started": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")}
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
            os.fsync(fd)
        except OSError as e:
            os.close(fd)
            raise OutputError(f"{self.path}: cannot write the lock file ({reason(e)})") from e
        self.fd = fd
        atexit.register(self.release)  # released on any normal exit, even one that skips release()

    def release(self) -> None:
        """Remove the lock file and let go (the file first, so no one takes a dead file)."""
        if self.fd is None:
            return
        with contextlib.suppress(OSError):  # the folder may be gone: the lock is moot then
            if os.stat(self.path).st_ino == os.fstat(self.fd).st_ino:
                os.unlink(self.path)
        os.close(self.fd)
        self.fd = None
        atexit.unregister(self.release)

    def __enter__(self) -> OutputLock:
        if self.fd is None:
            self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


@contextlib.contextmanager
def owned(lock: OutputLock | None) -> Iterator[None]:
    """``with owned(prepare_output_dir(..., lock=...)):`` — release on the way out, if held."""
    try:
        yield
    finally:
        if lock is not None:
            lock.release()


# ------------------------------------------------------------------------------ writes
def write_failed(path: str | Path, e: OSError, hint: str = "") -> OutputWriteError:
    """The one-line error for a write to ``path`` that failed with ``e`` during a run."""
    tail = f"; {hint}" if hint else ""
    return OutputWriteError(f"{path}: write failed during the run ({reason(e)}); what was already written is "
                            f"kept{tail}")


@contextlib.contextmanager
def write_guard(path: str | Path, hint: str = "") -> Iterator[None]:
    """Turn an :class:`OSError` of the block into :class:`~app.errors.OutputWriteError` for ``path``."""
    try:
        yield
    except OSError as e:
        raise write_failed(path, e, hint) from e


@contextlib.contextmanager
def hinted(hint: str) -> Iterator[None]:
    """Add ``hint`` (what the user can do) to an :class:`~app.errors.OutputWriteError` of the
    block that lacks it: a campaign's worker writes its run folder without knowing of --resume."""
    try:
        yield
    except OutputWriteError as e:
        if hint in str(e):
            raise
        raise OutputWriteError(f"{e}; {hint}") from e


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:  # a regular file takes it in one write; loop only if the OS splits it
        view = view[_write(fd, view):]


def sync_folder(folder: Path) -> None:
    """Make a rename in ``folder`` durable (best effort: some file systems refuse a folder fd)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            _fsync(fd)
        finally:
            os.close(fd)


def atomic_save(path: str | Path, write: Callable[[Path], None], hint: str = "", suffix: str = "",
                sync_dir: bool = True) -> None:
    """Write ``path`` through a temporary file in its folder, ``fsync``, then :func:`os.replace`.

    Args:
        path: The file to (re)place.
        write: Writes the temporary file whose path it is given (e.g. ``torch.save``).
        hint: What the user can do, appended to the error line.
        suffix: Suffix of the temporary file, for writers that add their own (SB3 adds ``.zip``).
        sync_dir: ``fsync`` the folder after the rename (False: the caller does, after its
            next step; :func:`sync_folder`).

    Raises:
        OutputWriteError: The write, the flush or the rename failed; ``path`` is unchanged and
            the temporary file removed.
    """
    path = Path(path)
    if os.path.lexists(path) and not path.is_file():  # never rename over a device or a folder
        raise OutputWriteError(f"{path}: is not a regular file; nothing was written")
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{suffix}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            _fsync(fd)
        finally:
            os.close(fd)
        _replace(tmp, path)
    except OSError as e:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise write_failed(path, e, hint) from e
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    if sync_dir:
        sync_folder(path.parent)


def atomic_write_bytes(path: str | Path, data: bytes, hint: str = "", sync_dir: bool = True) -> None:
    """:func:`atomic_save` of ``data``."""

    def write(tmp: Path) -> None:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            _write_all(fd, data)
        finally:
            os.close(fd)

    atomic_save(path, write, hint, sync_dir=sync_dir)


def atomic_write_text(path: str | Path, text: str, hint: str = "", sync_dir: bool = True) -> None:
    """:func:`atomic_save` of ``text`` (UTF-8)."""
    atomic_write_bytes(path, text.encode("utf-8"), hint, sync_dir)


class AppendFile:
    """A file written only by appending whole records (JSON lines).

    Each :meth:`append` is one ``write`` of the whole record (looped if the OS splits it); when a
    write fails part-way (a full disk) the file is cut back to where the record began, so no
    torn line stays. A file whose folder was removed (no link left) is refused instead of
    written into the void.

    Args:
        path: The file (created, appended to).
        sync: ``fsync`` after every record (results; tick logs need not).
        hint: What the user can do, appended to the error line (e.g. "rerun with --resume").

    Raises:
        OutputWriteError: On open, if the file cannot be created.
    """

    def __init__(self, path: str | Path, sync: bool = False, hint: str = "") -> None:
        self.path = Path(path)
        self.sync = sync
        self.hint = hint
        self.broken = False
        try:
            self.fd: int | None = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        except OSError as e:
            raise write_failed(self.path, e, hint) from e

    def append(self, data: bytes) -> None:
        """Append ``data`` whole (and durable with ``sync``).

        Raises:
            OutputWriteError: The write failed (the file is cut back and refuses further writes)
                or the file was removed.
        """
        if self.fd is None or self.broken:
            raise OutputWriteError(f"{self.path}: closed after a failed write")
        start = None
        try:
            st = os.fstat(self.fd)
            if st.st_nlink == 0:
                raise OSError(errno.ENOENT, "file removed")
            start = st.st_size
            _write_all(self.fd, data)
            if self.sync:
                _fsync(self.fd)
        except OSError as e:
            self.broken = True
            if start is not None:
                with contextlib.suppress(OSError):  # cut the torn record (shrinking frees space)
                    os.ftruncate(self.fd, start)
            raise write_failed(self.path, e, self.hint) from e

    def close(self) -> None:
        """Close the file (errors of a broken file are not raised twice)."""
        if self.fd is not None:
            fd, self.fd = self.fd, None
            with contextlib.suppress(OSError):
                os.close(fd)
