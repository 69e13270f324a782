"""Loss terms on tiny tensors with hand-computed values."""

import math

import pytest
import torch

from models import losses

torch.set_num_threads(1)


def test_lsgan_discriminator() -> None:
    # ½·mean((D(real) − 1)²) + ½·mean(D(fake)²): real [1, 0] → mean(0, 1) = ½;
    # fake [0, 1] → ½; total ½·½ + ½·½ = 0.5.
    real, fake = torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0])
    assert losses.lsgan_d_loss(real, fake).item() == pytest.approx(0.5)
    assert losses.lsgan_d_loss(torch.ones(3), torch.zeros(3)).item() == 0.0


def test_lsgan_generator() -> None:
    # ½·mean((D(G) − 1)²) with D(G) = [0.5, 1] → ½·(0.25 + 0)/2 = 0.0625.
    assert losses.lsgan_g_loss(torch.tensor([0.5, 1.0])).item() == pytest.approx(0.0625)


def test_cycle_loss() -> None:
    x, y = torch.zeros(1, 4, 2, 2), torch.ones(1, 4, 2, 2)
    rec_x = torch.full_like(x, 0.5)  # |0.5 − 0| = 0.5 everywhere
    rec_y = y.clone()
    rec_y[0, 0, 0, 0] = 0.0  # one of 16 elements off by 1 → 1/16
    assert losses.cycle_loss(x, rec_x, y, rec_y).item() == pytest.approx(0.5 + 1 / 16)


def test_identity_forms_differ() -> None:
    # Toy "generators": G_XY(t) = t + 1, G_YX(t) = 2t; x = 1, y = 3.
    g_xy, g_yx = (lambda t: t + 1), (lambda t: 2 * t)
    x, y = torch.ones(1, 4, 2, 2), torch.full((1, 4, 2, 2), 3.0)
    # paper: |G_XY(x) − x| + |G_YX(y) − y| = |2 − 1| + |6 − 3| = 4
    assert losses.identity_loss("paper", x, y, g_xy, g_yx).item() == pytest.approx(4.0)
    # original: |G_YX(x) − x| + |G_XY(y) − y| = |2 − 1| + |4 − 3| = 2
    assert losses.identity_loss("original", x, y, g_xy, g_yx).item() == pytest.approx(2.0)
    # precomputed translations are reused in the paper form
    assert losses.identity_loss("paper", x, y, g_xy, g_yx, fake_y=x, fake_x=y).item() == 0.0
    with pytest.raises(ValueError, match="identity form"):
        losses.identity_loss("zhu", x, y, g_xy, g_yx)  # type: ignore[arg-type]


def test_semantic_loss() -> None:
    mask = torch.tensor([[[0, 1], [2, 2]]])
    # uniform scores: −log(1/3) per pixel
    assert losses.semantic_loss(torch.zeros(1, 3, 2, 2), mask).item() == pytest.approx(math.log(3))
    # scores (0, 0, ln 2) → p(gripper) = 2/4: pixels of class 2 cost ln 2, the others ln 4
    logits = torch.zeros(1, 3, 2, 2)
    logits[:, 2] = math.log(2)
    expected = (2 * math.log(4) + 2 * math.log(2)) / 4
    assert losses.semantic_loss(logits, mask).item() == pytest.approx(expected)


def _rgbd(depth: list[float]) -> torch.Tensor:
    t = torch.zeros(1, 4, 1, len(depth))
    t[0, 3, 0] = torch.tensor(depth)
    return t


def test_depth_consistency_over_pixels_valid_in_both() -> None:
    # pixel 1 valid in both (|0.5 − 0.2| = 0.3); pixel 2 a hole in the input; pixel 3 a hole in the
    # output (−0.99 < −0.98): only pixel 1 counts.
    inp, out = _rgbd([0.2, -1.0, 0.4]), _rgbd([0.5, 0.9, -0.99])
    out.requires_grad_(True)
    loss = losses.depth_consistency_loss(inp, out, -0.98)
    assert loss.item() == pytest.approx(0.3)
    loss.backward()
    assert out.grad is not None
    assert out.grad[0, 3, 0].tolist() == [1.0, 0.0, 0.0]
    assert out.grad[0, :3].abs().sum().item() == 0.0  # colour is not touched
    assert losses.depth_consistency_loss(_rgbd([-1.0]), _rgbd([0.5]), -0.98).item() == 0.0


def test_keep_object_loss_follows_the_raw_segmentation_and_only_trains_the_adapted_side() -> None:
    """D_Y's argmax on the raw image is the label; a D_X segmentation that agrees costs little,
    one that loses the object costs more, and no gradient reaches D_Y's scores."""
    raw = torch.tensor([[4.0, 0.0, 0.0], [0.0, 4.0, 0.0]]).T.reshape(1, 3, 1, 2).clone().requires_grad_(True)
    agree = torch.tensor([[3.0, 0.0, 0.0], [0.0, 3.0, 0.0]]).T.reshape(1, 3, 1, 2).clone().requires_grad_(True)
    lost = torch.tensor([[3.0, 0.0, 0.0], [3.0, 0.0, 0.0]]).T.reshape(1, 3, 1, 2)  # object pixel read as background
    good, bad = losses.keep_object_loss(agree, raw), losses.keep_object_loss(lost, raw)
    assert good.item() < 0.1 < bad.item()
    good.backward()
    assert raw.grad is None and agree.grad is not None and agree.grad.abs().sum() > 0
