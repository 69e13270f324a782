"""Simulation speed levers (app/sim/speed.py): the same images, the same arm motions, fewer IK
solves; each lever switchable on its own."""

from __future__ import annotations

import numpy as np
import pytest

from app.robot.interfaces import MotionStatus
from app.sim import speed
from app.sim.session import SimSession
from app.transforms import Pose, delta_pose


def _views(spec_names: list[str], seen, lever: speed.SimSpeed) -> list:
    """Raw renders at a few pose-step and VS poses (real domain: shadows on)."""
    out = []
    with speed.sim_speed(lever), SimSession(domain="real", seed=0) as s:
        for i, name in enumerate(spec_names):
            s.reset(seen.get(name), 10 + i)
            for dz, yaw in ((0.0, 0.0), (0.25, 0.6 * (i + 1))):  # start pose, and a VS height
                s.arm.teleport(s.hw.start_pose() @ delta_pose(0.015 * i, -0.01, dz, yaw))
                s.camera.invalidate()
                out.append(s.camera.render_raw())
    return out


def test_lite_arm_shadows_leave_the_images_unchanged(seen) -> None:
    names = ["sugar_box", "marker", "duck"]
    exact = _views(names, seen, speed.EXACT)
    lite = _views(names, seen, speed.SimSpeed(lite_arm_shadows=True, ik_per_tick=False))
    for a, b in zip(exact, lite, strict=True):
        assert np.array_equal(a.mask, b.mask)
        assert np.array_equal(a.depth, b.depth)
        assert np.array_equal(a.rgb, b.rgb)


def test_lite_urdf_coarsens_only_the_upper_arm_meshes() -> None:
    from app.sim.pybullet_world import p

    def meshes(lever: speed.SimSpeed) -> dict[int, str]:
        with speed.sim_speed(lever):
            s = SimSession(domain="real", seed=0)
        try:
            return {v[1]: v[4].decode().split("meshes/")[1]
                    for v in p.getVisualShapeData(s.world.robot_id, physicsClientId=s.world.client)}
        finally:
            s.close()

    exact, lite = meshes(speed.EXACT), meshes(speed.FAST)
    assert exact[2] == "visual/link3.obj" and lite[2] == "collision/link3.obj"  # link index 2 = panda_link3
    assert {k for k in exact if exact[k] != lite[k]} == {0, 1, 2, 3, 4}  # panda_link1..5 (link0 is coarse already)
    assert lite[5] == "visual/link6.obj" and lite[8] == "visual/hand.obj"  # the wrist and the hand keep theirs


def _velocity_run(lever: speed.SimSpeed, seen) -> tuple[Pose, int]:
    with speed.sim_speed(lever), SimSession(domain="real", seed=0) as s:
        s.reset(seen.get("sugar_box"), 6)
        solves = 0
        solve = s.world.solve_ik

        def counting(target: Pose) -> np.ndarray:
            nonlocal solves
            solves += 1
            return solve(target)

        s.world.solve_ik = counting  # type: ignore[method-assign]
        for k in range(15):  # 0.5 s of a turning, descending twist in the camera frame
            s.arm.command_velocity(np.array([0.04, -0.02, 0.03, 0.0, 0.0, 0.3 * (-1) ** (k // 5)]), "camera")
            s.clock.advance()
        return s.arm.camera_pose(), solves


def test_ik_per_tick_tracks_twists_like_ik_per_step(seen) -> None:
    exact, n_exact = _velocity_run(speed.EXACT, seen)
    fast, n_fast = _velocity_run(speed.SimSpeed(lite_arm_shadows=False, ik_per_tick=True), seen)
    d, r = exact.distance(fast)
    assert d < 0.0005 and r < np.radians(0.1)  # < 0.5 mm, 0.1 deg after 15 ticks
    assert n_exact == 15 * 8 and n_fast == 15  # 8 physics steps per 30 fps tick: one solve per tick


@pytest.mark.parametrize("lever", [speed.EXACT, speed.FAST])
def test_pose_moves_reach_their_target_with_either_lever(seen, lever: speed.SimSpeed) -> None:
    with speed.sim_speed(lever), SimSession(domain="real", seed=0) as s:
        s.reset(seen.get("sugar_box"), 5)
        start = s.arm.pose()
        s.arm.move_relative(Pose(np.array([0.02, -0.03, 0.15]), np.eye(3)), "gripper")
        ticks = 0
        while s.arm.motion_status() == MotionStatus.MOVING and ticks < 200:
            s.clock.advance()
            ticks += 1
        assert s.arm.motion_status() == MotionStatus.DONE
        d, r = s.arm.pose().distance(start @ Pose(np.array([0.02, -0.03, 0.15]), np.eye(3)))
        assert d < 0.004 and r < np.radians(1.5)
        assert 18 <= ticks <= 40  # 15.4 cm at 0.25 m/s: >= 0.6 s (18 ticks at 30 fps)


def test_unreachable_reference_fails_with_the_lever_on(seen) -> None:
    with SimSession(domain="real", seed=0) as s:
        s.reset(seen.get("sugar_box"), 5)
        for _ in range(60):  # 2 s at 0.6 m/s straight out: leaves the Panda's reach
            s.arm.command_velocity(np.array([0.6, 0.0, 0.0, 0.0, 0.0, 0.0]), "gripper")
            s.clock.advance()
            if s.arm.motion_status() == MotionStatus.FAILED:
                break
        assert s.arm.motion_status() == MotionStatus.FAILED
        assert "unreachable" in s.arm.motion_error()


def test_sim_speed_switches_for_a_block_only() -> None:
    assert speed.current() == speed.FAST
    with speed.sim_speed(ik_per_tick=False) as inside:
        assert inside == speed.SimSpeed(lite_arm_shadows=True, ik_per_tick=False) == speed.current()
    assert speed.current() == speed.FAST
