"""``python -m app train ppo``: the PPO pose agent, CleanRL-style, top to bottom.

Trains stable-baselines3 PPO on :class:`app.sim.pose_env.PoseEnv` (sim domain only) in parallel
processes, evaluates deterministically on held-out seeds, logs reward and pose-error curves to
CSV and PNG, keeps resumable SB3 checkpoints (training only: SB3's zip unpickles) and exports the
shipped policy as a plain tensor ``state_dict`` (``policy.pt``).
"""

from __future__ import annotations

import csv
import io
import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from app.config import Section, load_yaml
from app.hardware_config import load_hardware, write_training_camera
from app.outputs import (
    AppendFile,
    atomic_save,
    atomic_write_text,
    check_output_dir,
    owned,
    prepare_output_dir,
)


@dataclass
class PPOArgs:
    """The recipe (``config/models/ppo.yaml``)."""

    total_timesteps: int = 300000  # environment steps
    n_envs: int = 2  # processes
    n_steps: int = 256  # rollout length per env
    batch_size: int = 128
    n_epochs: int = 10
    learning_rate: float = 3e-4
    gamma: float = 0.9
    gae_lambda: float = 0.95
    clip_range: float = 0.2
    ent_coef: float = 0.0
    features_dim: int = 256
    net_arch: tuple[int, ...] = (256, 256)
    log_std_init: float = -0.5
    eval_every: int = 10000
    eval_episodes: int = 30
    eval_seed: int = 100000
    checkpoint_every: int = 20000
    torch_threads: int = 1
    select_pos_m: float = 0.01  # m: best-checkpoint scale of the held-out median position error (issue 11 §4 target)
    select_yaw_deg: float = 5.0  # deg: best-checkpoint scale of the held-out median yaw error (same target)


def load_ppo_args(path: str | Path) -> PPOArgs:
    """Validate the PPO recipe file."""
    s = Section(load_yaml(path), path)
    s.unknown_keys(set(PPOArgs.__dataclass_fields__))
    ints = {"total_timesteps", "n_envs", "n_steps", "batch_size", "n_epochs", "features_dim", "eval_every",
            "eval_episodes", "eval_seed", "checkpoint_every", "torch_threads"}
    kw: dict[str, object] = {}
    for k in PPOArgs.__dataclass_fields__:
        if k in ints:
            kw[k] = s.integer(k, lo=0)
        elif k == "net_arch":
            kw[k] = tuple(int(v) for v in s.list(k))
        elif k.startswith("select_"):  # added with best-checkpoint selection: older recipes lack them
            kw[k] = s.number(k, getattr(PPOArgs, k), lo=1e-9)
        else:
            kw[k] = s.number(k)
    return PPOArgs(**kw)  # type: ignore[arg-type]


def selection_score(res: dict[str, float], args: PPOArgs) -> float:
    """How far a held-out evaluation is from the pose targets (lower is better): the larger of
    the median position error over ``select_pos_m`` and the median yaw error over
    ``select_yaw_deg`` (yaw left out when no episode had a defined yaw, e.g. round objects only)."""
    pos = res["pos_median_m"] / args.select_pos_m
    yaw = res["yaw_median_deg"]
    return float(pos if yaw != yaw else max(pos, yaw / args.select_yaw_deg))  # yaw != yaw: NaN


class BestCheckpoint:
    """The best held-out evaluation so far, kept across resumes in ``out/best.json``.

    ``policy.pt`` is always the best policy by :func:`selection_score` (the one to ship);
    ``policy_last.pt`` the latest evaluated one.
    """

    def __init__(self, out: Path, args: PPOArgs) -> None:
        self.path, self.args = out / "best.json", args
        self.best: dict[str, Any] | None = json.loads(self.path.read_text()) if self.path.is_file() else None

    def offer(self, timesteps: int, res: dict[str, float]) -> bool:
        """Record ``res`` (an evaluation at ``timesteps``); True when it is the new best (the
        caller then exports it as ``policy.pt``). Ties go to the later checkpoint."""
        score = selection_score(res, self.args)
        if self.best is not None and score > self.best["score"]:
            return False
        self.best = {"timesteps": timesteps, "score": round(score, 4), **res}
        atomic_write_text(self.path, json.dumps(self.best, indent=2) + "\n")
        return True


def _make_env(rank: int, seed: int):
    def thunk():
        import torch

        torch.set_num_threads(1)
        from app.sim.pose_env import PoseEnv

        env = PoseEnv()
        env.reset(seed=seed + rank)
        return env

    return thunk


def evaluate_policy_errors(predict, episodes: int, seed: int, z_zero: bool = False,
                           objects: str | None = None, domain: str | None = None) -> dict[str, float]:
    """Deterministic episodes on fixed seeds: median/p90 pose errors and mean return.

    Args:
        predict: ``obs (4,S,S) -> action (4,)``.
        episodes: Number of episodes (seeds ``seed .. seed + episodes - 1``).
        z_zero: Step 3 with z = 0 (as before VS).
    """
    from app.sim.pose_env import PoseEnv

    env = PoseEnv(objects=objects, domain=domain)
    pos, yaw, ret = [], [], []
    try:
        for i in range(episodes):
            obs, _ = env.reset(seed=seed + i)
            total, done = 0.0, False
            while not done:
                a = np.asarray(predict(obs), dtype=np.float32)
                if z_zero and env._step == env.cfg.steps - 1:
                    lo, hi = env.cfg.z_range
                    a[2] = -1.0 + 2.0 * (0.0 - lo) / (hi - lo)
                obs, r, done, _, info = env.step(a)
                total += r
            pos.append(info["pos_error_m"])
            if info["yaw_error_deg"] is not None:
                yaw.append(info["yaw_error_deg"])
            ret.append(total)
    finally:
        env.close()
    return {"pos_median_m": float(np.median(pos)), "pos_p90_m": float(np.percentile(pos, 90)),
            "yaw_median_deg": float(np.median(yaw)) if yaw else float("nan"),
            "yaw_p90_deg": float(np.percentile(yaw, 90)) if yaw else float("nan"),
            "mean_return": float(np.mean(ret)), "n": episodes}


def _save_model(model: Any, path: Path) -> None:
    """SB3 ``model.save`` through a temporary file (a failed save keeps the last good one); SB3
    gets an open file, so a removed folder is an error instead of being silently recreated."""

    def write(tmp: Path) -> None:
        with tmp.open("wb") as f:
            model.save(f)

    atomic_save(path, write, hint="the last good checkpoint is kept: rerun with --resume")


def train_ppo(config: str | Path, out_dir: str | Path, seed: int = 0, resume: bool = False,
              total_override: int | None = None) -> Path:
    """Train (or resume), evaluate periodically on held-out seeds, export the best evaluated
    policy as ``out_dir/policy.pt`` (:class:`BestCheckpoint`) and the latest as
    ``policy_last.pt``. Returns the path of ``policy.pt``.

    Raises:
        OutputError: ``out_dir`` cannot be written, or another run owns it (before any work).
        OutputWriteError: A save failed during the run (the last good checkpoint is kept).
    """
    check_output_dir(out_dir, "--out")  # before any work: one line and exit 2
    args = load_ppo_args(config)
    with owned(prepare_output_dir(out_dir, "--out", command="train ppo", lock=True)):
        return _train_ppo(args, Path(out_dir), seed, resume, total_override)


def _train_ppo(args: PPOArgs, out: Path, seed: int, resume: bool, total_override: int | None) -> Path:
    """:func:`train_ppo` in the run directory it owns."""
    import torch
    from stable_baselines3 import PPO
    from stable_baselines3.common.callbacks import BaseCallback
    from stable_baselines3.common.vec_env import SubprocVecEnv, VecMonitor

    from models.policy_net import RGBDExtractor, export_policy

    if total_override:
        args.total_timesteps = total_override
    atomic_write_text(out / "config.yaml", yaml.safe_dump({"seed": seed, **asdict(args)}, sort_keys=False))
    env_cfg = Path(__file__).resolve().parents[1] / "config" / "env.yaml"
    atomic_write_text(out / "env.yaml", env_cfg.read_text())
    write_training_camera(out, load_hardware())  # the env renders the default hardware file's camera
    torch.set_num_threads(args.torch_threads)
    venv = VecMonitor(SubprocVecEnv([_make_env(i, seed * 1000) for i in range(args.n_envs)]))
    ckpt = out / "ppo_checkpoint.zip"
    if resume and ckpt.exists():
        model = PPO.load(ckpt, env=venv, device="cpu")
    else:
        model = PPO(
            "CnnPolicy", venv, seed=seed, device="cpu", verbose=0,
            n_steps=args.n_steps, batch_size=args.batch_size, n_epochs=args.n_epochs,
            learning_rate=args.learning_rate, gamma=args.gamma, gae_lambda=args.gae_lambda,
            clip_range=args.clip_range, ent_coef=args.ent_coef,
            policy_kwargs={"features_extractor_class": RGBDExtractor,
                           "features_extractor_kwargs": {"features_dim": args.features_dim},
                           "normalize_images": False, "log_std_init": args.log_std_init,
                           "net_arch": {"pi": list(args.net_arch), "vf": list(args.net_arch)}})
    curve = out / "eval.csv"
    best = BestCheckpoint(out, args)
    meta = {"obs_size": venv.observation_space.shape[-1], "features_dim": args.features_dim,
            "net_arch": list(args.net_arch)}

    class Periodic(BaseCallback):
        def __init__(self) -> None:
            super().__init__()
            self.last_eval = model.num_timesteps
            self.last_ckpt = model.num_timesteps
            self.t0 = time.time()
            from tqdm import tqdm

            self.bar = tqdm(total=args.total_timesteps, initial=model.num_timesteps, unit="step",
                            desc="ppo", mininterval=5)

        def _on_step(self) -> bool:
            n = self.model.num_timesteps
            self.bar.update(n - self.bar.n)
            if n - self.last_ckpt >= args.checkpoint_every:
                _save_model(self.model, ckpt)
                self.last_ckpt = n
            if n - self.last_eval >= args.eval_every:
                self.last_eval = n
                self._evaluate(n)
            return True

        def _evaluate(self, n: int) -> None:
            pol = self.model.policy
            res = evaluate_policy_errors(lambda o: pol.predict(o, deterministic=True)[0], args.eval_episodes,
                                         args.eval_seed)
            rew = [ep["r"] for ep in self.model.ep_info_buffer] if self.model.ep_info_buffer else [np.nan]
            row = {"timesteps": n, "wall_s": round(time.time() - self.t0, 1),
                   "train_return": float(np.mean(rew)), **res}
            text = io.StringIO(newline="")
            w = csv.DictWriter(text, fieldnames=list(row))
            if not curve.exists():
                w.writeheader()
            w.writerow(row)
            lines = AppendFile(curve)  # whole rows only: a full disk leaves no torn row
            try:
                lines.append(text.getvalue().encode())
            finally:
                lines.close()
            _save_model(self.model, ckpt)
            export_policy(self.model, out / "policy_last.pt", {**meta, "timesteps": n})
            if best.offer(n, res):
                export_policy(self.model, out / "policy.pt", {**meta, "timesteps": n})
            _plot(curve, out / "eval.png")

    cb = Periodic()
    remaining = args.total_timesteps - model.num_timesteps
    if remaining > 0:
        model.learn(remaining, callback=cb, reset_num_timesteps=False, progress_bar=False)
    if _last_evaluated(curve) != model.num_timesteps:  # the callback may have evaluated this step already
        cb._evaluate(model.num_timesteps)
    _save_model(model, ckpt)
    venv.close()
    atomic_write_text(out / "summary.json", json.dumps({"timesteps": model.num_timesteps, "seed": seed,
                                                        "best": best.best}, indent=2))  # set by the last evaluation
    return out / "policy.pt"


def _last_evaluated(curve: Path) -> int | None:
    """The environment step of the last row of ``eval.csv``, or None when there is none."""
    if not curve.exists():
        return None
    rows = list(csv.DictReader(curve.open()))
    return int(rows[-1]["timesteps"]) if rows else None


def _plot(csv_path: Path, png: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = list(csv.DictReader(csv_path.open()))
    if not rows:
        return
    t = [int(r["timesteps"]) for r in rows]
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.2))
    ax[0].plot(t, [float(r["mean_return"]) for r in rows], label="eval")
    ax[0].plot(t, [float(r["train_return"]) for r in rows], label="train")
    ax[0].set_title("return")
    ax[0].legend()
    ax[1].plot(t, [100 * float(r["pos_median_m"]) for r in rows], label="median")
    ax[1].plot(t, [100 * float(r["pos_p90_m"]) for r in rows], label="p90")
    ax[1].set_title("position error after step 3 (cm)")
    ax[1].legend()
    ax[2].plot(t, [float(r["yaw_median_deg"]) for r in rows], label="median")
    ax[2].plot(t, [float(r["yaw_p90_deg"]) for r in rows], label="p90")
    ax[2].set_title("yaw error (deg)")
    ax[2].legend()
    for a in ax:
        a.set_xlabel("environment steps")
    fig.tight_layout()
    try:
        atomic_save(png, lambda tmp: fig.savefig(tmp, dpi=80, format="png"))
    finally:
        plt.close(fig)
