"""Does the tracked blob move like a point of the world when the camera moves?

A blob that the segmenter finds at the same place in every image whatever the arm does (a
generator artifact in an image corner, a reflection on the lens, part of the hand) is not an
object on the table. Visual servoing on it never converges: the error stays constant while the
arm runs towards it until the workspace or the joint limits stop it (measured in `real` + `lab`:
most of `drl_gan_vs`'s failures on the unseen salmon fillet, whose colour the generator washes
into the table while a corner artifact remains).

The check compares the blob's image motion with the motion a static point at the blob's depth
would have. With the camera pose ``T_ref`` (base frame) and the blob's normalised centroid
``(x, y)`` at depth ``Z`` at a reference tick, the point is ``P = T_ref (x Z, y Z, Z)`` in the
base frame; at a later tick with camera pose ``T``, a static point is seen at
``(x', y') = proj(T^-1 P)``. Once that predicted shift ``d = (x' - x, y' - y)`` reaches a few
pixels, the observed shift ``o`` of the blob is compared with it: ``ratio = o . d / |d|^2`` is
about 1 for a point of the scene (a little less with the camera's latency) and about 0 for
anything fixed in the image. The reference then moves to the current tick (a sliding window). A
blob is declared fixed only after ``windows_to_reject`` windows in a row stayed put, so that a
single jump (the object pushed, a bad frame) does not reject a real object.

A limit of any such check: an object that moves with the camera (dragged by the fingers, or
rolling away while VS follows it) also stays put in the image. On a table objects do not move
by themselves; the compliant banana and sausage did in our simulator until their rolling
friction was fixed (``app/sim/pybullet_world.py`` ``COMPLIANT_ROLLING_FRICTION``).

Only the arm's reported pose and the configured mount (``Arm.camera_pose``) are used, as on a
real robot; a hand-eye error of a few millimetres changes ``d`` by a few per cent.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.transforms import Pose

_MIN_DEPTH = 1e-3  # m, a point this close to (or behind) the camera plane is not projected


@dataclass(frozen=True)
class MotionCheckParams:
    """Parameters of the blob motion check (``config/vs.yaml`` ``features.motion_check``).

    Attributes:
        min_predicted_shift_px: A verdict is given once a static point would have moved this far
            in the image (px at the model resolution) since the reference tick.
        min_follow_ratio: The blob moves with the scene when its observed shift along the
            predicted one is at least this fraction of it (1: exactly like a static point).
        windows_to_reject: Consecutive windows below ``min_follow_ratio`` that make the blob
            "fixed in the image".
    """

    min_predicted_shift_px: float = 8.0  # px, ~6 % of a 128 px image: 2 cm of camera motion at 0.3 m
    min_follow_ratio: float = 0.3  # a scene point reads ~0.8 with 2-3 frames of latency at VS speed
    windows_to_reject: int = 2  # two windows: ~4.4 cm of camera motion before a blob is rejected


@dataclass(frozen=True)
class MotionVerdict:
    """One update of the check.

    Attributes:
        checked: Whether the camera moved enough since the reference for a verdict.
        follows: The blob has not been found fixed in the image: False only after
            ``windows_to_reject`` windows in a row stayed put.
        ratio: Observed over predicted shift along the prediction (nan when not ``checked``).
        predicted_px: The predicted shift of a static point since the reference (px).
    """

    checked: bool
    follows: bool = True
    ratio: float = float("nan")
    predicted_px: float = 0.0


class BlobMotionCheck:
    """Sliding-window comparison of a tracked blob's image motion with the camera's motion."""

    def __init__(self, params: MotionCheckParams) -> None:
        self.params = params
        self._ref: tuple[Pose, float, float, float] | None = None
        self._stayed = 0  # consecutive windows in which the blob stayed put

    def reset(self) -> None:
        """Forget the reference and the count of windows (a new track)."""
        self._ref = None
        self._stayed = 0

    def update(self, camera_pose: Pose, x_g: float, y_g: float, z: float, fx: float) -> MotionVerdict:
        """Compare the blob at ``(x_g, y_g)`` with where a static point would be now.

        Args:
            camera_pose: Camera pose in the base frame now (from the arm's reported pose).
            x_g: Blob centroid, normalised image x (camera frame).
            y_g: Blob centroid, normalised image y.
            z: Blob distance along the camera z (m).
            fx: Focal length in pixels at the mask's resolution (converts to px).

        Returns:
            The verdict (``checked`` False until the camera has moved enough).
        """
        if self._ref is None:
            self._ref = (camera_pose, x_g, y_g, z)
            return MotionVerdict(checked=False)
        ref_pose, xr, yr, zr = self._ref
        point = ref_pose.matrix @ np.array([xr * zr, yr * zr, zr]) + ref_pose.position  # base frame
        seen = camera_pose.matrix.T @ (point - camera_pose.position)  # camera frame now
        if seen[2] <= _MIN_DEPTH:
            self._ref = (camera_pose, x_g, y_g, z)
            return MotionVerdict(checked=False)
        predicted = np.array([seen[0] / seen[2] - xr, seen[1] / seen[2] - yr])
        predicted_px = float(np.linalg.norm(predicted) * fx)
        if predicted_px < self.params.min_predicted_shift_px:
            return MotionVerdict(checked=False, predicted_px=predicted_px)
        observed = np.array([x_g - xr, y_g - yr])
        ratio = float(observed @ predicted / (predicted @ predicted))
        self._ref = (camera_pose, x_g, y_g, z)
        self._stayed = self._stayed + 1 if ratio < self.params.min_follow_ratio else 0
        return MotionVerdict(checked=True, follows=self._stayed < self.params.windows_to_reject, ratio=ratio,
                             predicted_px=predicted_px)
