"""Where results go: unwritable output paths (one line, exit 2, nothing started), writes that fail
during a run (one line, exit 4, what was written kept and resumable), and one run per folder.

Everything goes through the CLI (``app.cli.main``: its exit code and its stderr line). Failures
during a run are injected at the writer: ``app.outputs._write`` / ``_replace`` (the OS calls every
writer goes through) raise the OSError a full disk, a removed folder or a permission change
raises, for the file the test names, after the bytes a real partial write would have written.

Read-only outputs and root: the suite runs as root here, and root may write a ``chmod 555``
folder (``os.access`` says True, and the write succeeds). Three honest read-only cases instead:
``/sys`` (sysfs refuses new files even to root: EPERM), a tmpfs mounted ``ro`` (EROFS, where
mounting is allowed, else skipped), and a ``chmod 555`` folder checked by a forked child that
dropped to the ``nobody`` user (``os.setuid``), for which it really is read-only. A full disk before the run is the file system's free space (``statvfs``) reading 0;
during a run, besides the injected ENOSPC, a real one: a 256 KiB tmpfs (where mounting is allowed).
"""

from __future__ import annotations

import errno
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest

import app.outputs as outputs
from app import ROOT
from app.cli import main
from app.command import EXIT_OUTPUT
from app.errors import OutputError, OutputWriteError
from app.outputs import LOCK_NAME, OutputLock, atomic_write_bytes, check_output_dir
from tests.test_evaluate import OBJECTS
from tests.test_view import _run_dir

NOBODY = 65534  # uid/gid of the unprivileged user (Debian's "nobody")


@pytest.fixture
def objects(tmp_path: Path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(OBJECTS)
    return str(path)


def error_lines(capsys: pytest.CaptureFixture) -> list[str]:
    """stderr's error lines (progress bars and warnings left out); fails on a traceback."""
    err = capsys.readouterr().err
    assert "Traceback" not in err, err
    return [line for line in err.splitlines() if line.startswith("error:")]


def one_line(capsys: pytest.CaptureFixture) -> str:
    lines = error_lines(capsys)
    assert len(lines) == 1, lines
    return lines[0]


# ------------------------------------------------------------------------------ before any work
def _commands(objects: str, data: str, run: str = "RUN") -> dict[str, Callable[[str], list[str]]]:
    """Every command that writes, with OUT as its output folder (``run``: a run directory to view)."""
    campaign = ["--objects", objects, "--trials", "1", "--workers", "1"]
    return {
        "evaluate": lambda out: ["evaluate", "--trees", "oracle", *campaign, "--out", out],
        "faults": lambda out: ["faults", "--tree", "oracle", "--kinds", "frame_drop", *campaign, "--out", out],
        "main job --log-dir": lambda out: ["--tree", "oracle", "--objects", objects, "--log-dir", out],
        "main job --record": lambda out: ["--tree", "oracle", "--objects", objects, "--record", "--log-dir", out],
        "dataset": lambda out: ["dataset", "--out", out, "--n", "2"],
        "eval-models": lambda out: ["eval-models", "--out", out],
        "train gan": lambda out: ["train", "gan", "--data", data, "--out", out],
        "train ppo": lambda out: ["train", "ppo", "--out", out],
        "show-tree FILE": lambda out: ["--tree", "oracle", "--show-tree", f"{out}/tree"],
        "grasps --out": lambda out: ["grasps", "--objects", objects, "--out", f"{out}/grasps.yaml"],
        "view --out": lambda out: ["view", run, "--out", f"{out}/episode.rrd"],
        "view --gif": lambda out: ["view", run, "--gif", f"{out}/episode.gif"],
        "calibrate hand-eye --out": lambda out: ["calibrate", "hand-eye", "--out", f"{out}/mount.yaml"],
    }


COMMANDS = list(_commands("o", "d"))


@pytest.fixture
def no_space(monkeypatch: pytest.MonkeyPatch) -> None:
    """The file system reports 0 bytes free (statvfs), as a full disk does."""
    real = os.statvfs(tempfile.gettempdir())
    full = SimpleNamespace(f_bavail=0, f_frsize=real.f_frsize)
    monkeypatch.setattr(outputs, "_statvfs", lambda path: full)


@pytest.mark.parametrize("command", COMMANDS)
@pytest.mark.parametrize("case", ["inside a device (the issue's /dev/null/x)", "inside a file",
                                  "a file, not a folder", "read-only (/sys, even for root)", "disk full"])
def test_unusable_output_is_one_line_exit_2_before_any_work(command: str, case: str, tmp_path: Path, objects: str,
                                                            capsys: pytest.CaptureFixture,
                                                            request: pytest.FixtureRequest) -> None:
    a_file = tmp_path / "notes.txt"
    a_file.write_text("x")
    out, expect = {
        "inside a device (the issue's /dev/null/x)": ("/dev/null/x", "not a folder"),
        "inside a file": (f"{a_file}/run", "it is a file"),
        "a file, not a folder": (str(a_file), "a file"),
        "read-only (/sys, even for root)": (f"/sys/simgrasp-test-{os.getpid()}", "cannot be created"),
        "disk full": (str(tmp_path / "new" / "deeper"), "no space left on the device"),
    }[case]
    if case == "disk full":
        request.getfixturevalue("no_space")
    (tmp_path / "view").mkdir()
    run = _run_dir(tmp_path / "view", images=True)
    before = sorted(tmp_path.rglob("*"))
    argv = _commands(objects, str(tmp_path / "data"), str(run))[command](out)
    assert main(argv) == 2
    line = one_line(capsys)
    assert out in line and expect in line, line
    assert sorted(tmp_path.rglob("*")) == before  # nothing started, nothing left by the check


def test_the_issue_commands_through_the_process(tmp_path: Path) -> None:
    """``python -m app ...`` as the issue typed it: exit code 2 and one line, no traceback."""
    r = subprocess.run([sys.executable, "-m", "app", "evaluate", "--trees", "oracle", "--objects", "seen",
                        "--trials", "1", "--out", "/dev/null/x"], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip().splitlines() == [
        "error: --out /dev/null/x: cannot be created inside /dev/null: it is not a folder"]


def test_read_only_folder_for_an_unprivileged_user(tmp_path: Path) -> None:
    """``chmod 555``, checked by a process that cannot bypass it: a forked child that dropped
    root (as root) or the test's own user (otherwise)."""
    import app.tools.dataset_builder  # noqa: F401  (imported before the fork: the child may not read /root)
    from app.cli import build_parser

    build_parser()  # its lazy imports too

    parent = Path(tempfile.mkdtemp(prefix="simgrasp-ro-"))  # in /tmp: world-traversable
    try:
        parent.chmod(0o555)
        results = {}
        for name, out in (("new folder", parent / "run"), ("the folder itself", parent)):
            argv = ["dataset", "--out", str(out), "--n", "2"]
            results[name] = _as_nobody(lambda argv=argv: main(argv))
        for _, (code, err) in results.items():
            assert code == 2, err
            assert len(err.strip().splitlines()) == 1 and "permission denied" in err, err
        assert "cannot be created (permission denied in" in results["new folder"][1]
        assert "not writable (permission denied)" in results["the folder itself"][1]
        assert list(parent.iterdir()) == []
    finally:
        parent.chmod(0o755)
        parent.rmdir()


def _as_nobody(fn: Callable[[], int]) -> tuple[int, str]:
    """Run ``fn`` in a forked child without root (setuid nobody); its return value and stderr."""
    if os.geteuid() != 0:
        buf, old = io.StringIO(), sys.stderr
        sys.stderr = buf
        try:
            return fn(), buf.getvalue()
        finally:
            sys.stderr = old
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        status = 1
        try:
            os.close(r)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            sys.stderr = io.StringIO()
            code = fn()
            os.write(w, json.dumps([code, sys.stderr.getvalue()]).encode())
            status = 0
        except BaseException as e:  # report, never raise into the parent's test runner
            os.write(w, json.dumps([-1, f"{type(e).__name__}: {e}"]).encode())
        finally:
            os._exit(status)
    os.close(w)
    with os.fdopen(r) as f:
        data = f.read()
    os.waitpid(pid, 0)
    code, err = json.loads(data)
    return code, err


def test_read_only_file_system_even_for_root(tmp_path: Path, objects: str, capsys: pytest.CaptureFixture) -> None:
    """A tmpfs mounted read-only refuses root too (EROFS), where mounting is allowed."""
    mnt = tmp_path / "ro"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip()}")
    try:
        assert main(_commands(objects, "d")["evaluate"](str(mnt))) == 2
        assert one_line(capsys) == f"error: --out {mnt}: not writable (read-only file system)"
        assert main(_commands(objects, "d")["main job --log-dir"](str(mnt / "runs"))) == 2
        assert one_line(capsys) == f"error: --log-dir {mnt / 'runs'}: cannot be created (read-only file system in {mnt})"
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_check_leaves_nothing_and_keeps_an_existing_folder(tmp_path: Path) -> None:
    assert check_output_dir(tmp_path / "a" / "b" / "c") == tmp_path / "a" / "b" / "c"
    assert list(tmp_path.iterdir()) == []  # the probe folders were removed again
    (tmp_path / "keep.txt").write_text("k")
    check_output_dir(tmp_path)
    assert [p.name for p in tmp_path.iterdir()] == ["keep.txt"]  # no probe file left
    with pytest.raises(OutputError, match="empty path"):
        check_output_dir("")


# ------------------------------------------------------------------------------ during the run
class Inject:
    """Make the writes to files named ``name`` fail with ``errno`` from the ``after``-th on; a
    failing write first writes ``partial`` of its bytes for real (a disk filling up mid-line)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, name: str, code: int, after: int = 1,
                 partial: float = 0.0) -> None:
        self.name, self.code, self.after, self.partial = name, code, after, partial
        self.calls = 0
        self.failed = 0
        monkeypatch.setattr(outputs, "_write", self.write)

    def write(self, fd: int, data: Any) -> int:
        if os.path.basename(os.readlink(f"/proc/self/fd/{fd}")) == self.name:
            self.calls += 1
            if self.calls >= self.after:
                self.failed += 1
                cut = int(len(data) * self.partial)
                if cut:
                    os.write(fd, data[:cut])
                raise OSError(self.code, os.strerror(self.code))
        return os.write(fd, data)


def _evaluate(out: Path, objects: str, trials: int, *extra: str) -> list[str]:
    return ["evaluate", "--trees", "oracle", "--objects", objects, "--object", "block", "--trials", str(trials),
            "--seed", "0", "--workers", "1", "--out", str(out), *extra]


def _keys(out: Path) -> list[tuple[str, str, int]]:
    lines = (out / "results.jsonl").read_bytes().split(b"\n")
    assert lines[-1] == b"", "a torn last line"
    return [(r["tree"], r["object"], r["trial"]) for r in map(json.loads, lines[:-1])]


def test_disk_full_mid_line_stops_the_campaign_and_resume_finishes_exactly_the_plan(
        tmp_path: Path, objects: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "campaign"
    full = Inject(monkeypatch, "results.jsonl", errno.ENOSPC, after=2, partial=0.5)  # the 2nd line, half written
    assert main(_evaluate(out, objects, 3)) == EXIT_OUTPUT == 4
    line = one_line(capsys)
    assert line.startswith(f"error: {out / 'results.jsonl'}: write failed during the run (no space left on the "
                           "device); what was already written is kept;") and "--resume" in line
    assert full.failed == 1  # stopped at the first failure: no further trial ran
    assert _keys(out) == [("oracle", "block", 0)]  # the torn half line was cut back
    assert not (out / LOCK_NAME).exists()  # released on the way out
    monkeypatch.setattr(outputs, "_write", os.write)  # space again
    assert main(_evaluate(out, objects, 3, "--resume")) == 0
    assert sorted(_keys(out)) == [("oracle", "block", k) for k in range(3)]  # the plan, each trial once


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A real 256 KiB file system (tmpfs), where one may mount one (root); skipped elsewhere."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(mnt)], capture_output=True, text=True)
    if r.returncode:
        pytest.skip(f"cannot mount a small tmpfs here: {r.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_a_really_full_disk_stops_the_campaign_and_resume_finishes_the_plan(
        small_disk: Path, objects: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """No injection: the campaign fills a 256 KiB tmpfs (each trial's tick log is ~50 KB)."""
    monkeypatch.setattr(outputs, "MIN_FREE_BYTES", 0)  # let it start on a disk this small
    out = small_disk / "campaign"
    assert main(_evaluate(out, objects, 10)) == 4
    line = one_line(capsys)
    assert "write failed during the run (no space left on the device)" in line and line.endswith("--resume")
    done = _keys(out)  # whole lines only
    assert 0 < len(done) < 10 and not (out / LOCK_NAME).exists()
    assert sum((d / "RUNNING").exists() for d in (out / "runs").iterdir()) == 1  # the cut episode, marked
    subprocess.run(["mount", "-o", "remount,size=16m", str(small_disk)], check=True)
    assert main(_evaluate(out, objects, 10, "--resume")) == 0
    assert sorted(_keys(out)) == [("oracle", "block", k) for k in range(10)]


def test_campaign_folder_removed_mid_run_stops_with_one_line(tmp_path: Path, objects: str,
                                                             monkeypatch: pytest.MonkeyPatch,
                                                             capsys: pytest.CaptureFixture) -> None:
    """The folder really removed (``rm -r``) after the first trial: the next line would go to a
    file nobody can see, so the campaign stops instead."""
    import shutil

    import app.campaigns.evaluate as ev

    out = tmp_path / "campaign"
    real_job = ev._run_job
    done = []

    def job_then_remove(t: Any, c: Any) -> dict[str, Any]:
        if done:
            shutil.rmtree(out)
        done.append(t)
        return real_job(t, c)

    monkeypatch.setattr(ev, "_run_job", job_then_remove)
    assert main(_evaluate(out, objects, 3)) == 4
    line = one_line(capsys)
    assert f"{out}/" in line and "(the folder was removed)" in line, line
    assert len(done) == 2


def test_faults_campaign_stops_on_a_failed_write_instead_of_counting_it(
        tmp_path: Path, objects: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "faults"
    Inject(monkeypatch, "ticks.jsonl", errno.ENOSPC, after=5)
    argv = ["faults", "--tree", "oracle", "--kinds", "frame_drop", "--no-baseline", "--objects", objects,
            "--trials", "1", "--workers", "1", "--out", str(out)]
    assert main(argv) == 4
    line = one_line(capsys)
    assert "ticks.jsonl: write failed during the run (no space left on the device)" in line
    assert line.endswith("rerun the same command with --resume")  # the campaign's hint on a worker's error
    assert (out / "results.jsonl").read_text() == ""  # not recorded as a trial with an unhandled exception
    assert not (out / LOCK_NAME).exists()
    monkeypatch.setattr(outputs, "_write", os.write)
    assert main([*argv, "--resume"]) == 0
    assert len((out / "results.jsonl").read_text().splitlines()) == 1


@pytest.mark.parametrize("name,code,after,words", [
    ("ticks.jsonl", errno.ENOENT, 3, "the folder was removed"),
    ("ticks.jsonl", errno.ENOSPC, 1, "no space left on the device"),
    ("00006_raw.png", errno.ENOSPC, 1, "no space left on the device"),  # --record (frames from tick 5)
])
def test_main_job_write_failure_is_one_line_exit_4(name: str, code: int, after: int, words: str, tmp_path: Path,
                                                   objects: str, monkeypatch: pytest.MonkeyPatch,
                                                   capsys: pytest.CaptureFixture) -> None:
    import app.perception
    from tests.fakes.truth_models import ColourModels

    if name.endswith(".png"):  # images are written whole (write_bytes): fail that call
        _fail_path_writes(monkeypatch, name, code)
    else:
        Inject(monkeypatch, name, code, after=after)
    # vs_only (it takes frames, so --record has images) on models that read colours, not weights
    monkeypatch.setattr(app.perception, "load_perception", lambda *a, **k: ColourModels())
    argv = ["--tree", "vs_only", "--domain", "sim", "--objects", objects, "--record", "--log-dir", str(tmp_path / "runs")]
    assert main(argv) == 4
    line = one_line(capsys)
    assert f"{name}: write failed during the run ({words})" in line, line
    (run,) = (tmp_path / "runs").iterdir()
    assert (run / "RUNNING").exists() and not (run / "episode.json").exists()  # never taken for a result


def _fail_path_writes(monkeypatch: pytest.MonkeyPatch, name: str, code: int) -> None:
    real = Path.write_bytes

    def write_bytes(self: Path, data: bytes) -> int:
        if self.name == name:
            raise OSError(code, os.strerror(code), str(self))
        return real(self, data)

    monkeypatch.setattr(Path, "write_bytes", write_bytes)


def test_permission_lost_when_saving_the_outcome(tmp_path: Path, objects: str, monkeypatch: pytest.MonkeyPatch,
                                                 capsys: pytest.CaptureFixture) -> None:
    def refuse(src: Any, dst: Any) -> None:
        raise PermissionError(errno.EACCES, "Permission denied")

    monkeypatch.setattr(outputs, "_replace", refuse)
    assert main(["--tree", "oracle", "--objects", objects, "--log-dir", str(tmp_path / "runs")]) == 4
    assert "episode.json: write failed during the run (permission denied)" in one_line(capsys)
    (run,) = (tmp_path / "runs").iterdir()
    assert sorted(p.name for p in run.iterdir()) == ["RUNNING", "ticks.jsonl"]  # no temporary file left


# ------------------------------------------------------------------------------ atomic saves
def test_failed_checkpoint_save_keeps_the_good_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    from models.checkpoint import save_file

    path = tmp_path / "train_state.pt"
    save_file(path, {"format": "x", "w": torch.arange(4.0)})
    good = path.read_bytes()
    Inject(monkeypatch, f".{path.name}.tmp{os.getpid()}", errno.ENOSPC, partial=0.3)
    with pytest.raises(OutputWriteError, match=r"train_state.pt: write failed during the run \(no space left") as e:
        save_file(path, {"format": "x", "w": torch.arange(1000.0)})
    assert e.value.exit_code == 4 and "--resume" in str(e.value)
    assert path.read_bytes() == good and [p.name for p in tmp_path.iterdir()] == [path.name]
    monkeypatch.setattr(outputs, "_write", os.write)
    atomic_write_bytes(path, b"new")
    assert path.read_bytes() == b"new"


def test_train_gan_disk_full_at_epoch_2_keeps_epoch_1_and_resumes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                                  capsys: pytest.CaptureFixture) -> None:
    import torch
    import yaml

    from models.dataset import write_synthetic_dataset
    from tests.test_train_gan import TINY_CONFIG

    torch.set_num_threads(1)
    data, run = tmp_path / "data", tmp_path / "run"
    write_synthetic_dataset(data, n=4, size=128, seed=0)
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump({**TINY_CONFIG, "train": {**TINY_CONFIG["train"], "epochs": 2}}))
    argv = ["train", "gan", "--recipe", str(recipe), "--data", str(data), "--out", str(run)]
    Inject(monkeypatch, f".train_state.pt.tmp{os.getpid()}", errno.ENOSPC, after=2, partial=0.5)
    assert main(argv) == 4
    assert "train_state.pt: write failed during the run (no space left on the device)" in one_line(capsys)
    state = torch.load(run / "train_state.pt", weights_only=True)
    assert state["epoch"] == 1  # the good save of epoch 1, whole
    assert not list(run.glob(".*.tmp*")) and not (run / LOCK_NAME).exists()
    monkeypatch.setattr(outputs, "_write", os.write)
    assert main([*argv, "--resume"]) == 0
    assert torch.load(run / "train_state.pt", weights_only=True)["epoch"] == 2


def test_dataset_disk_full_then_rerun_completes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "data"
    argv = ["dataset", "--out", str(out), "--n", "2"]
    _fail_path_writes(monkeypatch, "00001_rgb.png", errno.ENOSPC)
    assert main(argv) == 4
    assert "00001_rgb.png: write failed during the run (no space left on the device)" in one_line(capsys)
    monkeypatch.undo()
    assert main(argv) == 0
    index = json.loads((out / "index.json").read_text())
    assert [len(index["domains"][d]) for d in ("sim", "real")] == [2, 2]


# ------------------------------------------------------------------------------ the real backend
def test_real_backend_write_failure_stops_the_arm_through_the_lifecycle(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture) -> None:
    """ticks.jsonl fills the disk mid-episode on the real backend (fake panda_py, blank camera):
    the episode stops, the session faults and shuts down, stopping the arm, exit 4."""
    import app.hardware.real_session as rs
    import app.perception
    from app.hardware_config import load_hardware
    from tests.fakes import FakePandaPy
    from tests.fakes.truth_models import ColourModels
    from tests.test_lifecycle import AWAY, StubCamera

    hw = load_hardware()
    ee = np.eye(4)
    ee[:3, :3] = np.diag([1.0, -1.0, -1.0])  # pointing down
    ee[:3, 3] = hw.start_pose().position + AWAY
    fake = FakePandaPy(start_pose=ee)
    stops: list[str] = []
    real_session = rs.RealSession

    def session(hardware: Any, host: str) -> Any:
        s = real_session(hardware, host, camera=StubCamera(hardware), panda_module=fake)
        stop = s.robot.arm.stop

        def spy() -> None:
            stops.append("stop")
            stop()

        monkeypatch.setattr(s.robot.arm, "stop", spy)
        return s

    monkeypatch.setattr(rs, "RealSession", session)
    monkeypatch.setattr(app.perception, "load_perception", lambda *a, **k: ColourModels())
    Inject(monkeypatch, "ticks.jsonl", errno.ENOSPC, after=4)
    assert main(["--tree", "vs_only", "--backend", "real", "--log-dir", str(tmp_path)]) == 4
    assert "ticks.jsonl: write failed during the run (no space left on the device)" in one_line(capsys)
    events = [json.loads(x) for x in (tmp_path / "session.jsonl").read_text().splitlines()]
    assert [(e["source"], e["dest"], e["trigger"]) for e in events[-2:]] == [
        ("ready.executing", "faulted", "fault"), ("faulted", "shut_down", "shutdown")]
    assert len(stops) >= 2  # the fault stops the arm, and the shutdown again


def test_session_log_failing_on_the_stop_path_still_stops_the_arm(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The session log's disk fills just as the session faults: the arm still stops, the error
    is kept, and the session shuts down."""
    from app.lifecycle import RobotSession
    from app.logs import RunLog

    stopped: list[int] = []
    robot = SimpleNamespace(arm=SimpleNamespace(stop=lambda: stopped.append(1)),
                            camera=SimpleNamespace(close=lambda: None))
    session = RobotSession(lambda: robot, None, log=RunLog(tmp_path / "session.jsonl"))  # type: ignore[arg-type]
    # Expected records: connect, connected, execute, then the fault's, which fails.
    Inject(monkeypatch, "session.jsonl", errno.ENOSPC, after=4)

    def episode(robot: Any) -> None:
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError, match="boom"), session:
        session.start()
        session.execute(episode)
    assert len(stopped) == 2  # by the fault, and again by the shutdown
    assert session.state == "shut_down" and session.log_error is not None
    assert [t.trigger for t in session.history][-2:] == ["fault", "shutdown"]
    assert len((tmp_path / "session.jsonl").read_text().splitlines()) == 3


# ------------------------------------------------------------------------------ one run per folder
HOLD = ("import sys; from app.outputs import OutputLock; OutputLock(sys.argv[1], 'holder').acquire(); "
        "print('held', flush=True); sys.stdin.read()")


@pytest.fixture
def holder(tmp_path: Path) -> Iterator[Callable[[Path], subprocess.Popen]]:
    procs: list[subprocess.Popen] = []

    def start(folder: Path) -> subprocess.Popen:
        folder.mkdir(parents=True, exist_ok=True)
        p = subprocess.Popen([sys.executable, "-c", HOLD, str(folder)], cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
        procs.append(p)
        assert p.stdout is not None and p.stdout.readline().strip() == "held"
        return p

    yield start
    for p in procs:
        if p.poll() is None:
            p.kill()
        p.wait(timeout=10)


def test_second_run_on_a_held_folder_refuses_in_one_line(tmp_path: Path, objects: str, holder: Any,
                                                         capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "campaign"
    p = holder(out)
    assert main(_evaluate(out, objects, 1)) == 2
    line = one_line(capsys)
    assert line.startswith(f"error: {out}: in use by another run (holder), pid {p.pid} on ") and LOCK_NAME in line
    assert not (out / "results.jsonl").exists()  # nothing started
    p.stdin.close()  # the holder ends normally: lock released, file removed
    p.wait(timeout=30)
    assert not (out / LOCK_NAME).exists()
    assert main(_evaluate(out, objects, 1)) == 0
    assert not (out / LOCK_NAME).exists()


def test_stale_lock_after_a_crash_is_taken_over_with_a_warning(tmp_path: Path, objects: str, holder: Any,
                                                                capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "campaign"
    p = holder(out)
    p.send_signal(signal.SIGKILL)  # a crash: the lock file stays, the kernel drops the flock
    p.wait(timeout=30)
    assert json.loads((out / LOCK_NAME).read_text())["pid"] == p.pid
    assert main(_evaluate(out, objects, 1)) == 0
    err = capsys.readouterr().err
    assert f"warning: {out / LOCK_NAME}: taking over a stale lock of pid {p.pid} on " in err
    assert not (out / LOCK_NAME).exists() and len(_keys(out)) == 1


@pytest.mark.parametrize("alive", [True, False])
def test_lock_without_flock_trusts_pid_and_host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                capsys: pytest.CaptureFixture, alive: bool) -> None:
    """A file system without flock: a live pid on this host holds the folder, a dead one is stale."""
    def no_flock(fd: int, op: int) -> None:
        raise OSError(errno.ENOLCK, "No locks available")

    monkeypatch.setattr(outputs.fcntl, "flock", no_flock)
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    pid = os.getppid() if alive else int(dead.stdout)
    (tmp_path / LOCK_NAME).write_text(json.dumps({"pid": pid, "host": outputs._host(), "command": "other"}))
    lock = OutputLock(tmp_path, "me")
    if alive:
        with pytest.raises(OutputError, match=f"in use by another run \\(other\\), pid {pid} on"):
            lock.acquire()
        return
    with lock:
        assert json.loads((tmp_path / LOCK_NAME).read_text())["pid"] == os.getpid()
        assert lock.taken_over is not None and lock.taken_over["pid"] == pid
    assert "taking over a stale lock" in capsys.readouterr().err
    assert not (tmp_path / LOCK_NAME).exists()


@pytest.mark.slow
def test_two_campaigns_started_on_one_folder(tmp_path: Path, objects: str, capsys: pytest.CaptureFixture) -> None:
    """The issue's case: while one campaign runs, a second on the same --out refuses, and the
    first finishes its own plan, alone in results.jsonl."""
    out = tmp_path / "campaign"
    first = subprocess.Popen([sys.executable, "-m", "app", *_evaluate(out, objects, 4)], cwd=ROOT,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120  # s: start-up on a loaded machine
    while not (out / LOCK_NAME).exists() or not (out / LOCK_NAME).read_text().strip():
        assert first.poll() is None and time.monotonic() < deadline, "the first campaign never took the folder"
        time.sleep(0.02)
    assert main(_evaluate(out, objects, 4)) == 2
    assert f"pid {first.pid}" in one_line(capsys)
    _, err = first.communicate(timeout=300)
    assert first.returncode == 0, err
    assert sorted(_keys(out)) == [("oracle", "block", k) for k in range(4)]
    assert not (out / LOCK_NAME).exists()
