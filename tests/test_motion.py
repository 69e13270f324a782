"""Motion leaves: the pose step's yaw never turns the wrist past 90 deg (parallel-gripper symmetry)."""

from __future__ import annotations

import numpy as np
import pytest

from app.hardware_config import load_hardware
from app.runner import run_episode
from app.trees import build_tree, load_tree_config
from behaviours.motion import equivalent_yaw_step
from tests.fakes.truth_models import TruthModels

D90 = np.pi / 2


@pytest.mark.parametrize(("turned", "dyaw", "expected"), [
    (0.0, 0.5, 0.5),                 # within range: unchanged
    (0.0, D90, D90),                 # exactly +90 deg is kept (the range is (-90, 90])
    (0.0, -D90, D90),                # -90 deg is the same grasp as +90 deg
    (1.0, 1.0, 1.0 - np.pi),         # 2 rad total would leave the range: turn the other way
    (-1.0, -1.0, -1.0 + np.pi),
    (D90, D90, D90 - np.pi),         # 180 deg total: the equivalent is no turn at all
])
def test_equivalent_yaw_step(turned: float, dyaw: float, expected: float) -> None:
    got = equivalent_yaw_step(turned, dyaw)
    assert got == pytest.approx(expected)
    total = turned + got
    assert -D90 < total <= D90 + 1e-12
    # the same finger line modulo 180 deg
    assert np.isclose(np.cos(2 * (turned + dyaw)), np.cos(2 * total))


@pytest.mark.slow
def test_pose_steps_turning_90_each_stay_within_90(real_session, seen) -> None:
    """A policy asking for +90 deg three times (270 deg: out of joint 7's range) gets the wrist
    turned +90, then back to 0, then +90 again: all three steps reach their targets."""
    s = real_session
    s.reset(seen.get("sugar_box"), 21)
    cfg = load_tree_config("drl_gan")
    root = build_tree(cfg, load_hardware())
    start_yaw = s.robot.arm.pose().yaw
    yaws: list[float] = []

    def after_tick(tick: int) -> None:
        yaws.append(s.robot.arm.pose().yaw)

    models = TruthModels(s, policy_fn=lambda frame: np.array([0, 0, 0, 1], np.float32))
    res = run_episode(root, s.robot, models, cfg.max_ticks, on_tick=after_tick)
    assert res.pose_steps == 3
    assert res.failed_node not in ("Move By Policy 1", "Move By Policy 2", "Move By Policy 3"), res.reason
    turned = np.array([np.angle(np.exp(1j * (y - start_yaw))) for y in yaws])
    assert np.all(np.abs(turned) <= D90 + np.radians(2))  # 2 deg of tracking error
    assert np.isclose(np.degrees(turned[-1]) % 180, 90, atol=2)
