"""Motion leaves: gripper open/close, pose steps from the policy, the depth descent, the lift.

Moves start in ``initialise()`` and are polled in ``update()`` (one tick per control period);
``terminate()`` stops the arm when the leaf is pre-empted.
"""

from __future__ import annotations

import numpy as np
import py_trees
from py_trees.common import Status

from app.controllers.depth import (
    DepthParams,
    background_distance,
    descent_distance,
    object_distance_or_surround,
)
from app.interfaces import MotionStatus
from app.transforms import Pose, delta_pose
from behaviours.base import Leaf

EMPTY_WIDTH = 0.002  # m: fingers closer than this hold nothing


class _Move(Leaf):
    """Base of leaves that start one arm motion and poll it."""

    def target_delta(self) -> Pose | None:  # pragma: no cover - overridden
        """The relative move (gripper frame) to start, or None (failure already set)."""
        raise NotImplementedError

    resume_goal = False  # set by RecoverFromReflex: retry towards the same absolute goal

    def initialise(self) -> None:
        """Start the motion (after a reflex recovery: towards the goal of the first attempt)."""
        self._started = False
        if self.resume_goal and getattr(self, "_goal", None) is not None:
            self.resume_goal = False
            self.robot.arm.move_to(self._goal)
            self._started = True
            return
        delta = self.target_delta()
        if delta is None:
            return
        self._goal = self.robot.arm.pose() @ delta
        self.robot.arm.move_to(self._goal)
        self._started = True

    def update(self) -> Status:
        """RUNNING while moving; SUCCESS when reached; FAILURE with the arm's reason."""
        if not self._started:
            return Status.FAILURE
        st = self.robot.arm.motion_status()
        if st == MotionStatus.MOVING:
            return Status.RUNNING
        if st == MotionStatus.FAILED:
            return self.fail(self.robot.arm.motion_error() or "motion failed")
        return Status.SUCCESS

    def terminate(self, new_status: Status) -> None:
        """Stop the arm if pre-empted mid-motion."""
        if new_status == Status.INVALID and getattr(self, "_started", False) and self.robot is not None:
            if self.robot.arm.motion_status() == MotionStatus.MOVING:
                self.robot.arm.stop()


class OpenGripper(Leaf):
    """Open the gripper fully."""

    def __init__(self, name: str = "Open Gripper") -> None:
        super().__init__(name)

    def initialise(self) -> None:
        """Send the open command."""
        self.robot.gripper.open()

    def update(self) -> Status:
        """RUNNING until the fingers stop."""
        return Status.RUNNING if self.robot.gripper.busy() else Status.SUCCESS


class PoseStep(_Move):
    """One DRL pose step: the policy's relative pose on the model frame, then the move.

    Args:
        step: 1-based step number.
        steps: Steps per episode (the last one takes z from the policy or uses ``last_z``).
        step_z: Metres towards the table in steps before the last.
        max_xy: Action scale (m); max_yaw: (rad); z_range: (m) of the last step.
        last_z: "agent" (z from the policy) or "zero" (VS follows).
    """

    def __init__(self, step: int, steps: int, step_z: float, max_xy: float, max_yaw: float,
                 z_range: tuple[float, float], last_z: str, name: str | None = None) -> None:
        super().__init__(name or f"Pose Step {step}", reads=("model_frame",), writes=("action", "pose_step"))
        self.step, self.steps, self.step_z = step, steps, step_z
        self.max_xy, self.max_yaw, self.z_range, self.last_z = max_xy, max_yaw, z_range, last_z

    def target_delta(self) -> Pose | None:
        """Policy action scaled as in training (see :meth:`app.sim.pose_env.PoseEnv.scale_action`)."""
        a = np.clip(np.asarray(self.models.policy(self.bb.model_frame), dtype=float), -1, 1)
        dx, dy, dyaw = a[0] * self.max_xy, a[1] * self.max_xy, a[3] * self.max_yaw
        if self.step < self.steps:
            dz = self.step_z
        elif self.last_z == "zero":
            dz = 0.0
        else:
            lo, hi = self.z_range
            dz = lo + (a[2] + 1) / 2 * (hi - lo)
        self.bb.action = (float(dx), float(dy), float(dz), float(dyaw))
        self.bb.pose_step = self.step
        self.feedback_message = f"dx {dx * 100:+.1f} cm dy {dy * 100:+.1f} cm dz {dz * 100:+.1f} cm dyaw {np.degrees(dyaw):+.0f} deg"
        return delta_pose(dx, dy, dz, dyaw)


class DescendByDepth(_Move):
    """Read the object distance over the blob from depth, and descend along the approach axis.

    Depth comes from the raw camera frame (the sensor's own reading) over the tracked blob.
    """

    def __init__(self, params: DepthParams, finger_depth: float, name: str = "Descend By Depth") -> None:
        super().__init__(name, reads=("frame", "features", "mask"), writes=("z_g", "descent_m"))
        self.params, self.finger_depth = params, finger_depth

    def target_delta(self) -> Pose | None:
        """Descent from the median depth over the (eroded) blob, capped above the table."""
        f = self.read("features")
        frame = self.bb.frame
        if f is None or f.mask is None:
            self.fail("no tracked blob to read depth over")
            return None
        est = object_distance_or_surround(frame.depth, f.mask, self.params)
        if est.z is None:
            self.fail(f"object depth: {est.reason}")
            return None
        table = background_distance(frame.depth, self.bb.mask, self.params)
        d = descent_distance(est.z, self.robot.arm.camera_mount, self.finger_depth, table.z,
                             self.params.table_clearance)
        self.bb.z_g = est.z
        self.bb.descent_m = float(d)  # a re-grasp backs off this far: back to the view VS had
        self.feedback_message = (f"Z_g {est.z:.3f} m ({est.valid_fraction:.0%} valid"
                                 f"{'; ' + est.reason if est.reason else ''}): descend {d * 100:.1f} cm")
        return Pose(np.array([0.0, 0.0, d]), np.eye(3))


class CloseGripper(Leaf):
    """Close the gripper with the configured force; SUCCESS when something is held."""

    def __init__(self, force: float, name: str = "Close Gripper") -> None:
        super().__init__(name)
        self.force = force

    def initialise(self) -> None:
        """Start the grasp at half the full opening: with libfranka's +-epsilon (config
        ``gripper.epsilon``, 4 cm) any object width in 0-8 cm counts as held."""
        self.robot.gripper.grasp(self.robot.gripper.max_width / 2, self.force)

    def update(self) -> Status:
        """RUNNING while closing."""
        if self.robot.gripper.busy():
            return Status.RUNNING
        w = self.robot.gripper.width()
        if not self.robot.gripper.is_grasped() or w < EMPTY_WIDTH:
            return self.fail(f"nothing between the fingers (closed to {w * 1000:.0f} mm)")
        self.feedback_message = f"holding at {w * 1000:.0f} mm"
        return Status.SUCCESS


class LiftAndVerify(_Move):
    """Lift, hold, and check the gripper still holds the object (from the gripper's own state).

    Args:
        height: Lift (m) along the base z.
        hold_ticks: Control ticks to hold before checking.
    """

    def __init__(self, height: float, hold_ticks: int, name: str = "Lift And Verify") -> None:
        super().__init__(name)
        self.height, self.hold_ticks = height, hold_ticks

    def target_delta(self) -> Pose | None:
        """Straight up in the base frame = backwards along a top-down gripper's z."""
        pose = self.robot.arm.pose()
        up_in_gripper = pose.matrix.T @ np.array([0.0, 0.0, self.height])
        self._held = 0
        return Pose(up_in_gripper, np.eye(3))

    def update(self) -> Status:
        """Lift, then hold ``hold_ticks``, then verify."""
        st = super().update()
        if st != Status.SUCCESS:
            return st
        self._held += 1
        if self._held < self.hold_ticks:
            return Status.RUNNING
        if not self.robot.gripper.is_grasped() or self.robot.gripper.width() < EMPTY_WIDTH:
            return self.fail("object slipped out during the lift")
        self.feedback_message = f"holding after lift at {self.robot.gripper.width() * 1000:.0f} mm"
        return Status.SUCCESS


class OraclePose(_Move):
    """Move straight above the nearest good grasp, from simulator ground truth (oracle only).

    Args:
        truth: The simulator's evaluation accessor.
        standoff: Height (m) above the grasp to stop at.
    """

    def __init__(self, truth: object, standoff: float, name: str = "Oracle Pose") -> None:
        super().__init__(name)
        self.truth, self.standoff = truth, standoff

    def target_delta(self) -> Pose | None:
        """Nearest good grasp (parallel gripper: yaw modulo pi) minus the standoff."""
        current = self.robot.arm.pose()
        best, best_cost = None, np.inf
        for g in self.truth.good_grasps():
            for flip in (0.0, np.pi):
                cand = g @ delta_pose(0, 0, 0, flip)
                d, r = current.distance(cand)
                if d + 0.1 * r < best_cost:  # 0.1 m per rad: position dominates the choice
                    best, best_cost = cand, d + 0.1 * r
        if best is None:
            self.fail("the object has no good grasps (run `python -m app grasps`)")
            return None
        target = best @ Pose(np.array([0.0, 0.0, -self.standoff]), np.eye(3))
        self.feedback_message = "above the nearest good grasp"
        return current.inverse() @ target


class Descend(_Move):
    """Move a fixed distance along the approach axis (oracle final approach)."""

    def __init__(self, distance: float, name: str = "Descend") -> None:
        super().__init__(name, writes=("descent_m",))
        self.distance = distance

    def target_delta(self) -> Pose | None:
        """Straight along gripper z."""
        self.bb.descent_m = self.distance
        return Pose(np.array([0.0, 0.0, self.distance]), np.eye(3))


REFLEX = "reflex"  # substring of the arm's error after a collision/force reflex (libfranka, faults)


class RecoverFromReflex(py_trees.decorators.Decorator):
    """Retry the child after an arm reflex: ``arm.recover()``, then run the child again.

    Only reflexes are recovered (the arm's error mentions "reflex"); any other failure passes
    through. Motion leaves inside resume towards the goal of their first attempt.

    Args:
        child: The guarded subtree.
        max_recoveries: Reflexes recovered before the failure stands.
    """

    def __init__(self, child: py_trees.behaviour.Behaviour, max_recoveries: int, name: str | None = None) -> None:
        super().__init__(name=name or f"Recover {child.name}", child=child)
        self.max_recoveries = max_recoveries
        self.recoveries = 0
        self.robot = None

    def setup(self, **kwargs: object) -> None:
        """Receive the robot."""
        self.robot = kwargs.get("robot")

    def update(self) -> Status:
        """Pass the child's status through, except a reflex failure within the budget."""
        status = self.decorated.status
        if status != Status.FAILURE:
            self.feedback_message = ""
            return status
        arm = self.robot.arm
        error = arm.motion_error()
        if arm.motion_status() != MotionStatus.FAILED or REFLEX not in error.lower():
            return Status.FAILURE
        if self.recoveries >= self.max_recoveries:
            self.feedback_message = f"reflex not cleared after {self.recoveries} recoveries: {error}"
            return Status.FAILURE
        self.recoveries += 1
        arm.recover()
        for node in self.decorated.iterate():
            if isinstance(node, _Move):
                node.resume_goal = True
        self.feedback_message = f"recovered from reflex {self.recoveries}/{self.max_recoveries}: {error}"
        return Status.RUNNING
