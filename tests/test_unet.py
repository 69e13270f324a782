"""The U-Net generator and discriminator: shapes, layer counts, the dropout and realness rules."""

import pytest
import torch
from torch import nn

from app.errors import InputError
from models.unet import UNetConfig, UNetDiscriminator, UNetGenerator, count_parameters, widths

torch.set_num_threads(1)
CFG = UNetConfig(image_size=128, layers=7, ngf=4, ndf=4)


@pytest.fixture(scope="module")
def image() -> torch.Tensor:
    torch.manual_seed(0)
    return torch.rand(2, 4, 128, 128) * 2 - 1


def test_widths_follow_pix2pix() -> None:
    assert widths(4, 7) == [4, 8, 16, 32, 32, 32, 32]


def test_generator_shape_and_range(image: torch.Tensor) -> None:
    g = UNetGenerator(CFG).eval()
    out = g(image)
    assert out.shape == (2, 4, 128, 128)
    assert out.abs().max().item() < 1.0  # tanh output


def test_seven_encoder_and_seven_decoder_layers_reach_1x1(image: torch.Tensor) -> None:
    g = UNetGenerator(CFG)
    assert len(g.net.encoder) == 7 and len(g.net.decoder) == 7
    sizes = [f.shape[-1] for f in g.net.encode(image)]
    assert sizes == [64, 32, 16, 8, 4, 2, 1]
    # Skip connections: decoder layers 2..7 take twice the matching encoder width.
    convs = [next(m for m in block if isinstance(m, nn.ConvTranspose2d)) for block in g.net.decoder]
    assert [c.in_channels for c in convs] == [32, 64, 64, 64, 32, 16, 8]
    assert [c.out_channels for c in convs] == [32, 32, 32, 16, 8, 4, 4]


def test_dropout_in_every_decoder_layer_but_the_first() -> None:
    g = UNetGenerator(CFG)
    per_block = [sum(isinstance(m, nn.Dropout) for m in block.modules()) for block in g.net.decoder]
    assert per_block == [0, 1, 1, 1, 1, 1, 1]
    assert all(m.p == 0.5 for m in g.modules() if isinstance(m, nn.Dropout))
    assert sum(isinstance(m, nn.Dropout) for m in g.net.encoder.modules()) == 0
    d = UNetDiscriminator(CFG)
    assert not any(isinstance(m, nn.Dropout) for m in d.modules())


def test_dropout_is_active_in_training_only(image: torch.Tensor) -> None:
    g = UNetGenerator(CFG)
    g.train()
    assert not torch.equal(g(image), g(image))
    g.eval()
    assert torch.equal(g(image), g(image))


def test_discriminator_outputs(image: torch.Tensor) -> None:
    d = UNetDiscriminator(CFG)
    realness, seg = d(image)
    assert realness.shape == (2,) and seg.shape == (2, 3, 128, 128)
    assert realness.abs().max().item() < 1.0


def test_realness_is_mean_tanh_of_the_third_layer(image: torch.Tensor) -> None:
    d = UNetDiscriminator(CFG)
    enc = d.net.encoder
    conv3 = enc[2][1](enc[2][0](enc[1](enc[0](image))))  # third layer: LeakyReLU → Conv (pre-norm)
    assert conv3.shape == (2, 16, 16, 16)
    expected = torch.tanh(conv3).mean(dim=(1, 2, 3))
    torch.testing.assert_close(d(image)[0], expected)
    torch.testing.assert_close(d.realness(image), expected)


def test_realness_ignores_everything_after_the_third_layer(image: torch.Tensor) -> None:
    d = UNetDiscriminator(CFG)
    before_r, before_seg = d(image)
    with torch.no_grad():
        for layer in [*d.net.encoder[3:], *d.net.decoder]:
            for p in layer.parameters():
                p.add_(1.0)
    after_r, after_seg = d(image)
    torch.testing.assert_close(after_r, before_r)
    assert not torch.allclose(after_seg, before_seg)


def test_wrong_input_is_refused(image: torch.Tensor) -> None:
    with pytest.raises(InputError, match=r"generator: expected \(B, 4, 128, 128\), found \(1, 3, 128, 128\)"):
        UNetGenerator(CFG)(torch.zeros(1, 3, 128, 128))
    with pytest.raises(InputError, match=r"discriminator: expected \(B, 4, 128, 128\), found \(4, 128, 128\)"):
        UNetDiscriminator(CFG).realness(image[0])


def test_config_validation() -> None:
    with pytest.raises(InputError, match="image_size divisible by 2\\*\\*layers"):
        UNetConfig(image_size=100, layers=7)
    with pytest.raises(InputError, match="dropout"):
        UNetConfig(dropout=1.0)
    assert UNetConfig.from_dict(CFG.to_dict()) == CFG


def test_parameter_count_at_ngf_16() -> None:
    # FACTS.md: ngf 16 → 2.6 M parameters.
    cfg = UNetConfig(ngf=16, ndf=16)
    assert count_parameters(UNetGenerator(cfg)) == 2_617_444
    assert count_parameters(UNetDiscriminator(cfg)) == 2_616_931
