"""``python -m app view``: a Rerun recording and a GIF of a run directory, headless."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from app.cli import main
from app.tools.view import (
    BLOB_RGB,
    GIF_BAR_PX,
    GIF_SIDE_PX,
    TARGET_RGB,
    load_episode,
    read_column,
    read_entities,
    write_gif,
    write_rrd,
)

K = {"fx": 100.0, "fy": 100.0, "cx": 31.5, "cy": 31.5, "width": 64, "height": 64}
SERIES = {f"/vs/error/{n}" for n in ("t_x", "t_y", "theta")} | {f"/vs/twist/{n}" for n in
                                                                ("v_x", "v_y", "v_z", "w_x", "w_y", "w_z")}


def _run_dir(root: Path, images: bool, ticks: int = 4) -> Path:
    """A run directory as the runner writes it: three VS ticks and a failing last tick."""
    d = root / "run"
    d.mkdir()
    lines = [json.dumps({"event": "episode_start", "tree": "vs_only", "object": "mug", "seed": 1})]
    for t in range(1, ticks + 1):
        last = t == ticks
        bb = {"vs_iterations": t, "vs_mode": "linear" if t < 3 else "full", "vs_error": [0.01 * t, -0.02, 0.1],
              "vs_twist": [0.01, 0.0, 0.0, 0.0, 0.0, 0.2], "vs_gain": 0.5, "z_g": 0.3,
              "vs_targets": [0.0, -0.1, np.pi / 2],
              "blob": {"centroid_px": [20.0 + t, 30.0], "bbox": [10, 20, 20, 20], "alpha": 0.0, "use_alpha": True,
                       "area_px": 300}}
        if t == 1:
            bb["intrinsics"] = K
        nodes = [{"node": "Linear VS Step", "status": "FAILURE" if last else "SUCCESS",
                  "message": "arm not ready: reflex" if last else "linear: e (...)", "leaf": True},
                 {"node": "Grasp (vs_only)", "status": "FAILURE" if last else "RUNNING", "message": "", "leaf": False}]
        lines.append(json.dumps({"event": "tick", "tick": t, "sim_time": t / 30, "wall_time": t * 0.05,
                                 "root": nodes[-1]["status"], "nodes": nodes, "blackboard": bb,
                                 "gripper": [0.5, 0.0, 0.4 - 0.01 * t, 1.0, 0.0, 0.0, 0.0]}))
        if images:
            (d / "images").mkdir(exist_ok=True)
            raw = np.full((64, 64, 3), 90, np.uint8)
            cv2.imwrite(str(d / "images" / f"{t:05d}_raw.png"), raw)
            cv2.imwrite(str(d / "images" / f"{t:05d}_raw_depth.png"), np.full((64, 64), 2400, np.uint16))
            cv2.imwrite(str(d / "images" / f"{t:05d}_adapted.png"), raw)
            mask = np.zeros((64, 64), np.uint8)
            mask[20:40, 10:30] = 120
            cv2.imwrite(str(d / "images" / f"{t:05d}_mask.png"), mask)
    lines.append(json.dumps({"event": "episode_end", "outcome": "failure", "failed_node": "Linear VS Step",
                             "reason": "arm not ready: reflex"}))
    (d / "ticks.jsonl").write_text("\n".join(lines) + "\n")
    return d


def test_rrd_holds_images_overlays_series_pose_and_tree(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, images=True)
    out = write_rrd(load_episode(run), tmp_path / "ep.rrd")
    rows = read_entities(out)
    for image in ("raw", "adapted", "mask"):
        assert rows[f"/camera/{image}"] == 4, image  # one per tick
        assert rows[f"/camera/{image}/blob"] == 4 and rows[f"/camera/{image}/blob/target"] == 4
    assert rows["/camera/raw_depth"] == 4
    assert SERIES <= set(rows) and all(rows[s] == 4 for s in SERIES)
    assert rows["/vs/gain"] == 4 and rows["/vs/mode"] == 4
    assert rows["/world/gripper"] == 4 and rows["/world/gripper_path"] == 4
    assert rows[r"/tree/Linear\ VS\ Step"] == 4 and rows["/tree/status"] == 4
    # Values, not only entities: the logged series and messages come back per tick.
    t_x = read_column(out, "/vs/error/t_x", "Scalars:scalars")
    assert [t for t, _ in t_x] == [1, 2, 3, 4] and [v[0] for _, v in t_x] == pytest.approx([0.01, 0.02, 0.03, 0.04])
    assert [v[0] for _, v in read_column(out, "/vs/mode", "Scalars:scalars")] == [0.0, 0.0, 1.0, 1.0]
    leaf = read_column(out, r"/tree/Linear\ VS\ Step", "TextLog:text")
    assert leaf[-1] == (4, ["FAILURE arm not ready: reflex"])
    status = read_column(out, "/tree/status", "TextLog:text")
    assert "FAILED Linear VS Step: arm not ready: reflex" in status[-1][1][0]
    pose = read_column(out, "/world/gripper", "Transform3D:translation")
    assert pose[-1][1][0] == pytest.approx([0.5, 0.0, 0.36])


def test_rrd_without_images_still_has_the_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    run = _run_dir(tmp_path, images=False)
    assert main(["view", str(run)]) == 0
    out = run / "episode.rrd"
    assert str(out) in capsys.readouterr().out
    rows = read_entities(out)
    assert not any(e in rows for e in ("/camera/raw", "/camera/adapted", "/camera/mask"))
    assert SERIES <= set(rows) and rows["/world/gripper"] == 4 and rows["/tree/status"] == 4
    assert "/camera/raw/blob" in rows  # the overlays still are, for whoever adds images
    # No images, no GIF: one line, exit 2.
    assert main(["view", str(run), "--gif", str(tmp_path / "x.gif")]) == 2
    assert "no recorded images (run it with --record)" in capsys.readouterr().err


def test_gif_has_a_frame_per_tick_with_overlays_and_status(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, images=True)
    out = write_gif(load_episode(run), tmp_path / "ep.gif")
    gif = Image.open(out)
    assert gif.n_frames == 4 and gif.size == (3 * GIF_SIDE_PX, GIF_SIDE_PX + GIF_BAR_PX)  # raw | adapted | mask
    gif.seek(0)
    first = np.asarray(gif.convert("RGB")).astype(int)
    scale = GIF_SIDE_PX / 64  # the 64 px test images
    # The VS target (x* = 0, y* = -0.1 -> u = 31.5, v = 21.5 px) is a green cross on the raw panel.
    u, v = round(31.5 * scale), round(21.5 * scale)
    patch = first[v - 3:v + 4, u - 3:u + 4]
    assert (np.abs(patch - np.array(TARGET_RGB)).sum(axis=2) < 60).any()
    # The blob box (magenta) has its left side at x = 10 px.
    side = first[round(25 * scale):round(35 * scale), round(10 * scale)]
    assert (np.abs(side - np.array(BLOB_RGB)).sum(axis=1) < 60).all()
    gif.seek(3)
    last = np.asarray(gif.convert("RGB"))
    assert (last[GIF_SIDE_PX:] > 200).any()  # the status line is written
    assert gif.info["duration"] == 1000  # the outcome is held


def test_gif_subsamples_long_runs(tmp_path: Path) -> None:
    run = _run_dir(tmp_path, images=True, ticks=9)
    gif = Image.open(write_gif(load_episode(run), tmp_path / "ep.gif", max_frames=4))
    assert gif.n_frames == 4  # every ceil(9 / 4) = 3rd tick: 1, 4, 7, then the last (the outcome), 9


def test_bad_input_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["view", str(tmp_path / "nope")]) == 2
    assert "run directory" in capsys.readouterr().err
    run = _run_dir(tmp_path, images=False)
    assert main(["view", str(run), "--out", str(tmp_path / "x.txt")]) == 2
    assert "expected a file name ending in .rrd" in capsys.readouterr().err


@pytest.mark.slow
def test_a_recorded_episode_views_end_to_end(real_session, seen, tmp_path: Path) -> None:
    """The runner logs what the viewer draws: blob, targets, intrinsics, gripper pose, images."""
    from app.hardware_config import load_hardware
    from app.logs import RunLog
    from app.runner import run_episode
    from app.tree_config import load_tree_config
    from app.trees import build_tree
    from tests.fakes.truth_models import TruthModels

    cfg = load_tree_config("vs_only")
    real_session.reset(seen.get("sugar_box"), 2)
    run = tmp_path / "run"
    run.mkdir()
    log = RunLog(run / "ticks.jsonl")
    try:
        res = run_episode(build_tree(cfg, load_hardware()), real_session.robot, TruthModels(real_session), 40, log,
                          record_dir=run / "images")
    finally:
        log.close()
    assert res.vs_iterations > 5, res
    ep = load_episode(run)
    vs = [s for s in ep.ticks if "vs_error" in s.fresh]
    assert vs and all(s.bb.get("blob") and s.bb.get("vs_targets") and s.bb.get("intrinsics") for s in vs)
    assert all(s.gripper is not None and len(s.gripper) == 7 for s in ep.ticks)
    rows = read_entities(write_rrd(ep, tmp_path / "ep.rrd"))
    assert rows["/camera/raw"] == len(ep.images) and rows["/camera/mask/blob/target"] >= len(vs)
    assert rows["/vs/error/t_x"] == res.vs_iterations
    gif = Image.open(write_gif(ep, tmp_path / "ep.gif"))
    assert gif.n_frames >= 10
