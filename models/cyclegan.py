"""The semantic CycleGAN: configuration, the four networks, one training step, inference.

Domains: X = sim, Y = real. ``G_XY`` translates sim → real, ``G_YX`` real → sim; ``D_X`` and
``D_Y`` judge (and segment) images of the sim and the real domain. At run time the application
uses only ``G_YX`` (adapt a camera frame to the sim look) and ``D_X`` (segment the adapted
frame for visual servoing), plus ``D_Y`` for the alternative "segment the raw frame" path —
:class:`RealToSim` holds exactly those three.

One :meth:`CycleGANTrainer.step` is a generator update followed by a discriminator update:

* generators: ``L_GAN(G) + λc·L_cyc + λi·L_id + λs·CE(D_Y.seg(G_XY(x)), s) + λd·L_depth`` —
  the semantic term reaches the generator through the (frozen) real-domain discriminator, so
  sim → real translation must keep objects where the mask says they are;
* discriminators: ``L_LSGAN(D_X) + L_LSGAN(D_Y)`` on real images and pooled fakes
  ``+ λs·(CE(D_X.seg(x), s) + CE(D_Y.seg(G_XY(x)), s))`` (the paper's eq. 3).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import nn

from app.config import Section, load_yaml, resolve
from app.errors import InputError
from app.types import RGB, Depth, Mask
from models import losses
from models.image_pool import ImagePool
from models.preprocess import DepthRange, from_tensor, to_tensor
from models.unet import UNetConfig, UNetDiscriminator, UNetGenerator

IDENTITY_FORMS = ["paper", "original"]
SHIP_DTYPES = ["float32", "float16"]


@dataclass(frozen=True)
class LossConfig:
    """Loss weights (the paper: λc = 10, λi = 1, λs = 1).

    Attributes:
        lambda_cycle: Weight of the L1 cycle-consistency term.
        lambda_identity: Weight of the identity term.
        identity_form: ``"paper"`` (content similarity) or ``"original"`` (CycleGAN's).
        lambda_semantic: Weight of the pixel-wise cross-entropy terms.
        semantic_in_generator: Whether ``G_XY`` is also trained by the semantic term.
        lambda_depth: Weight of the optional depth-consistency term (0 in the paper).
        lambda_keep_object: Weight of the optional keep-object term (0 in the paper):
            :func:`models.losses.keep_object_loss`.
    """

    lambda_cycle: float = 10.0
    lambda_identity: float = 1.0
    identity_form: str = "paper"
    lambda_semantic: float = 1.0
    semantic_in_generator: bool = True
    lambda_depth: float = 0.0
    lambda_keep_object: float = 0.0


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings (the paper / CycleGAN: Adam 2e-4, β1 0.5, 200 epochs).

    Attributes:
        epochs: Passes over the (larger) domain's images.
        lr_decay_start: Fraction of the epochs at constant learning rate; it then falls
            linearly to 0 at the end.
        batch_size: Image pairs per step.
        lr: Adam learning rate.
        beta1: Adam β1.
        beta2: Adam β2.
        pool_size: Images in each history pool.
        flip: Horizontal-flip augmentation (a sim image and its mask flip together).
        seed: Seeds weights, data order, flips, dropout and pools.
        threads: ``torch.set_num_threads`` during training.
        checkpoint_dtype: Storage type of the shipped inference file (float16 halves its size).
    """

    epochs: int = 40
    lr_decay_start: float = 0.5
    batch_size: int = 1
    lr: float = 2e-4
    beta1: float = 0.5
    beta2: float = 0.999
    pool_size: int = 50
    flip: bool = True
    seed: int = 0
    threads: int = 2
    checkpoint_dtype: str = "float16"


@dataclass(frozen=True)
class GanConfig:
    """Everything ``config/models/cyclegan*.yaml`` holds."""

    name: str = "cyclegan"
    model: UNetConfig = field(default_factory=UNetConfig)
    depth: DepthRange = field(default_factory=DepthRange)
    loss: LossConfig = field(default_factory=LossConfig)
    train: TrainConfig = field(default_factory=TrainConfig)

    def to_dict(self) -> dict[str, Any]:
        """Plain nested mapping, the same layout as the YAML file."""
        return {"name": self.name, "model": self.model.to_dict(), "depth": self.depth.to_dict(),
                "loss": asdict(self.loss), "train": asdict(self.train)}

    def with_epochs(self, epochs: int) -> GanConfig:
        """A copy with another epoch count."""
        return GanConfig(self.name, self.model, self.depth, self.loss,
                         TrainConfig(**{**asdict(self.train), "epochs": epochs}))


def parse_gan_config(data: dict[str, Any], source: str | Path) -> GanConfig:
    """Validate a CycleGAN config mapping.

    Raises:
        ConfigError: One line naming the file, the key, what was expected and what was found.
    """
    top = Section(data, source)
    top.unknown_keys({"name", "model", "depth", "loss", "train"})
    d_model, d_depth, d_loss, d_train = UNetConfig(), DepthRange(), LossConfig(), TrainConfig()
    m = top.section("model", {})
    m.unknown_keys(set(asdict(d_model)))
    dp = top.section("depth", {})
    dp.unknown_keys(set(asdict(d_depth)))
    lo = top.section("loss", {})
    lo.unknown_keys(set(asdict(d_loss)))
    tr = top.section("train", {})
    tr.unknown_keys(set(asdict(d_train)))
    layers = m.integer("layers", d_model.layers, 3, 10)
    size = m.integer("image_size", d_model.image_size, 8, 4096)
    if size % (2**layers):
        raise m.error("image_size", f"a multiple of 2**layers = {2**layers}", size)
    model = UNetConfig(image_size=size, layers=layers, ngf=m.integer("ngf", d_model.ngf, 1, 1024),
                       ndf=m.integer("ndf", d_model.ndf, 1, 1024),
                       channels=m.integer("channels", d_model.channels, 4, 4),
                       classes=m.integer("classes", d_model.classes, 3, 3),
                       dropout=m.number("dropout", d_model.dropout, 0.0, 0.95))
    near = dp.number("near", d_depth.near, 0.0, 10.0)
    far = dp.number("far", d_depth.far, 0.0, 10.0)
    if not 0.0 < near < far:
        raise dp.error("far", f"a number > near = {near}", far)
    depth = DepthRange(near, far, dp.number("missing_below", d_depth.missing_below, -1.0, 0.99))
    loss = LossConfig(lambda_cycle=lo.number("lambda_cycle", d_loss.lambda_cycle, 0.0),
                      lambda_identity=lo.number("lambda_identity", d_loss.lambda_identity, 0.0),
                      identity_form=lo.string("identity_form", d_loss.identity_form, IDENTITY_FORMS),
                      lambda_semantic=lo.number("lambda_semantic", d_loss.lambda_semantic, 0.0),
                      semantic_in_generator=lo.boolean("semantic_in_generator", d_loss.semantic_in_generator),
                      lambda_depth=lo.number("lambda_depth", d_loss.lambda_depth, 0.0),
                      lambda_keep_object=lo.number("lambda_keep_object", d_loss.lambda_keep_object, 0.0))
    train = TrainConfig(epochs=tr.integer("epochs", d_train.epochs, 1, 100000),
                        lr_decay_start=tr.number("lr_decay_start", d_train.lr_decay_start, 0.0, 1.0),
                        batch_size=tr.integer("batch_size", d_train.batch_size, 1, 4096),
                        lr=tr.number("lr", d_train.lr, 0.0, 1.0),
                        beta1=tr.number("beta1", d_train.beta1, 0.0, 0.9999),
                        beta2=tr.number("beta2", d_train.beta2, 0.0, 0.99999),
                        pool_size=tr.integer("pool_size", d_train.pool_size, 0, 100000),
                        flip=tr.boolean("flip", d_train.flip),
                        seed=tr.integer("seed", d_train.seed, 0),
                        threads=tr.integer("threads", d_train.threads, 1, 256),
                        checkpoint_dtype=tr.string("checkpoint_dtype", d_train.checkpoint_dtype, SHIP_DTYPES))
    return GanConfig(top.string("name", "cyclegan"), model, depth, loss, train)


def load_gan_config(name_or_path: str | Path) -> GanConfig:
    """Load ``config/models/<name>.yaml`` (``"cyclegan"``, ``"cyclegan_paper"``) or a path."""
    path = resolve(name_or_path, "models")
    return parse_gan_config(load_yaml(path), path)


def lr_factor(epoch: int, epochs: int, decay_start: float) -> float:
    """Learning-rate multiplier for a 0-based epoch: 1, then linearly down towards 0.

    With ``n = round(decay_start · epochs)`` constant epochs, epoch ``e ≥ n`` uses
    ``1 − (e − n + 1) / (epochs − n + 1)``, so the last epoch still learns a little and the rate
    would reach 0 one epoch later (CycleGAN's ``linear`` policy).
    """
    n = round(decay_start * epochs)
    return 1.0 - max(0, epoch - n + 1) / float(epochs - n + 1)


def hflip(images: torch.Tensor, masks: torch.Tensor | None,
          gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Flip each sample left–right with probability ½ (its mask with it).

    Args:
        images: (B, C, H, W).
        masks: (B, H, W) or None.
        gen: Random generator (seeded by the caller).

    Returns:
        The flipped images and masks (new tensors).
    """
    flip = torch.rand(images.shape[0], generator=gen) < 0.5  # ½: either orientation equally likely
    images = torch.where(flip[:, None, None, None], images.flip(-1), images)
    if masks is not None:
        masks = torch.where(flip[:, None, None], masks.flip(-1), masks)
    return images, masks


class AdaptedFrame(NamedTuple):
    """One camera frame after real → sim adaptation and segmentation.

    Attributes:
        rgb: (H, W, 3) uint8 sim-looking colour.
        depth: (H, W) float32 metres (0 = no reading), sim-looking depth.
        mask: (H, W) uint8 classes 0 background, 1 object, 2 gripper (D_X on the adapted image).
        tensor: (4, H, W) adapted network tensor in [-1, 1].
    """

    rgb: RGB
    depth: Depth
    mask: Mask
    tensor: torch.Tensor


def _batched(t: torch.Tensor, who: str) -> tuple[torch.Tensor, bool]:
    if t.ndim == 3:
        return t[None], True
    if t.ndim == 4:
        return t, False
    raise InputError(f"{who}: expected (4, H, W) or (B, 4, H, W), found {tuple(t.shape)}")


class RealToSim(nn.Module):
    """The inference part of the CycleGAN: ``G_YX``, ``D_X`` and ``D_Y`` in eval mode.

    Args:
        model: Architecture.
        depth: Depth normalisation the networks were trained with.
    """

    def __init__(self, model: UNetConfig, depth: DepthRange) -> None:
        super().__init__()
        self.model_cfg = model
        self.depth_range = depth
        self.g_yx = UNetGenerator(model)
        self.d_x = UNetDiscriminator(model)
        self.d_y = UNetDiscriminator(model)
        self.eval()

    @torch.no_grad()
    def adapt(self, real: torch.Tensor) -> torch.Tensor:
        """Real-domain tensor(s) → sim-looking tensor(s) (``G_YX``, dropout off).

        Args:
            real: (4, H, W) or (B, 4, H, W) in [-1, 1].

        Returns:
            Same shape, in (-1, 1).
        """
        x, single = _batched(real, "adapt")
        out = self.g_yx(x)
        return out[0] if single else out

    @torch.no_grad()
    def _segment(self, d: UNetDiscriminator, t: torch.Tensor) -> torch.Tensor:
        x, single = _batched(t, "segment")
        _, logits = d(x)
        mask = logits.argmax(dim=1)
        return mask[0] if single else mask

    def segment(self, sim: torch.Tensor) -> torch.Tensor:
        """Segmentation by the sim-domain discriminator ``D_X`` (the run-time VS mask).

        Args:
            sim: (4, H, W) or (B, 4, H, W) sim-looking tensor(s) in [-1, 1].

        Returns:
            (H, W) or (B, H, W) int64 classes: 0 background, 1 object, 2 gripper.
        """
        return self._segment(self.d_x, sim)

    def segment_real(self, real: torch.Tensor) -> torch.Tensor:
        """The alternative: ``D_Y``'s segmentation of a raw real-domain tensor (same shapes)."""
        return self._segment(self.d_y, real)

    def process_frame(self, rgb: RGB, depth: Depth) -> AdaptedFrame:
        """Adapt one camera frame and segment the result (one ``G_YX`` and one ``D_X`` pass).

        Args:
            rgb: (H, W, 3) uint8 camera colour.
            depth: (H, W) float32 metres, 0 = no reading.

        Raises:
            InputError: Wrong shape or dtype, or a size the networks were not built for.
        """
        real = to_tensor(rgb, depth, self.depth_range)
        sim = self.adapt(real)
        mask = self.segment(sim).to(torch.uint8).numpy()
        sim_rgb, sim_depth = from_tensor(sim, self.depth_range)
        return AdaptedFrame(sim_rgb, sim_depth, mask, sim)


class SemanticCycleGAN(nn.Module):
    """The four networks.

    Args:
        model: Architecture of all four.
        depth: Depth normalisation of the images.
    """

    def __init__(self, model: UNetConfig, depth: DepthRange) -> None:
        super().__init__()
        self.model_cfg = model
        self.depth_range = depth
        self.g_xy = UNetGenerator(model)
        self.g_yx = UNetGenerator(model)
        self.d_x = UNetDiscriminator(model)
        self.d_y = UNetDiscriminator(model)

    def inference(self) -> RealToSim:
        """A :class:`RealToSim` holding copies of ``G_YX``, ``D_X``, ``D_Y`` (eval mode)."""
        inf = RealToSim(self.model_cfg, self.depth_range)
        for name in ("g_yx", "d_x", "d_y"):
            getattr(inf, name).load_state_dict(getattr(self, name).state_dict())
        return inf.eval()


class CycleGANTrainer:
    """Optimisers, history pools and the training step of a :class:`SemanticCycleGAN`.

    Args:
        gan: The networks (trained in place).
        cfg: Loss and optimisation settings.
    """

    def __init__(self, gan: SemanticCycleGAN, cfg: GanConfig) -> None:
        self.gan = gan
        self.cfg = cfg
        t = cfg.train
        betas = (t.beta1, t.beta2)
        self.opt_g = torch.optim.Adam([*gan.g_xy.parameters(), *gan.g_yx.parameters()], lr=t.lr, betas=betas)
        self.opt_d = torch.optim.Adam([*gan.d_x.parameters(), *gan.d_y.parameters()], lr=t.lr, betas=betas)
        self.pool_x = ImagePool(t.pool_size, seed=t.seed + 1)  # fakes of the sim domain (for D_X)
        self.pool_y = ImagePool(t.pool_size, seed=t.seed + 2)  # fakes of the real domain (for D_Y)

    def set_epoch(self, epoch: int) -> float:
        """Set both optimisers' learning rate for a 0-based epoch; return it."""
        t = self.cfg.train
        lr = t.lr * lr_factor(epoch, t.epochs, t.lr_decay_start)
        for opt in (self.opt_g, self.opt_d):
            for group in opt.param_groups:
                group["lr"] = lr
        return lr

    def _set_d_grad(self, on: bool) -> None:
        for p in [*self.gan.d_x.parameters(), *self.gan.d_y.parameters()]:
            p.requires_grad_(on)

    def step(self, x: torch.Tensor, mask_x: torch.Tensor, y: torch.Tensor) -> dict[str, float]:
        """One generator update, then one discriminator update.

        Args:
            x: (B, 4, H, W) sim images in [-1, 1].
            mask_x: (B, H, W) int64 ground-truth classes of ``x``.
            y: (B', 4, H, W) real images in [-1, 1] (unpaired).

        Returns:
            Loss values (floats): ``g_total``, ``g_gan``, ``cycle``, ``identity``, ``sem_g``,
            ``depth``, ``keep``, ``d_total``, ``d_gan``, ``sem_d``, and the mean discriminator values
            ``dx_real``, ``dx_fake``, ``dy_real``, ``dy_fake``.
        """
        g, lc = self.gan, self.cfg.loss
        g.train()
        # Generators.
        self._set_d_grad(False)
        fake_y = g.g_xy(x)
        rec_x = g.g_yx(fake_y)
        fake_x = g.g_yx(y)
        rec_y = g.g_xy(fake_x)
        dy_fake, seg_fake_y = g.d_y(fake_y)
        if lc.lambda_keep_object > 0:  # D_X's segmentation of G_YX(y) should match D_Y's of y
            dx_fake, seg_fake_x = g.d_x(fake_x)
            with torch.no_grad():
                seg_y = g.d_y(y)[1]
            keep = losses.keep_object_loss(seg_fake_x, seg_y)
        else:
            dx_fake, keep = g.d_x.realness(fake_x), x.new_zeros(())
        g_gan = losses.lsgan_g_loss(dy_fake) + losses.lsgan_g_loss(dx_fake)
        cyc = losses.cycle_loss(x, rec_x, y, rec_y)
        form: losses.IdentityForm = "original" if lc.identity_form == "original" else "paper"
        idt = (losses.identity_loss(form, x, y, g.g_xy, g.g_yx, fake_y, fake_x)
               if lc.lambda_identity > 0 else x.new_zeros(()))
        sem_g = (losses.semantic_loss(seg_fake_y, mask_x)
                 if lc.semantic_in_generator and lc.lambda_semantic > 0 else x.new_zeros(()))
        dep = (losses.depth_consistency_loss(x, fake_y, g.depth_range.missing_below)
               + losses.depth_consistency_loss(y, fake_x, g.depth_range.missing_below)
               if lc.lambda_depth > 0 else x.new_zeros(()))
        g_total = (g_gan + lc.lambda_cycle * cyc + lc.lambda_identity * idt
                   + lc.lambda_semantic * sem_g + lc.lambda_depth * dep + lc.lambda_keep_object * keep)
        self.opt_g.zero_grad(set_to_none=True)
        g_total.backward()
        self.opt_g.step()
        # Discriminators.
        self._set_d_grad(True)
        fake_y_d, fake_x_d = fake_y.detach(), fake_x.detach()
        dx_real, seg_x = g.d_x(x)
        dy_real = g.d_y.realness(y)
        d_gan = (losses.lsgan_d_loss(dx_real, g.d_x.realness(self.pool_x.query(fake_x_d)))
                 + losses.lsgan_d_loss(dy_real, g.d_y.realness(self.pool_y.query(fake_y_d))))
        if lc.lambda_semantic > 0:
            sem_d = losses.semantic_loss(seg_x, mask_x) + losses.semantic_loss(g.d_y(fake_y_d)[1], mask_x)
        else:
            sem_d = x.new_zeros(())
        d_total = d_gan + lc.lambda_semantic * sem_d
        self.opt_d.zero_grad(set_to_none=True)
        d_total.backward()
        self.opt_d.step()
        values = {"g_total": g_total, "g_gan": g_gan, "cycle": cyc, "identity": idt, "sem_g": sem_g,
                  "depth": dep, "keep": keep, "d_total": d_total, "d_gan": d_gan, "sem_d": sem_d,
                  "dx_real": dx_real.mean(), "dx_fake": dx_fake.mean(),
                  "dy_real": dy_real.mean(), "dy_fake": dy_fake.mean()}
        return {k: float(v.detach()) for k, v in values.items()}

    def state_dict(self) -> dict[str, Any]:
        """Networks, optimisers and pools as plain tensors and numbers."""
        return {"nets": {k: getattr(self.gan, k).state_dict() for k in ("g_xy", "g_yx", "d_x", "d_y")},
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "pool_x": self.pool_x.state_dict(), "pool_y": self.pool_y.state_dict()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (raises ``KeyError``/``RuntimeError``/``ValueError``)."""
        for k in ("g_xy", "g_yx", "d_x", "d_y"):
            getattr(self.gan, k).load_state_dict(state["nets"][k])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.pool_x.load_state_dict(state["pool_x"])
        self.pool_y.load_state_dict(state["pool_y"])
