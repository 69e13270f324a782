"""Train the semantic CycleGAN on a dataset directory (see :mod:`models.dataset`).

Reads top to bottom like the method: load the config and both domains, build the networks,
then per epoch set the learning rate, shuffle, flip, step, and write everything a run leaves
behind in ``out_dir``:

* ``config.yaml`` — the resolved config (after any epoch override);
* ``losses.csv`` / ``losses.png`` — mean losses per epoch, and their curves;
* ``train_state.pt`` — everything needed to resume (rewritten after every epoch);
* ``cyclegan.pt`` — the inference file (``G_YX``, ``D_X``, ``D_Y``), rewritten after every epoch.

Usage: ``python -m models.train_gan --config cyclegan --data DATA --out OUT [--resume]``
(the application's ``python -m app train gan`` calls :func:`train_gan`).
"""

from __future__ import annotations

import argparse
import csv
import io
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import yaml
from matplotlib.figure import Figure
from tqdm import tqdm

from app.errors import AppError, CheckpointError, InputError
from app.hardware_config import load_hardware, write_training_camera
from app.outputs import atomic_save, atomic_write_text, check_output_dir, owned, prepare_output_dir
from models import SHIPPED_GAN_RECIPE
from models.checkpoint import load_training, save_inference, save_training
from models.cyclegan import CycleGANTrainer, GanConfig, SemanticCycleGAN, hflip, load_gan_config
from models.dataset import DomainImages, load_domain
from models.preprocess import DepthRange, encode_depth

STATE_FILE = "train_state.pt"
INFERENCE_FILE = "cyclegan.pt"
GENERATOR_KEYS = ["g_total", "g_gan", "cycle", "identity", "sem_g", "depth", "keep"]
DISCRIMINATOR_KEYS = ["d_total", "d_gan", "sem_d"]
REALNESS_KEYS = ["dx_real", "dx_fake", "dy_real", "dy_fake"]
LOSS_KEYS = GENERATOR_KEYS + DISCRIMINATOR_KEYS + REALNESS_KEYS
CSV_FIELDS = ["epoch", "lr", "seconds", *LOSS_KEYS]
EPOCH_SEED_STRIDE = 100_003  # prime: per-epoch seeds of different runs do not collide


class DomainTensors:
    """One domain's images, converted to network tensors batch by batch.

    Args:
        images: The domain's images (uint8 RGB, depth in metres, optional masks).
        depth: Depth normalisation.
    """

    def __init__(self, images: DomainImages, depth: DepthRange) -> None:
        self.rgb = torch.from_numpy(images.rgb).permute(0, 3, 1, 2)  # (N, 3, H, W) uint8
        self.depth = torch.from_numpy(np.stack([encode_depth(d, depth) for d in images.depth]))
        self.mask = None if images.mask is None else torch.from_numpy(images.mask.astype(np.int64))
        self.n = len(images)

    def batch(self, idx: np.ndarray) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Images ``idx`` as (B, 4, H, W) float32 in [-1, 1] and masks (B, H, W) int64 or None."""
        i = torch.from_numpy(idx)
        rgb = self.rgb[i].float() / 127.5 - 1.0  # uint8 → [-1, 1]
        x = torch.cat([rgb, self.depth[i][:, None]], dim=1)
        return x, None if self.mask is None else self.mask[i]


def epoch_order(n: int, steps: int, batch: int, rng: np.random.Generator) -> np.ndarray:
    """Indices for ``steps`` batches: shuffled passes over ``n`` images, concatenated as needed.

    Returns:
        (steps, batch) int64.
    """
    need = steps * batch
    perms = [rng.permutation(n) for _ in range(math.ceil(need / n))]
    return np.concatenate(perms)[:need].reshape(steps, batch)


def write_losses(out_dir: Path, history: list[dict[str, float]]) -> None:
    """Rewrite ``losses.csv`` and ``losses.png`` from the per-epoch history (each atomically)."""
    text = io.StringIO(newline="")
    w = csv.DictWriter(text, fieldnames=CSV_FIELDS, extrasaction="ignore")
    w.writeheader()
    for row in history:
        w.writerow({k: f"{row[k]:.6g}" for k in CSV_FIELDS if k in row})  # runs begun before a term existed: blank
    atomic_write_text(out_dir / "losses.csv", text.getvalue())
    fig = Figure(figsize=(12, 3.6), layout="constrained")
    epochs = [r["epoch"] for r in history]
    for ax, keys, title in zip(fig.subplots(1, 3), (GENERATOR_KEYS, DISCRIMINATOR_KEYS, REALNESS_KEYS),
                               ("generators", "discriminators", "discriminator value (mean)"), strict=True):
        for k in keys:
            ax.plot(epochs, [r.get(k, float("nan")) for r in history], marker="." if len(epochs) < 20 else None, label=k)
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.legend(fontsize="small")
        ax.grid(alpha=0.3)
    atomic_save(out_dir / "losses.png", lambda tmp: fig.savefig(tmp, dpi=100, format="png"))


def _check_sizes(cfg: GanConfig, *domains: DomainImages) -> None:
    size = cfg.model.image_size
    for d in domains:
        if d.rgb.shape[1:3] != (size, size):
            raise InputError(f"dataset: expected {size}x{size} images (model.image_size), "
                             f"found {d.rgb.shape[1]}x{d.rgb.shape[2]}")
        if d.mask is not None and int(d.mask.max()) >= cfg.model.classes:
            raise InputError(f"dataset: expected mask classes 0..{cfg.model.classes - 1}, "
                             f"found {int(d.mask.max())}")


def train_gan(config_path: str | Path, data_dir: str | Path, out_dir: str | Path, resume: bool = False,
              epochs_override: int | None = None, limit: int | None = None,
              progress: bool = True) -> dict[str, Any]:
    """Train (or continue training) the semantic CycleGAN.

    Args:
        config_path: A name in ``config/models/`` (``"cyclegan"``) or a YAML path.
        data_dir: Dataset directory with ``index.json``, ``sim/`` and ``real/``.
        out_dir: Run directory (created).
        resume: Continue from ``out_dir/train_state.pt`` if it exists (start afresh if not).
        epochs_override: Total epochs instead of the config's (the LR schedule follows it).
        limit: Use only the first ``limit`` images of each domain.
        progress: Show a tqdm bar.

    Returns:
        ``{"epochs": completed, "history": [...], "out_dir": str, "seconds": float}``.

    Raises:
        ConfigError: Bad config. InputError: Bad dataset. CheckpointError: Unusable training
        state, or an existing one without ``resume``. OutputError: ``out_dir`` cannot be
        written, or another run owns it (before any work). OutputWriteError: A save failed
        during the run (the last good checkpoint is kept).
    """
    check_output_dir(out_dir, "--out")  # before any work: one line and exit 2
    with owned(prepare_output_dir(out_dir, "--out", command="train gan", lock=True)):
        return _train_gan(config_path, data_dir, Path(out_dir), resume, epochs_override, limit, progress)


def _train_gan(config_path: str | Path, data_dir: str | Path, out: Path, resume: bool, epochs_override: int | None,
               limit: int | None, progress: bool) -> dict[str, Any]:
    """:func:`train_gan` in the run directory it owns."""
    cfg = load_gan_config(config_path)
    if epochs_override is not None:
        cfg = cfg.with_epochs(int(epochs_override))
    t = cfg.train
    torch.set_num_threads(t.threads)
    state_path = out / STATE_FILE
    if state_path.exists() and not resume:
        raise CheckpointError(f"{state_path}: a training state exists (expected resume=True to continue, "
                              "or another output directory)")
    sim_images, real_images = load_domain(data_dir, "sim", limit), load_domain(data_dir, "real", limit)
    _check_sizes(cfg, sim_images, real_images)
    sim, real = DomainTensors(sim_images, cfg.depth), DomainTensors(real_images, cfg.depth)

    torch.manual_seed(t.seed)
    gan = SemanticCycleGAN(cfg.model, cfg.depth)
    trainer = CycleGANTrainer(gan, cfg)
    start, history = 0, []
    if resume and state_path.exists():
        start, history = load_training(state_path, trainer)
    atomic_write_text(out / "config.yaml", yaml.safe_dump(cfg.to_dict(), sort_keys=False))
    write_training_camera(out, load_hardware())  # `dataset` renders the default hardware file's camera

    steps = math.ceil(max(sim.n, real.n) / t.batch_size)
    t_run = time.perf_counter()
    for epoch in range(start, t.epochs):
        t0 = time.perf_counter()
        lr = trainer.set_epoch(epoch)
        epoch_seed = t.seed * EPOCH_SEED_STRIDE + epoch
        rng = np.random.default_rng(epoch_seed)
        order_x = epoch_order(sim.n, steps, t.batch_size, rng)
        order_y = epoch_order(real.n, steps, t.batch_size, rng)
        flip_gen = torch.Generator().manual_seed(epoch_seed)
        sums = dict.fromkeys(LOSS_KEYS, 0.0)
        bar = tqdm(range(steps), desc=f"epoch {epoch + 1}/{t.epochs}", disable=not progress,
                   leave=False, dynamic_ncols=True)
        for s in bar:
            x, mask = sim.batch(order_x[s])
            y, _ = real.batch(order_y[s])
            if t.flip:
                x, mask = hflip(x, mask, flip_gen)
                y, _ = hflip(y, None, flip_gen)
            assert mask is not None  # the sim domain always has masks (checked by the reader)
            values = trainer.step(x, mask, y)
            for k in LOSS_KEYS:
                sums[k] += values[k]
            bar.set_postfix(g=f"{values['g_total']:.3f}", d=f"{values['d_total']:.3f}")
        bar.close()
        row = {"epoch": float(epoch + 1), "lr": lr, "seconds": time.perf_counter() - t0,
               **{k: v / steps for k, v in sums.items()}}
        history.append(row)
        save_training(state_path, trainer, epoch + 1, history, cfg.to_dict())
        save_inference(out / INFERENCE_FILE, gan, t.checkpoint_dtype,
                       {"epoch": epoch + 1, "config": cfg.name, "sim_images": sim.n, "real_images": real.n})
        write_losses(out, history)
        if progress:
            tqdm.write(f"epoch {epoch + 1}/{t.epochs}: G {row['g_total']:.4f} (cycle {row['cycle']:.4f}) "
                       f"D {row['d_total']:.4f} lr {lr:.2e} {row['seconds']:.0f} s")
    return {"epochs": len(history), "history": history, "out_dir": str(out),
            "seconds": time.perf_counter() - t_run}


def main(argv: list[str] | None = None) -> int:
    """Command line: see the module docstring. Returns the exit code."""
    p = argparse.ArgumentParser(prog="python -m models.train_gan", description=__doc__.splitlines()[0])
    p.add_argument("--config", default=SHIPPED_GAN_RECIPE, help="config name in config/models/ or a YAML path")
    p.add_argument("--data", required=True, help="dataset directory (index.json, sim/, real/)")
    p.add_argument("--out", required=True, help="run directory")
    p.add_argument("--resume", action="store_true", help="continue from OUT/train_state.pt")
    p.add_argument("--epochs", type=int, default=None, help="total epochs (overrides the config)")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images per domain")
    args = p.parse_args(argv)
    try:
        train_gan(args.config, args.data, args.out, args.resume, args.epochs, args.limit)
    except AppError as e:
        print(f"error: {e}")
        return e.exit_code
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
