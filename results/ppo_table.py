"""Issue 11 §4's pose-agent table: each agent on paired held-out images against the targets.

Each argument is ``LABEL=DIR``, where ``DIR`` holds an ``eval-models`` output
(``model_metrics.json``); its ``pose`` block gives the agent's errors after three steps on sim
images and on adapted real-domain images (held-out seeds from 500000; the record's
``--episodes 30``).

Usage (from the repository root):
``python results/ppo_table.py "120k, earlier GAN=results/history/record_120k/models"
"500k, earlier GAN=results/ppo500k/eval_models_weights" "500k, both-levers GAN (shipped)=results/models"``
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

TARGETS = {"sim": (0.01, 5.0), "real_adapted": (0.015, 8.0)}  # m, deg: issue 11 §4 medians after three steps
BASIN = 0.90  # issue 11 §4: fraction of adapted episodes within ±5 cm and ±30°


def _mark(ok: bool) -> str:
    return "met" if ok else "**missed**"


def row(label: str, directory: Path) -> str:
    """One Markdown row: sim and adapted medians, the adapted basin, each against its target."""
    pose = json.loads((directory / "model_metrics.json").read_text())["pose"]
    cells = []
    for mode, (pos_t, yaw_t) in TARGETS.items():
        p = pose[mode]
        ok = p["pos_median_m"] <= pos_t and p["yaw_median_deg"] <= yaw_t
        cells.append(f"{100 * p['pos_median_m']:.2f} cm / {p['yaw_median_deg']:.1f}° ({_mark(ok)})")
    basin = pose["real_adapted"]["within_both"]
    cells.append(f"{100 * basin:.0f} % ({_mark(basin >= BASIN)})")
    cells.append(f"{100 * pose['sim']['within_both']:.0f} %")
    return f"| {label} | " + " | ".join(cells) + " |"


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("agents", nargs="+", help="LABEL=DIR of an eval-models output")
    a = p.parse_args()
    print("| agent | sim images: position / yaw median (≤ 1 cm / 5°) | adapted real-domain images (≤ 1.5 cm / 8°) "
          "| adapted in VS's basin (≥ 90 %) | sim in basin |")
    print("|---|---|---|---|---|")
    for spec in a.agents:
        label, _, d = spec.partition("=")
        print(row(label, Path(d)))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
