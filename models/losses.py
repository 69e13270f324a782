"""The semantic CycleGAN's loss terms (paper, Sec. III-B), as plain functions on tensors.

Total generator objective: ``L_GAN + λc·L_cyc + λi·L_id + λs·L_sem (+ λd·L_depth + λk·L_keep)``. Images
are ``(B, 4, H, W)`` in [-1, 1] (RGB then encoded depth, see :mod:`models.preprocess`);
discriminator values are ``(B,)``; masks are ``(B, H, W)`` int64 class indices.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Literal

import torch
import torch.nn.functional as F

IdentityForm = Literal["paper", "original"]
LSGAN_HALF = 0.5  # the paper's eq. (6): each squared term carries a factor 1/2
DEPTH_CHANNEL = 3  # channel index of depth in an RGB-D tensor


def lsgan_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Discriminator LSGAN loss: ``½·E[(D(real) − 1)²] + ½·E[D(fake)²]``.

    Args:
        real: (B,) discriminator values on real images of its domain.
        fake: (B,) discriminator values on translated images.
    """
    return LSGAN_HALF * ((real - 1.0) ** 2).mean() + LSGAN_HALF * (fake**2).mean()


def lsgan_g_loss(fake: torch.Tensor) -> torch.Tensor:
    """Generator LSGAN loss: ``½·E[(D(G(·)) − 1)²]``.

    Args:
        fake: (B,) discriminator values on the generator's output.
    """
    return LSGAN_HALF * ((fake - 1.0) ** 2).mean()


def l1(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference over every element."""
    return (a - b).abs().mean()


def cycle_loss(x: torch.Tensor, rec_x: torch.Tensor, y: torch.Tensor, rec_y: torch.Tensor) -> torch.Tensor:
    """Cycle consistency: ``‖G_YX(G_XY(x)) − x‖₁ + ‖G_XY(G_YX(y)) − y‖₁`` (means)."""
    return l1(rec_x, x) + l1(rec_y, y)


def identity_loss(form: IdentityForm, x: torch.Tensor, y: torch.Tensor,
                  g_xy: Callable[[torch.Tensor], torch.Tensor], g_yx: Callable[[torch.Tensor], torch.Tensor],
                  fake_y: torch.Tensor | None = None, fake_x: torch.Tensor | None = None) -> torch.Tensor:
    """The identity term, in one of two forms.

    * ``"paper"`` (eq. 2, content similarity): ``‖G_XY(x) − x‖₁ + ‖G_YX(y) − y‖₁`` — each
      translation stays close to its own input. ``fake_y = G_XY(x)`` and ``fake_x = G_YX(y)``
      are reused when given.
    * ``"original"`` (Zhu et al.): ``‖G_YX(x) − x‖₁ + ‖G_XY(y) − y‖₁`` — a generator fed an
      image of its target domain should leave it unchanged. (The original code weights it by
      λ_identity·λ_cycle = 0.5·10; set λi = 5 to match.)

    Args:
        form: ``"paper"`` or ``"original"``.
        x: (B, 4, H, W) sim images.
        y: (B, 4, H, W) real images.
        g_xy: Sim → real generator.
        g_yx: Real → sim generator.
        fake_y: Optional precomputed ``g_xy(x)``.
        fake_x: Optional precomputed ``g_yx(y)``.
    """
    if form == "paper":
        out_x = g_xy(x) if fake_y is None else fake_y
        out_y = g_yx(y) if fake_x is None else fake_x
        return l1(out_x, x) + l1(out_y, y)
    if form == "original":
        return l1(g_yx(x), x) + l1(g_xy(y), y)
    raise ValueError(f"identity form: expected 'paper' or 'original', found {form!r}")


def semantic_loss(logits: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Pixel-wise cross-entropy of a discriminator's segmentation against a sim mask.

    Args:
        logits: (B, C, H, W) class scores.
        mask: (B, H, W) int64 ground-truth classes.

    Returns:
        Mean over pixels and batch (nats).
    """
    return F.cross_entropy(logits, mask)


def depth_consistency_loss(inp: torch.Tensor, out: torch.Tensor, missing_below: float) -> torch.Tensor:
    """Mean absolute difference of the encoded depth channel over pixels valid in both images.

    A pixel is valid where its encoded depth is at least ``missing_below`` (see
    :mod:`models.preprocess`); the validity mask is not differentiated, so a generator can
    still open or fill holes without paying for it here.

    Args:
        inp: (B, 4, H, W) generator input.
        out: (B, 4, H, W) generator output.
        missing_below: Encoded depth below this means "no reading".

    Returns:
        Scalar; 0 if no pixel is valid in both.
    """
    d_in = inp[:, DEPTH_CHANNEL]
    d_out = out[:, DEPTH_CHANNEL]
    valid = ((d_in >= missing_below) & (d_out >= missing_below)).detach().to(out.dtype)
    return ((d_out - d_in).abs() * valid).sum() / valid.sum().clamp(min=1.0)


def keep_object_loss(seg_adapted: torch.Tensor, seg_raw: torch.Tensor) -> torch.Tensor:
    """The adapted image keeps the object: cross-entropy of D_X's segmentation of ``G_YX(y)``
    against D_Y's segmentation of ``y`` itself, taken as a fixed pseudo-label (its argmax, no
    gradient). Trains the real→sim generator (through D_X, whose weights are frozen during the
    generator step) to translate so that the object stays where the real-domain segmenter saw it.
    Not in the paper (issue 11 §2's lever).

    Args:
        seg_adapted: (B, C, H, W) D_X's class scores on the adapted images.
        seg_raw: (B, C, H, W) D_Y's class scores on the real images (detached here).

    Returns:
        Mean over pixels and batch (nats).
    """
    return F.cross_entropy(seg_adapted, seg_raw.detach().argmax(dim=1))
