"""Shared plumbing of the leaves: blackboard access and the backends received in ``setup()``.

Lifecycle (py_trees): ``__init__`` holds configuration only (a tree can be built, rendered and
tested with no robot); ``setup(**kwargs)`` receives ``robot`` (:class:`app.robot.interfaces.Robot`)
and ``models`` (:class:`ModelBundle`) and checks them. The runner hands over the robot through
:func:`app.robot.boundary.leaf_robot`: its camera, arm and gripper expose exactly their protocols
(any other attribute raises :class:`app.robot.boundary.CapabilityError`), its arm is behind the
safety envelope, and its clock only tells the time; ``initialise()`` starts a motion or sends
a goal; ``update()`` polls and never blocks; ``terminate()`` stops what was started when the
leaf is pre-empted.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
import py_trees
from py_trees.common import Access

from app.robot.interfaces import Frame, MotionStatus, Robot

#: Every blackboard key the leaves use, with what it holds.
KEYS = {
    "frame": "latest camera Frame (raw, as the camera gave it)",
    "model_frame": "Frame the models see: adapted to the sim look, or raw",
    "mask": "class mask (H, W) uint8 of model_frame: 0 background, 1 object, 2 gripper",
    "features": "BlobFeatures of the tracked object blob",
    "pose_step": "number of pose steps done",
    "action": "last pose action (dx, dy, dz, dyaw) in m and rad, gripper frame",
    "vs_mode": "'linear' or 'full'",
    "vs_iterations": "VS iterations so far",
    "vs_error": "last VS feature error (t_x, t_y in m, theta in rad)",
    "vs_gain": "last adaptive gain",
    "vs_twist": "last commanded twist (vx, vy, vz, wx, wy, wz), camera frame",
    "vs_targets": "last VS targets (x*, y* normalised image coordinates, alpha* rad), camera frame",
    "linear_converged": "linear VS has converged (latched until a border fallback)",
    "vs_converged": "full VS has converged",
    "vs_fallbacks": "number of border fallbacks from full to linear VS",
    "z_g": "object distance along the camera z (m), from depth",
    "static_blobs": "{mask source: (H, W) uint8 mask} of blobs found fixed in the image (not objects)",
    "static_blobs_found": "number of blobs rejected as fixed in the image",
}


class ModelBundle(Protocol):
    """The learned parts a tree uses (see :mod:`app.perception`)."""

    def adapt(self, frame: Frame) -> Frame:
        """Real-looking frame to sim-looking frame (G_Y->X)."""

    def segment(self, frame: Frame) -> np.ndarray:
        """Class mask (H, W) uint8 of a sim-looking frame (D_X)."""

    def segment_raw(self, frame: Frame) -> np.ndarray:
        """Class mask of a raw real-looking frame (D_Y)."""

    def policy(self, frame: Frame) -> np.ndarray:
        """Pose action in [-1, 1]^4 for a sim-looking frame."""


class Leaf(py_trees.behaviour.Behaviour):
    """A behaviour with named blackboard keys and the backends from ``setup()``.

    Args:
        name: Short spoken phrase shown in the tree and the tick log.
        reads: Blackboard keys read.
        writes: Blackboard keys written.
    """

    def __init__(self, name: str, reads: tuple[str, ...] = (), writes: tuple[str, ...] = ()) -> None:
        super().__init__(name)
        self.bb = self.attach_blackboard_client(name=name)
        for key in reads:
            self.bb.register_key(key, access=Access.READ)
        for key in writes:
            self.bb.register_key(key, access=Access.WRITE)
        self.robot: Robot | None = None
        self.models: ModelBundle | None = None

    def setup(self, **kwargs: Any) -> None:
        """Receive ``robot`` (required) and ``models`` (when the leaf needs them)."""
        robot = kwargs.get("robot")
        if robot is None:
            raise KeyError(f"{self.name}: setup() needs robot=Robot(...)")
        self.robot = robot
        self.models = kwargs.get("models")

    def fail(self, message: str) -> py_trees.common.Status:
        """Set the feedback message and return FAILURE."""
        self.feedback_message = message
        return py_trees.common.Status.FAILURE

    def motion_progress(self) -> py_trees.common.Status | None:
        """The arm's last motion as a status: RUNNING while it moves, FAILURE (with the arm's
        reason as the message) when it failed, None when it is done."""
        st = self.robot.arm.motion_status()
        if st == MotionStatus.MOVING:
            return py_trees.common.Status.RUNNING
        if st == MotionStatus.FAILED:
            return self.fail(self.robot.arm.motion_error() or "motion failed")
        return None

    def stop_own_motion(self, new_status: py_trees.common.Status) -> None:
        """From ``terminate()``: stop the arm when this leaf is pre-empted while its own motion
        runs. A leaf that already finished must not: a Selector with memory invalidates its
        finished (failed) children on later ticks, and stopping then would cut short the motion
        a sibling has started since (the clearing tree's joint-space unwind was stopped so)."""
        if (new_status == py_trees.common.Status.INVALID and self.status == py_trees.common.Status.RUNNING
                and self.robot is not None and self.robot.arm.motion_status() == MotionStatus.MOVING):
            self.robot.arm.stop()

    def read(self, key: str, default: Any = None) -> Any:
        """A blackboard value, or ``default`` when unset."""
        return self.bb.get(key) if self.bb.exists(key) else default
