"""The pose agent's training environment: gymnasium API, seeded replay, reward of eq. (1)."""

from __future__ import annotations

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env

from app.sim.pose_env import PoseEnv, grasp_reward, load_env_config
from app.transforms import Pose

OBJECTS = """
name: tiny
objects:
  - {name: block, shape: box, size: [0.08, 0.03, 0.03], mass: 0.1, friction: 0.6, color: [0.2, 0.4, 0.9],
     grasps: [[0.0, 0.0, 0.0, 90.0], [0.02, 0.0, 0.0, 90.0]]}
  - {name: can, shape: cylinder, size: [0.03, 0.06], mass: 0.2, friction: 0.6, color: [0.8, 0.1, 0.1], round: true,
     grasps: [[0.0, 0.0, 0.01, 0.0]]}
"""


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    path = tmp_path_factory.mktemp("objects") / "tiny.yaml"
    path.write_text(OBJECTS)
    e = PoseEnv(objects=str(path))
    yield e
    e.close()


def test_check_env(env) -> None:
    check_env(env, skip_render_check=True)


def test_observation_and_steps(env) -> None:
    obs, info = env.reset(seed=3)
    assert obs.shape == (4, 64, 64) and obs.dtype == np.float32
    assert 0.0 <= obs.min() and obs.max() <= 1.0
    z0 = env.session.arm.pose().position[2]
    # steps 1 and 2 move 15 cm down whatever the agent says about z
    _, _, done, _, _ = env.step(np.array([0, 0, 1.0, 0], np.float32))
    assert not done
    assert env.session.arm.pose().position[2] == pytest.approx(z0 - 0.15, abs=0.003)
    _, _, done, _, _ = env.step(np.array([0, 0, -1.0, 0], np.float32))
    assert env.session.arm.pose().position[2] == pytest.approx(z0 - 0.30, abs=0.003)
    # step 3 takes z from the agent: -1 -> z_range[0] = 0 m
    _, r, done, _, info = env.step(np.array([0, 0, -1.0, 0], np.float32))
    assert done
    assert env.session.arm.pose().position[2] == pytest.approx(z0 - 0.30, abs=0.003)
    assert -1.1 <= r <= 1.0
    assert {"pos_error_m", "yaw_error_deg", "e_d", "e_o"} <= set(info)


def test_seeded_replay_identical(env) -> None:
    actions = [np.array([0.3, -0.2, 0.0, 0.5], np.float32), np.array([-0.1, 0.1, 0.0, -0.3], np.float32),
               np.array([0.0, 0.0, 0.2, 0.1], np.float32)]

    def rollout():
        obs, _ = env.reset(seed=11)
        out, rewards = [obs], []
        for a in actions:
            obs, r, _, _, _ = env.step(a)
            out.append(obs)
            rewards.append(r)
        return out, rewards

    a_obs, a_r = rollout()
    env.reset(seed=12)
    b_obs, b_r = rollout()
    for x, y in zip(a_obs, b_obs, strict=True):
        assert np.array_equal(x, y)
    assert a_r == b_r


def test_reward_equation_values() -> None:
    cfg = load_env_config()
    g = Pose.top_down(np.array([0.5, 0.0, 0.02]), 0.0)
    # at the grasp: e_d = e_o = 0 -> R = (0.5 + 0.5 - 0.5) / 0.5 = 1
    r, e_d, e_o = grasp_reward(cfg, g, [g], False, False)
    assert (r, e_d, e_o) == pytest.approx((1.0, 0.0, 0.0))
    # far and crossed, below ground: e_d = e_o = 1, r_g = -1 -> (0 + 0 - 0.05 - 0.5) / 0.5 = -1.1
    far = Pose.top_down(np.array([0.5, 0.5, -0.5]), np.pi / 2)
    r, e_d, e_o = grasp_reward(cfg, far, [g], False, True)
    assert (r, e_d, e_o) == pytest.approx((-1.1, 1.0, 1.0))
    # 3 cm off (e_d = 0.1), 45 deg (e_o = 0.5): (0.5 * 0.81 + 0.5 * 0.5 - 0.5) / 0.5 = 0.31
    mid = Pose.top_down(np.array([0.53, 0.0, 0.02]), np.pi / 4)
    r, e_d, e_o = grasp_reward(cfg, mid, [g], False, False)
    assert (e_d, e_o) == pytest.approx((0.1, 0.5))
    assert r == pytest.approx(0.31)
    # a parallel gripper is symmetric: 180 deg off is no error; round objects ignore yaw
    flipped = Pose.top_down(np.array([0.5, 0.0, 0.02]), np.pi)
    assert grasp_reward(cfg, flipped, [g], False, False)[2] == pytest.approx(0.0)
    assert grasp_reward(cfg, mid, [g], True, False)[2] == 0.0


def test_objects_without_grasps_refused(tmp_path) -> None:
    from app.errors import ConfigError

    f = tmp_path / "nograsp.yaml"
    f.write_text("objects:\n  - {name: b, shape: box, size: [0.05, 0.03, 0.03], mass: 0.1, friction: 0.6, color: [1, 0, 0]}\n")
    with pytest.raises(ConfigError, match="no good grasps"):
        PoseEnv(objects=str(f))
