"""Motion leaves: gripper open/close, pose steps from the policy, the depth descent, the lift.

Moves start in ``initialise()`` and are polled in ``update()`` (one tick per control period);
``terminate()`` stops the arm when the leaf is pre-empted.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import py_trees
from py_trees.common import Status

from app.controllers.depth import (
    DepthParams,
    background_distance,
    descent_distance,
    object_distance_or_surround,
)
from app.robot.interfaces import Gripper, MotionStatus
from app.robot.reflexes import BACKOFF_M, reflex_kind
from app.transforms import Pose, delta_pose
from behaviours.base import Leaf

EMPTY_WIDTH = 0.002  # m: fingers closer than this hold nothing
SETTLE_STILL_M = 0.00005  # m per tick (1.5 mm/s): the arm has come to rest when it moves less than this
SETTLE_WAIT_TICKS = 30  # ticks (1 s) to wait for rest before measuring anyway
SETTLE_CORRECT_M = 0.001  # m: a rest pose farther than this from the goal is corrected once
PRESTOP_M = 0.008  # m: a corrected descent first stops this far above its goal (4 sd of a 2 mm rest error)
FLOOR_CLEARANCE_M = 0.001  # m the fingertips keep above the configured table (z = 0) on a descent


def floor_limited(current: Pose, delta: Pose, fingertips: np.ndarray | None) -> tuple[Pose, str]:
    """``delta`` (gripper frame) shortened along z so that no fingertip corner ends below the
    configured table (base z = 0) plus :data:`FLOOR_CLEARANCE_M`; and a note when shortened.

    The depth descent is capped by the *measured* table; a table lower than configured would
    otherwise take the fingertips below the z = 0 the safety envelope protects (a refusal).

    Args:
        current: Gripper pose now (base frame).
        delta: The relative move.
        fingertips: Lowest fingertip corners (4, 3) in the gripper frame (m); None: no limit.
    """
    if fingertips is None:
        return delta, ""
    target = current @ delta
    low = float(np.min(target.matrix[2] @ fingertips.T) + target.position[2])
    if low >= FLOOR_CLEARANCE_M:
        return delta, ""
    down = -float((current.matrix @ np.array([0.0, 0.0, 1.0]))[2])  # base-z drop per metre along gripper z
    if down <= 1e-6:
        return delta, ""
    dz = (FLOOR_CLEARANCE_M - low) / down  # metres to take back along gripper z
    short = Pose(delta.position - np.array([0.0, 0.0, dz]), delta.matrix)
    return short, f" (shortened {dz * 1000:.1f} mm: fingertips kept above the configured table)"


def hand_sample(gripper: Gripper) -> tuple[float, bool]:
    """(width in m, grasped flag) from one state sample of the hand: one read per tick on the
    real hand, whose reads block (``PandaGripper.sample``); two cheap calls elsewhere."""
    sample = getattr(gripper, "sample", None)
    if sample is not None:
        s = sample()
        return s.width, s.is_grasped
    return gripper.width(), gripper.is_grasped()


def command_result(gripper: Gripper) -> tuple[bool | None, str]:
    """What the hand's last command returned and why it raised, where the backend says
    (``PandaGripper.last_result`` / ``last_error``); (None, "") otherwise."""
    result = getattr(gripper, "last_result", None)
    error = getattr(gripper, "last_error", None)
    return (result() if result else None), (error() if error else "")


class _Move(Leaf):
    """Base of leaves that start one arm motion and poll it."""

    def target_delta(self) -> Pose | None:  # pragma: no cover - overridden
        """The relative move (gripper frame) to start, or None (failure already set)."""
        raise NotImplementedError

    resume_goal = False  # set by RecoverFromReflex: retry towards the same absolute goal
    #: Set by the tree builder (tree key ``settle_correction``): a descent first stops
    #: :data:`PRESTOP_M` above its goal; when the arm has come to rest, the rest error (where it
    #: rests minus where it was sent: a controller's steady-state error) is taken out of one last
    #: move to the goal — never aimed deeper along z than the goal itself.
    correct_settle = False

    def initialise(self) -> None:
        """Start the motion (after a reflex recovery: towards the goal of the first attempt)."""
        self._started = False
        self._settle: list[Pose] | None = None  # rest poses seen while settling (None: not yet)
        self._corrected = False
        if self.resume_goal and getattr(self, "_goal", None) is not None:
            self.resume_goal = False
            self._aimed = self._goal  # straight to the goal: the rest error is measured against it
            self.robot.arm.move_to(self._goal)
            self._started = True
            return
        delta = self.target_delta()
        if delta is None:
            return
        current = self.robot.arm.pose()
        self._goal = self._aimed = current @ delta
        if self.correct_settle and self._goal.position[2] < current.position[2] - PRESTOP_M:  # a descent
            self._aimed = Pose(self._goal.position + np.array([0.0, 0.0, PRESTOP_M]), self._goal.matrix)
        self.robot.arm.move_to(self._aimed)
        self._started = True

    def update(self) -> Status:
        """RUNNING while moving; SUCCESS when reached; FAILURE with the arm's reason."""
        if not self._started:
            return Status.FAILURE
        progress = self.motion_progress()
        if progress is not None:
            return progress
        if self.correct_settle:
            return self._correct()
        return Status.SUCCESS

    def _correct(self) -> Status:
        """One tick of the settle correction: wait for rest, then correct once and wait for rest
        again (RUNNING), or SUCCESS."""
        pose = self.robot.arm.pose()
        seen = self._settle = (self._settle or []) + [pose]
        still = len(seen) >= 2 and float(np.linalg.norm(seen[-1].position - seen[-2].position)) < SETTLE_STILL_M
        if not still and len(seen) < SETTLE_WAIT_TICKS:
            return Status.RUNNING
        if self._corrected:
            return Status.SUCCESS
        self._corrected, self._settle = True, None
        c = self._aimed.position - pose.position  # the rest error, taken out (base frame, z up)
        c[2] = max(float(c[2]), 0.0)  # rested high: never aim deeper than the goal (the table)
        prestop = self._aimed is not self._goal
        if not prestop and float(np.linalg.norm(c)) <= SETTLE_CORRECT_M:
            return Status.SUCCESS
        self.feedback_message = (f"rested {np.linalg.norm(self._aimed.position - pose.position) * 1000:.1f} mm "
                                 f"off{' the pre-stop' if prestop else ' the goal'}: correcting")
        self.robot.arm.move_to(Pose(self._goal.position + c, self._goal.matrix))
        return Status.RUNNING

    def terminate(self, new_status: Status) -> None:
        """Stop the arm if pre-empted mid-motion."""
        self.stop_own_motion(new_status)


class OpenGripper(Leaf):
    """Open the gripper fully."""

    def __init__(self, name: str = "Open Gripper") -> None:
        super().__init__(name)

    def initialise(self) -> None:
        """Send the open command."""
        self.robot.gripper.open()

    def update(self) -> Status:
        """RUNNING until the fingers stop; FAILURE when the hand reports the open failed."""
        gripper = self.robot.gripper
        if gripper.busy():
            return Status.RUNNING
        result, error = command_result(gripper)
        if result is False or error:
            return self.fail(f"the gripper did not open: {error or 'the hand refused the move'}")
        return Status.SUCCESS


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

    def __init__(self, params: DepthParams, finger_depth: float, fingertips: np.ndarray,
                 name: str = "Descend By Depth") -> None:
        super().__init__(name, reads=("frame", "features", "mask"), writes=("z_g", "descent_m"))
        self.params, self.finger_depth, self.fingertips = params, finger_depth, np.asarray(fingertips, dtype=float)
        self.fingertip_reach = float(self.fingertips[:, 2].max())  # m beyond the grasp point

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
                             self.fingertip_reach + self.params.tip_clearance)
        self.bb.z_g = est.z
        delta, note = floor_limited(self.robot.arm.pose(), Pose(np.array([0.0, 0.0, d]), np.eye(3)), self.fingertips)
        self.bb.descent_m = float(delta.position[2])  # a re-grasp backs off this far: back to the view VS had
        self.feedback_message = (f"Z_g {est.z:.3f} m ({est.valid_fraction:.0%} valid"
                                 f"{'; ' + est.reason if est.reason else ''}): descend "
                                 f"{delta.position[2] * 100:.1f} cm{note}")
        return delta


class CloseGripper(Leaf):
    """Close the gripper with the configured force; SUCCESS when something is held."""

    def __init__(self, force: float, name: str = "Close Gripper") -> None:
        super().__init__(name)
        self.force = force

    def initialise(self) -> None:
        """Grasp towards width 0: the fingers close until they stop on the object (or meet),
        whatever the hand does with the commanded width (see ``PandaGripper.grasp``)."""
        self.robot.gripper.grasp(0.0, self.force)

    def update(self) -> Status:
        """RUNNING while closing; then "grasped" from one hand sample and the command result."""
        gripper = self.robot.gripper
        if gripper.busy():
            return Status.RUNNING
        result, error = command_result(gripper)
        w, grasped = hand_sample(gripper)
        if error:
            return self.fail(f"grasp failed: {error}")
        if result is False or not grasped or w < EMPTY_WIDTH:
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
        w, grasped = hand_sample(self.robot.gripper)
        if not grasped or w < EMPTY_WIDTH:
            return self.fail("object slipped out during the lift")
        self.feedback_message = f"holding after lift at {w * 1000:.0f} mm"
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

    def __init__(self, distance: float, fingertips: np.ndarray | None = None, name: str = "Descend") -> None:
        super().__init__(name, writes=("descent_m",))
        self.distance, self.fingertips = distance, fingertips

    def target_delta(self) -> Pose | None:
        """Straight along gripper z (fingertips kept above the configured table)."""
        delta, note = floor_limited(self.robot.arm.pose(), Pose(np.array([0.0, 0.0, self.distance]), np.eye(3)),
                                    self.fingertips)
        self.feedback_message = f"descend {delta.position[2] * 100:.1f} cm{note}"
        self.bb.descent_m = float(delta.position[2])  # a re-grasp backs off this far
        return delta


class RecoverFromReflex(py_trees.decorators.Decorator):
    """Handle an arm reflex of the child (:func:`app.robot.reflexes.reflex_kind`).

    * An error a retry can fix (``communication_constraints_violation``, a motion that ended
      while moving): ``arm.recover()``, then the child runs again; motion leaves inside resume
      towards the goal of their first attempt. At most ``max_recoveries`` times.
    * A contact reflex (the arm hit something): ``arm.recover()``, back off
      :data:`~app.robot.reflexes.BACKOFF_M` along the approach (the child is not ticked meanwhile),
      then FAILURE naming the reflex: retrying would hit the same obstacle.
    * Anything else passes through.

    Args:
        child: The guarded subtree.
        max_recoveries: Retryable errors recovered before the failure stands.
    """

    def __init__(self, child: py_trees.behaviour.Behaviour, max_recoveries: int, name: str | None = None) -> None:
        super().__init__(name=name or f"Recover {child.name}", child=child)
        self.max_recoveries = max_recoveries
        self.recoveries = 0
        self.robot = None
        self._backing_off = ""  # the contact reflex being backed off from ("" when not)

    def setup(self, **kwargs: object) -> None:
        """Receive the robot."""
        self.robot = kwargs.get("robot")

    def tick(self) -> Iterator[py_trees.behaviour.Behaviour]:
        """While backing off, poll the back-off move instead of ticking the child."""
        if not self._backing_off:
            yield from super().tick()
            return
        self.status = self._poll_backoff()
        if self.status != Status.RUNNING:
            self.stop(self.status)
        yield self

    def terminate(self, new_status: Status) -> None:
        """Forget a back-off when pre-empted (the arm is stopped by whoever pre-empts)."""
        if new_status == Status.INVALID:
            self._backing_off = ""

    def _poll_backoff(self) -> Status:
        arm = self.robot.arm
        st = arm.motion_status()
        if st == MotionStatus.MOVING:
            return Status.RUNNING
        error, self._backing_off = self._backing_off, ""
        outcome = "backed off" if st == MotionStatus.DONE else f"back-off failed ({arm.motion_error()})"
        self.feedback_message = f"contact reflex, {outcome} {BACKOFF_M * 100:.0f} cm: {error}"
        return Status.FAILURE

    def update(self) -> Status:
        """Pass the child's status through, except a reflex failure (see the class)."""
        status = self.decorated.status
        if status != Status.FAILURE:
            self.feedback_message = ""
            return status
        arm = self.robot.arm
        error = arm.motion_error()
        kind = reflex_kind(error) if arm.motion_status() == MotionStatus.FAILED else None
        if kind is None:
            return Status.FAILURE
        if kind == "contact":
            arm.recover()
            arm.move_relative(Pose(np.array([0.0, 0.0, -BACKOFF_M]), np.eye(3)), frame="gripper")
            self._backing_off = error
            self.feedback_message = f"contact reflex, backing off: {error}"
            return Status.RUNNING
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
