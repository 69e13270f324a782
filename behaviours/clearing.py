"""Leaves of the ``clear_table`` tree: waypoint moves, the per-pick reset and the pick loop.

A pick is the grasp tree's subtrees between a return to the start pose (with a look for
objects) and a carry to the bin; :class:`UntilTableClear` repeats it until the look sees no
object or the attempt budget is spent, and writes every finished pick to the blackboard
(``last_pick``, ``picks_done``), so each one is a record in the tick log.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import cv2
import numpy as np
import py_trees
from py_trees.common import Access, Status

from app.transforms import Pose
from behaviours.base import Leaf

MAX_LEG_ANGLE = np.radians(45.0)  # rad per leg: well inside the safety envelope's 100 deg per pose command


def subdivide(start: Pose, goal: Pose, max_leg: float, max_angle: float = MAX_LEG_ANGLE) -> list[Pose]:
    """Straight-line waypoints from ``start`` to ``goal``, the orientation turned evenly about one
    axis on the way, each leg at most ``max_leg`` m long and ``max_angle`` rad of rotation (the
    safety envelope limits one pose command's translation and rotation)."""
    d = float(np.linalg.norm(goal.position - start.position))
    rvec, _ = cv2.Rodrigues(start.matrix.T @ goal.matrix)  # rotation start -> goal, in the start frame
    angle = float(np.linalg.norm(rvec))
    n = max(1, int(np.ceil(d / max_leg)), int(np.ceil(angle / max_angle)))
    return [Pose(start.position + (goal.position - start.position) * (k / n),
                 start.matrix @ cv2.Rodrigues(rvec * (k / n))[0]) for k in range(1, n + 1)]


class MoveThrough(Leaf):
    """Move the gripper through absolute waypoints (base frame), one arm goal after another.

    Args:
        name: Node name.
        plan: Called with the current gripper pose in ``initialise()``; returns the waypoints.
        max_leg: Longest straight leg (m); longer segments are subdivided.
    """

    def __init__(self, name: str, plan: Callable[[Pose], list[Pose]], max_leg: float) -> None:
        super().__init__(name)
        self.plan, self.max_leg = plan, max_leg
        self._legs: list[Pose] = []

    def initialise(self) -> None:
        """Plan the legs from the current pose and start the first."""
        self.feedback_message = ""
        here = self.robot.arm.pose()
        legs: list[Pose] = []
        for wp in self.plan(here):
            legs += subdivide(legs[-1] if legs else here, wp, self.max_leg)
        self._legs = legs
        self._start_next()

    def _start_next(self) -> None:
        self._goal = self._legs.pop(0)
        self.robot.arm.move_to(self._goal)

    def update(self) -> Status:
        """RUNNING while moving; SUCCESS after the last leg; FAILURE with the arm's reason."""
        progress = self.motion_progress()
        if progress is not None:
            return progress
        if self._legs:
            self._start_next()
            return Status.RUNNING
        p = self._goal.position
        self.feedback_message = f"at ({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) m"
        return Status.SUCCESS

    def terminate(self, new_status: Status) -> None:
        """Stop the arm if pre-empted mid-motion."""
        self.stop_own_motion(new_status)


class MoveToJoints(Leaf):
    """Move the arm to a joint posture (rad) in joint space, through the safety envelope (which
    checks the path's gripper poses).

    The way back that a straight Cartesian move cannot take: after the pose steps and VS have
    turned the wrist near joint 7's limit, the start orientation is out of reach along any
    straight path from there, while the homing posture unwinds it.

    Args:
        name: Node name.
        joints: The posture (7 angles, rad), e.g. ``HardwareConfig.home_joints``.
    """

    def __init__(self, name: str, joints: tuple[float, ...]) -> None:
        super().__init__(name)
        self.joints = np.asarray(joints, dtype=float)
        self._started = False

    def initialise(self) -> None:
        """Start the joint move."""
        self.robot.arm.move_to_joints(self.joints)
        self._started = True

    def update(self) -> Status:
        """RUNNING while moving; SUCCESS at the posture; FAILURE with the arm's reason."""
        progress = self.motion_progress()
        if progress is not None:
            return progress
        self.feedback_message = "at the joint posture " + ", ".join(f"{q:.2f}" for q in self.joints) + " rad"
        return Status.SUCCESS

    def terminate(self, new_status: Status) -> None:
        """Stop the arm if pre-empted mid-motion."""
        self.stop_own_motion(new_status)


class CentreOverObject(Leaf):
    """Move the gripper, at its height and orientation, over the object blob nearest the image
    centre: the pose agent was trained with the object under (or near) the start pose, and an
    object left at the edge of the view once the middle of the table is cleared is out of its
    reach (its steps move the camera down and lose it).

    Reads the look's mask and frame (camera and depth only): the blob (``first`` rule), the
    median depth over it, its centroid back-projected to the base frame; one pose move.

    Args:
        features: Mask clean-up and blob rules (``vs.yaml`` ``features``).
        depth: Depth read-out (``vs.yaml`` ``depth``).
        first: The chosen-object rule (the tree's ``first_blob``).
        name: Node name.
    """

    def __init__(self, features: Any, depth: Any, first: str, name: str = "Centre Over Object") -> None:
        super().__init__(name, reads=("mask", "frame"))
        self.features, self.depth, self.first = features, depth, first
        self._why = ""

    def initialise(self) -> None:
        """Find the blob and start the move (or keep why not)."""
        from app.controllers.depth import object_distance_or_surround
        from app.controllers.features import extract_features

        self._why = ""
        frame = self.bb.frame
        f = extract_features(self.bb.mask, frame.intrinsics, self.features, first=self.first)
        if not f.ok:
            self._why = f"no object blob to centre on: {f.reason}"
            return
        est = object_distance_or_surround(frame.depth, f.mask, self.depth)
        if est.z is None:
            self._why = f"no depth over the blob: {est.reason}"
            return
        k = frame.intrinsics
        u, v = f.centroid_px
        point = np.array([(u - k.cx) / k.fx * est.z, (v - k.cy) / k.fy * est.z, est.z])  # camera frame, m
        camera = self.robot.arm.camera_pose()
        target = camera.matrix @ point + camera.position
        here = self.robot.arm.pose()
        self._shift = float(np.linalg.norm(target[:2] - here.position[:2]))
        self.robot.arm.move_to(Pose(np.array([target[0], target[1], here.position[2]]), here.matrix))

    def update(self) -> Status:
        """RUNNING while moving; SUCCESS over the object; FAILURE without a blob or with the arm's reason."""
        if self._why:
            return self.fail(self._why)
        progress = self.motion_progress()
        if progress is not None:
            return progress
        self.feedback_message = f"moved {self._shift * 100:.1f} cm to be over the blob"
        return Status.SUCCESS

    def terminate(self, new_status: Status) -> None:
        """Stop the arm if pre-empted mid-motion."""
        self.stop_own_motion(new_status)


class ResetPick(Leaf):
    """Start a pick afresh: no tracked blob, D_X first again, pose steps from 0."""

    def __init__(self, name: str = "Reset Pick") -> None:
        super().__init__(name, writes=("features", "mask_source", "pose_step"))

    def update(self) -> Status:
        """Clear the per-pick blackboard keys."""
        self.bb.features = None
        self.bb.mask_source = None
        self.bb.pose_step = 0
        self.feedback_message = "new pick: no tracked blob, D_X first"
        return Status.SUCCESS


class UntilTableClear(py_trees.decorators.Decorator):
    """Repeat the pick until its look for objects fails (the table is clear) or ``max_picks``
    picks were attempted.

    A pick that succeeds counts as placed, one that fails elsewhere as a failed pick (its
    failing node and reason are kept); either way the next pick starts. Ends SUCCESS in both
    cases (the scoring says how much was cleared); the message says which.

    Args:
        child: The pick subtree.
        look: The pick's look-for-objects node (its failure means "no object seen").
        max_picks: Attempt budget.
        name: Node name.
    """

    def __init__(self, child: py_trees.behaviour.Behaviour, look: py_trees.behaviour.Behaviour, max_picks: int,
                 name: str = "Until Table Clear") -> None:
        super().__init__(name=name, child=child)
        self.look, self.max_picks = look, max_picks
        self.picks: list[dict[str, Any]] = []
        self.bb = self.attach_blackboard_client(name=name)
        for key in ("last_pick", "picks_done"):
            self.bb.register_key(key, access=Access.WRITE)

    def initialise(self) -> None:
        """A new clearing run."""
        self.picks = []

    def update(self) -> Status:
        """Count the finished pick and start the next, or end."""
        from app.runner import leaf_failure

        st = self.decorated.status
        if st == Status.RUNNING:
            self.feedback_message = f"pick {len(self.picks) + 1} of at most {self.max_picks}"
            return Status.RUNNING
        if st == Status.FAILURE and self.look.status == Status.FAILURE:
            self.feedback_message = f"table clear: no object seen after {len(self.picks)} picks"
            return Status.SUCCESS
        if st == Status.SUCCESS:
            rec = {"pick": len(self.picks) + 1, "outcome": "placed", "failed_node": "", "reason": ""}
        else:
            node, reason = leaf_failure(self.decorated)
            rec = {"pick": len(self.picks) + 1, "outcome": "failed", "failed_node": node, "reason": reason}
        self.picks.append(rec)
        self.bb.last_pick = rec
        self.bb.picks_done = len(self.picks)
        if len(self.picks) >= self.max_picks:
            self.feedback_message = f"attempt budget spent: {self.max_picks} picks"
            return Status.SUCCESS
        self.decorated.stop(Status.INVALID)  # the next tick starts the next pick from its first child
        self.feedback_message = f"pick {rec['pick']} {rec['outcome']}; next pick"
        return Status.RUNNING
