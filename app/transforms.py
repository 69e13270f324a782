"""Pose and transform helpers: the one place that knows about rotations.

Conventions (the paper's, used for both the gripper and the camera frame):
    x: along the finger line, y: perpendicular to it, z: along the approach (pointing) direction.
    The camera frame is also OpenCV's optical frame: image u grows with x, v grows with y.
The robot base frame has z up and the table surface at z = 0. Quaternions are (x, y, z, w),
as PyBullet and ``panda_py.get_orientation()`` return them. Lengths in metres, angles in radians.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.types import Mat3, Mat4, Vec3


def quat_to_matrix(q: np.ndarray) -> Mat3:
    """Rotation matrix of a unit quaternion (x, y, z, w)."""
    x, y, z, w = np.asarray(q, dtype=float) / np.linalg.norm(q)
    return np.array([
        [1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
        [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
        [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)],
    ])


def matrix_to_quat(m: np.ndarray) -> np.ndarray:
    """Unit quaternion (x, y, z, w) with w >= 0 of a rotation matrix (Shepperd's method)."""
    m = np.asarray(m, dtype=float)
    tr = np.trace(m)
    if tr > 0:
        s = 2.0 * np.sqrt(tr + 1.0)
        q = [(m[2, 1] - m[1, 2]) / s, (m[0, 2] - m[2, 0]) / s, (m[1, 0] - m[0, 1]) / s, 0.25 * s]
    elif m[0, 0] > m[1, 1] and m[0, 0] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[0, 0] - m[1, 1] - m[2, 2])
        q = [0.25 * s, (m[0, 1] + m[1, 0]) / s, (m[0, 2] + m[2, 0]) / s, (m[2, 1] - m[1, 2]) / s]
    elif m[1, 1] > m[2, 2]:
        s = 2.0 * np.sqrt(1.0 + m[1, 1] - m[0, 0] - m[2, 2])
        q = [(m[0, 1] + m[1, 0]) / s, 0.25 * s, (m[1, 2] + m[2, 1]) / s, (m[0, 2] - m[2, 0]) / s]
    else:
        s = 2.0 * np.sqrt(1.0 + m[2, 2] - m[0, 0] - m[1, 1])
        q = [(m[0, 2] + m[2, 0]) / s, (m[1, 2] + m[2, 1]) / s, 0.25 * s, (m[1, 0] - m[0, 1]) / s]
    q = np.array(q)
    q /= np.linalg.norm(q)
    return -q if q[3] < 0 else q


def rot_x(a: float) -> Mat3:
    """Rotation by ``a`` radians about x."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[1, 0, 0], [0, c, -s], [0, s, c]])


def rot_y(a: float) -> Mat3:
    """Rotation by ``a`` radians about y."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, 0, s], [0, 1, 0], [-s, 0, c]])


def rot_z(a: float) -> Mat3:
    """Rotation by ``a`` radians about z."""
    c, s = np.cos(a), np.sin(a)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1]])


def wrap_angle(a: float | np.ndarray) -> float | np.ndarray:
    """Wrap an angle to (-pi, pi]."""
    return np.pi - np.mod(np.pi - np.asarray(a), 2 * np.pi) if np.ndim(a) else float(np.pi - (np.pi - a) % (2 * np.pi))


def wrap_half_pi(a: float) -> float:
    """Wrap an angle defined modulo pi (an axis direction) to (-pi/2, pi/2]."""
    return float(np.pi / 2 - (np.pi / 2 - a) % np.pi)


@dataclass(frozen=True)
class Pose:
    """A rigid transform: ``position`` (m) and rotation ``matrix`` of a frame in a parent frame."""

    position: Vec3
    matrix: Mat3

    @staticmethod
    def from_quat(position: np.ndarray, quat: np.ndarray) -> Pose:
        """Pose from a position (m) and a quaternion (x, y, z, w)."""
        return Pose(np.asarray(position, dtype=float).copy(), quat_to_matrix(quat))

    @staticmethod
    def from_matrix(t: np.ndarray) -> Pose:
        """Pose from a 4x4 homogeneous matrix."""
        t = np.asarray(t, dtype=float)
        return Pose(t[:3, 3].copy(), t[:3, :3].copy())

    @staticmethod
    def identity() -> Pose:
        """The identity transform."""
        return Pose(np.zeros(3), np.eye(3))

    @staticmethod
    def top_down(position: np.ndarray, yaw: float) -> Pose:
        """Gripper pose pointing straight down (z to -Z of the base), finger line at ``yaw``.

        The finger line (x) is ``(cos yaw, sin yaw, 0)`` in the base frame.
        """
        return Pose(np.asarray(position, dtype=float).copy(), rot_z(yaw) @ rot_x(np.pi))

    @property
    def quat(self) -> np.ndarray:
        """Orientation as a quaternion (x, y, z, w)."""
        return matrix_to_quat(self.matrix)

    @property
    def homogeneous(self) -> Mat4:
        """4x4 homogeneous matrix."""
        t = np.eye(4)
        t[:3, :3] = self.matrix
        t[:3, 3] = self.position
        return t

    @property
    def yaw(self) -> float:
        """Heading of the x axis projected on the base x-y plane (rad, in (-pi, pi])."""
        return float(np.arctan2(self.matrix[1, 0], self.matrix[0, 0]))

    def __matmul__(self, other: Pose) -> Pose:
        """Compose: ``(a @ b)`` maps b's child frame into a's parent frame."""
        return Pose(self.matrix @ other.position + self.position, self.matrix @ other.matrix)

    def inverse(self) -> Pose:
        """The inverse transform."""
        rt = self.matrix.T
        return Pose(-rt @ self.position, rt)

    def apply(self, points: np.ndarray) -> np.ndarray:
        """Map points (..., 3) from the child frame to the parent frame."""
        return np.asarray(points) @ self.matrix.T + self.position

    def distance(self, other: Pose) -> tuple[float, float]:
        """(translation distance in m, rotation angle in rad) between two poses."""
        d = float(np.linalg.norm(self.position - other.position))
        r = self.matrix.T @ other.matrix
        angle = float(np.arccos(np.clip((np.trace(r) - 1) / 2, -1.0, 1.0)))
        return d, angle

    def is_finite(self) -> bool:
        """Whether every entry is finite."""
        return bool(np.all(np.isfinite(self.position)) and np.all(np.isfinite(self.matrix)))


def relative_in_frame(current: Pose, delta: Pose) -> Pose:
    """Target pose of a relative move ``delta`` expressed in the moving frame ``current``."""
    return current @ delta


def delta_pose(dx: float, dy: float, dz: float, dyaw: float) -> Pose:
    """A relative pose: translation (m) and a rotation about the local z axis (rad)."""
    return Pose(np.array([dx, dy, dz], dtype=float), rot_z(dyaw))


def twist_to_pose(twist: np.ndarray, dt: float) -> Pose:
    """Integrate a constant body twist (vx, vy, vz, wx, wy, wz) over ``dt`` seconds.

    Uses the exponential map for the rotation and a first-order translation; exact for the
    pure-translation and pure-z-rotation twists that visual servoing sends.
    """
    twist = np.asarray(twist, dtype=float)
    v, w = twist[:3] * dt, twist[3:] * dt
    angle = float(np.linalg.norm(w))
    if angle < 1e-12:
        return Pose(v, np.eye(3))
    k = w / angle
    kx = np.array([[0, -k[2], k[1]], [k[2], 0, -k[0]], [-k[1], k[0], 0]])
    r = np.eye(3) + np.sin(angle) * kx + (1 - np.cos(angle)) * kx @ kx
    return Pose(v, r)
