"""``python -m app bench pipeline``: one VS iteration, stage by stage, with 2 torch threads.

Stages: ``acquire`` (taking a frame that is already rendered and preprocessing it, as the
camera driver hands it over: simulator rendering is not part of the robot's pipeline),
``adapt`` (G_Y->X), ``segment`` (D_X), ``features`` (clean-up, blob, moments), ``control_law``
(targets, error, gain, twist) and ``command`` (the arm's velocity command). ``iteration`` is the
per-iteration sum; the ratio of its p95 to the 16.7 ms frame period of a 60 fps camera says
whether the loop keeps up (target <= 1.0, stretch <= 0.5).
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import replace

import numpy as np
import torch

from app.controllers.depth import object_distance
from app.controllers.features import extract_features
from app.controllers.vs import compute_targets, load_vs_params, vs_step
from app.sim.objects import load_object_set
from app.sim.session import SimSession
from app.transforms import delta_pose

FRAME_PERIOD_60FPS_MS = 1000.0 / 60.0  # 16.7 ms
STAGES = ("acquire", "adapt", "segment", "features", "control_law", "command")


def _bundle():
    """The shipped model bundle, or untrained networks of the same architecture (same cost)."""
    from app.errors import CheckpointError
    from app.perception import Perception, load_perception

    try:
        return load_perception(threads=2), "shipped weights"
    except CheckpointError:
        from models.cyclegan import RealToSim, load_gan_config

        cfg = load_gan_config("cyclegan")
        gan = RealToSim(cfg.model, cfg.depth)
        return Perception(gan=gan, policy_net=torch.nn.Identity(), obs_size=64), "untrained networks (no weights yet)"


def bench_pipeline(n: int = 200, seed: int = 0) -> dict[str, object]:
    """Time ``n`` VS iterations on frames of a simulated scene (real-looking domain)."""
    torch.set_num_threads(2)
    models, weights = _bundle()
    params = load_vs_params()
    objects = load_object_set("seen")
    times: dict[str, list[float]] = {k: [] for k in STAGES}
    with SimSession(domain="real", seed=seed) as s:
        s.reset(objects.get("sugar_box"), seed)
        s.arm.teleport(s.arm.pose() @ delta_pose(0, 0, 0.25, 0))  # a VS height: camera 0.35 m up
        s.camera.invalidate()
        rendered = s.camera.get_frame()
        previous = None
        for i in range(n + 5):  # 5 warm-up iterations
            t = [time.perf_counter()]
            frame = replace(rendered, rgb=rendered.rgb.copy(), depth=rendered.depth.copy(), seq=i + 1)
            t.append(time.perf_counter())
            adapted = models.adapt(frame)
            t.append(time.perf_counter())
            mask = models.segment(adapted)
            t.append(time.perf_counter())
            feats = extract_features(mask, frame.intrinsics, params.features, previous)
            t.append(time.perf_counter())
            if feats.ok:
                previous = feats
                est = object_distance(frame.depth, feats.mask, params.depth)
                z = est.z or 0.3
                cmd = vs_step(feats, compute_targets(z, s.arm.camera_mount), z, "full", params)
                twist = cmd.twist
            else:
                twist = np.zeros(6)
            t.append(time.perf_counter())
            s.arm.command_velocity(twist, "camera")
            t.append(time.perf_counter())
            s.arm.stop()
            if i >= 5:
                for k, name in enumerate(STAGES):
                    times[name].append((t[k + 1] - t[k]) * 1000)
    stages = {k: {"p50_ms": float(np.percentile(v, 50)), "p95_ms": float(np.percentile(v, 95))} for k, v in times.items()}
    total = np.sum([times[k] for k in STAGES], axis=0)
    it = {"p50_ms": float(np.percentile(total, 50)), "p95_ms": float(np.percentile(total, 95))}
    return {"stages": stages, "iteration": it, "frame_period_ratio": it["p95_ms"] / FRAME_PERIOD_60FPS_MS,
            "threads": 2, "n": n, "weights": weights, "segmentation_ok": bool(previous is not None)}


def run_pipeline_bench(args: argparse.Namespace) -> int:
    """Entry point of ``python -m app bench pipeline``."""
    res = bench_pipeline(max(args.n, 20), args.seed)
    if args.json:
        print(json.dumps(res))
        return 0
    print(f"VS iteration, {res['n']} samples, 2 threads ({res['weights']}):")
    for k, v in res["stages"].items():
        print(f"  {k:12s} p50 {v['p50_ms']:6.2f} ms   p95 {v['p95_ms']:6.2f} ms")
    it = res["iteration"]
    print(f"  {'iteration':12s} p50 {it['p50_ms']:6.2f} ms   p95 {it['p95_ms']:6.2f} ms")
    print(f"  p95 / 16.7 ms frame period (60 fps) = {res['frame_period_ratio']:.2f} (target <= 1.0, stretch <= 0.5)")
    return 0
