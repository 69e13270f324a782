"""``python -m app bench pipeline``: every lever timed, and its quality cost measured against the
eager baseline on the fixed frame set (the eager levers change no mask pixel)."""

from __future__ import annotations

import pytest

from app.tools import pipeline_bench as pb

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def res() -> dict:
    return pb.bench_pipeline(n_frames=2, seed=0, threads=1, rounds=2, compile_too=False)


def test_every_lever_is_timed_with_its_quality(res: dict) -> None:
    v = res["variants"]
    assert list(v) == ["baseline", "inference_mode", "channels_last", "mask_argmax_last", "bf16_segmentation",
                       "skip_generator", "shipped"]
    for row in v.values():
        assert set(row["stages"]) == set(pb.STAGES)
        assert 0 < row["iteration"]["p50_ms"] <= row["iteration"]["p95_ms"]
        assert row["frame_period_ratio"] == pytest.approx(row["iteration"]["p95_ms"] / pb.FRAME_PERIOD_60FPS_MS)
        assert row["quality"]["frames"] == 2
    assert res["samples_per_variant"] == 4 and res["threads"] == 1


def test_eager_levers_keep_masks_features_and_actions(res: dict) -> None:
    for name in ("inference_mode", "channels_last", "mask_argmax_last", "shipped", "skip_generator"):
        q = res["variants"][name]["quality"]
        assert q["object_iou_min"] == 1.0 and q["mask_px_differing_max"] == 0, name
        assert q["centroid_max_diff"] in (None, 0.0) and q["alpha_max_diff_deg"] in (None, 0.0), name
    q = res["variants"]["shipped"]["quality"]
    assert q["adapted_rgb_max_abs_diff"] <= 1.0  # uint8 levels: float re-association may flip a rounding
    assert q["policy_action_max_abs_diff"] < 1e-3


def test_fixed_frames_show_an_object() -> None:
    frames = pb.fixed_frames(2, 0)
    assert len(frames) == 2 and all(f.rgb.shape == (128, 128, 3) for f in frames)
    assert frames[0].depth[frames[0].depth > 0].min() > 0.2  # m: beyond the SR300's minimum
