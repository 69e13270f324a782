"""Frames of one recorded clearing run as one picture: the camera at the start pose before each
pick, and the last frame before each pick ends.

``python -m app.tools.clear_frames RUN_DIR OUT.png`` (RUN_DIR from ``python -m app --tree
clear_table --scene multi:4 --record``).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np

from app.errors import InputError

SCALE = 2  # px per model pixel in the picture (128 px frames -> 256 px tiles)


def pick_frames(run_dir: Path) -> list[tuple[str, int]]:
    """(caption, tick) of the frames to show: each pick's look at the start pose and its last
    recorded tick, then the final look."""
    ticks = [json.loads(line) for line in (run_dir / "ticks.jsonl").read_text().splitlines() if line.strip()]
    ticks = [t for t in ticks if t.get("event") == "tick"]
    out, looked = [], False
    for t in ticks:
        names = {n["node"]: n for n in t.get("nodes") or []}
        look = names.get("Look For Objects")
        if look is not None and not looked:
            out.append(("look", int(t["tick"])))
            looked = True
        pick = (t.get("blackboard") or {}).get("last_pick")
        if isinstance(pick, dict):
            out.append((f"pick {pick['pick']}: {pick['outcome']}", int(t["tick"])))
            looked = False
    return out


def compose(run_dir: str | Path, out: str | Path) -> Path:
    """Write the picture; the frames are ``images/TICK_raw.png`` (the nearest earlier one)."""
    run_dir = Path(run_dir)
    images = run_dir / "images"
    if not images.is_dir():
        raise InputError(f"{run_dir}: no images/ (run it with --record)")
    have = sorted(int(p.name[:5]) for p in images.glob("*_raw.png"))
    tiles = []
    for caption, tick in pick_frames(run_dir):
        earlier = [k for k in have if k <= tick]
        if not earlier:
            continue
        img = cv2.imread(str(images / f"{earlier[-1]:05d}_raw.png"))
        img = cv2.resize(img, None, fx=SCALE, fy=SCALE, interpolation=cv2.INTER_NEAREST)
        cv2.putText(img, caption, (4, 16), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (255, 255, 255), 1, cv2.LINE_AA)
        tiles.append(img)
    if not tiles:
        raise InputError(f"{run_dir}: no pick frames found")
    per_row = 4  # tiles per row of the picture
    blank = np.zeros_like(tiles[0])
    rows = [np.hstack(tiles[i:i + per_row] + [blank] * (per_row - len(tiles[i:i + per_row])))
            for i in range(0, len(tiles), per_row)]
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(out), np.vstack(rows), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return out


if __name__ == "__main__":
    if len(sys.argv) != 3:
        print("usage: python -m app.tools.clear_frames RUN_DIR OUT.png", file=sys.stderr)
        sys.exit(2)
    try:
        print(compose(sys.argv[1], sys.argv[2]))
    except InputError as e:
        print(f"error: {e}", file=sys.stderr)
        sys.exit(2)
