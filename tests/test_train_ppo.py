"""The PPO recipe and best-checkpoint selection on held-out seeds (:mod:`models.train_ppo`)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import yaml

from models.train_ppo import BestCheckpoint, PPOArgs, load_ppo_args, selection_score, train_ppo


def _res(pos_cm: float, yaw_deg: float) -> dict[str, float]:
    return {"pos_median_m": pos_cm / 100, "pos_p90_m": 0.1, "yaw_median_deg": yaw_deg, "yaw_p90_deg": 30.0,
            "mean_return": 0.0, "n": 30}


def test_score_is_the_worse_of_position_and_yaw_against_the_targets() -> None:
    args = PPOArgs()  # 1 cm, 5 deg
    assert selection_score(_res(2.0, 5.0), args) == pytest.approx(2.0)
    assert selection_score(_res(0.5, 15.0), args) == pytest.approx(3.0)
    assert selection_score(_res(1.5, float("nan")), args) == pytest.approx(1.5)  # no yaw (round objects)


def test_best_checkpoint_keeps_the_lowest_score_across_a_resume(tmp_path: Path) -> None:
    args = PPOArgs()
    keeper = BestCheckpoint(tmp_path, args)
    assert keeper.offer(20000, _res(3.0, 10.0))  # first: best
    assert keeper.offer(40000, _res(1.5, 6.0))  # 1.5 < 3.0
    assert not keeper.offer(60000, _res(1.2, 9.0))  # 1.8: worse (yaw)
    resumed = BestCheckpoint(tmp_path, args)  # a killed run restarts: the best so far is on disk
    assert resumed.best is not None and resumed.best["timesteps"] == 40000
    assert not resumed.offer(80000, _res(1.6, 1.0))
    assert resumed.offer(100000, _res(1.5, 7.5))  # a tie goes to the later checkpoint
    assert json.loads((tmp_path / "best.json").read_text())["timesteps"] == 100000


def test_recipes_without_selection_keys_still_load(tmp_path: Path) -> None:
    data = yaml.safe_load(Path("config/models/ppo.yaml").read_text())
    old = tmp_path / "old.yaml"  # a recipe written before the keys existed
    old.write_text(yaml.safe_dump({k: v for k, v in data.items() if not k.startswith("select_")}))
    assert (load_ppo_args(old).select_pos_m, load_ppo_args(old).select_yaw_deg) == (0.01, 5.0)
    data["select_pos_m"] = 0
    bad = tmp_path / "ppo.yaml"
    bad.write_text(yaml.safe_dump(data))
    from app.errors import ConfigError

    with pytest.raises(ConfigError, match="select_pos_m"):
        load_ppo_args(bad)


@pytest.mark.slow
def test_tiny_training_ships_the_best_evaluated_policy(tmp_path: Path) -> None:
    """Held-out evaluations of a tiny run, each step once: ``policy.pt`` is the one with the lowest score in
    ``eval.csv``, ``policy_last.pt`` the last; a resume with a larger budget continues the curve."""
    from models.policy_net import load_policy

    data = yaml.safe_load(Path("config/models/ppo.yaml").read_text())
    data.update(total_timesteps=384, n_envs=1, n_steps=128, batch_size=64, n_epochs=1, eval_every=128,
                eval_episodes=2, checkpoint_every=128, features_dim=32, net_arch=[16])
    recipe = tmp_path / "tiny.yaml"
    recipe.write_text(yaml.safe_dump(data))
    out = tmp_path / "run"
    train_ppo(recipe, out, seed=0)
    train_ppo(recipe, out, seed=0, resume=True, total_override=512)
    rows = list(csv.DictReader((out / "eval.csv").open()))
    steps = [int(r["timesteps"]) for r in rows]
    assert steps[0] == 128 and steps[-1] == 512 and steps == sorted(steps)
    assert len(steps) == len(set(steps)), f"a step evaluated twice: {steps}"
    args = load_ppo_args(recipe)
    scores = [selection_score({k: float(v) for k, v in r.items() if k in _res(0, 0)}, args) for r in rows]
    best_step = max(s for s, sc in zip(steps, scores, strict=True) if sc == pytest.approx(min(scores), abs=1e-3))
    summary = json.loads((out / "summary.json").read_text())
    assert summary["timesteps"] == 512 and summary["best"]["timesteps"] == best_step
    assert load_policy(out / "policy.pt").meta["timesteps"] == best_step
    assert load_policy(out / "policy_last.pt").meta["timesteps"] == 512
