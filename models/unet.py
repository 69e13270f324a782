"""The semantic CycleGAN's networks: a U-Net generator and a U-Net discriminator.

Both are U-Nets with ``layers`` (7) encoder and 7 decoder layers, as in the paper. Every
encoder layer halves the image with a 4×4 stride-2 convolution and every decoder layer doubles
it with a 4×4 stride-2 transposed convolution, so a 128×128 image reaches 1×1 at the bottleneck.
Widths follow pix2pix's U-Net: ``w, 2w, 4w, 8w, 8w, …`` from the outside in. Layer order is
pix2pix's: each encoder layer is ``LeakyReLU(0.2) → Conv → InstanceNorm`` (no activation
before the first, no norm on the first and the innermost), each decoder layer is
``ReLU → ConvTranspose → InstanceNorm`` (the outermost ends in the output layer instead), and
decoder layer *k > 1* takes the previous decoder output concatenated with encoder layer
``layers − k + 1``'s output (the skip connection).

* :class:`UNetGenerator`: 4 channels in, 4 out, ``tanh`` output. The paper's rule: **dropout in
  every decoder layer but the first** — decoder layers 2…7 begin with ``Dropout(p)`` on their
  input (the last layer included, so the rule holds for all six of them).
* :class:`UNetDiscriminator`: ``forward(x) -> (realness (B,), seg_logits (B, 3, H, W))``. The
  realness is the mean of ``tanh`` of the third encoder layer's convolution output (taken
  before that layer's instance normalisation, which would force the mean to zero), regressed to
  1 (real) or 0 (fake) by the LSGAN loss. The segmentation (background, object, gripper) is
  the output of the whole network.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import torch
from torch import nn

from app.errors import InputError

MAX_WIDTH_MULT = 8  # pix2pix: channel widths stop growing at 8 × the base width
LEAKY_SLOPE = 0.2  # pix2pix / DCGAN discriminator slope
KERNEL = 4  # 4×4 kernels, stride 2, padding 1: exactly halves / doubles the side
REALNESS_LAYER = 3  # the paper: the discriminator value comes from its third layer


@dataclass(frozen=True)
class UNetConfig:
    """Architecture shared by the generators and discriminators.

    Attributes:
        image_size: Side of the square input in pixels (128); must be divisible by 2**layers.
        layers: Encoder layers (= decoder layers), 7 in the paper.
        ngf: Generator base width (channels of the first encoder layer).
        ndf: Discriminator base width.
        channels: Image channels (RGB-D: 4).
        classes: Segmentation classes (background, object, gripper: 3).
        dropout: Dropout probability in the generator's decoder layers 2…layers.
    """

    image_size: int = 128
    layers: int = 7
    ngf: int = 16
    ndf: int = 16
    channels: int = 4
    classes: int = 3
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if self.layers < REALNESS_LAYER or self.image_size % (2**self.layers) != 0:
            raise InputError(f"U-Net: expected layers >= {REALNESS_LAYER} and image_size divisible by "
                             f"2**layers, found image_size={self.image_size}, layers={self.layers}")
        if min(self.ngf, self.ndf, self.channels, self.classes) < 1 or not 0.0 <= self.dropout < 1.0:
            raise InputError(f"U-Net: expected positive widths and dropout in [0, 1), found {self}")

    def to_dict(self) -> dict[str, Any]:
        """Plain-type form (checkpoint metadata)."""
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> UNetConfig:
        """Inverse of :meth:`to_dict`; unknown keys are refused by the constructor."""
        return cls(**data)


def widths(base: int, layers: int) -> list[int]:
    """Output channels of each encoder layer, outermost first (``[w, 2w, 4w, 8w, 8w, …]``)."""
    return [base * min(2**i, MAX_WIDTH_MULT) for i in range(layers)]


def _encoder_layer(c_in: int, c_out: int, first: bool, innermost: bool) -> nn.Sequential:
    parts: list[nn.Module] = [] if first else [nn.LeakyReLU(LEAKY_SLOPE)]
    parts.append(nn.Conv2d(c_in, c_out, KERNEL, stride=2, padding=1))
    if not (first or innermost):
        parts.append(nn.InstanceNorm2d(c_out))
    return nn.Sequential(*parts)


def _decoder_layer(c_in: int, c_out: int, outermost: bool, dropout: float) -> nn.Sequential:
    parts: list[nn.Module] = [nn.Dropout(dropout)] if dropout > 0 else []
    parts += [nn.ReLU(), nn.ConvTranspose2d(c_in, c_out, KERNEL, stride=2, padding=1)]
    if not outermost:
        parts.append(nn.InstanceNorm2d(c_out))
    return nn.Sequential(*parts)


class UNet(nn.Module):
    """A plain U-Net: ``layers`` encoder and decoder layers with skip connections.

    Args:
        c_in: Input channels.
        c_out: Output channels of the last decoder layer (no activation).
        base: Base width.
        layers: Encoder (= decoder) layers.
        decoder_dropout: Dropout probability at the input of decoder layers 2…layers
            (layer 1, the innermost, never has dropout).
    """

    def __init__(self, c_in: int, c_out: int, base: int, layers: int, decoder_dropout: float = 0.0) -> None:
        super().__init__()
        w = widths(base, layers)
        self.encoder = nn.ModuleList(
            _encoder_layer(c_in if i == 0 else w[i - 1], w[i], i == 0, i == layers - 1) for i in range(layers))
        dec: list[nn.Module] = []
        for k in range(layers):  # k = 0 is the innermost decoder layer ("the first")
            skip = layers - 1 - k  # encoder layer whose output this decoder layer produces the size of
            c_in_k = w[layers - 1] if k == 0 else 2 * w[skip]
            c_out_k = c_out if k == layers - 1 else w[skip - 1]
            dec.append(_decoder_layer(c_in_k, c_out_k, k == layers - 1, 0.0 if k == 0 else decoder_dropout))
        self.decoder = nn.ModuleList(dec)

    def encode(self, x: torch.Tensor, upto: int | None = None) -> list[torch.Tensor]:
        """Encoder outputs, outermost first (only the first ``upto`` layers if given)."""
        feats: list[torch.Tensor] = []
        for layer in self.encoder[: upto or len(self.encoder)]:
            x = layer(x)
            feats.append(x)
        return feats

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, c_in, S, S) → (B, c_out, S, S) (no output activation)."""
        feats = self.encode(x)
        h = feats[-1]
        for k, layer in enumerate(self.decoder):
            if k > 0:
                h = torch.cat([h, feats[len(feats) - 1 - k]], dim=1)
            h = layer(h)
        return h


def _check_input(x: torch.Tensor, cfg: UNetConfig, who: str) -> None:
    expected = (cfg.channels, cfg.image_size, cfg.image_size)
    if x.ndim != 4 or tuple(x.shape[1:]) != expected:
        raise InputError(f"{who}: expected (B, {expected[0]}, {expected[1]}, {expected[2]}), "
                         f"found {tuple(x.shape)}")


class UNetGenerator(nn.Module):
    """CycleGAN generator: RGB-D in [-1, 1] → RGB-D in [-1, 1] (tanh), same size.

    Args:
        cfg: Architecture; uses ``ngf``, ``layers``, ``channels``, ``dropout``.
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = UNet(cfg.channels, cfg.channels, cfg.ngf, cfg.layers, cfg.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 4, S, S) → (B, 4, S, S) in (-1, 1)."""
        _check_input(x, self.cfg, "generator")
        return torch.tanh(self.net(x))


class UNetDiscriminator(nn.Module):
    """Semantic discriminator: a realness value and a per-pixel segmentation.

    Args:
        cfg: Architecture; uses ``ndf``, ``layers``, ``channels``, ``classes``.
    """

    def __init__(self, cfg: UNetConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.net = UNet(cfg.channels, cfg.classes, cfg.ndf, cfg.layers, 0.0)

    def _realness_of(self, conv3: torch.Tensor) -> torch.Tensor:
        return torch.tanh(conv3).mean(dim=(1, 2, 3))

    def realness(self, x: torch.Tensor) -> torch.Tensor:
        """Only the discriminator value (runs the first three encoder layers).

        Args:
            x: (B, 4, S, S) in [-1, 1].

        Returns:
            (B,) mean of tanh of the third encoder layer's convolution output, in (-1, 1).
        """
        _check_input(x, self.cfg, "discriminator")
        h = x
        for layer in self.net.encoder[: REALNESS_LAYER - 1]:
            h = layer(h)
        third = self.net.encoder[REALNESS_LAYER - 1]
        return self._realness_of(third[:2](h))  # LeakyReLU → Conv, before the InstanceNorm

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Realness and segmentation logits.

        Args:
            x: (B, 4, S, S) in [-1, 1].

        Returns:
            ``(realness, seg_logits)``: (B,) as in :meth:`realness`, and (B, classes, S, S)
            unnormalised class scores (background, object, gripper).
        """
        _check_input(x, self.cfg, "discriminator")
        net = self.net
        feats: list[torch.Tensor] = []
        h = x
        realness = x.new_zeros(x.shape[0])
        for i, layer in enumerate(net.encoder):
            if i == REALNESS_LAYER - 1:
                conv = layer[:2](h)
                realness = self._realness_of(conv)
                h = layer[2:](conv)
            else:
                h = layer(h)
            feats.append(h)
        for k, layer in enumerate(net.decoder):
            if k > 0:
                h = torch.cat([h, feats[len(feats) - 1 - k]], dim=1)
            h = layer(h)
        return realness, h


def count_parameters(module: nn.Module) -> int:
    """Number of trainable parameters."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
