"""RGB-D ↔ tensor conversion, missing depth, batches, masks and the policy observation."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import InputError
from models.preprocess import (
    DepthRange,
    decode_depth,
    encode_depth,
    from_batch,
    from_tensor,
    mask_to_tensor,
    policy_observation,
    to_batch,
    to_tensor,
)

torch.set_num_threads(1)
RNG = DepthRange()  # SR300: 0.2–1.5 m, codes below -0.98 are "no reading"


def frame(h: int = 8, w: int = 6, depth: float = 0.5) -> tuple[np.ndarray, np.ndarray]:
    rgb = np.arange(h * w * 3, dtype=np.int64).reshape(h, w, 3).astype(np.uint8)
    return rgb, np.full((h, w), depth, np.float32)


def test_depth_encoding_hand_values() -> None:
    # near → -1, far → +1, the midpoint 0.85 m → 0; 0 m, NaN and 0.1 m (below near) → -1;
    # 2 m (beyond far) is clipped to +1.
    d = np.array([[0.2, 1.5, 0.85, 0.0, np.nan, 0.1, 2.0]], np.float32)
    np.testing.assert_allclose(encode_depth(d, RNG), [[-1, 1, 0, -1, -1, -1, 1]], atol=1e-6)


def test_depth_decoding_threshold() -> None:
    # -0.99 is below the threshold -0.98 → no reading; -0.97 → 0.2 + 0.015·1.3 = 0.2195 m.
    out = decode_depth(np.array([-1.0, -0.99, -0.97, 0.0, 1.0, 1.5]), RNG)
    np.testing.assert_allclose(out, [0.0, 0.0, 0.2195, 0.85, 1.5, 1.5], atol=1e-6)


def test_rgb_scaling_and_round_trip() -> None:
    rgb, depth = frame()
    t = to_tensor(rgb, depth)
    assert t.shape == (4, 8, 6) and t.dtype == torch.float32
    assert t[0, 0, 0].item() == -1.0  # rgb value 0 → -1
    assert t[:3].max().item() <= 1.0
    assert t[1, 0, 0].item() == pytest.approx(1 / 127.5 - 1)  # value 1
    back_rgb, back_depth = from_tensor(t)
    np.testing.assert_array_equal(back_rgb, rgb)
    np.testing.assert_allclose(back_depth, depth, atol=1e-6)


def test_missing_depth_round_trips_to_zero() -> None:
    rgb, depth = frame()
    depth[2, 3] = 0.0
    depth[4, 1] = np.nan
    back = from_tensor(to_tensor(rgb, depth))[1]
    assert back[2, 3] == 0.0 and back[4, 1] == 0.0
    assert np.count_nonzero(back == 0.0) == 2


@settings(max_examples=50, deadline=None)
@given(st.floats(min_value=0.2 + 0.014, max_value=1.5))
def test_valid_depth_survives_a_round_trip(d: float) -> None:
    # Valid depths more than 13 mm above near survive exactly (up to float32 rounding).
    out = decode_depth(encode_depth(np.array([[d]], np.float32), RNG), RNG)
    assert out[0, 0] == pytest.approx(d, abs=2e-6)


def test_configurable_range() -> None:
    rng = DepthRange(near=0.1, far=1.1, missing_below=-0.99)
    np.testing.assert_allclose(encode_depth(np.array([[0.1, 0.6, 1.1]], np.float32), rng), [[-1, 0, 1]], atol=1e-6)
    with pytest.raises(InputError, match="near < far"):
        DepthRange(near=1.0, far=0.5)


@pytest.mark.parametrize(("rgb", "depth", "message"), [
    (np.zeros((8, 6, 4), np.uint8), np.zeros((8, 6), np.float32), r"rgb: expected \(H, W, 3\) uint8, found \(8, 6, 4\) uint8"),
    (np.zeros((8, 6, 3), np.float32), np.zeros((8, 6), np.float32), r"rgb: expected \(H, W, 3\) uint8, found \(8, 6, 3\) float32"),
    (np.zeros((8, 6, 3), np.uint8), np.zeros((6, 8), np.float32), r"depth: expected \(8, 6\) float32 metres, found \(6, 8\) float32"),
    (np.zeros((8, 6, 3), np.uint8), np.zeros((8, 6), np.uint16), r"depth: expected \(8, 6\) float32 metres, found \(8, 6\) uint16"),
    ([[0]], np.zeros((8, 6), np.float32), r"rgb: expected \(H, W, 3\) uint8, found list"),
])
def test_wrong_inputs_are_refused_in_one_line(rgb: np.ndarray, depth: np.ndarray, message: str) -> None:
    for fn in (lambda: to_tensor(rgb, depth), lambda: policy_observation(rgb, depth, 4)):
        with pytest.raises(InputError, match=message) as e:
            fn()
        assert "\n" not in str(e.value)


def test_from_tensor_refuses_wrong_shape() -> None:
    with pytest.raises(InputError, match=r"expected \(4, H, W\), found \(3, 8, 8\)"):
        from_tensor(torch.zeros(3, 8, 8))


def test_batch_helpers() -> None:
    frames = [frame(depth=d) for d in (0.3, 0.6, 0.9)]
    batch = to_batch([f[0] for f in frames], [f[1] for f in frames])
    assert batch.shape == (3, 4, 8, 6)
    back = from_batch(batch)
    assert len(back) == 3
    for (rgb, depth), (rgb2, depth2) in zip(frames, back, strict=True):
        np.testing.assert_array_equal(rgb, rgb2)
        np.testing.assert_allclose(depth, depth2, atol=1e-6)
    with pytest.raises(InputError, match="expected every frame"):
        to_batch([frame()[0], frame(4, 4)[0]], [frame()[1], frame(4, 4)[1]])
    with pytest.raises(InputError, match="found 2 and 1"):
        to_batch([frame()[0]] * 2, [frame()[1]])


def test_mask_to_tensor() -> None:
    m = np.array([[0, 1], [2, 1]], np.uint8)
    t = mask_to_tensor(m)
    assert t.dtype == torch.int64 and t.tolist() == [[0, 1], [2, 1]]
    with pytest.raises(InputError, match="expected classes 0..2, found 3"):
        mask_to_tensor(np.array([[3]], np.uint8))
    with pytest.raises(InputError, match=r"expected \(H, W\) uint8"):
        mask_to_tensor(np.zeros((2, 2), np.int32))


def test_policy_observation_values() -> None:
    # 4x4 → 2x2: RGB averages each 2x2 block (INTER_AREA); depth keeps one of the block's
    # values (INTER_NEAREST), so a hole next to the table is never averaged into 0.225 m.
    rgb = np.zeros((4, 4, 3), np.uint8)
    rgb[:2, :2] = [0, 100, 200]
    rgb[0, 0] = [40, 100, 200]  # the block's red mean is 10
    depth = np.array([[0.45, 0.0, 3.0, 3.0],
                      [0.0, 0.45, 3.0, 3.0],
                      [0.75, 0.75, 0.3, 0.3],
                      [0.75, 0.75, 0.3, 0.3]], np.float32)
    obs = policy_observation(rgb, depth, 2)
    assert obs.shape == (4, 2, 2) and obs.dtype == np.float32
    np.testing.assert_allclose(obs[:3, 0, 0], np.array([10, 100, 200]) / 255.0, atol=1e-6)
    np.testing.assert_allclose(obs[:3, 1, 1], 0.0)
    assert obs[3, 0, 0] == pytest.approx(0.3)  # the block's top-left 0.45 m / 1.5, not a mix with holes
    assert obs[3, 0, 1] == 1.0  # 3 m is clipped to 1
    assert obs[3, 1, 0] == pytest.approx(0.5)  # 0.75 / 1.5
    assert obs[3, 1, 1] == pytest.approx(0.2)  # 0.3 / 1.5
    assert obs.min() >= 0.0 and obs.max() <= 1.0


def test_policy_observation_missing_depth_is_zero() -> None:
    rgb, depth = frame(64, 64)
    depth[:] = 0.0
    depth[0, 0] = np.inf
    obs = policy_observation(rgb, depth, 16)
    assert obs.shape == (4, 16, 16)
    assert np.all(obs[3] == 0.0)
    with pytest.raises(InputError, match="expected size > 0"):
        policy_observation(rgb, depth, 0)
