"""The capability boundary: leaves reach the Camera/Arm/Gripper protocols and nothing else."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from py_trees.common import Status

from app.robot.boundary import CapabilityError, leaf_robot, protocol_members, restrict
from app.robot.interfaces import Arm, Camera, Gripper, MotionStatus
from app.robot.safety import load_safety
from app.runner import run_episode
from app.transforms import Pose
from behaviours.base import Leaf


class Probe(Leaf):
    """A leaf that does ``act(robot)`` on its first tick and succeeds."""

    def __init__(self, act: Callable[[Any], Any]) -> None:
        super().__init__("Probe")
        self.act = act
        self.got: Any = None

    def update(self) -> Status:
        self.got = self.act(self.robot)
        return Status.SUCCESS


def test_wrappers_expose_exactly_the_protocols(real_session) -> None:
    robot = leaf_robot(real_session.robot)
    for obj, proto in ((robot.camera, Camera), (robot.arm, Arm), (robot.gripper, Gripper)):
        attrs, methods = protocol_members(proto)
        public = {n for n in dir(obj) if not n.startswith("_")}
        assert public == set(attrs) | set(methods), proto.__name__
        assert isinstance(obj, proto)
    assert protocol_members(Camera) == (("intrinsics",), ("get_frame", "close"))
    assert "teleport" not in dir(robot.arm) and "last_raw" not in dir(robot.camera)
    # What the protocols give still works through the wrappers.
    frame = robot.camera.get_frame()
    assert frame.rgb.shape[:2] == (robot.camera.intrinsics.height, robot.camera.intrinsics.width)
    np.testing.assert_allclose(robot.arm.pose().matrix, real_session.arm.pose().matrix)
    assert robot.gripper.max_width == real_session.gripper.max_width
    assert robot.clock.period == real_session.clock.period and robot.clock.now() == real_session.clock.now()


@pytest.mark.parametrize("reach", [
    lambda r: r.camera.last_raw().mask,  # the true mask (SimCamera)
    lambda r: r.camera.world,
    lambda r: r.camera.render_raw(),
    lambda r: r.arm.world.object_pose(),  # used to pass through SafeArm.__getattr__
    lambda r: r.arm.teleport(Pose.top_down(np.array([0.5, 0.0, 0.05]), 0.0)),
    lambda r: r.arm.arm,  # the arm behind the envelope
    lambda r: r.arm.check_target,
    lambda r: r.gripper.world,
    lambda r: r.clock.advance(),  # stepping physics from inside a tick
    lambda r: r.camera._Bounded__target,
    lambda r: setattr(r.camera, "get_frame", None),
], ids=["last_raw", "camera.world", "render_raw", "arm.world", "teleport", "arm.arm", "check_target",
        "gripper.world", "clock.advance", "private", "setattr"])
def test_a_leaf_reaching_outside_the_protocols_fails_loudly(real_session, seen, reach) -> None:
    """Run through the runner, as every tree is: the episode fails naming the leaf and the member."""
    s = real_session
    s.reset(seen.get("sugar_box"), 3)
    leaf = Probe(reach)
    res = run_episode(leaf, s.robot, None, max_ticks=3)
    assert res.outcome == "failure" and res.failed_node == "Probe", res
    assert res.reason.startswith("unhandled CapabilityError:"), res.reason
    assert leaf.got is None


def test_truth_reachable_through_the_accessor_only(real_session, seen) -> None:
    """The oracle's and scoring's path is untouched: the session's accessor, unlocked, still reads."""
    s = real_session
    s.reset(seen.get("sugar_box"), 3)
    res = run_episode(Probe(lambda r: r.camera.get_frame()), s.robot, None, max_ticks=3)
    assert res.success
    mask = s.truth.last_mask()
    assert mask.shape == (s.camera.intrinsics.height, s.camera.intrinsics.width) and (mask == 1).any()


def test_no_leaf_command_bypasses_the_envelope(real_session, seen) -> None:
    """A raw (unwrapped) arm given to the runner is put behind SafeArm before any leaf sees it."""
    s = real_session
    s.reset(seen.get("sugar_box"), 3)
    sent = s.arm.commands
    far = Pose.top_down(np.array([0.5, 0.0, -0.2]), 0.0)  # under the table
    leaf = Probe(lambda r: (r.arm.move_to(far), r.arm.motion_status(), r.arm.motion_error()))
    res = run_episode(leaf, s.robot, None, max_ticks=3)
    assert res.success
    _, status, error = leaf.got
    assert status == MotionStatus.FAILED and error.startswith("safety: move_to refused")
    assert s.arm.commands == sent  # nothing reached the simulated arm
    leaf = Probe(lambda r: r.arm.command_velocity(np.array([0.0, 0.0, 5.0, 0.0, 0.0, 0.0]), "camera"))
    run_episode(leaf, s.robot, None, max_ticks=1)
    assert s.arm.commands == sent + 1  # clamped, then sent
    limit = load_safety().max_linear_speed
    assert limit < 5.0 and np.linalg.norm(s.arm._twist[:3]) <= limit + 1e-9  # clamped by the envelope


def test_restrict_messages_name_the_member_and_protocol() -> None:
    class Backend:
        def get_frame(self) -> int:
            return 7

        def secret(self) -> int:
            return 1

        intrinsics = "k"

        def close(self) -> None:
            pass

    cam = restrict(Backend(), Camera)
    assert cam.get_frame() == 7 and cam.intrinsics == "k"
    with pytest.raises(CapabilityError, match=r"'secret' is outside the Camera protocol .*get_frame"):
        cam.secret()
    with pytest.raises(CapabilityError):  # no quiet probing either
        hasattr(cam, "secret")
    with pytest.raises(CapabilityError, match="may not set"):
        cam.intrinsics = "other"
