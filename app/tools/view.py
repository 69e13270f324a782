"""``python -m app view RUN_DIR``: watch an episode, in the Rerun viewer or as a GIF.

Reads a run directory (``ticks.jsonl`` and, from a ``--record`` run, ``images/``) and writes

- a Rerun recording (``--out FILE.rrd``, default ``RUN_DIR/episode.rrd``; ``--spawn`` also
  opens the viewer): per tick the raw, adapted and mask images with the tracked blob and the VS
  target drawn on them; the VS error, twist, gain, mode and object distance as time series; the
  gripper pose in 3-D with its path; every visited tree node's status and message. A run
  recorded without images still gives the series, the pose and the tree;
- a GIF (``--gif FILE.gif``) for people without the viewer: raw | adapted | mask side by side
  with the same overlays and a status line (tick, VS mode and error, the running or failed
  node).

Only the log is read: no simulator, no models, so it works on runs from the real robot. This is
the one module that imports ``rerun`` (the optional ``[viz]`` extra); the GIF needs only OpenCV
and Pillow.

Timelines: ``tick`` (control ticks) and ``sim_time`` (seconds of simulated or camera time).
Frames: images in pixels (u right, v down); 3-D in the robot base frame (m, z up).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import InputError
from app.outputs import atomic_save, check_output_file, write_guard
from app.tools.inspect_run import read_records

SR300_DEPTH_UNIT_M = 0.000125  # m per raw depth unit of the recorded *_raw_depth.png (app.runner._record)
MASK_PNG_STEP = 120  # the runner saves class c as grey level c * 120 (0, 120, 240)
GIF_SIDE_PX = 160  # px, each panel of a GIF frame is scaled to this side (1.25x a 128 px frame)
GIF_MAX_FRAMES = 40  # frames in a GIF at most (every n-th recorded tick), keeps files small
GIF_FRAME_MS = 150  # ms per GIF frame
GIF_BAR_PX = 40  # px, status bar below the panels: two lines of text
GIF_COLOURS = 32  # one shared palette, no dithering: sensor noise would otherwise defeat LZW (~15x smaller)
BLOB_RGB, TARGET_RGB, TEXT_RGB = (255, 40, 255), (0, 230, 120), (255, 255, 255)  # overlay colours
CLASS_COLOURS = {0: (0, 0, 0), 1: (230, 160, 30), 2: (90, 140, 230)}  # RGB: background, object, gripper
ERROR_NAMES = ("t_x", "t_y", "theta")  # VS error: m, m, rad
TWIST_NAMES = ("v_x", "v_y", "v_z", "w_x", "w_y", "w_z")  # m/s, rad/s, camera frame
MODES = {"linear": 0.0, "full": 1.0}  # VS mode as a series value


@dataclass
class TickState:
    """One tick of a run, with the blackboard carried forward (the log holds changes only)."""

    tick: int
    sim_time: float
    root: str
    nodes: list[dict[str, Any]]
    bb: dict[str, Any]
    gripper: list[float] | None  # x, y, z (m), qx, qy, qz, qw; base frame
    fresh: set[str] = field(default_factory=set)  # blackboard keys written this tick


@dataclass
class Episode:
    """What :func:`load_episode` read from a run directory."""

    run_dir: Path
    ticks: list[TickState]
    images: dict[int, dict[str, Path]]  # tick -> {"raw", "raw_depth", "adapted", "mask"} PNGs
    start: dict[str, Any]
    end: dict[str, Any]


def load_episode(run_dir: str | Path) -> Episode:
    """Read ``ticks.jsonl`` and the recorded images of a run directory.

    Raises:
        InputError: not a directory, or no ``ticks.jsonl`` / no tick records in it.
    """
    d = Path(run_dir)
    if not d.is_dir():
        raise InputError(f"view: run directory {str(d)!r} not found")
    log = d / "ticks.jsonl"
    if not log.is_file():
        raise InputError(f"view: {str(d)!r} holds no ticks.jsonl (not a run directory?)")
    records, _ = read_records(log)
    bb: dict[str, Any] = {}
    ticks: list[TickState] = []
    start: dict[str, Any] = {}
    end: dict[str, Any] = {}
    for rec in records:
        event = rec.get("event")
        if event == "episode_start":
            start = rec
        elif event in ("episode_end", "scored"):
            end.update(rec)
        elif event == "tick":
            changes = rec.get("blackboard") or {}
            bb.update(changes)
            ticks.append(TickState(int(rec.get("tick", len(ticks) + 1)), float(rec.get("sim_time") or 0.0),
                                   str(rec.get("root", "")), list(rec.get("nodes") or []), dict(bb),
                                   rec.get("gripper"), set(changes)))
    if not ticks:
        raise InputError(f"view: {str(log)!r} holds no tick records")
    images: dict[int, dict[str, Path]] = {}
    for png in sorted((d / "images").glob("*.png")) if (d / "images").is_dir() else []:
        stem, _, kind = png.stem.partition("_")
        if stem.isdigit() and kind in ("raw", "raw_depth", "adapted", "mask"):
            images.setdefault(int(stem), {})[kind] = png
    return Episode(d, ticks, images, start, end)


# ------------------------------------------------------------------------------ geometry
def blob_overlay(state: TickState) -> dict[str, Any] | None:
    """The tracked blob and the VS target of a tick, in pixels of the model frame.

    Returns:
        None without a blob; else ``centroid`` (u, v), ``bbox`` (x, y, w, h), ``axis`` (two
        end points of the blob's primary axis, or None when its axes are alike), and ``target``
        (u*, v*) with ``target_axis`` (the alpha* direction) when VS targets and intrinsics are
        logged.
    """
    blob = state.bb.get("blob")
    if not blob:
        return None
    u, v = blob["centroid_px"]
    x, y, w, h = blob["bbox"]
    half = 0.5 * max(w, h)  # px, axis segment half-length: the blob's larger side
    out: dict[str, Any] = {"centroid": (u, v), "bbox": (x, y, w, h), "axis": None, "target": None,
                           "target_axis": None}
    if blob.get("use_alpha"):
        a = blob["alpha"]
        out["axis"] = ((u - half * np.cos(a), v - half * np.sin(a)), (u + half * np.cos(a), v + half * np.sin(a)))
    k, targets = state.bb.get("intrinsics"), state.bb.get("vs_targets")
    if k and targets:
        tu, tv = k["fx"] * targets[0] + k["cx"], k["fy"] * targets[1] + k["cy"]
        out["target"] = (tu, tv)
        a = targets[2]
        out["target_axis"] = ((tu - half * np.cos(a), tv - half * np.sin(a)), (tu + half * np.cos(a), tv + half * np.sin(a)))
    return out


def status_line(state: TickState, episode: Episode) -> str:
    """One line for a tick: tick, time, VS mode and error, what the tree is doing or why it failed."""
    from app.tools.inspect_run import failing_leaf

    parts = [f"tick {state.tick}  {state.sim_time:5.2f} s"]
    err, mode = state.bb.get("vs_error"), state.bb.get("vs_mode")
    if err and mode:
        parts.append(f"{mode} VS e=({err[0] * 100:+.1f} cm, {err[1] * 100:+.1f} cm, {np.degrees(err[2]):+.0f} deg)")
    if state.root == "FAILURE":
        node, msg = failing_leaf(state.nodes)
        parts.append(f"FAILED {node}: {msg}")
    elif state.root == "SUCCESS":
        parts.append("SUCCESS")
    else:
        leaves = [n for n in state.nodes if n.get("leaf", True)]
        running = [n for n in leaves if n.get("status") == "RUNNING"]
        shown = running[0] if running else (leaves[-1] if leaves else None)  # else the last leaf ticked
        if shown is not None:
            parts.append(f"{shown.get('node')}: {shown.get('message') or str(shown.get('status', '')).lower()}")
    return "  |  ".join(parts)


# ------------------------------------------------------------------------------ Rerun
def write_rrd(episode: Episode, out: Path, spawn: bool = False) -> Path:
    """Write the episode as a Rerun recording to ``out`` (and open the viewer if ``spawn``).

    Raises:
        InputError: rerun-sdk is not installed (``pip install .[viz]``).
    """
    try:
        import rerun as rr
    except ImportError as e:
        raise InputError("view: the Rerun viewer needs rerun-sdk: pip install '.[viz]' "
                         "(or use --gif FILE.gif)") from e
    import cv2

    name = episode.run_dir.name
    rec = rr.RecordingStream("simgrasp", recording_id=name)
    rec.set_log_time_enabled(False)  # the run's own timelines only: the file depends on the run alone
    with write_guard(out.parent):
        out.parent.mkdir(parents=True, exist_ok=True)
    rec.save(str(out))
    about = ", ".join(f"{k} {episode.start[k]}" for k in ("tree", "object", "seed") if k in episode.start)
    outcome = episode.end.get("outcome", "?")
    rec.log("episode", rr.TextDocument(f"{name}: {about}; outcome {outcome} "
                                       f"{episode.end.get('failed_node', '')} {episode.end.get('reason', '')}".strip()),
            static=True)
    rec.log("camera", rr.AnnotationContext([(c, n, CLASS_COLOURS[c]) for c, n in
                                                 ((0, "background"), (1, "object"), (2, "gripper"))]), static=True)
    rec.log("world", rr.ViewCoordinates.RIGHT_HAND_Z_UP, static=True)
    path: list[list[float]] = []
    for state in episode.ticks:
        rec.set_time("tick", sequence=state.tick)
        rec.set_time("sim_time", duration=state.sim_time)
        imgs = episode.images.get(state.tick, {})
        if "raw" in imgs:
            rec.log("camera/raw", rr.Image(cv2.cvtColor(cv2.imread(str(imgs["raw"])), cv2.COLOR_BGR2RGB)))
        if "raw_depth" in imgs:
            rec.log("camera/raw_depth", rr.DepthImage(cv2.imread(str(imgs["raw_depth"]), cv2.IMREAD_UNCHANGED),
                                                      meter=1.0 / SR300_DEPTH_UNIT_M))
        if "adapted" in imgs:
            rec.log("camera/adapted", rr.Image(cv2.cvtColor(cv2.imread(str(imgs["adapted"])), cv2.COLOR_BGR2RGB)))
        if "mask" in imgs:
            mask = (cv2.imread(str(imgs["mask"]), cv2.IMREAD_GRAYSCALE) // MASK_PNG_STEP).astype(np.uint8)
            rec.log("camera/mask", rr.SegmentationImage(mask))
        ov = blob_overlay(state)
        for image in ("raw", "adapted", "mask"):
            base = f"camera/{image}"
            if ov is None:
                rec.log(f"{base}/blob", rr.Clear(recursive=True))
                continue
            x, y, w, h = ov["bbox"]
            rec.log(f"{base}/blob", rr.Boxes2D(mins=[[x, y]], sizes=[[w, h]], colors=[BLOB_RGB],
                                               labels=["blob"]))
            rec.log(f"{base}/blob/centroid", rr.Points2D([ov["centroid"]], colors=[BLOB_RGB], radii=1.5))
            rec.log(f"{base}/blob/axis", rr.LineStrips2D([ov["axis"]] if ov["axis"] else [], colors=[BLOB_RGB]))
            if ov["target"] is not None:
                rec.log(f"{base}/blob/target", rr.Points2D([ov["target"]], colors=[TARGET_RGB], radii=2.0,
                                                           labels=["VS target"]))
                rec.log(f"{base}/blob/target_axis", rr.LineStrips2D([ov["target_axis"]], colors=[TARGET_RGB]))
        bb, fresh = state.bb, state.fresh
        if "vs_error" in fresh and bb.get("vs_error"):
            for n, val in zip(ERROR_NAMES, bb["vs_error"], strict=False):
                rec.log(f"vs/error/{n}", rr.Scalars(float(val)))
        if "vs_twist" in fresh and bb.get("vs_twist"):
            for n, val in zip(TWIST_NAMES, bb["vs_twist"], strict=False):
                rec.log(f"vs/twist/{n}", rr.Scalars(float(val)))
        if "vs_gain" in fresh and bb.get("vs_gain") is not None:
            rec.log("vs/gain", rr.Scalars(float(bb["vs_gain"])))
        if bb.get("vs_mode") in MODES:
            rec.log("vs/mode", rr.Scalars(MODES[bb["vs_mode"]]))
        if "z_g" in fresh and bb.get("z_g") is not None:
            rec.log("vs/z_g", rr.Scalars(float(bb["z_g"])))
        if state.gripper:
            pos, quat = state.gripper[:3], state.gripper[3:7]
            rec.log("world/gripper", rr.Transform3D(translation=pos, quaternion=rr.Quaternion(xyzw=quat)),
                    rr.TransformAxes3D(0.05))  # 5 cm axes
            path.append(pos)
            rec.log("world/gripper_path", rr.LineStrips3D([path]))
        for n in state.nodes:
            status = str(n.get("status", ""))
            level = "WARN" if status == "FAILURE" else "INFO"
            rec.log(f"tree/{rr.escape_entity_path_part(str(n.get('node', '?')))}",
                    rr.TextLog(f"{status} {n.get('message') or ''}".strip(), level=level))
        rec.log("tree/status", rr.TextLog(status_line(state, episode),
                                          level="ERROR" if state.root == "FAILURE" else "INFO"))
    rec.flush()
    rec.disconnect()
    if spawn:  # the viewer binary ships with rerun-sdk; it opens the file just written
        import subprocess
        import sys

        subprocess.Popen([sys.executable, "-m", "rerun", str(out)], start_new_session=True)
    return out


def read_entities(path: Path) -> dict[str, int]:
    """Entity paths of a ``.rrd`` file and their number of logged rows, read with Rerun's own API."""
    import rerun.chunk as rc

    rows: dict[str, int] = {}
    for chunk in rc.RrdReader(str(path)).stream().to_chunks():
        rows[chunk.entity_path] = rows.get(chunk.entity_path, 0) + chunk.num_rows
    return rows


def read_column(path: Path, entity: str, component: str) -> list[tuple[int, Any]]:
    """(tick, value) rows of one component (e.g. ``"Scalars:scalars"``, ``"TextLog:text"``) of
    one entity of a ``.rrd`` file, read with Rerun's own API, in tick order."""
    import rerun.chunk as rc

    rows: list[tuple[int, Any]] = []
    for chunk in rc.RrdReader(str(path)).stream().to_chunks():
        if chunk.entity_path != entity:
            continue
        batch = chunk.to_record_batch()
        rows += list(zip(batch.column("tick").to_pylist(), batch.column(component).to_pylist(), strict=True))
    return sorted(rows, key=lambda r: r[0])


# ------------------------------------------------------------------------------ GIF
def _panel(img: np.ndarray, ov: dict[str, Any] | None, label: str) -> np.ndarray:
    """One image scaled to GIF_SIDE_PX with the overlays and a label (RGB uint8)."""
    import cv2

    s = GIF_SIDE_PX / img.shape[1]
    out = cv2.resize(img, (GIF_SIDE_PX, round(img.shape[0] * s)), interpolation=cv2.INTER_NEAREST)

    def px(p: tuple[float, float]) -> tuple[int, int]:
        return round(p[0] * s), round(p[1] * s)

    if ov is not None:
        x, y, w, h = ov["bbox"]
        cv2.rectangle(out, px((x, y)), px((x + w, y + h)), BLOB_RGB, 1)
        cv2.circle(out, px(ov["centroid"]), 3, BLOB_RGB, -1)
        if ov["axis"]:
            cv2.line(out, px(ov["axis"][0]), px(ov["axis"][1]), BLOB_RGB, 1)
        if ov["target"] is not None:
            cv2.drawMarker(out, px(ov["target"]), TARGET_RGB, cv2.MARKER_CROSS, 12, 2)
            cv2.line(out, px(ov["target_axis"][0]), px(ov["target_axis"][1]), TARGET_RGB, 1)
    cv2.putText(out, label, (4, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.4, TEXT_RGB, 1, cv2.LINE_AA)
    return out


def write_gif(episode: Episode, out: Path, max_frames: int = GIF_MAX_FRAMES) -> Path:
    """Write raw | adapted | mask frames with overlays and the tree status line as a GIF.

    Every n-th recorded tick is used so that at most ``max_frames`` frames are written; the last
    tick (the outcome) is always shown, held for a second.

    Raises:
        InputError: the run has no recorded images (``--record``).
    """
    import cv2
    from PIL import Image

    by_tick = {s.tick: s for s in episode.ticks}
    recorded = [t for t in sorted(episode.images) if t in by_tick and "raw" in episode.images[t]]
    if not recorded:
        raise InputError(f"view: {str(episode.run_dir)!r} has no recorded images (run it with --record); "
                         "the .rrd recording still shows the series")
    step = max(1, -(-len(recorded) // max_frames))  # ceil: at most max_frames frames
    chosen = recorded[::step]
    if chosen[-1] != recorded[-1]:
        chosen.append(recorded[-1])
    last_state = episode.ticks[-1]
    kinds = [k for k in ("raw", "adapted", "mask") if any(k in episode.images[t] for t in recorded)]
    first = cv2.imread(str(episode.images[recorded[0]]["raw"]))
    panel_h = round(first.shape[0] * GIF_SIDE_PX / first.shape[1])  # px, every panel this size
    chars = 3 * GIF_SIDE_PX * len(kinds) // 18  # characters per status line at this font (~6 px each)
    frames: list[Image.Image] = []
    for t in chosen:
        state, imgs = by_tick[t], episode.images[t]
        ov = blob_overlay(state)
        panels = []
        for kind in kinds:
            if kind not in imgs:  # not recorded at this tick (e.g. before the first mask)
                blank = np.full((panel_h, GIF_SIDE_PX, 3), 40, np.uint8)
                panels.append(_panel(blank, None, f"{kind}: none"))
                continue
            if kind == "mask":
                classes = cv2.imread(str(imgs["mask"]), cv2.IMREAD_GRAYSCALE) // MASK_PNG_STEP
                img = np.zeros((*classes.shape, 3), np.uint8)
                for c, rgb in CLASS_COLOURS.items():
                    img[classes == c] = rgb
            else:
                img = cv2.cvtColor(cv2.imread(str(imgs[kind])), cv2.COLOR_BGR2RGB)
            p = _panel(img, ov, kind)[:panel_h]
            panels.append(np.pad(p, ((0, panel_h - p.shape[0]), (0, 0), (0, 0))))
        row = np.concatenate(panels, axis=1)
        # The outcome is the last tick's, which may come after the last recorded image.
        text = status_line(last_state if t == recorded[-1] else state, episode)
        bar = np.full((GIF_BAR_PX, row.shape[1], 3), 30, np.uint8)
        for i, line in enumerate((text[:chars], text[chars:2 * chars])):
            cv2.putText(bar, line, (4, 15 + 18 * i), cv2.FONT_HERSHEY_SIMPLEX, 0.38, TEXT_RGB, 1, cv2.LINE_AA)
        frames.append(Image.fromarray(np.concatenate([row, bar], axis=0)))
    palette = _palette(frames)
    paletted = [f.quantize(palette=palette, dither=Image.Dither.NONE) for f in frames]
    with write_guard(out.parent):
        out.parent.mkdir(parents=True, exist_ok=True)
    durations = [GIF_FRAME_MS] * (len(frames) - 1) + [1000]  # ms; hold the outcome for 1 s
    atomic_save(out, lambda tmp: paletted[0].save(tmp, format="GIF", save_all=True, append_images=paletted[1:],
                                                  duration=durations, loop=0, optimize=True))
    return out


def _palette(frames: list[Any]) -> Any:
    """One GIF_COLOURS palette for all frames: median cut over up to 8 of them plus swatches of
    the overlay and class colours, so that those come out exact."""
    from PIL import Image

    sample = frames[:: max(1, len(frames) // 8)][:8]
    w = sample[0].width
    swatch = np.zeros((32, w, 3), np.uint8)  # 32 px rows of each colour: enough weight for median cut
    colours = [BLOB_RGB, TARGET_RGB, TEXT_RGB, *CLASS_COLOURS.values()]
    for i, c in enumerate(colours):
        swatch[:, i * w // len(colours):(i + 1) * w // len(colours)] = c
    parts = [np.asarray(f.convert("RGB")) for f in sample] + [np.repeat(swatch, 4, axis=0)]
    montage = Image.fromarray(np.concatenate(parts, axis=0))
    return montage.quantize(colors=GIF_COLOURS, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)


def main_view(run_dir: str, out: str | None, spawn: bool, gif: str | None) -> int:
    """``python -m app view RUN_DIR [--out FILE.rrd] [--spawn] [--gif FILE.gif]``; 0 when written.

    Without ``--gif`` (or with ``--out``/``--spawn`` as well) a Rerun recording is written.

    Raises:
        InputError: bad run directory, no images for a GIF, rerun-sdk missing (one line, exit 2).
        OutputError: ``--out`` / ``--gif`` cannot be written (checked before any work, exit 2).
    """
    episode = load_episode(run_dir)
    rrd = None
    if gif is None or out is not None or spawn:
        rrd = Path(out) if out else episode.run_dir / "episode.rrd"
        if rrd.suffix != ".rrd":
            raise InputError(f"view: --out {str(rrd)!r}: expected a file name ending in .rrd")
        check_output_file(rrd, "--out")  # before any work: one line and exit 2
    if gif is not None:
        check_output_file(gif, "--gif")
        print(f"GIF: {write_gif(episode, Path(gif))}")
    if rrd is not None:
        write_rrd(episode, rrd, spawn)
        print(f"Rerun recording: {rrd} (open it with: rerun {rrd})")
    return 0
