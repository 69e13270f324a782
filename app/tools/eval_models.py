"""``python -m app eval-models``: the learned models' quality, measured with paired images.

The simulator renders one state in both appearance domains, so what the paper could only
eyeball is measured here, on held-out seeds (from :data:`HELD_OUT_BASE` + seed) and on the seen
and the unseen object set:

* **pose** — the pose agent's error after its three steps (step 3 with z = 0, as before VS) when
  it sees (a) ``sim`` frames, (b) ``real_raw`` frames, (c) ``real_adapted`` frames (real frame →
  G_Y->X). The same seeds give the same placements in every mode; the two object sets use
  different seeds (:data:`SET_SEED_STRIDE`).
* **segmentation_iou** — object-class IoU on real-domain views along the poses the robot visits
  (:func:`app.tools.dataset_builder.sample_camera_delta`): D_X on the adapted frame (run time), D_Y
  on the raw frame, and the classical baselines of :mod:`app.baselines_seg`.
* **adaptation_error** — the adapted frame against the paired sim render of the same state.
* **latency_ms** — generator, D_X segmentation and policy per frame, batch 1, 1 and 2 threads.

Everything lands in ``OUT/model_metrics.json`` (keys are a contract, see issue 3 §5) with two
figures: ``fig10_adaptation.png`` and ``fig7_segmentation.png``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import operator
import tempfile
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
import yaml

from app.baselines_seg import iou, kmeans_segment, watershed_segment
from app.config import load_yaml, resolve
from app.outputs import atomic_save, atomic_write_text, check_output_dir, owned, prepare_output_dir
from app.perception import Perception, load_perception
from app.robot.interfaces import Frame
from app.sim.objects import load_grasps
from app.types import RGB, Depth, Mask

if TYPE_CHECKING:
    from app.sim.pose_env import PoseEnv

HELD_OUT_BASE = 500_000  # seeds from here on are never used by training or the dataset
SET_SEED_STRIDE = 100_000  # the unseen set's episodes start this far after the seen set's
OBJECT_SETS = ("seen", "unseen")
POSE_MODES = ("sim", "real_raw", "real_adapted")
SEG_METHODS = ("discriminator", "discriminator_raw", "kmeans", "watershed")
STAGES = ("generator", "segmentation", "policy")
DEFAULT_EPISODES = 50  # pose episodes per object set
DEFAULT_IMAGES = 100  # segmentation / adaptation views per object set
DEFAULT_LATENCY_FRAMES = 200  # timed frames per thread count
LATENCY_WARMUP = 5  # untimed frames first (allocator, first-call overheads)
THREADS = (1, 2)  # torch intra-op threads timed; the contract's latency_ms uses 2
WITHIN_POS_M = 0.05  # m: inside VS's basin (issue 3: ±5 cm)
WITHIN_YAW_DEG = 30.0  # deg: inside VS's basin (±30°)
MIN_OBJECT_PX = 20  # views whose true object covers fewer pixels are not scored
OBJECT = 1  # class index of the object in every mask
SEG_STREAM = 1  # seed stream of the segmentation views (pose episodes use the plain seeds)
PLACEHOLDER_GRASP = [0.0, 0.0, 0.0, 0.0]  # [x, y, z, yaw_deg]: feeds the unused reward only
TARGETS = {  # issue 3 §5
    "sim_pos_median_m": 0.03, "sim_yaw_median_deg": 15.0, "sim_within_fraction": 0.9,
    "adapted_vs_sim_max_ratio": 1.5, "raw_vs_sim_min_ratio": 2.0, "iou_min": 0.85,
    "total_p95_ms": 1000.0 / 60.0, "total_p95_ms_stretch": 8.0,  # one 60 fps frame period; stretch
}

_seq = itertools.count(10**12)  # frame numbers no camera reaches: Perception caches by seq


def _fresh(frame: Frame) -> Frame:
    """The same images under a frame number never seen before (defeats Perception's cache)."""
    return replace(frame, seq=next(_seq))


# ---------------------------------------------------------------- pose agent
def _scoring_objects(set_name: str, tmp: Path) -> str:
    """Path of ``set_name`` with a placeholder grasp for objects that have none.

    :class:`PoseEnv` refuses objects without good grasps because its reward needs them; scoring
    uses only :meth:`PoseEnv.pose_errors`, which does not, and unseen objects may have none.
    """
    data = load_yaml(resolve(set_name, "objects"))
    known = load_grasps()
    for obj in data.get("objects", []):
        if isinstance(obj, dict) and not obj.get("grasps") and not known.get(obj.get("name")):
            obj["grasps"] = [PLACEHOLDER_GRASP]
    path = tmp / f"{set_name}.yaml"
    path.write_text(yaml.safe_dump(data))
    return str(path)


def run_pose_episode(env: PoseEnv, models: Perception, mode: str, seed: int, obj: str) -> dict[str, Any]:
    """One deterministic episode; the policy sees the env's camera frame as ``mode`` asks.

    Args:
        env: A pose environment in the ``sim`` domain for mode ``sim``, in the
            ``real`` domain for ``real_raw`` and ``real_adapted``.
        models: The bundle (``policy``, and ``adapt`` for ``real_adapted``).
        mode: One of :data:`POSE_MODES`.
        seed: Episode seed (placement and sensor noise).
        obj: Object name.

    Returns:
        ``pos_error_m`` (m), ``yaw_error_deg`` (deg or None for round objects), ``object``,
        ``unreachable`` (steps whose target the arm could not reach).
    """
    env.reset(seed=seed, options={"object": obj})
    lo, hi = env.cfg.z_range
    unreachable = 0
    for step in range(1, env.cfg.steps + 1):
        frame = _fresh(env.session.camera.get_frame())
        if mode == "real_adapted":
            frame = models.adapt(frame)
        action = np.array(models.policy(frame), dtype=np.float32).reshape(4)
        if step == env.cfg.steps:  # z = 0 in the last step: VS takes over from there
            action[2] = -1.0 + 2.0 * (0.0 - lo) / (hi - lo)
        _, _, _, _, info = env.step(action)
        unreachable += int(not info["reached"])
    return {**env.pose_errors(), "object": obj, "unreachable": unreachable}


def pose_stats(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, p90 and within-basin fractions of episode errors (yaw over non-round objects)."""
    pos = np.array([e["pos_error_m"] for e in episodes], float)
    yaw = np.array([e["yaw_error_deg"] for e in episodes if e["yaw_error_deg"] is not None], float)
    inside = [e["pos_error_m"] <= WITHIN_POS_M
              and (e["yaw_error_deg"] is None or e["yaw_error_deg"] <= WITHIN_YAW_DEG) for e in episodes]

    def q(a: np.ndarray, p: float) -> float | None:
        return float(np.percentile(a, p)) if a.size else None

    return {"pos_median_m": q(pos, 50), "yaw_median_deg": q(yaw, 50), "n": len(episodes),
            "pos_p90_m": q(pos, 90), "yaw_p90_deg": q(yaw, 90), "n_yaw": int(yaw.size),
            "within_5cm": float(np.mean(pos <= WITHIN_POS_M)) if pos.size else None,
            "within_30deg": float(np.mean(yaw <= WITHIN_YAW_DEG)) if yaw.size else None,
            "within_both": float(np.mean(inside)) if inside else None,
            "unreachable_steps": int(sum(e["unreachable"] for e in episodes))}


def _set_index(set_name: str) -> int:
    """The seed stream of an object set: its index in :data:`OBJECT_SETS`; any other (dev) set
    takes the next one, so its views never repeat a seen or unseen placement."""
    return OBJECT_SETS.index(set_name) if set_name in OBJECT_SETS else len(OBJECT_SETS)


def evaluate_pose(models: Perception, set_name: str, episodes: int, seed: int,
                  domain: str = "real") -> dict[str, list[dict[str, Any]]]:
    """Episodes of one object set, objects in turn, in every mode.

    Episode ``i`` uses seed ``HELD_OUT_BASE + seed + k · SET_SEED_STRIDE + i`` (``k`` the set's
    index in :data:`OBJECT_SETS`) in every mode, so the modes see the same placements. The
    ``real_*`` modes render in ``domain`` (a name or YAML path).
    """
    from app.sim.objects import load_object_set
    from app.sim.pose_env import PoseEnv

    names = load_object_set(set_name).names
    base = HELD_OUT_BASE + seed + _set_index(set_name) * SET_SEED_STRIDE
    out: dict[str, list[dict[str, Any]]] = {m: [] for m in POSE_MODES}
    with tempfile.TemporaryDirectory() as tmp:
        objects = _scoring_objects(set_name, Path(tmp))
        for dom, modes in (("sim", ("sim",)), (domain, ("real_raw", "real_adapted"))):
            env = PoseEnv(objects=objects, domain=dom)
            try:
                for mode in modes:
                    for i in range(episodes):
                        out[mode].append(run_pose_episode(env, models, mode, base + i, names[i % len(names)]))
            finally:
                env.close()
    return out


# ---------------------------------------------------------------- views: segmentation, adaptation
@dataclass
class View:
    """One held-out real-domain view, its paired sim render and every method's object mask.

    Arrays: RGB (H, W, 3) uint8; depth (H, W) float32 metres, 0 = no reading; masks (H, W).
    """

    object: str
    kind: str
    real: Frame
    truth: Mask
    sim_rgb: RGB
    sim_depth: Depth
    adapted_rgb: RGB
    adapted_depth: Depth
    masks: dict[str, np.ndarray] = field(default_factory=dict)

    @property
    def real_rgb(self) -> RGB:
        """The raw real-domain colour image."""
        return self.real.rgb

    @property
    def real_depth(self) -> Depth:
        """The raw real-domain depth image (m)."""
        return self.real.depth

    def ious(self) -> dict[str, float]:
        """Object-class IoU of each method against the truth."""
        gt = self.truth == OBJECT
        return {m: iou(mask, gt) for m, mask in self.masks.items()}


def collect_views(models: Perception, set_name: str, n: int, seed: int, domain: str = "real") -> list[View]:
    """``n`` views of ``set_name`` in ``domain`` (the real look) at poses the robot visits, segmented every way."""
    from app.errors import MotionError
    from app.sim.domain import load_domain
    from app.sim.objects import load_object_set
    from app.sim.session import SimSession
    from app.tools.dataset_builder import POSE_KINDS, sample_camera_delta
    from app.transforms import delta_pose

    specs = [o for o in load_object_set(set_name).objects if o.shape != "soft"]
    kinds = list(POSE_KINDS)
    probs = np.array(list(POSE_KINDS.values()))
    sim = load_domain("sim")
    views = []
    with SimSession(domain=domain, seed=seed) as s:
        for i in range(n):
            rng = np.random.default_rng([HELD_OUT_BASE + seed, SEG_STREAM, _set_index(set_name), i])
            spec = specs[i % len(specs)]
            s.rng = s.camera.rng = rng
            obj = s.reset(spec, s.sample_placement(spec, rng), settle=True)
            start = s.arm.pose()
            kind = kinds[int(rng.choice(len(kinds), p=probs / probs.sum()))]
            offset = start.inverse().apply(obj.position)[:2]  # object (x, y) in the gripper frame (m)
            try:
                s.arm.teleport(start @ delta_pose(*sample_camera_delta(kind, rng, offset)))
            except MotionError:
                kind = "start"  # an unreachable view: keep the start pose
            s.camera.invalidate()
            frame = _fresh(s.camera.get_frame())
            truth = s.truth.last_mask()
            sim_rgb, sim_depth, _ = s.truth.render(sim, rng)
            adapted = models.adapt(frame)
            masks = {"discriminator": models.segment(adapted) == OBJECT,
                     "discriminator_raw": models.segment_raw(frame) == OBJECT,
                     "kmeans": kmeans_segment(frame.rgb).astype(bool),
                     "watershed": watershed_segment(frame.rgb).astype(bool)}
            views.append(View(spec.name, kind, frame, truth, sim_rgb, sim_depth,
                              adapted.rgb, adapted.depth, masks))
    return views


def scored(views: list[View]) -> list[View]:
    """Views whose true object covers at least :data:`MIN_OBJECT_PX` pixels."""
    return [v for v in views if int(np.count_nonzero(v.truth == OBJECT)) >= MIN_OBJECT_PX]


def segmentation_iou(views: list[View]) -> dict[str, float | None]:
    """Mean per-view IoU of each method over the scored views (None when there are none)."""
    rows = [v.ious() for v in scored(views)]
    return {m: (float(np.mean([r[m] for r in rows])) if rows else None) for m in SEG_METHODS}


def adaptation_error(views: list[View]) -> dict[str, float | None]:
    """RGB MAE (0–255) and depth MAE (m, pixels valid in both) of adapted vs paired sim."""
    if not views:
        return {"rgb_mae": None, "depth_mae_m": None}
    rgb = [np.abs(v.adapted_rgb.astype(np.float64) - v.sim_rgb.astype(np.float64)).mean() for v in views]
    diffs = [np.abs(v.adapted_depth - v.sim_depth)[(v.adapted_depth > 0) & (v.sim_depth > 0)] for v in views]
    valid = np.concatenate(diffs)
    return {"rgb_mae": float(np.mean(rgb)), "depth_mae_m": float(valid.mean()) if valid.size else None}


# ---------------------------------------------------------------- latency
def _p(a: list[float], q: float) -> float:
    return float(np.percentile(a, q))


def measure_latency(models: Perception, frames: list[Frame], n: int, threads: int) -> dict[str, dict[str, float]]:
    """Per-frame milliseconds of adapt, segment and policy (batch 1) with ``threads`` threads.

    Returns:
        ``{"generator"|"segmentation"|"policy"|"total": {"p50", "p95"}}``, ``total`` being the
        per-frame sum.
    """
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    times: dict[str, list[float]] = {k: [] for k in (*STAGES, "total")}
    try:
        for i in range(LATENCY_WARMUP + n):
            frame = _fresh(frames[i % len(frames)])
            t0 = time.perf_counter()
            adapted = models.adapt(frame)
            t1 = time.perf_counter()
            models.segment(adapted)
            t2 = time.perf_counter()
            models.policy(adapted)
            t3 = time.perf_counter()
            if i >= LATENCY_WARMUP:
                for k, dt in zip((*STAGES, "total"), (t1 - t0, t2 - t1, t3 - t2, t3 - t0), strict=True):
                    times[k].append(dt * 1000.0)
    finally:
        torch.set_num_threads(before)
    return {k: {"p50": _p(v, 50), "p95": _p(v, 95)} for k, v in times.items()}


# ---------------------------------------------------------------- targets
def _ratio(a: float | None, b: float | None) -> float | None:
    return None if a is None or b is None or b <= 0 else a / b


def check_targets(pose: dict[str, dict[str, Any]], seg: dict[str, dict[str, float | None]],
                  latency: dict[str, dict[str, float]]) -> dict[str, dict[str, Any]]:
    """Each issue-3 target: its measured value(s), the rule, and whether it is met.

    ``met`` is None when a value is missing (no non-round object, no scored view). The ratio
    rules apply to the position and the yaw median alike; "above baselines" is the margin of
    D_X's IoU over the better baseline, per set.
    """
    t, sim = TARGETS, pose["sim"]
    medians = ("pos_median_m", "yaw_median_deg")
    margin = [None if seg["discriminator"][s] is None else
              seg["discriminator"][s] - max(seg[b][s] or 0.0 for b in ("kmeans", "watershed")) for s in OBJECT_SETS]
    total = latency["total"]["p95"]
    rules: dict[str, tuple[list[float | None], str, float, str]] = {  # values, op, limit, unit
        "sim_pos_median": ([sim["pos_median_m"]], "<=", t["sim_pos_median_m"], " m"),
        "sim_yaw_median": ([sim["yaw_median_deg"]], "<=", t["sim_yaw_median_deg"], " deg"),
        "sim_within_basin": ([sim["within_both"]], ">=", t["sim_within_fraction"], " of episodes"),
        "adapted_vs_sim": ([_ratio(pose["real_adapted"][k], sim[k]) for k in medians], "<=",
                           t["adapted_vs_sim_max_ratio"], "x sim (pos, yaw medians)"),
        "raw_vs_sim": ([_ratio(pose["real_raw"][k], sim[k]) for k in medians], ">=",
                       t["raw_vs_sim_min_ratio"], "x sim (pos, yaw medians)"),
        "discriminator_iou": ([seg["discriminator"][s] for s in OBJECT_SETS], ">=", t["iou_min"], " (seen, unseen)"),
        "discriminator_above_baselines": (margin, ">", 0.0, " IoU over the better baseline (seen, unseen)"),
        "latency_total_p95": ([total], "<=", t["total_p95_ms"], " ms, 2 threads"),
        "latency_total_p95_stretch": ([total], "<=", t["total_p95_ms_stretch"], " ms, 2 threads"),
    }
    ops = {"<=": operator.le, ">=": operator.ge, ">": operator.gt}
    out = {}
    for name, (values, op, limit, unit) in rules.items():
        met = None if any(v is None for v in values) else all(ops[op](v, limit) for v in values)
        out[name] = {"value": values[0] if len(values) == 1 else values, "target": f"{op} {limit:g}{unit}", "met": met}
    return out


# ---------------------------------------------------------------- figures
def _example(views: list[View]) -> View | None:
    """The scored view showing the most object (a clear example), or None."""
    ok = scored(views)
    return max(ok, key=lambda v: int(np.count_nonzero(v.truth == OBJECT))) if ok else None


def save_figures(examples: dict[str, View], out: Path) -> None:
    """Write ``fig10_adaptation.png`` and ``fig7_segmentation.png`` for the example views."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(examples.items())
    n = max(1, len(rows))
    cmap = matplotlib.colormaps["viridis"].with_extremes(under="black")  # black: no reading
    fig, ax = plt.subplots(2 * n, 3, figsize=(7.5, 5.0 * n), squeeze=False)
    for r, (name, v) in enumerate(rows):
        valid = v.sim_depth[v.sim_depth > 0]
        d_min, d_max = (float(valid.min()), float(valid.max())) if valid.size else (0.2, 1.5)  # m, SR300 range
        for c, (title, rgb, depth) in enumerate((("raw real", v.real_rgb, v.real_depth),
                                                 ("adapted", v.adapted_rgb, v.adapted_depth),
                                                 ("paired sim", v.sim_rgb, v.sim_depth))):
            ax[2 * r, c].imshow(rgb)
            ax[2 * r, c].set_title(f"{name}: {v.object}\n{title} RGB", fontsize=8)
            ax[2 * r + 1, c].imshow(np.where(depth > 0, depth, -1.0), cmap=cmap, vmin=d_min, vmax=d_max)
            ax[2 * r + 1, c].set_title(f"{title} depth ({d_min:.2f}-{d_max:.2f} m)", fontsize=8)
    for a in ax.ravel():
        a.axis("off")
    fig.tight_layout()
    try:
        atomic_save(out / "fig10_adaptation.png", lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)

    cols = ("raw image", "ground truth", *SEG_METHODS)
    labels = {"discriminator": "D_X on adapted", "discriminator_raw": "D_Y on raw",
              "kmeans": "K-means", "watershed": "watershed"}
    fig, ax = plt.subplots(n, len(cols), figsize=(2.0 * len(cols), 2.3 * n), squeeze=False)
    for r, (name, v) in enumerate(rows):
        scores = v.ious()
        ax[r, 0].imshow(v.real_rgb)
        ax[r, 0].set_title(f"{name}: {v.object}", fontsize=8)
        ax[r, 1].imshow(v.truth == OBJECT, cmap="gray", vmin=0, vmax=1)
        ax[r, 1].set_title("ground truth", fontsize=8)
        for c, m in enumerate(SEG_METHODS, start=2):
            ax[r, c].imshow(v.masks[m], cmap="gray", vmin=0, vmax=1)
            ax[r, c].set_title(f"{labels[m]}\nIoU {scores[m]:.2f}", fontsize=8)
    for a in ax.ravel():
        a.axis("off")
    fig.tight_layout()
    try:
        atomic_save(out / "fig7_segmentation.png", lambda tmp: fig.savefig(tmp, dpi=110, format="png"))
    finally:
        plt.close(fig)


# ---------------------------------------------------------------- the command
def _clean(x: Any) -> Any:
    """Plain JSON types; NaN and infinities become None."""
    if isinstance(x, dict):
        return {str(k): _clean(v) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return [_clean(v) for v in x]
    if isinstance(x, np.bool_ | bool):
        return bool(x)
    if isinstance(x, np.integer | int):
        return int(x)
    if isinstance(x, np.floating | float):
        return float(x) if math.isfinite(float(x)) else None
    return x


def _command(out: str | Path, seed: int, episodes: int, images: int, latency_frames: int,
             weights: str | Path | None, domain: str = "real", fingers: bool = True,
             dev_sets: tuple[str, ...] = ()) -> str:
    """The command line that reproduces a run (flags at their defaults left out)."""
    cmd = f"python -m app eval-models --out {out} --seed {seed} --episodes {episodes}"
    for flag, value, default in (("--images", images, DEFAULT_IMAGES),
                                 ("--latency-frames", latency_frames, DEFAULT_LATENCY_FRAMES),
                                 ("--weights", weights, None), ("--domain", domain, "real"),
                                 ("--dev-objects", ",".join(dev_sets), "")):
        if value != default:
            cmd += f" {flag} {value}"
    return cmd + ("" if fingers else " --no-finger-template")


def evaluate_models(out_dir: str | Path, seed: int = 0, episodes: int = DEFAULT_EPISODES,
                    weights_dir: str | Path | None = None, bundle: Perception | None = None,
                    images: int = DEFAULT_IMAGES, latency_frames: int = DEFAULT_LATENCY_FRAMES,
                    domain: str = "real", fingers: bool = True, dev_sets: tuple[str, ...] = (),
                    hardware: str | None = None) -> dict[str, Any]:
    """Measure everything and write ``model_metrics.json`` and the two figures to ``out_dir``.

    Args:
        out_dir: Output directory (created).
        seed: Offset of the held-out seeds (see :func:`evaluate_pose`).
        episodes: Pose episodes per object set and mode (below :data:`SET_SEED_STRIDE`).
        weights_dir: Weights to load (default: the shipped ones); ignored when ``bundle`` is given.
        bundle: A ready model bundle (tests pass untrained networks).
        images: Segmentation / adaptation views per object set.
        latency_frames: Timed frames per thread count.
        domain: The real-looking domain (name or YAML path): a lab's own, for ``python -m app lab``.
        fingers: Restore the gripper's sim look in adapted frames (:mod:`app.fingers`); False
            measures the generator's output as it is.
        dev_sets: Extra object sets measured for segmentation only (``segmentation_iou_dev``):
            dev checks that no training ever saw, e.g. objects in the table's colour.
        hardware: Hardware YAML of the finger template (None: ``config/hardware.yaml``).

    Returns:
        The metrics written to ``OUT/model_metrics.json``.

    Raises:
        CheckpointError: The weights are missing, corrupt or mismatched (one line).
        InputError: Counts below 1, or too many episodes.
        OutputError: ``out_dir`` cannot be written or another run owns it (before any work).
        OutputWriteError: A write failed during the run (exit code 4).
    """
    from app.errors import InputError
    from app.sim.domain import load_domain

    if min(episodes, images, latency_frames) < 1 or episodes >= SET_SEED_STRIDE:
        raise InputError(f"eval-models: expected episodes (< {SET_SEED_STRIDE}), images and latency frames "
                         f">= 1, found {episodes}, {images}, {latency_frames}")
    out = check_output_dir(out_dir, "--out")  # before any work: one line and exit 2
    if bundle is None:
        from app.weights_domain import warn_domain

        warn_domain(weights_dir, domain)
    models = bundle if bundle is not None else load_perception(weights_dir, threads=2, fingers=fingers, hardware=hardware)
    with owned(prepare_output_dir(out, "--out", command="eval-models", lock=True)):  # after the models load
        torch.set_num_threads(2)
        by_set = {s: evaluate_pose(models, s, episodes, seed, domain) for s in OBJECT_SETS}
        pooled = {m: pose_stats([e for s in OBJECT_SETS for e in by_set[s][m]]) for m in POSE_MODES}
        views = {s: collect_views(models, s, images, seed, domain) for s in (*OBJECT_SETS, *dev_sets)}
        per_set_iou = {s: segmentation_iou(views[s]) for s in OBJECT_SETS}
        seg = {m: {s: per_set_iou[s][m] for s in OBJECT_SETS} for m in SEG_METHODS}
        frames = [v.real for s in OBJECT_SETS for v in views[s]]  # dev sets: segmentation only
        latency = {t: measure_latency(models, frames, latency_frames, t) for t in THREADS}
        examples = {s: v for s in OBJECT_SETS if (v := _example(views[s])) is not None}
        save_figures(examples, out)
        metrics: dict[str, Any] = {
            "pose": pooled,
            "segmentation_iou": seg,
            "adaptation_error": adaptation_error([v for s in OBJECT_SETS for v in views[s]]),
            "latency_ms": latency[2],
            "domain": domain, "domain_sha256": load_domain(domain).sha256,
            "finger_template": models.fingers is not None,
            "segmentation_iou_dev": {s: {m: segmentation_iou(views[s])[m] for m in ("discriminator", "discriminator_raw")}
                                     | {"scored_views": len(scored(views[s]))} for s in dev_sets},
            "pose_by_set": {s: {m: pose_stats(by_set[s][m]) for m in POSE_MODES} for s in OBJECT_SETS},
            "adaptation_error_by_set": {s: adaptation_error(views[s]) for s in OBJECT_SETS},
            "segmentation_views": {s: {"taken": len(views[s]), "scored": len(scored(views[s]))} for s in OBJECT_SETS},
            "latency_ms_1_thread": latency[1],
            "targets": check_targets(pooled, seg, latency[2]),
            "domain_sha256_sim": load_domain("sim").sha256,
            "seed": seed, "held_out_seed_base": HELD_OUT_BASE + seed,
            "episodes_per_set": episodes, "images_per_set": images, "latency_frames": latency_frames,
            "weights": "given bundle" if bundle is not None else str(weights_dir or "models/weights (shipped)"),
            "command": _command(out_dir, seed, episodes, images, latency_frames, weights_dir if bundle is None else None,
                                domain, fingers, tuple(dev_sets)),
        }
        metrics = _clean(metrics)
        atomic_write_text(out / "model_metrics.json", json.dumps(metrics, indent=2, allow_nan=False) + "\n")
        return metrics


def run_eval_models(args: argparse.Namespace) -> int:
    """CLI entry: ``python -m app eval-models --out OUT [--seed S] [--episodes N]``.

    Optional attributes ``images``, ``latency_frames`` and ``weights`` are read when present.
    Returns 0 once the metrics are written (targets missed are reported, not an error).
    """
    episodes = getattr(args, "episodes", None) or DEFAULT_EPISODES
    m = evaluate_models(args.out, seed=int(getattr(args, "seed", 0) or 0), episodes=int(episodes),
                        weights_dir=getattr(args, "weights", None),
                        images=int(getattr(args, "images", None) or DEFAULT_IMAGES),
                        latency_frames=int(getattr(args, "latency_frames", None) or DEFAULT_LATENCY_FRAMES),
                        domain=getattr(args, "domain", None) or "real",
                        fingers=not getattr(args, "no_finger_template", False),
                        dev_sets=tuple(x for x in (getattr(args, "dev_objects", None) or "").split(",") if x))
    for mode, p in m["pose"].items():
        print(f"pose {mode:13s} pos median {p['pos_median_m']} m, yaw median {p['yaw_median_deg']} deg (n={p['n']})")
    for method, v in m["segmentation_iou"].items():
        print(f"IoU {method:18s} seen {v['seen']} unseen {v['unseen']}")
    for dev, v in m["segmentation_iou_dev"].items():
        print(f"IoU dev set {dev}: D_X adapted {v['discriminator']}, D_Y raw {v['discriminator_raw']} ({v['scored_views']} views)")
    print(f"adaptation {m['adaptation_error']}; latency total p95 {m['latency_ms']['total']['p95']:.1f} ms")
    missed = [k for k, t in m["targets"].items() if t["met"] is False]
    print(f"targets missed: {', '.join(missed) or 'none'}; wrote {Path(args.out) / 'model_metrics.json'}")
    return 0
