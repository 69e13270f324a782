"""Issue 11 §2's lever table: one row per CycleGAN training run, with what it bought.

Each argument is a lab directory made by ``python -m app lab --domain config/domains/real.yaml
--recipe RECIPE --out DIR`` (its ``train/losses.csv``, ``eval_models/model_metrics.json``,
``stages/*.done`` and ``after/summary.json``), or ``paper_losses`` for the generator with the
paper's losses alone that shipped until 2026-12-02 (its losses in
``results/ppo500k/weights/cyclegan_losses.csv``, its ``eval-models`` and powered run in
``results/history/record_120k/``; the grasp column then counts the powered run's first ``--trials``
trials per seen object, the same seeds as a lab's ``after`` stage).

Usage (from the repository root): ``python results/lever_table.py paper_losses results/gan_levers/depth ...``
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _minutes(losses: Path) -> tuple[int, float]:
    """(epochs, training minutes) from a losses.csv's per-epoch seconds."""
    rows = list(csv.DictReader(losses.open()))
    return len(rows), sum(float(r["seconds"]) for r in rows) / 60


def _grasped(results: Path, trials: int) -> str:
    """``k/n`` of drl_gan_vs on the seen objects over the first ``trials`` trials per object."""
    rows = [json.loads(x) for x in results.read_text().splitlines() if x.strip()]
    rows = [r for r in rows if r["tree"] == "drl_gan_vs" and r["object_set"] == "seen" and r["trial"] < trials]
    return f"{sum(bool(r['success']) for r in rows)}/{len(rows)}"


def row(arg: str, trials: int) -> str:
    """One Markdown row of the lever table."""
    if arg == "paper_losses":
        old = ROOT / "results/history/record_120k"
        recipe = "cyclegan (the paper's losses; shipped until 2026-12-02)"
        epochs, minutes = _minutes(ROOT / "results/ppo500k/weights/cyclegan_losses.csv")
        metrics = json.loads((old / "models/model_metrics.json").read_text())
        grasped = _grasped(old / "powered/results.jsonl", trials)
    else:
        d = Path(arg)
        cfg = (d / "train" / "config.yaml").read_text()
        recipe = next(line.split(":", 1)[1].strip() for line in cfg.splitlines() if line.startswith("name:"))
        epochs, minutes = _minutes(d / "train" / "losses.csv")
        metrics = json.loads((d / "eval_models" / "model_metrics.json").read_text())
        grasped = _grasped(d / "after" / "results.jsonl", trials)
    p, iou, err = metrics["pose"]["real_adapted"], metrics["segmentation_iou"]["discriminator"], metrics["adaptation_error"]
    return (f"| {recipe} | {epochs} | {minutes:.0f} | {100 * p['pos_median_m']:.1f} cm / {p['yaw_median_deg']:.1f}° "
            f"| {100 * p['within_both']:.0f} % | {iou['seen']:.2f} / {iou['unseen']:.2f} | {100 * err['depth_mae_m']:.1f} cm "
            f"| {err['rgb_mae']:.1f} | {grasped} |")


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("runs", nargs="+", help="lab directories, or 'paper_losses'")
    p.add_argument("--trials", type=int, default=6, help="trials per seen object in the grasp column")
    a = p.parse_args()
    print("| recipe | epochs | training min | pose on adapted images (median) | in VS's basin | D_X IoU on adapted "
          "(seen / unseen) | depth error | RGB error | `drl_gan_vs` grasped, seen, test |")
    print("|---|---|---|---|---|---|---|---|---|")
    for arg in a.runs:
        print(row(arg, a.trials))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
