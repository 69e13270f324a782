"""Copy a finished training run's shippable files into ``models/weights/`` (or a candidate set).

``python -m models.ship --gan RUN_DIR --ppo RUN_DIR`` copies the inference weights (plain
tensor state dicts, loaded with ``weights_only=True``) with their resolved config, curves and a
cleaned training log (progress-bar redraws dropped), and checks that each file loads.
``--to DIR`` writes a candidate set instead (for ``--weights DIR``): a new ``DIR`` starts as a
copy of the shipped set, then the given runs' files replace their part of it.
"""

from __future__ import annotations

import argparse
import re
import shutil
from pathlib import Path

from app import ROOT
from app.hardware_config import TRAINING_CAMERA_FILE

WEIGHTS = ROOT / "models" / "weights"
MAX_BYTES = 20 * 1024 * 1024  # every committed file stays under ~20 MB
FILES = {
    "gan": {"cyclegan.pt": "cyclegan.pt", "config.yaml": "cyclegan_config.yaml", "losses.csv": "cyclegan_losses.csv",
            "losses.png": "cyclegan_losses.png"},
    "ppo": {"policy.pt": "policy.pt", "config.yaml": "ppo_config.yaml", "env.yaml": "ppo_env.yaml",
            "eval.csv": "ppo_eval.csv", "eval.png": "ppo_eval.png", "summary.json": "ppo_summary.json"},
}
OPTIONAL = {"ppo": {"best.json": "ppo_best.json"}}  # runs since the best-checkpoint keeper


_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")  # terminal control sequences (colours, cursor moves)
_BAR = re.compile(r"^(?P<desc>[^|]*?):\s*\d+%\|")  # a tqdm bar's state: "desc:  63%|"


def clean_log(text: str) -> str:
    """Keep the last state of each progress bar (tqdm redraws lines with carriage returns, and
    nested bars redraw on lines of their own, moving the cursor back up)."""
    out: list[str | None] = []
    last_of: dict[str, int] = {}  # bar description -> its latest state in ``out``, within a run of bar lines
    for line in text.split("\n"):  # not splitlines(): it would split at the redraws too
        states = [_ANSI.sub("", x) for x in line.split("\r")]
        state = next((x for x in reversed(states) if x.strip()), "")  # a bar may end with a bare "\r"
        if not state.strip():
            continue
        bar = _BAR.match(state)
        if bar is None:
            last_of = {}  # a plain line ends the run: bars after it are new
        else:
            key = bar["desc"].strip()
            if key in last_of:
                out[last_of[key]] = None  # an earlier state of the same bar
            last_of[key] = len(out)
        out.append(state)
    return "\n".join(x for x in out if x is not None) + "\n"


def _repo_relative(camera_text: str) -> str:
    """A training_camera.yaml's text with an absolute ``hardware:`` path cut to its
    ``config/...`` part: where on the training machine the repository stood says nothing."""
    return re.sub(r"^(hardware: )/\S*?/(config/\S+)", r"\1\2", camera_text, flags=re.M)


def _camera(path: Path) -> object:
    """The camera fields of a training_camera.yaml (not where it was written from)."""
    import yaml

    data = yaml.safe_load(path.read_text()) or {}
    return {k: v for k, v in data.items() if k != "hardware"}


def ship(kind: str, run_dir: Path, log: Path | None, dest: Path = WEIGHTS) -> list[Path]:
    """Copy ``kind``'s files from ``run_dir`` (and its log) into ``dest`` (default :data:`WEIGHTS`).

    Raises:
        SystemExit: A required file is missing or over the size limit (one line naming it).
    """
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    for src in FILES[kind]:
        if not (run_dir / src).exists():
            raise SystemExit(f"{run_dir / src}: missing (expected a finished {kind} run)")
    for src, dst in {**FILES[kind], **OPTIONAL.get(kind, {})}.items():
        p = run_dir / src
        if not p.exists():  # an optional file an older run lacks: drop the copy of another run's
            (dest / dst).unlink(missing_ok=True)
            continue
        if p.stat().st_size > MAX_BYTES:
            raise SystemExit(f"{p}: {p.stat().st_size / 1e6:.1f} MB is over the 20 MB limit")
        shutil.copyfile(p, dest / dst)
        written.append(dest / dst)
    camera = run_dir / TRAINING_CAMERA_FILE  # the camera the run was trained for (runs since it exists)
    if camera.exists():
        shipped = dest / TRAINING_CAMERA_FILE
        other = FILES["ppo" if kind == "gan" else "gan"]
        if shipped.exists() and _camera(shipped) != _camera(camera) and any((dest / f).exists() for f in other.values()):
            print(f"warning: {camera} differs from the shipped {shipped}: the GAN and the policy were "
                  "trained for different cameras; the real robot refuses the one that does not match")
        shipped.write_text(_repo_relative(camera.read_text(encoding="utf-8")), encoding="utf-8")
        written.append(shipped)
    train_log = dest / f"{'cyclegan' if kind == 'gan' else 'ppo'}_train.log"
    if log is not None and log.exists():
        text = log.read_bytes().decode("utf-8", errors="replace")  # read_text() turns the redraws' \r into lines
        train_log.write_text(clean_log(text))
        written.append(train_log)
    else:
        train_log.unlink(missing_ok=True)  # the previous run's log does not describe these weights
    return written


def main(argv: list[str] | None = None) -> int:
    """Entry point."""
    p = argparse.ArgumentParser(prog="python -m models.ship", description=__doc__)
    p.add_argument("--gan", type=Path, help="CycleGAN run directory")
    p.add_argument("--gan-log", type=Path, help="its console log")
    p.add_argument("--ppo", type=Path, help="PPO run directory")
    p.add_argument("--ppo-log", type=Path, help="its console log")
    p.add_argument("--to", type=Path, default=WEIGHTS,
                   help="weights folder to write (default models/weights; a new one starts as a copy of it)")
    a = p.parse_args(argv)
    dest = a.to.resolve()
    if dest != WEIGHTS.resolve() and not dest.exists():
        shutil.copytree(WEIGHTS, dest)  # a candidate set: the shipped one with the given runs' files in it
    if a.gan:
        ship("gan", a.gan, a.gan_log, dest)
    if a.ppo:
        ship("ppo", a.ppo, a.ppo_log, dest)
    from app.perception import load_perception

    if (dest / "cyclegan.pt").exists() and (dest / "policy.pt").exists():
        load_perception(dest)
        print(f"weights in {dest} load:", sorted(f.name for f in dest.iterdir()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
