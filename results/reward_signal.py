"""Does the step reward carry position signal? (issue 11 §4's question about e_d's 0.30 m scale)

Runs the shipped pose agent (``models/weights/policy.pt``, deterministic) in the training
environment (sim domain, seen objects) on the held-out evaluation seeds (from 100000, as
``train ppo``'s curve) and prints, per pose step: the horizontal error to the object, the 3-D
distance to the nearest good grasp, e_d = min(distance / d_norm, 1), how often e_d is clipped at 1
(the position term λd (1 − e_d)² is then exactly 0), the position term's slope in R per cm of
distance, and its rank correlation with the horizontal error across episodes.

Usage: ``python results/reward_signal.py [--episodes 30] [--seed 100000]``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from app.sim.pose_env import PoseEnv  # noqa: E402
from models.policy_net import load_policy  # noqa: E402


def _spearman(a: list[float], b: list[float]) -> float:
    """Rank correlation of two equally long lists (NaN when either is constant)."""
    ra, rb = np.argsort(np.argsort(a)), np.argsort(np.argsort(b))
    if np.std(ra) == 0 or np.std(rb) == 0 or len(set(a)) == 1:
        return float("nan")
    return float(np.corrcoef(ra, rb)[0, 1])


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--episodes", type=int, default=30)
    p.add_argument("--seed", type=int, default=100000)
    a = p.parse_args()
    policy = load_policy(Path(__file__).resolve().parents[1] / "models" / "weights" / "policy.pt")
    env = PoseEnv()
    c = env.cfg
    rows: dict[int, list[tuple[float, float, float, float]]] = {0: [], 1: [], 2: [], 3: []}
    try:
        for i in range(a.episodes):
            obs, _ = env.reset(seed=a.seed + i)
            rows[0].append((env.pose_errors()["pos_error_m"], float("nan"), float("nan"), float("nan")))
            for k in (1, 2, 3):
                obs, r, _, _, info = env.step(policy.predict(obs))
                d = info["e_d"] * c.d_norm  # m, exact below the clip
                pos_term = c.lambda_d * (1 - info["e_d"]) ** 2 / c.lambda_n
                rows[k].append((info["pos_error_m"], d, info["e_d"], pos_term))
    finally:
        env.close()
    print(f"shipped policy, {a.episodes} held-out sim episodes from seed {a.seed}; d_norm {c.d_norm} m, "
          f"λd/λn {c.lambda_d / c.lambda_n:g}, reward every step: {c.every_step}")
    print("| after step | horizontal error median | 3-D distance to grasp median | e_d median | e_d clipped at 1 "
          "| position term median | its slope, R per cm (median) | rank corr. (position term, horizontal error) |")
    print("|---|---|---|---|---|---|---|---|")
    for k in (0, 1, 2, 3):
        pos = [r[0] for r in rows[k]]
        if k == 0:
            print(f"| start | {100 * np.median(pos):.1f} cm | – | – | – | – | – | – |")
            continue
        d, e, term = ([r[j] for r in rows[k]] for j in (1, 2, 3))
        clipped = sum(x >= 1.0 for x in e)
        slope = [0.0 if x >= 1.0 else 2 * c.lambda_d * (1 - x) / (c.lambda_n * c.d_norm) / 100 for x in e]
        dist = f"{100 * np.median(d):.1f} cm" if np.median(e) < 1.0 else f"≥ {100 * c.d_norm:.0f} cm (clipped)"
        print(f"| {k} | {100 * np.median(pos):.1f} cm | {dist} | {np.median(e):.2f} | {clipped}/{len(e)} "
              f"| {np.median(term):.3f} | {np.median(slope):.4f} | {_spearman(term, [-x for x in pos]):+.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
