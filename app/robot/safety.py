"""The safety envelope: one filter through which every arm command passes.

:class:`SafeArm` wraps any ``Arm`` (simulated or real). Pose targets (absolute or relative)
outside the workspace box, with the fingertips below the minimum height, tilted away from
top-down or farther than the maximum step are *refused*: the arm is stopped and the refusal logged with the command and
the limit. Velocity commands are *clamped* to the speed limits (the direction is kept) and a
velocity that would leave the workspace within one period is refused. Non-finite values are
refused. Limits come from ``config/safety.yaml``; the fingertips' geometry from
``config/hardware.yaml`` (``gripper.fingertip_reach`` and the finger size).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app import CONFIG_DIR
from app.config import Section, load_yaml
from app.errors import ConfigError
from app.hardware_config import HardwareConfig, load_hardware
from app.robot.interfaces import Arm, FrameName, MotionStatus
from app.transforms import Pose, twist_to_pose

JOINT_PATH_SAMPLES = 21  # poses checked along a joint-space move (every 5 % of the path)


@dataclass(frozen=True)
class SafetyLimits:
    """Limits of the envelope (base frame; m, m/s, rad, rad/s)."""

    workspace_min: np.ndarray
    workspace_max: np.ndarray
    min_gripper_height: float
    max_linear_speed: float
    max_angular_speed: float
    max_step: float
    max_step_angle: float
    top_down_tolerance: float
    #: Lowest corners of the open fingertips in the gripper frame (4, 3), m
    #: (:meth:`app.hardware_config.HardwareConfig.fingertip_corners`); None: the grasp point alone.
    fingertips: np.ndarray | None = None

    def lowest_point(self, pose: Pose) -> float:
        """Height (m, base frame) of the lowest point of the fingers with the gripper at ``pose``."""
        if self.fingertips is None:
            return float(pose.position[2])
        return float(np.min(pose.matrix[2] @ self.fingertips.T) + pose.position[2])

    def pose_violation(self, pose: Pose) -> str:
        """Why ``pose`` (gripper, base frame) is outside the envelope, or "" if it is inside."""
        if not pose.is_finite():
            return "pose is not finite"
        p = pose.position
        if np.any(p < self.workspace_min) or np.any(p > self.workspace_max):
            return (f"position ({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) m outside the workspace box "
                    f"{np.round(self.workspace_min, 3).tolist()}..{np.round(self.workspace_max, 3).tolist()}")
        low = self.lowest_point(pose)
        if low < self.min_gripper_height:
            return f"fingertips at {low:.3f} m, below the minimum height {self.min_gripper_height:.3f} m"
        tilt = float(np.arccos(np.clip(-pose.matrix[2, 2], -1.0, 1.0)))
        if tilt > self.top_down_tolerance:
            return f"approach axis tilted {np.degrees(tilt):.0f} deg > {np.degrees(self.top_down_tolerance):.0f} deg from top-down"
        return ""


def load_safety(path: str | Path | None = None, hardware: HardwareConfig | None = None) -> SafetyLimits:
    """Load and validate ``config/safety.yaml``, with the fingertips of ``hardware`` (default:
    ``config/hardware.yaml``)."""
    path = Path(path) if path else CONFIG_DIR / "safety.yaml"
    hw = hardware or load_hardware()
    s = Section(load_yaml(path), path)
    s.unknown_keys({"workspace", "min_gripper_height", "max_linear_speed", "max_angular_speed", "max_step",
                    "max_step_angle", "top_down_tolerance"})
    ws = s.section("workspace")
    lo, hi = np.array(ws.vector("min", 3, lo=-2, hi=2)), np.array(ws.vector("max", 3, lo=-2, hi=2))
    if np.any(lo >= hi):
        raise ConfigError(f"{path}: key 'workspace': expected min < max on every axis, found {lo.tolist()} / {hi.tolist()}")
    return SafetyLimits(lo, hi, s.number("min_gripper_height", lo=-0.1, hi=1.0),
                        s.number("max_linear_speed", lo=1e-3, hi=2.0), s.number("max_angular_speed", lo=1e-3, hi=6.0),
                        s.number("max_step", lo=1e-3, hi=2.0),
                        float(np.radians(s.number("max_step_angle", lo=0.1, hi=360.0))),
                        float(np.radians(s.number("top_down_tolerance", lo=0.1, hi=180.0))),
                        hw.fingertip_corners())


@dataclass
class SafetyEvent:
    """One refusal or clamp."""

    kind: str  # "refused" or "clamped"
    command: str
    detail: str
    value: Any = None


@dataclass
class SafeArm:
    """An ``Arm`` whose every command passes the envelope.

    Args:
        arm: The wrapped arm.
        limits: The envelope.
        period: Control period (s): a velocity command lasts one period.
        log: Optional callable ``log(event: str, **fields)`` (structlog-style) for refusals/clamps.
    """

    arm: Arm
    limits: SafetyLimits
    period: float
    log: Any = None
    events: list[SafetyEvent] = field(default_factory=list)
    _refused: str = ""

    # -------------------------------------------------------------- pass-through state
    @property
    def camera_mount(self) -> Pose:
        """Camera frame in the gripper frame."""
        return self.arm.camera_mount

    def pose(self) -> Pose:
        """Current gripper pose."""
        return self.arm.pose()

    def camera_pose(self) -> Pose:
        """Current camera pose."""
        return self.arm.camera_pose()

    def motion_status(self) -> MotionStatus:
        """FAILED after a refusal, else the wrapped arm's status."""
        return MotionStatus.FAILED if self._refused else self.arm.motion_status()

    def motion_error(self) -> str:
        """The refusal, or the wrapped arm's error."""
        return self._refused or self.arm.motion_error()

    def stop(self) -> None:
        """Stop (always allowed)."""
        self.arm.stop()

    def recover(self) -> None:
        """Clear a refusal and the wrapped arm's error."""
        self._refused = ""
        self.arm.recover()

    # -------------------------------------------------------------- filtered commands
    def _event(self, kind: str, command: str, detail: str, value: Any = None) -> None:
        self.events.append(SafetyEvent(kind, command, detail, value))
        if self.log is not None:
            self.log(f"safety_{kind}", command=command, detail=detail, value=value)

    def _refuse(self, command: str, detail: str, value: Any = None) -> None:
        self._event("refused", command, detail, value)
        self.arm.stop()
        self._refused = f"safety: {command} refused: {detail}"

    def check_target(self, target: Pose) -> str:
        """Why a pose target is refused ("" if allowed)."""
        why = self.limits.pose_violation(target)
        if why:
            return why
        d, r = self.arm.pose().distance(target)
        if d > self.limits.max_step:
            return f"step {d:.3f} m > max_step {self.limits.max_step:.3f} m"
        if r > self.limits.max_step_angle:
            return f"rotation {np.degrees(r):.0f} deg > max_step_angle {np.degrees(self.limits.max_step_angle):.0f} deg"
        return ""

    def move_to(self, target: Pose) -> None:
        """Forward a pose target inside the envelope; refuse (and stop) otherwise."""
        why = self.check_target(target)
        if why:
            self._refuse("move_to", why, target.position.tolist() if np.all(np.isfinite(target.position)) else "non-finite")
            return
        self._refused = ""
        self.arm.move_to(target)

    def move_to_joints(self, q: np.ndarray | tuple[float, ...]) -> None:
        """Forward a joint-space move whose whole path stays in the envelope; refuse otherwise.

        The wrapped arm must offer ``move_to_joints`` and ``forward_kinematics`` (the simulated
        and the real arm do): the gripper pose is checked at :data:`JOINT_PATH_SAMPLES` points of
        the straight joint-space path (workspace box and fingertip height) and at the goal (also
        top-down), since a joint move does not keep the gripper on a straight line.
        """
        mover = getattr(self.arm, "move_to_joints", None)
        fk = getattr(self.arm, "forward_kinematics", None)
        if mover is None or fk is None:
            self._refuse("move_to_joints", f"{type(self.arm).__name__} offers no checked joint-space moves")
            return
        goal = np.asarray(q, dtype=float).reshape(-1)
        if goal.shape != (7,) or not np.all(np.isfinite(goal)):
            self._refuse("move_to_joints", "joint target is not 7 finite angles")
            return
        why = self.joint_path_violation(fk, goal)
        if why:
            self._refuse("move_to_joints", why, np.round(goal, 3).tolist())
            return
        self._refused = ""
        mover(goal)

    def joint_path_violation(self, fk: Any, goal: np.ndarray) -> str:
        """Why the straight joint-space path from the arm's joints to ``goal`` leaves the envelope
        ("" if it does not); ``fk`` maps joint angles to the gripper pose."""
        joints = getattr(self.arm, "joint_positions", None)
        start = None if joints is None else np.asarray(joints(), dtype=float)
        why = self.limits.pose_violation(fk(goal))
        if why or start is None:
            return why
        for s in np.linspace(0.0, 1.0, JOINT_PATH_SAMPLES)[1:-1]:
            pose = fk(start + (goal - start) * s)
            p = pose.position
            if np.any(p < self.limits.workspace_min) or np.any(p > self.limits.workspace_max):
                return f"the joint path leaves the workspace box at ({p[0]:.3f}, {p[1]:.3f}, {p[2]:.3f}) m"
            low = self.limits.lowest_point(pose)
            if low < self.limits.min_gripper_height:
                return f"the joint path takes the fingertips to {low:.3f} m, below {self.limits.min_gripper_height:.3f} m"
        return ""

    def move_relative(self, delta: Pose, frame: FrameName = "gripper") -> None:
        """Resolve the relative move to an absolute target and filter it like :meth:`move_to`."""
        if not delta.is_finite():
            self._refuse("move_relative", "delta is not finite")
            return
        current = self.arm.pose()
        if frame == "gripper":
            target = current @ delta
        elif frame == "camera":
            m = self.arm.camera_mount
            target = current @ m @ delta @ m.inverse()
        else:
            target = Pose(current.position + delta.position, delta.matrix @ current.matrix)
        self.move_to(target)

    def filter_twist(self, twist: np.ndarray, frame: FrameName = "camera") -> tuple[np.ndarray | None, str]:
        """The twist that may be sent (clamped), or None with the reason it is refused."""
        t = np.asarray(twist, dtype=float).reshape(-1)
        if t.shape != (6,) or not np.all(np.isfinite(t)):
            return None, "twist is not 6 finite numbers"
        v, w = t[:3].copy(), t[3:].copy()
        nv, nw = float(np.linalg.norm(v)), float(np.linalg.norm(w))
        if nv > self.limits.max_linear_speed:
            v *= self.limits.max_linear_speed / nv
        if nw > self.limits.max_angular_speed:
            w *= self.limits.max_angular_speed / nw
        out = np.concatenate([v, w])
        # Where the gripper would be after one period: refuse rather than leave the envelope.
        # An arm that integrates a reference (the Panda's impedance controller) commands
        # reference + step, and its reference may lead the measured pose: check that.
        reference = getattr(self.arm, "reference", None)
        current = reference() if callable(reference) else None
        current = current if current is not None else self.arm.pose()
        base = current @ self.arm.camera_mount if frame == "camera" else current
        after = base @ twist_to_pose(out, self.period)
        if frame == "camera":
            after = after @ self.arm.camera_mount.inverse()
        why = self.limits.pose_violation(after)
        if why:
            return None, f"one period at this velocity would leave the envelope: {why}"
        return out, ""

    def command_velocity(self, twist: np.ndarray, frame: FrameName = "camera") -> None:
        """Forward a clamped twist, or refuse (and stop)."""
        out, why = self.filter_twist(twist, frame)
        if out is None:
            self._refuse("command_velocity", why)
            return
        if not np.allclose(out, np.asarray(twist, dtype=float)):
            self._event("clamped", "command_velocity",
                        f"speed limited to {self.limits.max_linear_speed} m/s, {self.limits.max_angular_speed:.2f} rad/s",
                        np.asarray(twist, dtype=float).tolist())
        self._refused = ""
        self.arm.command_velocity(out, frame)
