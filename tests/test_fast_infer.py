"""Inference levers (models/fast_infer.py): same masks and outputs as the eager networks,
config errors in one line, and the eager fallback when compiling fails."""

from __future__ import annotations

import copy
from pathlib import Path

import pytest
import torch

from app.errors import ConfigError
from models import fast_infer as fi
from models.cyclegan import RealToSim
from models.preprocess import DepthRange
from models.unet import UNetConfig

torch.set_num_threads(1)
CFG = UNetConfig(image_size=128, layers=7, ngf=4, ndf=4)
ALL_EAGER_LEVERS = fi.InferenceOptions(channels_last=True, inference_mode=True, mask_argmax_last=True,
                                       compile=False)


@pytest.fixture(scope="module")
def gan() -> RealToSim:
    torch.manual_seed(0)
    return RealToSim(CFG, DepthRange()).eval()


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    torch.manual_seed(1)
    return torch.rand(3, 4, 128, 128) * 2 - 1


def _masks_and_adapted(model, x: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor], list[torch.Tensor]]:
    adapted = [model.adapt(im) for im in x]
    return adapted, [model.segment(a) for a in adapted], [model.segment_real(im) for im in x]


@pytest.mark.parametrize("lever", ["channels_last", "inference_mode", "mask_argmax_last", "all"])
def test_each_eager_lever_gives_the_same_masks(gan: RealToSim, images: torch.Tensor, lever: str) -> None:
    ref = _masks_and_adapted(gan, images)
    opts = ALL_EAGER_LEVERS if lever == "all" else fi.EAGER.__class__(**{**fi.EAGER.to_dict(), lever: True})
    fast = fi.fast(copy.deepcopy(gan), opts)
    assert isinstance(fast, fi.FastRealToSim)
    out = _masks_and_adapted(fast, images)
    for a, b in zip(out[0], ref[0], strict=True):
        assert a.shape == b.shape == (4, 128, 128)
        assert (a - b).abs().max().item() < 1e-4  # float re-association only
    for i in (1, 2):  # D_X on the adapted frames, D_Y on the raw ones: identical class indices
        for a, b in zip(out[i], ref[i], strict=True):
            assert a.dtype == torch.int64 and torch.equal(a, b)
    # Batches as RealToSim takes them.
    assert torch.equal(fast.segment(torch.stack(out[0])), torch.stack(ref[1]))


def test_argmax_over_the_last_axis_keeps_the_first_maximum_on_ties() -> None:
    logits = torch.zeros(1, 3, 4, 4)
    logits[0, 1:, 0, 0] = 1.0  # tie between classes 1 and 2: argmax over dim 1 picks 1
    class Logits(torch.nn.Module):  # a "discriminator" that returns its input as the logits
        def forward(self, x: torch.Tensor) -> tuple[None, torch.Tensor]:
            return None, x

    head = fi._SegmentMask(Logits(), argmax_last=True)
    assert torch.equal(head(logits.contiguous(memory_format=torch.channels_last)), logits.argmax(dim=1))


def test_all_levers_off_returns_the_networks_unchanged(gan: RealToSim) -> None:
    assert fi.fast(gan, fi.EAGER) is gan


def test_shipped_config_loads_and_campaigns_compile() -> None:
    o = fi.load_inference_options()
    assert isinstance(o.compile, bool) and o.channels_last
    assert fi.campaign_options().compile == o.campaign_compile


def test_config_errors_name_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "inference.yaml"
    bad.write_text("channels_last: sometimes\n")
    with pytest.raises(ConfigError, match=r"inference.yaml.*channels_last"):
        fi.load_inference_options(bad)
    bad.write_text("compiled: true\n")
    with pytest.raises(ConfigError, match="compiled"):
        fi.load_inference_options(bad)


def test_failed_compile_falls_back_to_eager_with_a_warning(gan: RealToSim, images: torch.Tensor,
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    class Broken(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            raise RuntimeError("InductorError: no C compiler found\nlong trace")

    monkeypatch.setattr(fi, "_compile", lambda m: Broken())
    fast = fi.FastRealToSim(copy.deepcopy(gan), fi.InferenceOptions(compile=True))
    assert fast.compiled
    with pytest.warns(RuntimeWarning, match="running the networks eagerly .*no C compiler found"):
        adapted = fast.adapt(images[0])
    assert not fast.compiled and "no C compiler" in fast.compile_error and "\n" not in fast.compile_error
    assert torch.equal(fast.segment(adapted), gan.segment(gan.adapt(images[0])))


@pytest.mark.slow
def test_compiled_networks_match_eager(gan: RealToSim, images: torch.Tensor) -> None:
    """torch.compile with freezing (tens of seconds: slow): same masks, G within float noise."""
    fast = fi.FastRealToSim(copy.deepcopy(gan), fi.InferenceOptions(compile=True))
    fast.warm_up()
    assert fast.compiled, fast.compile_error
    ref = _masks_and_adapted(gan, images)
    out = _masks_and_adapted(fast, images)
    for a, b in zip(out[0], ref[0], strict=True):
        assert (a - b).abs().max().item() < 1e-3
    for i in (1, 2):
        for a, b in zip(out[i], ref[i], strict=True):
            inter = ((a == 1) & (b == 1)).sum().item()
            union = ((a == 1) | (b == 1)).sum().item()
            assert union == 0 or inter / union >= 0.99
            assert (a != b).float().mean().item() < 0.001  # < 0.1 % of pixels may flip on near-ties
