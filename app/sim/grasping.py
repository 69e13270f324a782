"""The physics grasp judge and the oracle grasp.

A grasp is judged the way it would be on the robot: approach above the grasp pose, descend
along the approach axis, close with the configured force, lift, hold, and look whether the
object came along. Every motion goes through the session's ``Arm`` / ``Gripper`` / ``Clock``
interfaces; only the verdict (object height, finger contacts) and the oracle's choice of
grasp read the simulator's ground truth (:attr:`SimSession.truth`).

Every wait is bounded by a tick cap, so an episode can fail but never hang. Soft objects are
checked for explosions on every physics step by the world; an explosion raises
:class:`~app.errors.SimulationError` out of :func:`execute_grasp` (it is never a quiet failure).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from app.robot.interfaces import MotionStatus, Robot
from app.transforms import Pose, rot_z, wrap_angle

if TYPE_CHECKING:
    from app.sim.session import SimSession

MIN_LIFT = 0.10  # m, the object must end at least this far above its rest height
LIFT_HEIGHT = 0.15  # m the gripper rises: 5 cm above MIN_LIFT leaves room for slip or sag
HOLD_S = 1.0  # s the lifted object must stay held
MOVE_MARGIN_S = 3.0  # s a move may take beyond its nominal duration before we give up waiting
GRIPPER_CAP_S = 3.0  # s, longest wait for the fingers (the sim gripper itself stops at 2 s)
SETTLE_TICKS = 3  # control ticks to let contacts settle after the descent (0.1 s at 30 fps)
WEDGE_TOL = 0.001  # m: an opening this far beyond the gripper's range means a wedged object
YAW_WEIGHT = 0.05  # m per rad: how a yaw difference weighs against a distance for the oracle


@dataclass(frozen=True)
class GraspOutcome:
    """What happened to one physics grasp.

    Attributes:
        success: The object ended at least :data:`MIN_LIFT` above its rest height, touching both
            fingers, after the hold.
        reason: Why it failed, in words ("" on success).
        lift_height: Object height after the hold minus its height before the grasp (m).
        grasp_pose: The gripper pose that was executed (base frame), if any.
        ticks: Control ticks the episode took.
    """

    success: bool
    reason: str = ""
    lift_height: float = 0.0
    grasp_pose: Pose | None = None
    ticks: int = 0


class _Episode:
    """Bounded waiting on one robot, counting control ticks."""

    def __init__(self, robot: Robot) -> None:
        self.robot = robot
        self.ticks = 0

    def cap(self, seconds: float) -> int:
        """Number of control ticks in ``seconds`` (at least one)."""
        return max(1, math.ceil(seconds / self.robot.clock.period))

    def advance(self, n: int) -> None:
        """Let ``n`` control ticks pass."""
        for _ in range(n):
            self.robot.clock.advance()
            self.ticks += 1

    def until(self, done: Callable[[], bool], seconds: float) -> bool:
        """Advance until ``done()`` or ``seconds`` have passed; whether ``done()`` came true."""
        for _ in range(self.cap(seconds)):
            if done():
                return True
            self.advance(1)
        return done()

    def move(self, target: Pose) -> str:
        """Move the gripper to ``target`` (base frame) and wait; "" when reached, else why not."""
        arm = self.robot.arm
        d, r = arm.pose().distance(target)
        # Nominal duration at a slow 0.1 m/s and 0.5 rad/s, so the cap never cuts a valid move.
        nominal = max(d / 0.1, r / 0.5)
        arm.move_to(target)
        self.until(lambda: arm.motion_status() != MotionStatus.MOVING, nominal + MOVE_MARGIN_S)
        status = arm.motion_status()
        if status == MotionStatus.DONE:
            return ""
        if status == MotionStatus.MOVING:
            arm.stop()
            return f"move did not finish within {nominal + MOVE_MARGIN_S:.1f} s"
        return arm.motion_error() or f"move ended in state {status.value}"

    def gripper(self) -> bool:
        """Wait for the fingers to stop; whether they did within the cap."""
        g = self.robot.gripper
        return self.until(lambda: not g.busy(), GRIPPER_CAP_S)


def _wedged(robot: Robot) -> str:
    """Why the fingers stand wider than the gripper can open ("" when they do not).

    A real hand cannot hold anything wider than its opening. In the simulator, an object
    rammed between the fingers during the descent can force their joints past the limit and
    stay wedged there; such a "grasp" is refused.
    """
    width, top = robot.gripper.width(), robot.gripper.max_width
    if width > top + WEDGE_TOL:
        return (f"object wedged: fingers forced open to {width * 1000:.1f} mm, beyond the "
                f"{top * 1000:.0f} mm opening")
    return ""


def above(grasp_pose: Pose, distance: float) -> Pose:
    """The pose ``distance`` metres back along the approach axis (gripper z) from ``grasp_pose``."""
    return grasp_pose @ Pose(np.array([0.0, 0.0, -distance]), np.eye(3))


def execute_grasp(session: SimSession, grasp_pose: Pose, approach_height: float = 0.10) -> GraspOutcome:
    """Execute and judge one grasp by physics.

    Moves to ``approach_height`` above the grasp pose along its approach axis, descends to it,
    closes with ``HardwareConfig.grasp_force``, lifts the gripper by :data:`LIFT_HEIGHT`, holds
    for :data:`HOLD_S` and judges with :meth:`GroundTruth.object_lifted` (object at least
    :data:`MIN_LIFT` above its height before the grasp and touching both fingers). A grasp
    that ends with the fingers forced wider than the gripper opens (an object wedged between
    them, a simulator artefact) fails too.

    Args:
        session: A session with an object placed (``session.reset``) and the gripper open.
        grasp_pose: Gripper pose at the grasp (base frame; z along the approach).
        approach_height: Distance (m) above the grasp pose from which to descend.

    Returns:
        The outcome; ``reason`` says which phase failed and why.

    Raises:
        SimulationError: If a soft object exploded during the episode.
    """
    robot, truth = session.robot, session.truth
    ep = _Episode(robot)
    rest_z = float(truth.object_pose().position[2])

    def fail(reason: str) -> GraspOutcome:
        lift = float(truth.object_pose().position[2]) - rest_z
        return GraspOutcome(False, reason, lift, grasp_pose, ep.ticks)

    if not grasp_pose.is_finite():
        return fail("grasp pose is not finite")
    robot.gripper.open()
    err = ep.move(above(grasp_pose, approach_height))
    if err:
        return fail(f"approach failed: {err}")
    if not ep.gripper():
        return fail("gripper did not open")
    err = ep.move(grasp_pose)
    if err:
        return fail(f"descent failed: {err}")
    ep.advance(SETTLE_TICKS)
    robot.gripper.grasp(0.0, session.hw.grasp_force)
    if not ep.gripper():
        return fail("gripper did not settle while closing")
    if not robot.gripper.is_grasped():
        return fail(f"closed on nothing (width {robot.gripper.width() * 1000:.1f} mm)")
    wedged = _wedged(robot)
    if wedged:
        return fail(wedged)
    robot.arm.move_relative(Pose(np.array([0.0, 0.0, LIFT_HEIGHT]), np.eye(3)), frame="base")
    ep.until(lambda: robot.arm.motion_status() != MotionStatus.MOVING,
             LIFT_HEIGHT / 0.1 + MOVE_MARGIN_S)  # 0.1 m/s: a slow nominal lift speed
    if robot.arm.motion_status() != MotionStatus.DONE:
        robot.arm.stop()
        return fail(f"lift failed: {robot.arm.motion_error() or 'did not finish'}")
    ep.advance(ep.cap(HOLD_S))
    wedged = _wedged(robot)
    if wedged:
        return fail(wedged)
    lift = float(truth.object_pose().position[2]) - rest_z
    if truth.object_lifted(rest_z, MIN_LIFT):
        return GraspOutcome(True, "", lift, grasp_pose, ep.ticks)
    if lift < MIN_LIFT:
        return fail(f"object not held: lifted {lift * 100:.1f} cm < {MIN_LIFT * 100:.0f} cm after {HOLD_S:.0f} s")
    return fail("object lifted but not held between both fingers")


def nearest_grasp(grasps: list[Pose], current: Pose) -> Pose:
    """The good grasp nearest to the gripper's current pose, turned to the nearer yaw.

    A parallel gripper is symmetric under a half turn about its approach axis, so each grasp
    also stands for its yaw + pi twin; the twin nearer to the current yaw is used. "Nearest"
    weighs the horizontal distance (m) plus :data:`YAW_WEIGHT` times the yaw difference (rad).

    Args:
        grasps: Good grasps as gripper poses (base frame). Must not be empty.
        current: The gripper's current pose (base frame).
    """
    best: tuple[float, Pose] | None = None
    for g in grasps:
        dyaw = float(wrap_angle(g.yaw - current.yaw))
        if abs(dyaw) > np.pi / 2:  # the half-turn twin is nearer
            g = Pose(g.position, g.matrix @ rot_z(np.pi))
            dyaw = float(wrap_angle(g.yaw - current.yaw))
        cost = float(np.linalg.norm(g.position[:2] - current.position[:2])) + YAW_WEIGHT * abs(dyaw)
        if best is None or cost < best[0]:
            best = (cost, g)
    assert best is not None
    return best[1]


def oracle_grasp(session: SimSession, approach_height: float = 0.10) -> GraspOutcome:
    """Grasp with the ground-truth good grasp nearest to the current gripper pose.

    Args:
        session: A session with an object placed and the gripper open.
        approach_height: Distance (m) above the grasp from which to descend.
    """
    grasps = session.truth.good_grasps()
    if not grasps:
        name = session.object.name if session.object else "?"
        return GraspOutcome(False, f"no good grasps known for object {name!r}")
    return execute_grasp(session, nearest_grasp(grasps, session.robot.arm.pose()), approach_height)
