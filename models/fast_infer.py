"""Faster CPU inference of the run-time networks (G_Y->X, D_X, D_Y), same outputs.

:class:`FastRealToSim` wraps a :class:`~models.cyclegan.RealToSim` and offers the same
``adapt`` / ``segment`` / ``segment_real`` calls and ``depth_range``, with the levers of
``config/inference.yaml`` (each measured alone by ``python -m app bench pipeline``):

* ``channels_last``: networks and inputs in NHWC memory order (oneDNN's preferred layout);
  the segmentation's argmax then runs over the contiguous last axis.
* ``compile``: ``torch.compile`` (Inductor) with weight freezing. Compilation happens on the
  first call (tens of seconds on 2 cores, once per process), so it is off for single runs and
  tests and on where many frames follow (campaign workers: ``campaign_compile``). If compiling
  fails (no C compiler, an unsupported op), the eager networks are used and a warning says why.
* ``inference_mode``: :func:`torch.inference_mode` instead of :func:`torch.no_grad`.

Masks are the same class indices as the eager path's (the parity tests and the bench check
IoU and the generator's output difference on a fixed frame set).
"""

from __future__ import annotations

import contextlib
import logging
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import torch
from torch import nn

from app import CONFIG_DIR
from app.config import Section, load_yaml
from models.cyclegan import RealToSim
from models.preprocess import DepthRange
from models.unet import UNetDiscriminator

INFERENCE_CONFIG = CONFIG_DIR / "inference.yaml"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceOptions:
    """Run-time inference levers (``config/inference.yaml``).

    Attributes:
        channels_last: NHWC memory order for networks and inputs.
        inference_mode: ``torch.inference_mode`` instead of ``torch.no_grad``.
        mask_argmax_last: The mask's argmax over the classes as the last, contiguous axis
            (logits viewed as NHWC) instead of over dim 1 of NCHW logits.
        compile: ``torch.compile`` with freezing in single runs (``python -m app``, benches).
        campaign_compile: The same in campaign workers (many frames per process).
    """

    channels_last: bool = True
    inference_mode: bool = True
    mask_argmax_last: bool = True
    compile: bool = False
    campaign_compile: bool = True

    def to_dict(self) -> dict[str, bool]:
        """Plain form (bench JSON)."""
        return asdict(self)


EAGER = InferenceOptions(channels_last=False, inference_mode=False, mask_argmax_last=False, compile=False,
                         campaign_compile=False)


def load_inference_options(path: str | Path | None = None) -> InferenceOptions:
    """Read ``config/inference.yaml`` (or ``path``).

    Raises:
        ConfigError: One line naming the file and key that is wrong.
    """
    p = Path(path) if path else INFERENCE_CONFIG
    s = Section(load_yaml(p), p)
    s.unknown_keys({"channels_last", "inference_mode", "mask_argmax_last", "compile", "campaign_compile"})
    d = InferenceOptions()
    return InferenceOptions(channels_last=s.boolean("channels_last", default=d.channels_last),
                            inference_mode=s.boolean("inference_mode", default=d.inference_mode),
                            mask_argmax_last=s.boolean("mask_argmax_last", default=d.mask_argmax_last),
                            compile=s.boolean("compile", default=d.compile),
                            campaign_compile=s.boolean("campaign_compile", default=d.campaign_compile))


def campaign_options(path: str | Path | None = None) -> InferenceOptions:
    """The options of a campaign worker: ``compile`` set from ``campaign_compile``."""
    o = load_inference_options(path)
    return replace(o, compile=o.campaign_compile)


class _SegmentMask(nn.Module):
    """A discriminator reduced to its class mask: ``(B, 4, H, W) -> (B, H, W)`` int64."""

    def __init__(self, d: UNetDiscriminator, argmax_last: bool) -> None:
        super().__init__()
        self.d = d
        self.argmax_last = argmax_last

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _, logits = self.d(x)
        if not self.argmax_last:
            return logits.argmax(dim=1)
        # Over the last axis of the NHWC view, made contiguous (one small copy): the reduction
        # then reads consecutive memory. The first maximum wins, as in argmax over dim 1.
        return logits.permute(0, 2, 3, 1).contiguous().argmax(dim=-1)


def _compile(module: nn.Module) -> nn.Module:
    """``torch.compile`` with Inductor's weight freezing (constant-folds the eval-mode weights)."""
    import torch._inductor.config as inductor_config

    inductor_config.freezing = True  # process-wide; only inference modules are compiled here
    return torch.compile(module, dynamic=False)  # type: ignore[return-value]


class FastRealToSim:
    """:class:`RealToSim`'s inference calls with the levers of ``opts``.

    Args:
        gan: The eval-mode networks (their weights are put in ``opts``' memory order in place;
            the eager calls of ``gan`` still work and give the same results).
        opts: Which levers to use.
    """

    def __init__(self, gan: RealToSim, opts: InferenceOptions) -> None:
        self.base = gan
        self.opts = opts
        self.depth_range: DepthRange = gan.depth_range
        self.model_cfg = gan.model_cfg
        fmt = torch.channels_last if opts.channels_last else torch.contiguous_format
        self._fmt = fmt
        g = gan.g_yx.to(memory_format=fmt).eval()
        dx = _SegmentMask(gan.d_x.to(memory_format=fmt), opts.mask_argmax_last).eval()
        dy = _SegmentMask(gan.d_y.to(memory_format=fmt), opts.mask_argmax_last).eval()
        self._eager: dict[str, nn.Module] = {"g": g, "dx": dx, "dy": dy}
        self._run: dict[str, nn.Module] = dict(self._eager)
        self.compiled = False
        self.compile_error = ""
        if opts.compile:
            self._run = {k: _compile(m) for k, m in self._eager.items()}
            self.compiled = True

    def _grad_off(self) -> contextlib.AbstractContextManager[None]:
        return torch.inference_mode() if self.opts.inference_mode else torch.no_grad()

    def _call(self, key: str, t: torch.Tensor) -> torch.Tensor:
        single = t.ndim == 3
        x = (t[None] if single else t).contiguous(memory_format=self._fmt)
        with self._grad_off():
            try:
                out = self._run[key](x)
            except Exception as e:  # noqa: BLE001 - any compile failure: fall back to eager
                if not self.compiled:
                    raise
                self._fall_back(e)
                out = self._run[key](x)
        return out[0] if single else out

    def _fall_back(self, e: BaseException) -> None:
        """Compilation failed: use the eager networks from now on, and say why once."""
        self.compile_error = f"{type(e).__name__}: {e}".splitlines()[0][:200]
        msg = f"torch.compile failed, running the networks eagerly ({self.compile_error})"
        warnings.warn(msg, RuntimeWarning, stacklevel=3)
        _log.warning(msg)
        self._run = dict(self._eager)
        self.compiled = False

    def adapt(self, real: torch.Tensor) -> torch.Tensor:
        """Like :meth:`RealToSim.adapt`: (4, H, W) or (B, 4, H, W) real → sim, in (-1, 1)."""
        return self._call("g", real)

    def segment(self, sim: torch.Tensor) -> torch.Tensor:
        """Like :meth:`RealToSim.segment`: D_X's classes, (H, W) or (B, H, W) int64."""
        return self._call("dx", sim)

    def segment_real(self, real: torch.Tensor) -> torch.Tensor:
        """Like :meth:`RealToSim.segment_real`: D_Y's classes of a raw tensor."""
        return self._call("dy", real)

    def warm_up(self, side: int | None = None) -> None:
        """Run every network once on a blank frame (triggers compilation now, not mid-episode)."""
        s = side or self.model_cfg.image_size
        x = torch.zeros(4, s, s)
        self.segment(self.adapt(x))
        self.segment_real(x)


def fast(gan: RealToSim, opts: InferenceOptions | None = None) -> FastRealToSim | RealToSim:
    """``gan`` with the levers of ``opts`` (default: ``config/inference.yaml``); ``gan`` itself
    when every lever is off."""
    opts = opts or load_inference_options()
    if opts == replace(EAGER, campaign_compile=opts.campaign_compile):
        return gan
    return FastRealToSim(gan, opts)

