"""The simulated world: camera geometry, masks, IK motions, limits, gripper."""

import numpy as np
import pytest

from app.robot.interfaces import Arm, Camera, Gripper, MotionStatus
from app.transforms import Pose


def _run(session, cap: int = 400) -> int:
    n = 0
    while session.arm.motion_status() == MotionStatus.MOVING and n < cap:
        session.clock.advance()
        n += 1
    return n


def test_backends_satisfy_protocols(real_session) -> None:
    assert isinstance(real_session.camera, Camera)
    assert isinstance(real_session.arm, Arm)
    assert isinstance(real_session.gripper, Gripper)


def test_frame_contents(real_session, seen) -> None:
    s = real_session
    s.reset(seen.get("sugar_box"), 2)
    f = s.camera.get_frame()
    assert f.rgb.shape == (128, 128, 3) and f.rgb.dtype == np.uint8
    assert f.depth.shape == (128, 128) and f.depth.dtype == np.float32
    assert not hasattr(f, "mask")  # the camera gives no ground truth
    mask = s.truth.last_mask()
    assert set(np.unique(mask)) == {0, 1, 2}
    # the fingers show at the image edge (top corners), not in the centre
    g = np.argwhere(mask == 2)
    assert g[:, 0].max() < 40
    assert mask[40:88, 40:88].max() <= 1


def test_camera_projection_matches_render(real_session, seen) -> None:
    s = real_session
    s.reset(seen.get("tomato_can"), 3)
    s.camera.get_frame()
    mask = s.truth.last_mask()
    obj = s.truth.object_pose()
    top = obj.position + np.array([0, 0, seen.get("tomato_can").extents[2] / 2])
    cam = s.arm.camera_pose()
    uv = s.camera.intrinsics.project(cam.inverse().apply(top))[0]
    ys, xs = np.nonzero(mask == 1)
    # the can's top face centre projects within ~2 px of the blob centroid (perspective shifts it a bit)
    assert abs(xs.mean() - uv[0]) < 3 and abs(ys.mean() - uv[1]) < 3
    # depth at the centroid is the camera-to-top distance
    z = s.truth.exact_depth()[int(round(uv[1])), int(round(uv[0]))]
    assert z == pytest.approx(cam.inverse().apply(top)[2], abs=0.005)


def test_frames_axes_image_u_is_finger_line(real_session, seen) -> None:
    # Move the gripper +x (finger line): a static object moves towards -u in the image.
    s = real_session
    s.reset(seen.get("tomato_can"), 4)
    s.camera.get_frame()
    u0 = np.nonzero(s.truth.last_mask() == 1)[1].mean()
    s.arm.move_relative(Pose(np.array([0.03, 0, 0]), np.eye(3)), "gripper")
    _run(s)
    s.camera.get_frame()
    u1 = np.nonzero(s.truth.last_mask() == 1)[1].mean()
    assert u1 < u0 - 5


def test_move_relative_reaches_target_with_limits(real_session, seen) -> None:
    s = real_session
    s.reset(seen.get("sugar_box"), 5)
    start = s.arm.pose()
    s.arm.move_relative(Pose(np.array([0.02, -0.03, 0.15]), np.eye(3)), "gripper")
    assert s.arm.motion_status() == MotionStatus.MOVING
    ticks = _run(s)
    assert s.arm.motion_status() == MotionStatus.DONE
    expect = start @ Pose(np.array([0.02, -0.03, 0.15]), np.eye(3))
    d, r = s.arm.pose().distance(expect)
    assert d < 0.004 and r < np.radians(1.5)
    # 15.4 cm at 0.25 m/s takes >= 0.6 s of simulated time (18 ticks at 30 fps)
    assert ticks >= 18
    q = s.world.joint_positions()
    assert np.all(q >= s.world.lower - 1e-6) and np.all(q <= s.world.upper + 1e-6)


def test_unreachable_target_fails_clearly(real_session) -> None:
    s = real_session
    s.arm.move_to(Pose.top_down(np.array([1.5, 0.0, 0.3]), 0.0))
    assert s.arm.motion_status() == MotionStatus.FAILED
    assert "unreachable" in s.arm.motion_error()
    s.arm.recover()
    assert s.arm.motion_status() == MotionStatus.IDLE


def test_velocity_command_in_camera_frame(real_session, seen) -> None:
    s = real_session
    s.reset(seen.get("sugar_box"), 6)
    before = s.arm.camera_pose()
    for _ in range(15):  # 0.5 s at 0.04 m/s along the camera x: 2 cm
        s.arm.command_velocity(np.array([0.04, 0, 0, 0, 0, 0]), "camera")
        s.clock.advance()
    s.arm.stop()
    for _ in range(5):
        s.clock.advance()
    moved = before.inverse() @ s.arm.camera_pose()
    assert moved.position[0] == pytest.approx(0.02, abs=0.004)
    assert abs(moved.position[1]) < 0.003


def test_camera_rotation_keeps_the_camera_in_place(real_session, seen) -> None:
    """A pure rotation about the camera's optical axis turns the camera about its own centre: the
    gripper, 5.5 cm away on the mount, swings on an arc (the -w x t term of the adjoint)."""
    s = real_session
    s.reset(seen.get("sugar_box"), 6)
    offset = float(np.hypot(*s.arm.camera_mount.position[:2]))  # lever arm across the optical axis (m)
    assert offset == pytest.approx(0.055, abs=0.005)  # the mount in config/hardware.yaml
    cam0, grip0 = s.arm.camera_pose(), s.arm.pose()
    wz, ticks = 0.4, 30  # rad/s for 30 ticks of 1/30 s: 0.4 rad
    for _ in range(ticks):
        s.arm.command_velocity(np.array([0, 0, 0, 0, 0, wz]), "camera")
        s.clock.advance()
    s.arm.stop()
    for _ in range(5):
        s.clock.advance()
    cam1, grip1 = s.arm.camera_pose(), s.arm.pose()
    turned = cam0.inverse() @ cam1
    angle = float(np.arctan2(turned.matrix[1, 0], turned.matrix[0, 0]))
    assert angle == pytest.approx(wz * ticks * s.clock.period, abs=0.03)
    # Without the coupling the gripper would turn in place and the camera sweep ~2.2 cm.
    assert np.linalg.norm(cam1.position - cam0.position) < 0.003
    chord = 2 * offset * np.sin(angle / 2)  # m, the gripper's arc around the camera centre
    assert np.linalg.norm(grip1.position - grip0.position) == pytest.approx(chord, abs=0.003)


def test_gripper_closes_on_nothing(real_session, seen) -> None:
    s = real_session
    s.reset(seen.get("sugar_box"), 7)
    s.gripper.grasp(0.0, 30.0)
    n = 0
    while s.gripper.busy() and n < 100:
        s.clock.advance()
        n += 1
    assert not s.gripper.busy()
    assert s.gripper.width() < 0.005
    assert not s.gripper.is_grasped()
    s.gripper.open()
    while s.gripper.busy():
        s.clock.advance()
    assert s.gripper.width() > 0.075


def test_truth_lock(real_session) -> None:
    from app.sim.truth import GroundTruthLocked

    real_session.truth.locked = True
    try:
        with pytest.raises(GroundTruthLocked):
            real_session.truth.object_pose()
    finally:
        real_session.truth.locked = False
