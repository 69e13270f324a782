"""The ablation table of README "Which part of reality costs what".

Usage: python results/lab_gap/ablation_trees/table.py results/lab_gap/ablation_trees
"""

from __future__ import annotations

import json
import sys
from collections import Counter
from pathlib import Path

GAPS = ("lab", "hand_eye", "intrinsics", "latency", "arm", "objects", "table")
TREES = ("drl_gan_vs", "vs_only")
EXPECTED = {"seen": 20, "unseen": 12}  # 2 trials x 10 seen and 6 unseen objects


def cells(folder: Path) -> list[str]:
    """Seen, unseen, mean simulated s per trial and failures by node of one campaign folder."""
    path = folder / "results.jsonl"
    if not path.exists():
        return ["–", "–", "–", "not run"]
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    out = []
    for s in ("seen", "unseen"):
        mine = [r for r in rows if r["object_set"] == s]
        partial = "" if len(mine) == EXPECTED[s] else " (partial)"
        out.append(f"{sum(r['success'] for r in mine)}/{len(mine)}{partial}")
    out.append(f"{sum(r['sim_time'] for r in rows) / len(rows):.1f}" if rows else "–")
    fails = Counter(r["failed_node"] or "(none)" for r in rows if not r["success"])
    strikes = sum(r.get("table_strikes", 0) for r in rows)
    out.append((", ".join(f"{k} {v}" for k, v in fails.most_common(3)) or "–")
               + (f"; {strikes} strikes" if strikes else ""))
    return out


def main(root: Path) -> None:
    """Print the markdown table."""
    print("| gap (dev, 2 per object) | " + " | ".join(
        f"`{t}` seen | `{t}` unseen | `{t}` s / trial | `{t}` failures" for t in TREES) + " |")
    print("|---|" + "---|---|---:|---|" * len(TREES))
    for g in GAPS:
        row = [c for t in TREES for c in cells(root / t / g)]
        name = "all of `lab`" if g == "lab" else f"`lab_only_{g}`"
        print(f"| {name} | " + " | ".join(row) + " |")


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "results/lab_gap/ablation_trees"))
