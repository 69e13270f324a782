"""How far the tracked blob moves between consecutive VS frames, from a campaign's tick logs.

Usage (from the repository root): ``python results/issue13_dev/flicker.py CAMPAIGN_DIR``, where
CAMPAIGN_DIR is an ``evaluate`` output folder with its ``runs/`` (run directories are not
committed: rerun the campaign named in ``results/issue13_dev/README.md`` to get them).

Reads each run's "Extract Features" messages (``x_g``, ``y_g`` in normalised image coordinates,
``alpha`` in degrees) and the model frame's ``fx`` (the blackboard's ``intrinsics``) in
``ticks.jsonl``, and
prints percentiles of the centroid's move (px) and of the orientation's change (deg) from one
VS frame to the next within a track (a frame whose blob was just chosen starts a new track).
"""
from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import numpy as np

_FEATURES = re.compile(r"x_g ([-+.\d]+) y_g ([-+.\d]+) alpha ([-+.\d]+ deg|ignored)")
_MAX_GAP_TICKS = 2  # frames further apart than this (a skipped or dropped frame between) are not compared


def jumps(run: Path) -> tuple[list[float], list[float]]:
    """Centroid moves (px) and orientation changes (deg) between consecutive frames of one run."""
    fx = None  # px, the model frame's focal length, from the first tick that logs the intrinsics
    shifts: list[float] = []
    turns: list[float] = []
    prev, prev_tick = None, None
    for line in (run / "ticks.jsonl").read_text().splitlines():
        rec = json.loads(line)
        fx = fx or (rec.get("blackboard") or {}).get("intrinsics", {}).get("fx")
        msgs = [n["message"] for n in rec.get("nodes", []) if n["node"] == "Extract Features" and n["status"] == "SUCCESS"]
        m = _FEATURES.search(msgs[0]) if msgs else None
        if m is None or fx is None:
            continue
        cur = (float(m[1]), float(m[2]), None if m[3] == "ignored" else float(m[3].split()[0]))
        if prev is not None and rec["tick"] - prev_tick <= _MAX_GAP_TICKS and "chose" not in msgs[0]:
            shifts.append(fx * float(np.hypot(cur[0] - prev[0], cur[1] - prev[1])))
            if cur[2] is not None and prev[2] is not None:
                turns.append(abs((cur[2] - prev[2] + 90.0) % 180.0 - 90.0))  # axes: modulo 180 deg
        prev, prev_tick = cur, rec["tick"]
    return shifts, turns


def main(folder: str) -> None:
    """Print the percentiles over every run of the campaign."""
    shifts: list[float] = []
    turns: list[float] = []
    for run in sorted((Path(folder) / "runs").iterdir()):
        s, t = jumps(run)
        shifts += s
        turns += t
    q = [50, 90, 95, 99]
    print(f"{len(shifts)} frame pairs; centroid move (px) p50/p90/p95/p99: "
          + " / ".join(f"{v:.1f}" for v in np.percentile(shifts, q)))
    print(f"{len(turns)} with orientation; change (deg) p50/p90/p95/p99: "
          + " / ".join(f"{v:.1f}" for v in np.percentile(turns, q)))
    print(f"frames moving more than 10 px: {100 * np.mean(np.array(shifts) > 10):.1f} %")


if __name__ == "__main__":
    main(sys.argv[1])
