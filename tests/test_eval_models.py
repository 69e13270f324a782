"""``python -m app eval-models`` on untrained networks: the contract keys, ranges and figures."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from app.perception import Perception
from app.tools.eval_models import (
    OBJECT_SETS,
    POSE_MODES,
    SEG_METHODS,
    STAGES,
    evaluate_models,
    pose_stats,
    run_eval_models,
)


class ZeroPolicy(torch.nn.Module):
    """Always the zero action: centre of every range (step 3 z is forced to 0 anyway)."""

    obs_size = 64  # px, the env's observation side

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        return torch.zeros(obs.shape[0], 4)


@pytest.fixture(scope="module")
def untrained() -> Perception:
    from models.cyclegan import RealToSim, load_gan_config

    torch.manual_seed(0)
    cfg = load_gan_config("cyclegan")
    return Perception(gan=RealToSim(cfg.model, cfg.depth), policy_net=ZeroPolicy(), obs_size=64)


@pytest.fixture(scope="module")
def metrics(untrained, tmp_path_factory) -> tuple[dict, object]:
    out = tmp_path_factory.mktemp("eval")
    m = evaluate_models(out, seed=3, episodes=2, bundle=untrained, images=3, latency_frames=2)
    return m, out


def test_pose_stats_by_hand() -> None:
    # Two boxes (yaw 10 and 40 deg) and one round object: positions 1, 4, 8 cm.
    eps = [{"pos_error_m": 0.01, "yaw_error_deg": 10.0, "unreachable": 0},
           {"pos_error_m": 0.04, "yaw_error_deg": 40.0, "unreachable": 1},
           {"pos_error_m": 0.08, "yaw_error_deg": None, "unreachable": 0}]
    s = pose_stats(eps)
    assert s["n"] == 3 and s["n_yaw"] == 2
    assert s["pos_median_m"] == pytest.approx(0.04)
    assert s["yaw_median_deg"] == pytest.approx(25.0)
    assert s["within_5cm"] == pytest.approx(2 / 3)
    assert s["within_30deg"] == pytest.approx(1 / 2)
    assert s["within_both"] == pytest.approx(1 / 3)  # only the first is inside on both counts
    assert s["unreachable_steps"] == 1


def test_metrics_file_holds_the_contract_keys(metrics) -> None:
    m, out = metrics
    on_disk = json.loads((out / "model_metrics.json").read_text())
    assert on_disk == m
    assert set(m["pose"]) == set(POSE_MODES)
    for mode in POSE_MODES:
        p = m["pose"][mode]
        assert {"pos_median_m", "yaw_median_deg", "n"} <= set(p)
        assert p["n"] == 2 * len(OBJECT_SETS)  # two episodes per set, pooled
        assert 0.0 <= p["pos_median_m"] < 0.5  # m: within the reach of three steps
        assert 0.0 <= p["yaw_median_deg"] <= 90.0  # a parallel gripper is symmetric mod 180
        for s in OBJECT_SETS:
            assert m["pose_by_set"][s][mode]["n"] == 2
    assert set(m["segmentation_iou"]) == set(SEG_METHODS)
    for method in SEG_METHODS:
        for s in OBJECT_SETS:
            v = m["segmentation_iou"][method][s]
            assert v is None or 0.0 <= v <= 1.0
    assert m["adaptation_error"]["rgb_mae"] is not None and 0.0 <= m["adaptation_error"]["rgb_mae"] <= 255.0
    assert m["adaptation_error"]["depth_mae_m"] is None or 0.0 <= m["adaptation_error"]["depth_mae_m"] < 1.5
    assert set(m["latency_ms"]) == {*STAGES, "total"}
    for k in (*STAGES, "total"):
        lat = m["latency_ms"][k]
        assert 0.0 < lat["p50"] <= lat["p95"]
    assert m["latency_ms"]["total"]["p95"] >= max(m["latency_ms"][k]["p50"] for k in STAGES)
    assert set(m["latency_ms_1_thread"]) == {*STAGES, "total"}
    assert len(m["domain_sha256"]) == 64 and int(m["domain_sha256"], 16) >= 0
    assert m["seed"] == 3 and "eval-models" in m["command"]
    assert all(t["met"] in (True, False, None) for t in m["targets"].values())


def test_sim_and_real_episodes_share_placements(metrics) -> None:
    # The zero policy ignores its input: every mode must give the same errors on one seed. The
    # compliant unseen objects (articulated bodies, re-spawned per episode) settle to within
    # ~0.1 mm / 0.01 deg of each other from one spawn to the next; a different placement would
    # differ by centimetres.
    m, _ = metrics
    for s in OBJECT_SETS:
        by_mode = m["pose_by_set"][s]
        assert by_mode["sim"]["pos_median_m"] == pytest.approx(by_mode["real_raw"]["pos_median_m"], abs=1e-4)
        for key, value in by_mode["real_raw"].items():
            tol = 0.01 if key.startswith("yaw") else 1e-4  # deg, m
            assert by_mode["real_adapted"][key] == pytest.approx(value, abs=tol), key


def test_figures_are_written(metrics) -> None:
    _, out = metrics
    import cv2

    for name in ("fig10_adaptation.png", "fig7_segmentation.png"):
        img = cv2.imread(str(out / name))
        assert img is not None and min(img.shape[:2]) > 100


def test_json_has_no_nan(metrics) -> None:
    _, out = metrics

    def walk(x):
        if isinstance(x, dict):
            for v in x.values():
                walk(v)
        elif isinstance(x, list):
            for v in x:
                walk(v)
        elif isinstance(x, float):
            assert math.isfinite(x)

    walk(json.loads((out / "model_metrics.json").read_text(), parse_constant=lambda c: pytest.fail(c)))


def test_missing_weights_give_one_clear_line(tmp_path) -> None:
    import argparse

    from app.errors import CheckpointError

    args = argparse.Namespace(out=str(tmp_path / "o"), seed=0, episodes=1, weights=str(tmp_path))
    with pytest.raises(CheckpointError, match=r"cyclegan\.pt: missing"):
        run_eval_models(args)
    assert not (tmp_path / "o").exists()  # nothing written before the models load


def test_counts_below_one_are_refused(untrained, tmp_path) -> None:
    from app.errors import InputError

    with pytest.raises(InputError, match=r"expected episodes \(< 100000\), images and latency frames >= 1"):
        evaluate_models(tmp_path, episodes=0, bundle=untrained)


def test_adapted_frames_are_not_confused_across_cameras(untrained) -> None:
    # Perception caches adapt() by frame number; two cameras can share one, the evaluation must not.
    from app.robot.interfaces import Frame
    from app.tools.eval_models import _fresh

    rng = np.random.default_rng(0)

    def frame(rgb: np.ndarray, depth_m: float) -> Frame:
        return Frame(rgb, np.full((128, 128), depth_m, np.float32), None, 0.0, 1)  # type: ignore[arg-type]

    a = frame(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8), 0.5)
    b = frame(np.zeros((128, 128, 3), np.uint8), 0.4)
    assert not np.array_equal(untrained.adapt(_fresh(a)).rgb, untrained.adapt(_fresh(b)).rgb)


def test_targets_by_hand() -> None:
    from app.tools.eval_models import check_targets

    def p(pos: float, yaw: float, within: float) -> dict:
        return {"pos_median_m": pos, "yaw_median_deg": yaw, "within_both": within}

    # sim 2 cm / 10 deg; adapted 1.25x; raw 2.5x: every pose target met.
    pose = {"sim": p(0.02, 10.0, 0.95), "real_adapted": p(0.025, 12.5, 0.9), "real_raw": p(0.05, 25.0, 0.5)}
    seg = {"discriminator": {"seen": 0.9, "unseen": 0.86}, "discriminator_raw": {"seen": 0.5, "unseen": 0.4},
           "kmeans": {"seen": 0.3, "unseen": 0.87}, "watershed": {"seen": None, "unseen": 0.2}}
    lat = {"total": {"p50": 9.0, "p95": 12.0}}
    t = check_targets(pose, seg, lat)
    assert {k for k, v in t.items() if v["met"]} == {
        "sim_pos_median", "sim_yaw_median", "sim_within_basin", "adapted_vs_sim", "raw_vs_sim",
        "discriminator_iou", "latency_total_p95"}
    assert t["adapted_vs_sim"]["value"] == pytest.approx([1.25, 1.25])
    assert t["discriminator_above_baselines"]["value"] == pytest.approx([0.6, -0.01])  # k-means wins unseen
    assert t["discriminator_above_baselines"]["met"] is False
    assert t["latency_total_p95_stretch"]["met"] is False  # 12 ms > 8 ms
    pose["sim"]["yaw_median_deg"] = None  # only round objects: yaw rules cannot be judged
    t = check_targets(pose, seg, lat)
    assert t["sim_yaw_median"]["met"] is None and t["adapted_vs_sim"]["met"] is None
