"""Simulated ``Camera``, ``Arm``, ``Gripper`` and ``Clock`` over one :class:`PyBulletWorld`.

They give exactly what the real hardware gives: frames (RGB, depth with the domain's sensor
model, intrinsics, timestamp), the gripper pose, motions and the gripper width. The object's
pose, the true mask and the exact depth are only reachable through :mod:`app.sim.truth`.

Time: physics advances in fixed steps of 1/240 s; one control tick (``Clock.advance``) is one
camera frame period (``config/hardware.yaml`` ``camera.fps``).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable

import numpy as np

from app.errors import MotionError
from app.hardware_config import JOINT_SPEED_FACTOR, JOINT_TOLERANCE, HardwareConfig
from app.robot.interfaces import Frame, FrameName, HandSample, Intrinsics, MotionStatus
from app.sim.domain import Domain
from app.sim.pybullet_world import TIME_STEP, PyBulletWorld, RawRender
from app.transforms import Pose, twist_to_pose

MOVE_SLACK_S = 2.0  # s a pose move may take beyond its nominal duration before it fails
# Joint-space moves as the real backend makes them (panda_py's move_to_joint_position at
# app.hardware_config.JOINT_SPEED_FACTOR of the Panda's joint velocity limits).
PANDA_JOINT_SPEED_LIMITS = np.array([2.175, 2.175, 2.175, 2.175, 2.61, 2.61, 2.61])  # rad/s, Franka datasheet


def _interpolate(a: Pose, b: Pose, lin_step: float, ang_step: float) -> Pose:
    """Move pose ``a`` towards ``b`` by at most ``lin_step`` metres and ``ang_step`` radians."""
    d = b.position - a.position
    dist = float(np.linalg.norm(d))
    pos = b.position.copy() if dist <= lin_step else a.position + d * (lin_step / dist)
    r = a.matrix.T @ b.matrix
    angle = float(np.arccos(np.clip((np.trace(r) - 1) / 2, -1, 1)))
    if angle <= ang_step or angle < 1e-9:
        return Pose(pos, b.matrix.copy())
    axis = np.array([r[2, 1] - r[1, 2], r[0, 2] - r[2, 0], r[1, 0] - r[0, 1]]) / (2 * np.sin(angle))
    step = twist_to_pose(np.concatenate([np.zeros(3), axis * ang_step]), 1.0)
    return Pose(pos, a.matrix @ step.matrix)


class SimCamera:
    """Wrist camera: renders the world in the session's domain with its sensor model."""

    def __init__(self, world: PyBulletWorld, arm: SimArm, hw: HardwareConfig, domain: Domain,
                 rng: np.random.Generator) -> None:
        self.world, self.arm, self.hw, self.rng = world, arm, hw, rng
        self._k = hw.intrinsics
        self.domain = domain
        self._seq = 0
        self._cache: tuple[float, Frame, RawRender] | None = None
        # Physical gap (app/sim/gap.py; private: trees get only frames and the intrinsics above)
        self._true_mount: Pose | None = None  # None: the configured mount is the true one
        self._true_k: Intrinsics | None = None  # None: the configured intrinsics are the true ones
        self._latency, self._jitter = 0, 0  # frame periods from capture to delivery
        self._lat_rng = np.random.default_rng(0)
        self._captures: deque[tuple[float, Frame, RawRender]] = deque()
        self._delivered = -1.0  # capture time of the last frame delivered (frames never go back)
        self.apply_domain(domain)

    @property
    def intrinsics(self) -> Intrinsics:
        """Intrinsics of the square model-resolution frames."""
        return self._k

    def apply_domain(self, domain: Domain) -> None:
        """Set lighting, table, object and gripper looks for ``domain``."""
        self.domain = domain
        w = self.world
        tex = domain.table_texture()
        tid = w.texture(f"table_{domain.sha256[:12]}", tex) if tex is not None else None
        w.set_table_look((*domain.table.color, 1.0) if tex is None else (1, 1, 1, 1), tid)
        w.set_gripper_look((*domain.gripper_color, 1.0))
        if w.object_id is not None and w.object_color is not None:
            w.set_object_look(domain.object_rgba(w.object_color), None)
        for body, rgb in w.extra_objects.items():  # the further objects of a multi-object scene
            w.set_body_look(body, domain.object_rgba(rgb))
        self._cache = None

    def set_physical(self, true_mount: Pose | None, true_k: Intrinsics | None, latency: int = 0,
                     jitter: int = 0, seed: int = 0) -> None:
        """The camera as built (:func:`app.sim.gap.apply_gap`): its true mount in the gripper frame
        and true model-resolution intrinsics (None: as configured), and the delay of frames in
        periods (``latency`` +- uniform ``jitter`` per frame, drawn from ``seed``)."""
        self._true_mount, self._true_k = true_mount, true_k
        self._latency, self._jitter = latency, jitter
        self._lat_rng = np.random.default_rng(seed)
        self.restart_stream()

    def restart_stream(self) -> None:
        """Forget buffered captures (episode start): the stream starts at the next ``get_frame``."""
        self._captures.clear()
        self._delivered = -1.0
        self._cache = None

    def _render_pose(self) -> Pose:
        """Optical frame in the base frame as built (the true mount when there is a gap)."""
        if self._true_mount is None:
            return self.arm.camera_pose()
        return self.arm.pose() @ self._true_mount

    def render_raw(self, domain: Domain | None = None) -> RawRender:
        """Render the current state in ``domain`` (default: the camera's own), before sensor effects."""
        k = self._true_k or self._k
        if domain is not None and domain is not self.domain:
            own = self.domain
            self.apply_domain(domain)
            try:
                return self.world.render(self._render_pose(), k, domain.render)
            finally:
                self.apply_domain(own)
        return self.world.render(self._render_pose(), k, self.domain.render)

    def sense(self, raw: RawRender, domain: Domain, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """Apply ``domain``'s image and depth models to a raw render: (rgb uint8, depth float32 m)."""
        rgb = domain.apply_rgb(raw.rgb, rng)
        depth = domain.apply_depth(raw.depth, raw.rgb, rng, valid_range=self.hw.depth_range,
                                   unit=self.hw.depth_unit)  # the camera profile's sensor
        return rgb, depth

    def _capture(self) -> tuple[float, Frame, RawRender]:
        """Render and sense the current state: one frame stamped with its capture time."""
        t = self.world.sim_time
        raw = self.render_raw()
        rgb, depth = self.sense(raw, self.domain, self.rng)
        self._seq += 1
        return t, Frame(rgb=rgb, depth=depth, intrinsics=self._k, timestamp=t, seq=self._seq), raw

    def on_tick(self) -> None:
        """Called by the clock after each control period: a streaming delayed camera captures."""
        if self._captures:  # streaming (started by the first get_frame of the episode)
            self._captures.append(self._capture())
            while len(self._captures) > self._latency + self._jitter + 2:  # + now + one spare
                self._captures.popleft()

    def get_frame(self) -> Frame:
        """The frame delivered at the current simulated time (rendered once per time).

        Without latency: the state now. With latency: the capture of ``latency`` +- ``jitter``
        periods ago (or the oldest since the stream started), stamped with its capture time.
        """
        t = self.world.sim_time
        if self._cache is not None and self._cache[0] == t:
            return self._cache[1]
        if self._latency == 0 and self._jitter == 0:
            tt, frame, raw = self._capture()
            self._cache = (t, frame, raw)
            return frame
        if not self._captures or self._captures[-1][0] < t:
            self._captures.append(self._capture())
        delay = self._latency + int(self._lat_rng.integers(-self._jitter, self._jitter + 1))
        wanted = t - delay * self.hw.period + 1e-9
        older = [c for c in self._captures if c[0] <= wanted]
        chosen = older[-1] if older else self._captures[0]
        if chosen[0] < self._delivered:  # never deliver an older frame than the last one
            chosen = next((c for c in self._captures if c[0] >= self._delivered), self._captures[-1])
        self._delivered = chosen[0]
        self._cache = (t, chosen[1], chosen[2])
        return chosen[1]

    def invalidate(self) -> None:
        """Forget the cached frame (after a teleport, when the view changed without time passing)."""
        self.restart_stream()

    def last_raw(self) -> RawRender | None:
        """The raw render behind the last frame (ground truth: for :mod:`app.sim.truth` only).

        Not part of the ``Camera`` protocol, so a tree's leaves cannot reach it: they get the
        camera through :func:`app.robot.boundary.leaf_robot`, where any such call raises.
        """
        return self._cache[2] if self._cache else None

    def close(self) -> None:
        """Nothing to release."""


class SimArm:
    """Panda arm: Cartesian pose moves and camera-frame velocity commands through IK and joint
    position control, advanced one physics step at a time by :class:`SimClock`."""

    def __init__(self, world: PyBulletWorld, hw: HardwareConfig) -> None:
        self.world, self.hw = world, hw
        self._mount = hw.mount
        self._status = MotionStatus.IDLE
        self._error = ""
        self._ref: Pose | None = None  # reference the joints track
        self._goal: Pose | None = None
        self._deadline = 0.0
        self._twist: np.ndarray | None = None  # gripper-frame twist for the current period
        self._twist_until = 0.0
        self._joint_move: tuple[np.ndarray, np.ndarray, float, float] | None = None  # (start, goal, t0, s)
        self.commands = 0  # number of motion commands accepted (for tests and logs)
        self._plan: list[np.ndarray] = []  # joint targets of the coming physics steps (ik_per_tick)
        self._q_target: np.ndarray | None = None  # last joint target this arm set (None: unknown)
        self.unreachable = 0  # targets IK could not reach (scoring's physical audit)
        # Physical gap (app/sim/gap.py; private): velocity delay and lag, pose-move offset.
        self._delay_ticks, self._tau = 0, 0.0
        self._settle_error = np.zeros(3)  # m, base frame
        self._pending: deque[tuple[float, np.ndarray]] = deque()  # (time it takes effect, gripper twist)
        self._velocity = np.zeros(6)  # twist the lagged controller tracks now (gripper frame)

    def set_physical(self, delay_ticks: int = 0, time_constant: float = 0.0,
                     settle_error: np.ndarray | None = None) -> None:
        """The arm as built (:func:`app.sim.gap.apply_gap`): velocity commands take effect
        ``delay_ticks`` periods late through a first-order lag of ``time_constant`` seconds, and
        pose moves settle ``settle_error`` (m, base frame) off their target."""
        self._delay_ticks, self._tau = delay_ticks, time_constant
        self._settle_error = np.zeros(3) if settle_error is None else np.asarray(settle_error, dtype=float)
        self._pending.clear()
        self._velocity = np.zeros(6)

    @property
    def _lagged(self) -> bool:
        return self._delay_ticks > 0 or self._tau > 0

    @property
    def camera_mount(self) -> Pose:
        """Camera optical frame in the gripper frame."""
        return self._mount

    def pose(self) -> Pose:
        """Current gripper pose (base frame), from the joint state by forward kinematics."""
        return self.world.gripper_pose()

    def camera_pose(self) -> Pose:
        """Current camera optical frame (base frame)."""
        return self.pose() @ self._mount

    def teleport(self, target: Pose) -> None:
        """Put the arm at ``target`` at once (episode set-up and training only, not a motion)."""
        q = self.world.solve_ik(target)
        self.world.reset_arm(q)
        self._forget_plan()
        self._ref, self._goal, self._twist, self._joint_move = target, None, None, None
        self._status = MotionStatus.IDLE

    def move_to(self, target: Pose) -> None:
        """Start a straight-line move of the gripper to ``target`` (base frame)."""
        self.commands += 1
        self._twist, self._joint_move = None, None
        self._plan = []
        self._pending.clear()
        self._velocity = np.zeros(6)
        if np.any(self._settle_error) and target.is_finite():  # the controller settles off target
            target = Pose(target.position + self._settle_error, target.matrix)
        try:
            self.world.solve_ik(target)  # refuse unreachable targets before moving at all
        except MotionError as e:
            self.unreachable += 1
            self._status, self._error, self._goal = MotionStatus.FAILED, str(e), None
            return
        start = self.pose()
        d, r = start.distance(target)
        nominal = max(d / self.hw.max_linear_speed, r / self.hw.max_angular_speed)
        self._ref, self._goal = start, target
        self._deadline = self.world.sim_time + nominal + MOVE_SLACK_S
        self._status, self._error = MotionStatus.MOVING, ""

    def move_to_joints(self, q: np.ndarray | tuple[float, ...]) -> None:
        """Start a joint-space move to ``q`` (7,) rad, every joint interpolated linearly and
        arriving together, the slowest at :data:`JOINT_SPEED_FACTOR` of its velocity limit (the
        gripper does not move in a straight line: a way back that no Cartesian path within the
        joint limits offers, e.g. unwinding the wrist)."""
        goal = np.asarray(q, dtype=float).reshape(7)
        self.commands += 1
        self._twist, self._goal = None, None
        self._pending.clear()
        self._velocity = np.zeros(6)
        self._forget_plan()
        w = self.world
        if not np.all(np.isfinite(goal)):
            self._status, self._error, self._joint_move = MotionStatus.FAILED, "joint target is not finite", None
            return
        outside = np.flatnonzero((goal < w.lower) | (goal > w.upper))
        if outside.size:
            j = int(outside[0])
            self.unreachable += 1
            self._status, self._joint_move = MotionStatus.FAILED, None
            self._error = (f"joint target outside the limits: joint {j + 1} at {goal[j]:.3f} rad, "
                           f"limits [{w.lower[j]:.3f}, {w.upper[j]:.3f}]")
            return
        start = w.joint_positions()
        duration = float(np.max(np.abs(goal - start) / (JOINT_SPEED_FACTOR * PANDA_JOINT_SPEED_LIMITS)))
        self._joint_move = (start, goal, w.sim_time, duration)
        self._ref = None  # the next Cartesian command starts from where the joints end
        self._deadline = w.sim_time + duration + MOVE_SLACK_S
        self._status, self._error = MotionStatus.MOVING, ""

    def joint_positions(self) -> np.ndarray:
        """Arm joint angles (7,), rad."""
        return self.world.joint_positions()

    def forward_kinematics(self, q: np.ndarray | tuple[float, ...]) -> Pose:
        """Gripper pose (base frame) at joint angles ``q`` (rad); the arm does not move."""
        return self.world.forward_kinematics(np.asarray(q, dtype=float).reshape(7))

    def _step_joint_move(self) -> None:
        """One physics step of a joint-space move."""
        w = self.world
        start, goal, t0, duration = self._joint_move  # type: ignore[misc]
        s = 1.0 if duration <= 0 else min(1.0, (w.sim_time - t0) / duration)
        w.set_joint_targets(start + (goal - start) * s)
        if s < 1.0:
            return
        err = np.abs(w.joint_positions() - goal)
        if float(np.max(err)) < JOINT_TOLERANCE:
            self._joint_move, self._status = None, MotionStatus.DONE
        elif w.sim_time > self._deadline:
            j = int(np.argmax(err))
            self.stop()
            self._status = MotionStatus.FAILED
            self._error = f"joint move timed out: joint {j + 1} {err[j]:.3f} rad short (blocked by contact?)"

    def move_relative(self, delta: Pose, frame: FrameName = "gripper") -> None:
        """Start a move by ``delta`` expressed in the current gripper, camera or base frame."""
        current = self.pose()
        if frame == "gripper":
            target = current @ delta
        elif frame == "camera":
            target = current @ self._mount @ delta @ self._mount.inverse()
        elif frame == "base":
            target = Pose(current.position + delta.position, delta.matrix @ current.matrix)
        else:
            raise ValueError(f"frame must be 'base', 'gripper' or 'camera', got {frame!r}")
        self.move_to(target)

    def motion_status(self) -> MotionStatus:
        """Progress of the last pose move."""
        return self._status

    def motion_error(self) -> str:
        """Why the last move failed."""
        return self._error

    def command_velocity(self, twist: np.ndarray, frame: FrameName = "camera") -> None:
        """Track a twist (m/s, rad/s) in the camera or gripper frame for one control period."""
        twist = np.asarray(twist, dtype=float).reshape(6)
        if not np.all(np.isfinite(twist)):
            self.stop()
            self._status, self._error = MotionStatus.FAILED, "velocity command is not finite"
            return
        self.commands += 1
        self._joint_move = None
        if frame == "camera":  # rotate the twist into the gripper frame (rigid mount)
            r, t = self._mount.matrix, self._mount.position
            w = r @ twist[3:]
            v = r @ twist[:3] - np.cross(w, t)  # gripper origin = camera origin - t: v + w x (-t)
            twist = np.concatenate([v, w])
        elif frame != "gripper":
            raise ValueError(f"velocity frame must be 'camera' or 'gripper', got {frame!r}")
        if self._lagged:  # queued: takes effect delay_ticks periods from now, for one period
            if self._ref is None or self._goal is not None:
                self._ref = self.pose()
            self._goal = None
            self._pending.append((self.world.sim_time + self._delay_ticks * self.hw.period, twist))
            self._status = MotionStatus.MOVING
            return
        if self._ref is None or self._status == MotionStatus.MOVING:
            self._ref = self.pose()
        self._goal = None
        self._plan = []
        self._twist = twist
        self._twist_until = self.world.sim_time + self.hw.period - 1e-9
        self._status = MotionStatus.MOVING

    def stop(self) -> None:
        """Hold the current pose."""
        self._goal, self._twist, self._joint_move = None, None, None
        self._pending.clear()
        self._velocity = np.zeros(6)
        self._ref = self.pose()
        self._forget_plan()
        self.world.set_joint_targets(self.world.joint_positions())
        if self._status == MotionStatus.MOVING:
            self._status = MotionStatus.DONE

    def recover(self) -> None:
        """Clear a failed motion."""
        self.stop()
        self._status, self._error = MotionStatus.IDLE, ""

    def _lagged_twist(self) -> np.ndarray | None:
        """One physics step of the delayed, first-order-lagged velocity tracking; the twist to
        integrate (None when the arm is at rest with nothing queued)."""
        now = self.world.sim_time
        while len(self._pending) > 1 and self._pending[1][0] <= now + 1e-9:
            self._pending.popleft()  # a newer command has taken effect
        target = np.zeros(6)
        if self._pending and self._pending[0][0] <= now + 1e-9:
            start, twist = self._pending[0]
            if now < start + self.hw.period - 1e-9:
                target = twist
            else:
                self._pending.popleft()
        a = 1.0 if self._tau <= 0 else 1.0 - np.exp(-TIME_STEP / self._tau)  # exact discrete first order
        self._velocity = self._velocity + a * (target - self._velocity)
        if not self._pending and self._status == MotionStatus.MOVING:
            self._status = MotionStatus.DONE  # the commanded period is over (the arm may still coast)
        if not self._pending and np.max(np.abs(self._velocity)) < 1e-5:  # at rest: hold the pose
            self._velocity = np.zeros(6)
            return None
        return self._velocity

    def on_physics_step(self) -> None:
        """Advance the reference by one physics step and track it (called by the clock)."""
        w = self.world
        if self._joint_move is not None:
            self._step_joint_move()
            return
        if self._lagged and self._goal is None and self._ref is not None and (self._pending or np.any(self._velocity)):
            twist = self._lagged_twist()
            if twist is None:
                return
            self._ref = self._ref @ twist_to_pose(twist, TIME_STEP)
            try:  # an IK solve every step: the lagged twist changes every step (no per-tick plan)
                q = w.solve_ik(self._ref)
            except MotionError as e:
                self.unreachable += 1
                self.stop()
                self._status, self._error = MotionStatus.FAILED, str(e)
                return
            w.set_joint_targets(q)
            self._plan, self._q_target = [], q
            return
        if self._status != MotionStatus.MOVING or self._ref is None:
            return
        if self._twist is not None:
            if w.sim_time >= self._twist_until:
                self._twist = None
                self._status = MotionStatus.DONE
                return
        self._ref = self._next_ref(self._ref)
        try:
            q = self._joint_target()
        except MotionError as e:
            self.unreachable += 1
            self.stop()
            self._status, self._error = MotionStatus.FAILED, str(e)
            return
        w.set_joint_targets(q)
        self._q_target = q
        if self._goal is not None:
            d, r = self.pose().distance(self._goal)
            if d < self.hw.position_tolerance and r < self.hw.angle_tolerance:
                self._goal = None
                self._status = MotionStatus.DONE
            elif w.sim_time > self._deadline:
                x, y, z = self._goal.position
                self.stop()
                self._status = MotionStatus.FAILED
                self._error = (f"move to ({x:.3f}, {y:.3f}, {z:.3f}) m timed out {d * 100:.1f} cm / "
                               f"{np.degrees(r):.1f} deg short (blocked by contact?)")

    def _forget_plan(self) -> None:
        """Drop planned joint targets (the arm was reset or stopped: start from its joints)."""
        self._plan, self._q_target = [], None

    def _next_ref(self, ref: Pose) -> Pose:
        """The reference one physics step later (twist or straight-line move)."""
        if self._twist is not None:
            return ref @ twist_to_pose(self._twist, TIME_STEP)
        if self._goal is not None:
            return _interpolate(ref, self._goal, self.hw.max_linear_speed * TIME_STEP,
                                self.hw.max_angular_speed * TIME_STEP)
        return ref

    def _joint_target(self) -> np.ndarray:
        """Joint targets for the reference of this physics step.

        Exact (lever ``ik_per_tick`` off, :mod:`app.sim.speed`): an IK solve every step. Per tick:
        one solve for the reference at the end of the control period (or of the twist, whichever
        comes first), joint targets interpolated linearly from the last target over the steps
        until then.

        Raises:
            MotionError: The reference is unreachable.
        """
        from app.sim.speed import current

        if not current().ik_per_tick:
            return self.world.solve_ik(self._ref)
        if self._plan:
            return self._plan.pop(0)
        stride = max(1, round(self.hw.period / TIME_STEP))  # physics steps per control period
        if self._twist is not None:  # steps left in this command's period (this one included)
            stride = max(1, min(stride, int(np.ceil((self._twist_until - self.world.sim_time) / TIME_STEP - 1e-6))))
        end = self._ref
        for _ in range(stride - 1):
            end = self._next_ref(end)
        q_end = self.world.solve_ik(end)
        q0 = self._q_target if self._q_target is not None else self.world.joint_positions()
        self._plan = [q0 + (q_end - q0) * (k / stride) for k in range(1, stride + 1)]
        return self._plan.pop(0)


class SimGripper:
    """Panda hand: prismatic fingers under position control with a force limit."""

    SETTLE_SPEED = 0.002  # m/s: fingers slower than this have stopped
    SETTLE_STEPS = 12  # consecutive slow physics steps (50 ms) that end an open/grasp
    MIN_STEPS = 24  # physics steps (0.1 s) before the fingers may count as settled: they start at rest
    TIMEOUT_S = 2.0  # s, longest open/grasp

    def __init__(self, world: PyBulletWorld, hw: HardwareConfig) -> None:
        self.world, self.hw = world, hw
        self._busy = False
        self._slow = 0
        self._started = 0.0
        self._target = hw.max_width
        self._grasping = False

    @property
    def max_width(self) -> float:
        """Full opening (m)."""
        return self.hw.max_width

    def open(self) -> None:
        """Start opening fully."""
        self._start(self.hw.max_width, 40.0, grasping=False)  # 40 N: opening force is irrelevant

    def grasp(self, width: float, force: float) -> None:
        """Start closing towards ``width`` (m) with ``force`` (N) per finger."""
        self._start(max(0.0, width - self.hw.grasp_epsilon), force, grasping=True)

    def _start(self, width: float, force: float, grasping: bool) -> None:
        self.world.set_finger_target(width, force)
        self._busy, self._slow, self._started = True, 0, self.world.sim_time
        self._target, self._grasping = width, grasping

    def busy(self) -> bool:
        """Whether the fingers are still moving."""
        return self._busy

    def width(self) -> float:
        """Current opening (m)."""
        return self.world.finger_width()

    def is_grasped(self) -> bool:
        """Closed on something: the fingers stopped short of their target (as libfranka reports)."""
        return self._grasping and not self._busy and self.width() > self._target + 0.004  # 4 mm: not empty

    def sample(self) -> HandSample:
        """Width and grasped flag now (sim reads do not block)."""
        return HandSample(self.width(), self.is_grasped(), self.max_width)

    def last_result(self) -> bool | None:
        """Unknown: the simulated hand reports only its state."""
        return None

    def last_error(self) -> str:
        """Never an error: the simulated hand's commands cannot raise."""
        return ""

    def on_physics_step(self) -> None:
        """Detect when the fingers have settled (called by the clock)."""
        if not self._busy:
            return
        self._slow = self._slow + 1 if self.world.finger_speed() < self.SETTLE_SPEED else 0
        elapsed = self.world.sim_time - self._started
        if (self._slow >= self.SETTLE_STEPS and elapsed >= self.MIN_STEPS * TIME_STEP) or elapsed > self.TIMEOUT_S:
            self._busy = False


class SimClock:
    """Advances the world by one camera frame period in fixed physics steps."""

    def __init__(self, world: PyBulletWorld, arm: SimArm, gripper: SimGripper, period: float,
                 camera: SimCamera | None = None) -> None:
        self.world, self.arm, self.gripper, self.camera = world, arm, gripper, camera
        self.substeps = max(1, round(period / TIME_STEP))
        self.period = self.substeps * TIME_STEP
        self.ticks = 0
        self.observers: list[Callable[[], None]] = []  # called after every physics step (scoring's audit)

    def advance(self) -> None:
        """Step physics for one control period."""
        for _ in range(self.substeps):
            self.arm.on_physics_step()
            self.gripper.on_physics_step()
            self.world.step()
            for observe in self.observers:
                observe()
        self.ticks += 1
        if self.camera is not None:
            self.camera.on_tick()

    def now(self) -> float:
        """Simulated seconds since the world was created."""
        return self.world.sim_time
