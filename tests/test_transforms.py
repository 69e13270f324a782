"""Pose helpers: conversions, composition, frames."""

import numpy as np
import pytest

from app.transforms import (
    Pose,
    delta_pose,
    matrix_to_quat,
    quat_to_matrix,
    rot_x,
    rot_z,
    twist_to_pose,
    wrap_angle,
    wrap_half_pi,
)


@pytest.mark.parametrize("seed", range(5))
def test_quaternion_round_trip(seed: int) -> None:
    rng = np.random.default_rng(seed)
    q = rng.normal(size=4)
    q /= np.linalg.norm(q)
    q = q if q[3] >= 0 else -q
    assert np.allclose(matrix_to_quat(quat_to_matrix(q)), q, atol=1e-9)


def test_known_quaternion() -> None:
    # 90 deg about z: (0, 0, sin 45, cos 45)
    q = np.array([0, 0, np.sqrt(0.5), np.sqrt(0.5)])
    assert np.allclose(quat_to_matrix(q), rot_z(np.pi / 2), atol=1e-12)


def test_compose_and_inverse() -> None:
    a = Pose(np.array([1.0, 2.0, 3.0]), rot_z(0.3) @ rot_x(0.2))
    b = Pose(np.array([-0.5, 0.1, 0.2]), rot_z(-1.0))
    ab = a @ b
    assert np.allclose(ab.homogeneous, a.homogeneous @ b.homogeneous)
    ident = a @ a.inverse()
    assert np.allclose(ident.homogeneous, np.eye(4), atol=1e-12)
    p = np.array([0.1, 0.2, 0.3])
    assert np.allclose(a.apply(p), (a.homogeneous @ np.append(p, 1))[:3])


def test_top_down_frame_axes() -> None:
    # The gripper points down (z to -Z), the finger line (x) along the yaw heading.
    g = Pose.top_down(np.zeros(3), np.pi / 2)
    assert np.allclose(g.matrix[:, 2], [0, 0, -1], atol=1e-12)
    assert np.allclose(g.matrix[:, 0], [0, 1, 0], atol=1e-12)
    assert g.yaw == pytest.approx(np.pi / 2)


def test_relative_move_in_gripper_frame() -> None:
    # Moving +z in a top-down gripper frame moves the gripper down in the base frame.
    g = Pose.top_down(np.array([0.5, 0.0, 0.5]), 0.0)
    t = g @ delta_pose(0.0, 0.0, 0.15, 0.0)
    assert np.allclose(t.position, [0.5, 0.0, 0.35])
    t2 = g @ delta_pose(0.0, 0.0, 0.0, np.pi / 4)
    assert t2.distance(g)[1] == pytest.approx(np.pi / 4)


def test_distance() -> None:
    a = Pose.top_down(np.array([0.0, 0.0, 0.0]), 0.0)
    b = Pose.top_down(np.array([0.03, 0.04, 0.0]), 0.5)
    d, r = a.distance(b)
    assert d == pytest.approx(0.05)
    assert r == pytest.approx(0.5)


def test_wrap() -> None:
    assert wrap_angle(3 * np.pi / 2) == pytest.approx(-np.pi / 2)
    assert wrap_angle(np.pi) == pytest.approx(np.pi)
    assert wrap_half_pi(np.pi / 2) == pytest.approx(np.pi / 2)
    assert wrap_half_pi(-np.pi / 2) == pytest.approx(np.pi / 2)
    assert wrap_half_pi(0.75 * np.pi) == pytest.approx(-0.25 * np.pi)


def test_twist_integration() -> None:
    p = twist_to_pose(np.array([0.1, 0, 0, 0, 0, 1.0]), 0.5)
    assert np.allclose(p.position, [0.05, 0, 0])
    assert np.allclose(p.matrix, rot_z(0.5))
    assert np.allclose(twist_to_pose(np.zeros(6), 1.0).homogeneous, np.eye(4))
