"""Benchmarks: ``python -m app bench sim`` (rendering and environment rates) and
``python -m app bench pipeline`` (one VS iteration, stage by stage).

Timings are reported, never asserted in tests: these machines are noisy.
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from app.sim.domain import load_domain
from app.sim.objects import load_object_set
from app.sim.session import SimSession

SIM_FRAME_TARGET_MS = 25.0  # issue target: a sim-domain 128x128 frame
ENV_STEPS_TARGET = 30.0  # issue target: training-environment steps per second per process


def _stats(ms: list[float]) -> dict[str, float]:
    a = np.asarray(ms)
    return {"p50_ms": float(np.percentile(a, 50)), "p95_ms": float(np.percentile(a, 95)),
            "mean_ms": float(a.mean()), "fps": float(1000.0 / a.mean())}


def bench_sim(n: int = 50, seed: int = 0) -> dict[str, object]:
    """Frames per second of a full frame (render + sensor model) in each domain, and
    training-environment steps per second (one process)."""
    out: dict[str, object] = {}
    objects = load_object_set("seen")
    for name in ("sim", "real"):
        domain = load_domain(name)
        with SimSession(domain=domain, seed=seed) as s:
            s.reset(objects.objects[0], seed)
            times = []
            for _ in range(n):
                s.camera.invalidate()
                t0 = time.perf_counter()
                s.camera.get_frame()
                times.append((time.perf_counter() - t0) * 1000)
            out[f"frame_{name}"] = _stats(times)
    from app.sim.pose_env import PoseEnv

    env = PoseEnv()
    env.reset(seed=seed)
    steps, t0 = 0, time.perf_counter()
    rng = np.random.default_rng(seed)
    while steps < n * 3:
        _, _, done, _, _ = env.step(rng.uniform(-1, 1, 4).astype(np.float32))
        steps += 1
        if done:
            env.reset()
    dt = time.perf_counter() - t0
    env.close()
    out["env_steps_per_s"] = steps / dt
    out["targets"] = {"frame_sim_ms": SIM_FRAME_TARGET_MS, "frame_real_ms": 2 * SIM_FRAME_TARGET_MS,
                      "env_steps_per_s": ENV_STEPS_TARGET}
    return out


def run_bench(args: argparse.Namespace) -> int:
    """Entry point of ``python -m app bench``."""
    if args.what == "sim":
        res = bench_sim(args.n or 50, args.seed)
        if args.json:
            print(json.dumps(res))
        else:
            for name in ("sim", "real"):
                st = res[f"frame_{name}"]
                print(f"frame {name:4s}: p50 {st['p50_ms']:.1f} ms  p95 {st['p95_ms']:.1f} ms  ({st['fps']:.0f} fps)")
            print(f"env steps: {res['env_steps_per_s']:.0f} /s (target >= {ENV_STEPS_TARGET:.0f})")
        return 0
    if args.what == "campaign":
        from app.tools.campaign_bench import run_campaign_bench

        return run_campaign_bench(args)
    from app.tools.pipeline_bench import run_pipeline_bench

    return run_pipeline_bench(args)
