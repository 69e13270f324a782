"""The safety envelope: no command leaving the filter violates a limit, whatever goes in."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from app.errors import ConfigError
from app.robot.interfaces import MotionStatus
from app.robot.safety import SafeArm, load_safety
from app.transforms import Pose, delta_pose, rot_x, rot_z

LIMITS = load_safety()
MOUNT = Pose(np.array([0.0, 0.055, -0.10]), np.eye(3))


class RecordingArm:
    """Records what reaches the arm; holds a fixed pose."""

    def __init__(self, pose: Pose) -> None:
        self._pose = pose
        self.sent: list[tuple[str, object]] = []
        self.stops = 0

    camera_mount = MOUNT

    def pose(self) -> Pose:
        return self._pose

    def camera_pose(self) -> Pose:
        return self._pose @ MOUNT

    def move_to(self, target: Pose) -> None:
        self.sent.append(("move_to", target))

    def move_relative(self, delta: Pose, frame: str = "gripper") -> None:  # never reached via SafeArm
        raise AssertionError("SafeArm resolves relative moves itself")

    def motion_status(self) -> MotionStatus:
        return MotionStatus.DONE

    def motion_error(self) -> str:
        return ""

    def command_velocity(self, twist: np.ndarray, frame: str = "camera") -> None:
        self.sent.append(("velocity", np.asarray(twist)))

    def stop(self) -> None:
        self.stops += 1

    def recover(self) -> None:
        pass


START = Pose.top_down(np.array([0.5, 0.0, 0.5]), 0.0)
floats = st.one_of(st.floats(-3, 3), st.just(float("nan")), st.just(float("inf")), st.just(float("-inf")))


@settings(max_examples=300, deadline=None)
@given(st.lists(floats, min_size=6, max_size=6), st.sampled_from(["camera", "gripper"]))
def test_no_velocity_leaves_the_filter_outside_the_limits(twist, frame) -> None:
    arm = RecordingArm(START)
    safe = SafeArm(arm, LIMITS, period=1 / 30)
    safe.command_velocity(np.array(twist), frame)
    for kind, value in arm.sent:
        assert kind == "velocity"
        v = np.asarray(value)
        assert np.all(np.isfinite(v))
        assert np.linalg.norm(v[:3]) <= LIMITS.max_linear_speed + 1e-9
        assert np.linalg.norm(v[3:]) <= LIMITS.max_angular_speed + 1e-9
    if not arm.sent:  # refused: the arm was stopped and the refusal recorded
        assert arm.stops == 1 and safe.motion_status() == MotionStatus.FAILED
        assert safe.events[-1].kind == "refused"


@settings(max_examples=300, deadline=None)
@given(st.lists(floats, min_size=3, max_size=3), st.floats(-4, 4), st.floats(-0.5, 0.5))
def test_no_pose_target_leaves_the_filter_outside_the_envelope(xyz, yaw, tilt) -> None:
    arm = RecordingArm(START)
    safe = SafeArm(arm, LIMITS, period=1 / 30)
    target = Pose(np.array(xyz, dtype=float) * 0.5 + START.position, rot_z(yaw) @ rot_x(np.pi + tilt))
    safe.move_to(target)
    for _, sent in arm.sent:  # the envelope's own geometry is checked against the URDF's below
        assert np.all(sent.position >= LIMITS.workspace_min) and np.all(sent.position <= LIMITS.workspace_max)
        assert float(np.arccos(np.clip(-sent.matrix[2, 2], -1, 1))) <= LIMITS.top_down_tolerance + 1e-9
        d, r = START.distance(sent)
        assert d <= LIMITS.max_step and r <= LIMITS.max_step_angle


def test_a_grasp_point_3_mm_up_is_refused_its_fingertips_would_be_in_the_table() -> None:
    """The review's hole: the grasp point passed at 3 mm while the fingertips reach 8.5 mm below it."""
    arm = RecordingArm(START)
    safe = SafeArm(arm, LIMITS, period=1 / 30)
    safe.move_to(Pose.top_down(np.array([0.5, 0.0, 0.003]), 0.0))
    assert not arm.sent and "fingertips at -0.006 m" in safe.motion_error()
    safe.recover()
    safe.move_to(Pose.top_down(np.array([0.5, 0.0, 0.010]), 0.0))  # tips 1.5 mm up: allowed
    assert len(arm.sent) == 1
    # A velocity that would take the tips below the table within one period is refused too.
    low = SafeArm(RecordingArm(Pose.top_down(np.array([0.5, 0.0, 0.012]), 0.0)), LIMITS, period=1 / 30)
    low.command_velocity(np.array([0.0, 0.0, 0.2, 0.0, 0.0, 0.0]), "gripper")  # 6.7 mm down in a period
    assert "fingertips" in low.motion_error()


@pytest.fixture(scope="module")
def urdf_hand():
    """The simulator's Panda (fingers open), as an independent model of where the fingers are."""
    from app.sim.session import SimSession

    s = SimSession(domain="sim", seed=0)
    yield s
    s.close()


@settings(max_examples=40, deadline=None)
@given(st.floats(0.4, 0.6), st.floats(-0.1, 0.1), st.floats(0.0, 0.08), st.floats(-np.pi, np.pi),
       st.floats(0.0, np.radians(30.0)), st.floats(-np.pi, np.pi))
def test_envelope_fingertips_match_the_urdf_finger_geometry(urdf_hand, x, y, z, yaw, tilt, tilt_dir) -> None:
    """Property: against the URDF's finger meshes (PyBullet), the envelope's fingertip model is
    never optimistic, is at most 2 cm pessimistic, and so never lets a fingertip below the table."""
    from hypothesis import assume

    from app.errors import MotionError

    axis = np.array([np.cos(tilt_dir), np.sin(tilt_dir), 0.0])
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    tilt_m = np.eye(3) + np.sin(tilt) * k + (1 - np.cos(tilt)) * (k @ k)  # Rodrigues, about a horizontal axis
    target = Pose(np.array([x, y, z]), tilt_m @ Pose.top_down(np.zeros(3), yaw).matrix)
    try:
        urdf_hand.arm.teleport(target)
    except MotionError:
        assume(False)  # out of the arm's reach: nothing to compare
    w = urdf_hand.world
    actual = w.gripper_pose()  # where IK put it (within 1 mm / 0.6 deg)
    truth = w.finger_lowest_point()
    model = LIMITS.lowest_point(actual)
    assert model <= truth + 1e-4, (model, truth)
    assert truth - model <= 0.02, (model, truth)
    if LIMITS.pose_violation(actual) == "":
        assert truth >= LIMITS.min_gripper_height - 1e-4


@settings(max_examples=100, deadline=None)
@given(st.floats(-0.05, 0.05), st.floats(-0.05, 0.05), st.floats(0.0, 0.3), st.floats(-1.5, 1.5))
def test_commands_inside_the_envelope_pass_unchanged(dx, dy, dz, dyaw) -> None:
    arm = RecordingArm(START)
    safe = SafeArm(arm, LIMITS, period=1 / 30)
    safe.move_relative(delta_pose(dx, dy, dz, dyaw), "gripper")
    assert len(arm.sent) == 1
    assert np.allclose(arm.sent[0][1].homogeneous, (START @ delta_pose(dx, dy, dz, dyaw)).homogeneous)
    twist = np.array([0.02, -0.01, 0.0, 0.0, 0.0, 0.3])
    safe.command_velocity(twist, "camera")
    assert np.array_equal(arm.sent[-1][1], twist)
    assert not safe.events


def test_refusals_name_the_limit() -> None:
    arm = RecordingArm(START)
    safe = SafeArm(arm, LIMITS, period=1 / 30)
    safe.move_to(Pose.top_down(np.array([0.5, 0.0, -0.05]), 0.0))
    assert "outside the workspace" in safe.motion_error()
    safe.recover()
    safe.move_relative(delta_pose(0.0, 0.25, 0.45, 0.0))  # inside the box, but a 51 cm step
    assert "max_step" in safe.motion_error()
    safe.recover()
    safe.command_velocity(np.array([1.0, 0, 0, 0, 0, 0]))  # clamped, not refused
    assert safe.events[-1].kind == "clamped"
    assert np.linalg.norm(arm.sent[-1][1][:3]) == pytest.approx(LIMITS.max_linear_speed)


def test_velocity_checked_from_the_commanded_reference() -> None:
    # The Panda's velocity controller commands reference + one step; the reference can lead the
    # measured pose by up to 2 cm. Near the top of the box, the check must start from it.
    top = LIMITS.workspace_max[2]
    arm = RecordingArm(Pose.top_down(np.array([0.5, 0.0, top - 0.02]), 0.0))
    up = np.array([0.0, 0.0, -0.1, 0.0, 0.0, 0.0])  # 0.1 m/s back along the optical axis: up
    safe = SafeArm(arm, LIMITS, period=1 / 30)
    assert safe.filter_twist(up)[0] is not None  # from the measured pose: 3 mm of 2 cm
    arm.reference = lambda: Pose.top_down(np.array([0.5, 0.0, top - 0.001]), 0.0)  # type: ignore[attr-defined]
    twist, why = safe.filter_twist(up)
    assert twist is None and "outside the workspace box" in why


def test_bad_safety_file(tmp_path) -> None:
    f = tmp_path / "s.yaml"
    f.write_text(open(LIMITS_PATH).read().replace("max_linear_speed: 0.25", "max_linear_speed: fast"))
    with pytest.raises(ConfigError, match="max_linear_speed"):
        load_safety(f)


LIMITS_PATH = __import__("app").CONFIG_DIR / "safety.yaml"


class JointArm(RecordingArm):
    """A RecordingArm with joint-space moves; its forward kinematics is a stand-in: the gripper
    sits at START lowered by ``q[0]`` metres (so a path's height is easy to script)."""

    def __init__(self, pose: Pose, q: np.ndarray) -> None:
        super().__init__(pose)
        self.q = q

    def joint_positions(self) -> np.ndarray:
        return self.q

    def forward_kinematics(self, q: np.ndarray) -> Pose:
        return Pose(START.position - np.array([0.0, 0.0, q[0]]), START.matrix)

    def move_to_joints(self, q: np.ndarray) -> None:
        self.sent.append(("joints", np.asarray(q)))


def test_joint_moves_pass_only_when_their_whole_path_stays_in_the_envelope() -> None:
    q0 = np.zeros(7)
    arm = JointArm(START, q0)
    safe = SafeArm(arm, LIMITS, period=1 / 30)
    safe.move_to_joints(np.full(7, 0.1))  # 10 cm down all the way: inside
    assert arm.sent[-1][0] == "joints" and safe.motion_status() == MotionStatus.DONE
    # the goal is fine (back to q0's height) but the path dips 0.7 m: refused, never sent
    arm.forward_kinematics = lambda q: Pose(START.position - np.array([0, 0, 0.7 * np.sin(np.pi * q[1])]),  # type: ignore[method-assign]
                                            START.matrix)
    n = len(arm.sent)
    safe.move_to_joints(np.array([0.0, 1.0, 0, 0, 0, 0, 0]))
    assert len(arm.sent) == n and safe.motion_status() == MotionStatus.FAILED
    assert "joint path" in safe.motion_error() and arm.stops >= 1
    safe.move_to_joints(np.array([np.nan, 0, 0, 0, 0, 0, 0]))
    assert "7 finite angles" in safe.motion_error()
    # an arm without checked joint moves: refused with its name
    plain = SafeArm(RecordingArm(START), LIMITS, period=1 / 30)
    plain.move_to_joints(np.zeros(7))
    assert plain.motion_status() == MotionStatus.FAILED and "RecordingArm offers no" in plain.motion_error()
