"""Ground truth of the simulator: the evaluation accessor.

Only the ``oracle`` tree and the scoring code may use it. Behaviours never receive it (they get
:class:`app.robot.interfaces.Robot`); :attr:`GroundTruth.locked` makes any read raise, so tests can
prove a tree never reaches it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Protocol

import numpy as np

from app.errors import AppError
from app.sim.domain import Domain
from app.transforms import Pose, wrap_half_pi

if TYPE_CHECKING:
    from app.sim.backends import SimCamera
    from app.sim.objects import ObjectSpec
    from app.sim.pybullet_world import PyBulletWorld


class Scene(Protocol):
    """What the ground truth reads of its session (:class:`app.sim.session.SimSession`, which
    owns it: the session imports this module, never the other way round)."""

    world: PyBulletWorld
    camera: SimCamera
    object: ObjectSpec | None
    gap: Any  # the episode's GapSample (app/sim/gap.py)


class GroundTruthLocked(AppError):
    """Raised when code that must not see ground truth reaches for it."""


class GroundTruth:
    """Read-only view of what only the simulator knows."""

    def __init__(self, session: Scene) -> None:
        self._s = session
        self.locked = False
        self.reads = 0

    def _check(self) -> None:
        if self.locked:
            raise GroundTruthLocked("simulator ground truth read while locked (only the oracle and scoring may)")
        self.reads += 1

    def object_pose(self) -> Pose:
        """Object pose in the base frame."""
        self._check()
        return self._s.world.object_pose()

    def good_grasps(self) -> list[Pose]:
        """The object's good grasps as gripper poses in the base frame."""
        self._check()
        assert self._s.object is not None
        return self._s.object.grasp_poses(self._s.world.object_pose())

    def grasp_axis_yaw(self) -> float | None:
        """Yaw (rad, modulo pi) the finger line must have to close across the object's minor
        horizontal axis; None for round objects."""
        self._check()
        spec = self._s.object
        assert spec is not None
        if spec.round:
            return None
        pose = self._s.world.object_pose()
        ext = spec.extents
        # The finger line closes across the narrower horizontal side.
        axis = pose.matrix[:, 1] if ext[0] >= ext[1] else pose.matrix[:, 0]
        return wrap_half_pi(float(np.arctan2(axis[1], axis[0])))

    def last_mask(self) -> np.ndarray:
        """True class mask (0 background, 1 object, 2 gripper) of the camera's last frame."""
        self._check()
        raw = self._s.camera.last_raw()
        if raw is None:
            self._s.camera.get_frame()
            raw = self._s.camera.last_raw()
        return raw.mask

    def exact_depth(self) -> np.ndarray:
        """Exact depth (m) of the camera's last frame."""
        self._check()
        raw = self._s.camera.last_raw()
        return raw.depth if raw is not None else self._s.camera.render_raw().depth

    def render(self, domain: Domain, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Render the current state in ``domain``: (rgb, depth with its sensor model, true mask).

        Same state, another look: this is how paired sim/real images are made.
        """
        self._check()
        raw = self._s.camera.render_raw(domain)
        rgb, depth = self._s.camera.sense(raw, domain, rng)
        return rgb, depth, raw.mask

    def object_lifted(self, rest_z: float, min_lift: float = 0.10) -> bool:
        """Object at least ``min_lift`` m above ``rest_z`` and touching both fingers."""
        self._check()
        w = self._s.world
        z = w.object_pose().position[2]
        left, right = w.finger_contacts(w.object_id)
        return bool(z - rest_z >= min_lift and left and right)

    def gap_sample(self) -> Any:
        """The episode's drawn physical gap (:class:`app.sim.gap.GapSample`)."""
        self._check()
        return self._s.gap

    def gripper_min_z(self) -> float:
        """Lowest point of the hand and fingers above the table (m)."""
        self._check()
        return self._s.world.gripper_min_z()
