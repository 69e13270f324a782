"""``python -m app bench pipeline``: one VS iteration, stage by stage, per inference lever.

Stages of an iteration: ``acquire`` (taking a frame that is already rendered, as the camera
driver hands it over: simulator rendering is not part of the robot's pipeline), ``adapt``
(preprocessing, G_Y->X, back to images), ``segment`` (D_X's mask), ``features`` (clean-up,
blob, moments) and ``control`` (depth, targets, error, gain, twist). ``iteration`` is their sum;
the ratio of its p95 to the 16.7 ms frame period of a 60 fps camera says whether the loop keeps
up (target <= 0.5: half a frame).

Each lever of :mod:`models.fast_infer` is timed **alone** against the baseline (the eager
networks as trained), then the shipped configuration (``config/inference.yaml``) and the
shipped configuration with ``torch.compile``. Variants are timed in interleaved rounds, so
machine load hits them alike: compare them within one run, never across runs. Quality is
measured on a fixed frame set (:func:`fixed_frames`): object-mask IoU and differing mask pixels
against the baseline, the largest difference of G's output, of the features (centroid in
normalised image coordinates, orientation in degrees) and of the pose policy's action on the
adapted frame.
"""

from __future__ import annotations

import argparse
import copy
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch

from app.controllers.depth import object_distance
from app.controllers.features import FeatureParams, extract_features
from app.controllers.vs import compute_targets, load_vs_params, vs_step
from app.robot.interfaces import Frame
from app.transforms import Pose

FRAME_PERIOD_60FPS_MS = 1000.0 / 60.0  # 16.7 ms
TARGET_RATIO = 0.5  # issue 15: half a frame period
STAGES = ("acquire", "adapt", "segment", "features", "control")
ROUNDS = 20  # interleaved rounds; each variant runs every frame of the set once per round
OBJECT = 1  # object class in masks
DEG = 180.0 / np.pi


def fixed_frames(n: int = 8, seed: int = 0) -> list[Frame]:
    """``n`` real-domain frames at visual-servoing heights, one seen object each (fixed seeds).

    Frame ``i`` shows seen object ``i mod 10`` placed with seed ``seed + i``, the gripper
    raised 25 cm from the start pose (camera ~0.35 m up), shifted by ``i`` cm in x and turned by
    ``0.2 i`` rad: the views the VS loop works on.
    """
    from app.sim.objects import load_object_set
    from app.sim.session import SimSession
    from app.transforms import delta_pose

    objs = load_object_set("seen")
    frames = []
    with SimSession(domain="real", seed=seed) as s:
        for i in range(n):
            s.reset(objs.objects[i % len(objs.objects)], seed + i)
            s.arm.teleport(s.hw.start_pose() @ delta_pose(0.01 * i, 0.0, 0.25, 0.2 * i))  # VS height
            s.camera.invalidate()
            frames.append(s.camera.get_frame())
        mount = s.arm.camera_mount
    fixed_frames.mount = mount  # type: ignore[attr-defined]
    return frames


def _bundle(threads: int, options: Any, weights: str | None = None) -> tuple[Any, str]:
    """The shipped (or ``weights``) model bundle with ``options``, or untrained networks of the same
    architecture."""
    from app.errors import CheckpointError
    from app.perception import Perception, load_perception
    from models.fast_infer import fast

    try:
        return load_perception(weights, threads=threads, options=options), str(weights or "shipped weights")
    except CheckpointError:
        from models.cyclegan import RealToSim, load_gan_config

        cfg = load_gan_config("cyclegan")
        torch.manual_seed(0)
        gan = fast(RealToSim(cfg.model, cfg.depth), options)
        return Perception(gan=gan, policy_net=torch.nn.Identity(), obs_size=64), "untrained networks (no weights yet)"


@dataclass
class Variant:
    """One timed configuration."""

    name: str
    what: str  # one line: the lever, and whether it is kept
    models: Any
    segment: str = "adapted"  # "adapted": G then D_X; "raw": D_Y on the raw frame, no G
    bf16_segmentation: bool = False


class _Bf16Segment:
    """D_X under CPU bf16 autocast (measured lever, not shipped: see the README)."""

    def __init__(self, gan: Any) -> None:
        self.gan = gan
        self.depth_range = gan.depth_range

    def adapt(self, x: torch.Tensor) -> torch.Tensor:
        return self.gan.adapt(x)

    def segment(self, x: torch.Tensor) -> torch.Tensor:
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
            _, logits = self.gan.d_x(x[None])
        return logits.float().argmax(dim=1)[0]

    def segment_real(self, x: torch.Tensor) -> torch.Tensor:
        return self.gan.segment_real(x)


def _variants(threads: int, compile_too: bool, weights: str | None = None) -> list[Variant]:
    from app.perception import Perception
    from models.fast_infer import EAGER, load_inference_options

    base, label = _bundle(threads, EAGER, weights)
    shipped = load_inference_options()

    def with_opts(**kw: bool) -> Any:
        m, _ = _bundle(threads, replace(EAGER, **kw), weights)
        return m

    v = [Variant("baseline", "eager networks as trained (no_grad, NCHW, argmax over dim 1)", base),
         Variant("inference_mode", "torch.inference_mode instead of no_grad", with_opts(inference_mode=True)),
         Variant("channels_last", "NHWC networks and inputs", with_opts(channels_last=True)),
         Variant("mask_argmax_last", "mask argmax over the contiguous class axis", with_opts(mask_argmax_last=True)),
         Variant("bf16_segmentation", "D_X under bf16 autocast",
                 Perception(gan=_Bf16Segment(copy.deepcopy(base.gan)), policy_net=base.policy_net,
                            obs_size=base.obs_size), bf16_segmentation=True),
         Variant("skip_generator", "no G_Y->X: D_Y on the raw frame (after the fallback, `segmentation: raw`)",
                 base, segment="raw"),
         Variant("shipped", f"config/inference.yaml ({_on(shipped)})", _bundle(threads, replace(shipped, compile=False), weights)[0])]
    if compile_too:
        t0 = time.perf_counter()
        m, _ = _bundle(threads, replace(shipped, compile=True), weights)
        m.gan.warm_up()
        v.append(Variant("shipped+compile", f"shipped + torch.compile with freezing (compiled in "
                         f"{time.perf_counter() - t0:.0f} s{'; FAILED: ' + m.gan.compile_error if m.gan.compile_error else ''})", m))
    for x in v:
        x.weights = label  # type: ignore[attr-defined]
    return v


def _on(o: Any) -> str:
    return ", ".join(k for k, val in o.to_dict().items() if val and k != "campaign_compile") or "all off"


def _iteration(v: Variant, frame: Frame, params: Any, mount: Pose, seq: int,
               previous: Any) -> tuple[list[float], np.ndarray, Any, Frame]:
    """One VS iteration on ``frame``; returns stage times (ms), the mask, the features, the model frame."""
    m = v.models
    t = [time.perf_counter()]
    f = replace(frame, seq=seq)  # a new frame object: defeats Perception's per-frame cache
    t.append(time.perf_counter())
    model_frame = m.adapt(f) if v.segment == "adapted" else f
    t.append(time.perf_counter())
    mask = m.segment(model_frame) if v.segment == "adapted" else m.segment_raw(f)
    t.append(time.perf_counter())
    feats = extract_features(mask, f.intrinsics, params.features, previous)
    t.append(time.perf_counter())
    if feats.ok:
        est = object_distance(f.depth, feats.mask, params.depth)
        z = est.z or 0.3  # m: a VS height when depth gives none
        vs_step(feats, compute_targets(z, mount), z, "full", params)
    t.append(time.perf_counter())
    return [(t[k + 1] - t[k]) * 1000 for k in range(len(STAGES))], mask, feats, model_frame


def _stats(ms: list[float] | np.ndarray) -> dict[str, float]:
    return {"p50_ms": float(np.percentile(ms, 50)), "p95_ms": float(np.percentile(ms, 95))}


def _quality(v: Variant, ref: Variant, frames: list[Frame], params: FeatureParams, mount: Pose) -> dict[str, Any]:
    """Masks, G's output, features and the policy's action of ``v`` against ``ref`` on ``frames``."""
    ious, px, g_diff, xy_diff, alpha_diff, act_diff = [], [], [], [], [], []
    vs = load_vs_params()
    if v.segment != ref.segment:  # skipping G: the same D_Y path with and without the lever
        ref = replace(ref, segment=v.segment)
    for i, fr in enumerate(frames):
        _, m1, f1, mf1 = _iteration(v, fr, vs, mount, 10**9 + i, None)
        _, m0, f0, mf0 = _iteration(ref, fr, vs, mount, 2 * 10**9 + i, None)
        a, b = m1 == OBJECT, m0 == OBJECT
        union = int((a | b).sum())
        ious.append(float((a & b).sum() / union) if union else 1.0)
        px.append(int((m1 != m0).sum()))
        if v.segment == ref.segment:
            g_diff.append(float(np.abs(mf1.rgb.astype(int) - mf0.rgb).max()))
            act_diff.append(float(np.abs(v.models.policy(mf1) - ref.models.policy(mf0)).max()))
        if f1.ok and f0.ok:
            xy_diff.append(float(np.hypot(f1.x_g - f0.x_g, f1.y_g - f0.y_g)))
            alpha_diff.append(abs(float(f1.alpha - f0.alpha)) * DEG)
        elif f1.ok != f0.ok:
            xy_diff.append(float("inf"))
    return {"object_iou_min": min(ious), "object_iou_mean": float(np.mean(ious)), "mask_px_differing_max": max(px),
            "adapted_rgb_max_abs_diff": max(g_diff) if g_diff else None,
            "policy_action_max_abs_diff": max(act_diff) if act_diff else None,
            "centroid_max_diff": max(xy_diff) if xy_diff else None,
            "alpha_max_diff_deg": max(alpha_diff) if alpha_diff else None, "frames": len(frames)}


def bench_pipeline(n_frames: int = 8, seed: int = 0, threads: int = 2, rounds: int = ROUNDS,
                   compile_too: bool = True, weights: str | None = None) -> dict[str, object]:
    """Time every variant on the fixed frame set with ``threads`` torch threads; ``weights`` a
    weights directory (None: the shipped ones)."""
    torch.set_num_threads(threads)
    frames = fixed_frames(n_frames, seed)
    mount = fixed_frames.mount  # type: ignore[attr-defined]
    params = load_vs_params()
    variants = _variants(threads, compile_too, weights)
    times: dict[str, list[list[float]]] = {v.name: [] for v in variants}
    cpu: dict[str, list[float]] = {v.name: [] for v in variants}  # this thread's CPU time per iteration
    seq = 0
    for v in variants:  # warm-up: allocator, first-call overheads
        for fr in frames[:2]:
            seq += 1
            _iteration(v, fr, params, mount, seq, None)
    for r in range(rounds):
        for v in variants[r % 2 :] + variants[: r % 2]:  # alternate who goes first
            for fr in frames:
                seq += 1
                c0 = time.thread_time()
                st, _, _, _ = _iteration(v, fr, params, mount, seq, None)
                cpu[v.name].append((time.thread_time() - c0) * 1000)
                times[v.name].append(st)
    out: dict[str, Any] = {}
    ref = variants[0]
    base_p50 = None
    for v in variants:
        a = np.asarray(times[v.name])
        it = a.sum(axis=1)
        row = {"what": v.what, "stages": {k: _stats(a[:, i]) for i, k in enumerate(STAGES)}, "iteration": _stats(it),
               "iteration_cpu_main_thread": _stats(cpu[v.name]),  # = wall on an idle core with 1 thread
               "frame_period_ratio": float(np.percentile(it, 95)) / FRAME_PERIOD_60FPS_MS,
               "quality": _quality(v, ref, frames, params.features, mount)}
        base_p50 = base_p50 or row["iteration"]["p50_ms"]
        row["speedup_p50"] = base_p50 / row["iteration"]["p50_ms"]
        out[v.name] = row
    return {"threads": threads, "variants": out, "samples_per_variant": rounds * len(frames),
            "frames": n_frames, "seed": seed, "weights": getattr(ref, "weights", ""),
            "target_ratio": TARGET_RATIO, "frame_period_ms": FRAME_PERIOD_60FPS_MS}


def _print(res: dict[str, Any], say: Callable[[str], None] = print) -> None:
    say(f"VS iteration, {res['threads']} thread(s), {res['samples_per_variant']} samples per variant "
        f"({res['weights']}); p95 / 16.7 ms frame period, target <= {res['target_ratio']}:")
    say(f"  {'variant':18s} {'p50 ms':>7s} {'p95 ms':>7s} {'ratio':>6s} {'x p50':>6s} {'IoU min':>7s} {'px':>4s}  what")
    for name, r in res["variants"].items():
        q = r["quality"]
        say(f"  {name:18s} {r['iteration']['p50_ms']:7.2f} {r['iteration']['p95_ms']:7.2f} "
            f"{r['frame_period_ratio']:6.2f} {r['speedup_p50']:6.2f} {q['object_iou_min']:7.4f} "
            f"{q['mask_px_differing_max']:4d}  {r['what']}")


def run_pipeline_bench(args: argparse.Namespace) -> int:
    """Entry point of ``python -m app bench pipeline``: 1 and 2 threads unless ``--threads``."""
    threads = [args.threads] if getattr(args, "threads", None) else [1, 2]
    rounds = max(2, (args.n or 160) // 8)  # --n: samples per variant (default 160: 20 rounds of 8 frames)
    compile_too = not getattr(args, "no_compile", False)
    results = [bench_pipeline(8, args.seed, t, rounds, compile_too, getattr(args, "weights", None)) for t in threads]
    doc = {"runs": results, "command": "python -m app bench pipeline" + (f" --threads {args.threads}" if
                                                                        getattr(args, "threads", None) else "")}
    if getattr(args, "out", None):
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(doc, indent=1) + "\n")
    if args.json:
        print(json.dumps(doc))
        return 0
    for res in results:
        _print(res)
    return 0
