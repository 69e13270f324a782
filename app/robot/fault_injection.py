"""Fault injection: wrappers at the Camera, Arm and Gripper interfaces and at the model loader.

The campaign that measures how a tree copes with each fault, ``python -m app faults``, is
:mod:`app.campaigns.faults`.

Kinds (``config/faults.yaml`` says when each fires and how):

* ``frame_drop``: the camera delivers no new frame for a tick. Chosen default (``mode: repeat``):
  ``get_frame`` returns the previous frame again, same ``seq`` and timestamp — what a loop that
  keeps the last frameset sees when the RealSense syncer drops one. ``mode: raise`` raises
  ``HardwareError("frame dropped ...")`` instead (a syncer that gives up).
* ``frame_timeout``: ``get_frame`` raises ``HardwareError("frame timeout ...")``.
* ``stale_frame``: the same old frame (old seq and timestamp) for ``duration`` ticks.
* ``depth_nan`` / ``depth_zero``: NaN patches / zeros (no reading) in the depth image.
* ``mask_empty``: an occluder hides the object: its pixels are inpainted with the table's look
  and take the table's depth, for ``duration`` ticks (at the camera, never in the models).
* ``object_hidden``: as ``mask_empty``, for longer than the tree's ``reacquire.wait_s``: the
  tree must give up cleanly ("Reacquire Object" fails, naming how long it waited).
* ``object_push``: during VS the object is displaced in the world (the environment, not an
  interface).
* ``arm_reflex``: mid-motion, the arm stops and reports ``MotionStatus.FAILED`` with
  ``"reflex: ..."``; commands are refused until ``recover()`` clears it (as libfranka).
* ``gripper_fail``: the grasp command aborts: fingers stay put, busy a moment, not grasped.
* ``latency_spike``: ``get_frame`` sleeps (wall time; simulated time does not move).
* ``checkpoint_missing`` / ``checkpoint_corrupt``: the model loader gets a weights directory
  without a file / with a damaged copy; the run must stop at start with exit code 2.

The arm wrapper sits *inside* the safety envelope (:class:`~app.robot.safety.SafeArm`): it is the
hardware's side. Safety is audited from physics, not by a second pass of the envelope's own
rule: every episode's :class:`~app.sim.audit.PhysicalAudit` counts table strikes and joint-limit
hits or unreachable targets (``table_strikes`` and ``self_collisions_or_limits``, which must stay
0) and how far the object was pushed before closing.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app import CONFIG_DIR
from app.config import Section, load_yaml
from app.errors import ConfigError, HardwareError
from app.robot.interfaces import (
    Arm,
    Camera,
    Clock,
    Frame,
    FrameName,
    Gripper,
    HandSample,
    Intrinsics,
    MotionStatus,
    Robot,
)
from app.transforms import Pose, rot_z

KINDS = ("frame_drop", "frame_timeout", "stale_frame", "depth_nan", "depth_zero", "mask_empty", "object_push",
         "arm_reflex", "gripper_fail", "latency_spike", "checkpoint_missing", "checkpoint_corrupt",
         "object_hidden")  # appended last: each kind's random stream is seeded by its index
CHECKPOINT_KINDS = frozenset({"checkpoint_missing", "checkpoint_corrupt"})
PHASES = ["any", "moving", "vs"]
GARBAGE_BYTES = 4096  # size of a random-bytes "checkpoint"

_Param = Callable[[Section], Any]
#: Per kind: its own keys and how each is read (with its default).
PARAMS: dict[str, dict[str, _Param]] = {
    "frame_drop": {"mode": lambda s: s.string("mode", "repeat", ["repeat", "raise"])},
    "frame_timeout": {"timeout_ms": lambda s: s.integer("timeout_ms", 5000, lo=1, hi=600_000)},
    "stale_frame": {},
    "depth_nan": {"patches": lambda s: s.integer("patches", 4, lo=0, hi=64),
                  "size_px": lambda s: s.integer("size_px", 12, lo=1, hi=4096),
                  "on_object": lambda s: s.boolean("on_object", True)},
    "depth_zero": {"region": lambda s: s.string("region", "frame", ["frame", "object", "centre"])},
    "mask_empty": {"dilate_px": lambda s: s.integer("dilate_px", 3, lo=0, hi=64)},
    "object_hidden": {"dilate_px": lambda s: s.integer("dilate_px", 3, lo=0, hi=64)},
    "object_push": {"distance_m": lambda s: s.number("distance_m", 0.03, lo=0.0, hi=0.3),
                    "yaw_deg": lambda s: s.number("yaw_deg", 20.0, lo=-180.0, hi=180.0)},
    "arm_reflex": {"reflex": lambda s: s.string("reflex", "communication_constraints_violation")},
    "gripper_fail": {"busy_ticks": lambda s: s.integer("busy_ticks", 10, lo=1, hi=10_000)},
    "latency_spike": {"sleep_s": lambda s: s.number("sleep_s", 0.1, lo=0.0, hi=10.0)},
    "checkpoint_missing": {"file": lambda s: s.string("file", "cyclegan.pt", ["cyclegan.pt", "policy.pt"])},
    "checkpoint_corrupt": {"file": lambda s: s.string("file", "cyclegan.pt", ["cyclegan.pt", "policy.pt"]),
                           "mode": lambda s: s.string("mode", "truncate", ["truncate", "garbage"])},
}


# ------------------------------------------------------------------------------ configuration
@dataclass(frozen=True)
class FaultSpec:
    """When one kind of fault fires and how.

    Attributes:
        kind: One of :data:`KINDS`.
        rate: Probability per tick (while ``phase`` holds) that an event starts; or None.
        at: Tick from which the single event fires (the first tick where ``phase`` holds); or None.
        phase: "any", "moving" (the arm executes a motion) or "vs" (a velocity command in this
            or the last tick).
        duration: Ticks an event lasts.
        params: The kind's own parameters (:data:`PARAMS`).
    """

    kind: str
    rate: float | None = None
    at: int | None = None
    phase: str = "any"
    duration: int = 1
    params: dict[str, Any] = field(default_factory=dict)

    def param(self, name: str) -> Any:
        """A parameter, with its default when the spec was built in code."""
        if name in self.params:
            return self.params[name]
        return PARAMS[self.kind][name](Section({}, "(defaults)", self.kind))


def load_faults(path: str | Path | None = None) -> dict[str, FaultSpec]:
    """Load and validate ``config/faults.yaml`` (every kind present, one ``rate`` or ``at`` each).

    Raises:
        ConfigError: One line naming the file, the key and what was expected.
    """
    path = Path(path) if path else CONFIG_DIR / "faults.yaml"
    root = Section(load_yaml(path), path)
    root.unknown_keys(set(KINDS))
    specs = {}
    for kind in KINDS:
        s = root.section(kind)
        timing = set() if kind in CHECKPOINT_KINDS else {"rate", "at", "phase", "duration"}
        s.unknown_keys(timing | set(PARAMS[kind]))
        params = {name: read(s) for name, read in PARAMS[kind].items()}
        if kind in CHECKPOINT_KINDS:
            specs[kind] = FaultSpec(kind, params=params)
            continue
        if s.has("rate") == s.has("at"):
            raise ConfigError(f"{path}: key '{kind}': expected exactly one of 'rate' and 'at'")
        specs[kind] = FaultSpec(kind, rate=s.number("rate", lo=0.0, hi=1.0) if s.has("rate") else None,
                                at=s.integer("at", lo=0) if s.has("at") else None,
                                phase=s.string("phase", "any", PHASES), duration=s.integer("duration", 1, lo=1),
                                params=params)
    return specs


# ------------------------------------------------------------------------------ the injector
@dataclass(frozen=True)
class Injection:
    """One fault that was injected: when, what, and a word on it."""

    tick: int
    kind: str
    detail: str


class FaultInjector:
    """What the wrappers of one episode share: the tick, when each fault is active, and a log.

    Decisions are taken once per tick and kind, the first time a wrapper asks, so the wrappers
    agree within a tick and a seeded episode replays.

    Args:
        specs: The faults to inject (often one).
        rng: Randomness of the rates, patches and push directions.
        world: The simulated world, for faults of the environment (``object_push``).
    """

    def __init__(self, specs: Iterable[FaultSpec], rng: np.random.Generator, world: Any = None) -> None:
        self.specs = {s.kind: s for s in specs}
        self.rng = rng
        self.world = world
        self.tick = 1  # the tree tick in progress (the wrapped clock counts)
        self.events: list[Injection] = []
        self.arm: FaultArm | None = None  # registered by FaultArm (phase "moving", reflexes)
        self.last_velocity_tick = -2  # tick of the last velocity command (phase "vs")
        self._decided: dict[str, int] = {}
        self._start: dict[str, int] = {}
        self._until: dict[str, int] = {}
        self._fired: Counter[str] = Counter()

    def phase_holds(self, phase: str) -> bool:
        """Whether the episode is in ``phase`` now."""
        if phase == "vs":
            return self.last_velocity_tick >= self.tick - 1
        if phase == "moving":
            return self.arm is not None and self.arm.arm.motion_status() == MotionStatus.MOVING
        return True

    def active(self, kind: str) -> bool:
        """Whether a ``kind`` event is in progress at this tick (starting one when due)."""
        spec = self.specs.get(kind)
        if spec is None:
            return False
        if self._decided.get(kind) != self.tick:
            self._decided[kind] = self.tick
            if self.tick >= self._until.get(kind, 0) and self._due(spec):
                self._start[kind], self._until[kind] = self.tick, self.tick + spec.duration
                self._fired[kind] += 1
        return self.tick < self._until.get(kind, 0)

    def began(self, kind: str) -> bool:
        """Whether a ``kind`` event starts at this tick (for one-shot actions)."""
        return self.active(kind) and self._start.get(kind) == self.tick

    def _due(self, spec: FaultSpec) -> bool:
        if spec.at is not None:
            return not self._fired[spec.kind] and self.tick >= spec.at and self.phase_holds(spec.phase)
        return self.phase_holds(spec.phase) and bool(self.rng.random() < (spec.rate or 0.0))

    def note(self, kind: str, detail: str) -> None:
        """Log an injection (once per tick and kind)."""
        if not any(e.tick == self.tick and e.kind == kind for e in self.events[-3:]):
            self.events.append(Injection(self.tick, kind, detail))

    def before_physics(self) -> None:
        """Faults of the world and of the arm's controller, between the tree's tick and physics."""
        if self.arm is not None and self.began("arm_reflex"):
            self.arm.reflex(str(self.specs["arm_reflex"].param("reflex")))
        if self.world is not None and self.began("object_push"):
            self._push(self.specs["object_push"])

    def _push(self, spec: FaultSpec) -> None:
        """Displace the object horizontally (random direction) and turn it about the vertical.

        A displacement rather than a force: its size does not depend on friction and shape.
        """
        pose = self.world.object_pose()
        angle = self.rng.uniform(-np.pi, np.pi)
        d = float(spec.param("distance_m"))
        yaw = np.radians(float(spec.param("yaw_deg")))
        shift = np.array([d * np.cos(angle), d * np.sin(angle), 0.001])  # 1 mm up: no table contact
        self.world.set_object_pose(Pose(pose.position + shift, rot_z(yaw) @ pose.matrix))
        self.note("object_push", f"{d * 100:.1f} cm towards {np.degrees(angle):.0f} deg, yaw {np.degrees(yaw):+.0f} deg")


# ------------------------------------------------------------------------------ wrappers
class FaultCamera:
    """A ``Camera`` that drops, repeats, times out, delays or corrupts frames.

    Args:
        camera: The wrapped camera.
        injector: The episode's injector.
        object_mask: Environment-side accessor of the object's pixels in the wrapped camera's
            last frame (for ``mask_empty`` and ``on_object`` patches); None: not available.
    """

    def __init__(self, camera: Camera, injector: FaultInjector,
                 object_mask: Callable[[], np.ndarray | None] | None = None) -> None:
        self.camera, self.inj, self.object_mask = camera, injector, object_mask
        self._served: tuple[int, Frame] | None = None  # (tick, frame) given out last
        self._frozen: Frame | None = None

    @property
    def intrinsics(self) -> Intrinsics:
        """The wrapped camera's intrinsics."""
        return self.camera.intrinsics

    def close(self) -> None:
        """Close the wrapped camera."""
        self.camera.close()

    def _spec(self, kind: str) -> FaultSpec:
        return self.inj.specs[kind]

    def get_frame(self) -> Frame:
        """The wrapped camera's frame with this tick's faults (one answer per tick).

        Raises:
            HardwareError: ``frame_timeout``, or ``frame_drop`` in ``raise`` mode.
        """
        inj, tick = self.inj, self.inj.tick
        if self._served is not None and self._served[0] == tick:
            return self._served[1]
        last = self._served[1] if self._served else None
        if inj.active("latency_spike"):
            sleep_s = float(self._spec("latency_spike").param("sleep_s"))
            inj.note("latency_spike", f"{sleep_s * 1000:.0f} ms")
            time.sleep(sleep_s)
        if inj.active("frame_timeout"):
            ms = self._spec("frame_timeout").param("timeout_ms")
            inj.note("frame_timeout", f"{ms} ms")
            raise HardwareError(f"frame timeout: no frame within {ms} ms (injected)")
        frame = None
        if inj.active("frame_drop"):
            if self._spec("frame_drop").param("mode") == "raise":
                inj.note("frame_drop", "raised")
                raise HardwareError("frame dropped: the frameset was incomplete (injected)")
            frame = last
            if last is not None:
                inj.note("frame_drop", f"repeated frame {last.seq}")
        if inj.active("stale_frame"):
            self._frozen = self._frozen or last
            frame = frame or self._frozen
            if self._frozen is not None:
                inj.note("stale_frame", f"frame {self._frozen.seq} again")
        else:
            self._frozen = None
        if frame is None:
            frame = self._corrupt(self.camera.get_frame())
        self._served = (tick, frame)
        return frame

    def _object(self, grow: int = 0) -> np.ndarray | None:
        """The object's pixels (bool), grown by ``grow`` px; None when unknown or not visible."""
        import cv2

        mask = self.object_mask() if self.object_mask else None
        if mask is None or not mask.any():
            return None
        if grow > 0:
            kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * grow + 1, 2 * grow + 1))
            mask = cv2.dilate(mask.astype(np.uint8), kernel) > 0
        return mask

    def _corrupt(self, frame: Frame) -> Frame:
        """Apply this tick's image faults (depth_nan, depth_zero, mask_empty) to a copy."""
        rgb, depth = frame.rgb, frame.depth
        kinds = [k for k in ("mask_empty", "object_hidden", "depth_zero", "depth_nan") if self.inj.active(k)]
        if not kinds:
            return frame
        rgb, depth = rgb.copy(), depth.copy()
        for kind in kinds:
            if kind == "object_hidden":  # the same occluder, held longer
                self._mask_empty(rgb, depth, self._spec(kind), kind)
            else:
                getattr(self, f"_{kind}")(rgb, depth, self._spec(kind))
        return frame.with_images(rgb, depth)

    def _depth_nan(self, rgb: np.ndarray, depth: np.ndarray, spec: FaultSpec) -> None:
        h, w = depth.shape
        side = int(spec.param("size_px"))
        centres = [(int(self.inj.rng.integers(h)), int(self.inj.rng.integers(w)))
                   for _ in range(int(spec.param("patches")))]
        obj = self._object() if spec.param("on_object") else None
        if obj is not None and centres:
            vs, us = np.nonzero(obj)
            centres[0] = (int(vs.mean()), int(us.mean()))
        for v, u in centres:
            depth[max(0, v - side // 2):v + (side + 1) // 2, max(0, u - side // 2):u + (side + 1) // 2] = np.nan
        self.inj.note("depth_nan", f"{len(centres)} patches of {side} px")

    def _depth_zero(self, rgb: np.ndarray, depth: np.ndarray, spec: FaultSpec) -> None:
        region = spec.param("region")
        h, w = depth.shape
        if region == "frame":
            depth[:] = 0.0
        elif region == "centre":
            depth[h // 4:h - h // 4, w // 4:w - w // 4] = 0.0
        elif (obj := self._object(grow=1)) is not None:  # 1 px: the silhouette's mixed edge too
            depth[obj] = 0.0
        self.inj.note("depth_zero", region)

    def _mask_empty(self, rgb: np.ndarray, depth: np.ndarray, spec: FaultSpec, kind: str = "mask_empty") -> None:
        """Hide the object: inpaint its pixels from the table around it, depth from that ring."""
        import cv2

        grow = int(spec.param("dilate_px"))
        hide = self._object(grow)
        if hide is None:
            self.inj.note(kind, "object not in view")
            return
        ring = self._object(grow + 6)  # 6 px band of table around the silhouette
        assert ring is not None
        ring &= ~hide & np.isfinite(depth) & (depth > 0)
        table = np.median(depth[ring]) if ring.any() else np.median(depth[~hide & (depth > 0)])
        rgb[:] = cv2.inpaint(rgb, hide.astype(np.uint8), 5, cv2.INPAINT_TELEA)  # 5 px inpainting radius
        depth[hide] = table
        self.inj.note(kind, f"{int(hide.sum())} px hidden")


class FaultArm:
    """An ``Arm`` that can reflex mid-motion (it sits inside :class:`~app.robot.safety.SafeArm`).

    Args:
        arm: The wrapped (hardware) arm.
        injector: The episode's injector (the arm registers itself there).
    """

    def __init__(self, arm: Arm, injector: FaultInjector) -> None:
        self.arm, self.inj = arm, injector
        self.commands = 0  # commands received from the envelope
        self.refused = 0  # commands refused while in reflex
        self._reflex = ""
        injector.arm = self

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

    def __getattr__(self, name: str) -> Any:  # teleport etc. of the sim arm (set-up only)
        return getattr(self.arm, name)

    def reflex(self, name: str) -> None:
        """Abort the motion as a reflex would: stop, then FAILED until :meth:`recover`."""
        self.arm.stop()
        self._reflex = f'reflex: motion aborted by reflex! ["{name}"] (injected at tick {self.inj.tick})'
        self.inj.note("arm_reflex", name)

    def _check(self) -> bool:
        """Count one command; False when it must not reach the arm (reflex)."""
        self.commands += 1
        if self._reflex:
            self.refused += 1
            return False
        return True

    def move_to(self, target: Pose) -> None:
        """Audit, then forward unless in reflex."""
        if self._check():
            self.arm.move_to(target)

    def move_to_joints(self, q: np.ndarray | tuple[float, ...]) -> None:
        """Audit, then forward unless in reflex."""
        if self._check():
            self.arm.move_to_joints(q)  # type: ignore[attr-defined]

    def move_relative(self, delta: Pose, frame: FrameName = "gripper") -> None:
        """Resolve to an absolute target (as :class:`~app.robot.safety.SafeArm` does) and :meth:`move_to`."""
        current, m = self.arm.pose(), self.arm.camera_mount
        target = {"gripper": lambda: current @ delta, "camera": lambda: current @ m @ delta @ m.inverse(),
                  "base": lambda: Pose(current.position + delta.position, delta.matrix @ current.matrix)}[frame]()
        self.move_to(target)

    def command_velocity(self, twist: np.ndarray, frame: FrameName = "camera") -> None:
        """Forward unless in reflex."""
        self.inj.last_velocity_tick = self.inj.tick
        if self._check():
            self.arm.command_velocity(twist, frame)

    def motion_status(self) -> MotionStatus:
        """FAILED while in reflex, else the wrapped arm's."""
        return MotionStatus.FAILED if self._reflex else self.arm.motion_status()

    def motion_error(self) -> str:
        """The reflex, else the wrapped arm's error."""
        return self._reflex or self.arm.motion_error()

    def stop(self) -> None:
        """Stop (always accepted)."""
        self.arm.stop()

    def recover(self) -> None:
        """Clear the reflex and the wrapped arm's error."""
        if self._reflex:
            self.inj.note("arm_reflex", "recovered")
        self._reflex = ""
        self.arm.recover()


class FaultGripper:
    """A ``Gripper`` whose grasp can abort (``gripper_fail``)."""

    def __init__(self, gripper: Gripper, injector: FaultInjector) -> None:
        self.gripper, self.inj = gripper, injector
        self._failed_until: int | None = None  # set while an aborted grasp is the last command

    @property
    def max_width(self) -> float:
        """Full opening (m)."""
        return self.gripper.max_width

    def open(self) -> None:
        """Open (always forwarded)."""
        self._failed_until = None
        self.gripper.open()

    def grasp(self, width: float, force: float) -> None:
        """Forward, or abort: the fingers stay where they are."""
        if self.inj.active("gripper_fail"):
            self._failed_until = self.inj.tick + int(self.inj.specs["gripper_fail"].param("busy_ticks"))
            self.inj.note("gripper_fail", f"grasp to {width * 1000:.0f} mm aborted")
            return
        self._failed_until = None
        self.gripper.grasp(width, force)

    def busy(self) -> bool:
        """Busy a moment after an aborted grasp, else the wrapped gripper's."""
        if self._failed_until is not None:
            return self.inj.tick < self._failed_until
        return self.gripper.busy()

    def width(self) -> float:
        """Current opening (m)."""
        return self.gripper.width()

    def is_grasped(self) -> bool:
        """False after an aborted grasp, else the wrapped gripper's."""
        return self._failed_until is None and self.gripper.is_grasped()

    def sample(self) -> HandSample:
        """The wrapped gripper's sample; not grasped after an aborted grasp."""
        s = self.gripper.sample()
        return s if self._failed_until is None else HandSample(s.width, False, s.max_width)

    def last_result(self) -> bool | None:
        """Unknown after an aborted grasp (as before the abort was seen), else the wrapped one's."""
        return None if self._failed_until is not None else self.gripper.last_result()

    def last_error(self) -> str:
        """The wrapped gripper's."""
        return self.gripper.last_error()


class FaultClock:
    """A ``Clock`` that counts the ticks for the injector and applies the world's faults."""

    def __init__(self, clock: Clock, injector: FaultInjector) -> None:
        self.clock, self.inj = clock, injector
        self.period = clock.period

    def advance(self) -> None:
        """Faults due now, one control period of the wrapped clock, next tick."""
        self.inj.before_physics()
        self.clock.advance()
        self.inj.tick += 1

    def now(self) -> float:
        """The wrapped clock's time (s)."""
        return self.clock.now()


def wrap_robot(robot: Robot, injector: FaultInjector,
               object_mask: Callable[[], np.ndarray | None] | None = None) -> Robot:
    """``robot`` with every interface behind its fault wrapper (put the result behind SafeArm).

    Args:
        robot: The backends (sim or real).
        injector: What the wrappers share.
        object_mask: See :class:`FaultCamera`.
    """
    return Robot(FaultCamera(robot.camera, injector, object_mask),
                 FaultArm(robot.arm, injector),
                 FaultGripper(robot.gripper, injector), FaultClock(robot.clock, injector), robot.backend)


def inject_sim(session: Any, specs: Iterable[FaultSpec], rng: np.random.Generator) -> FaultInjector:
    """Put a :class:`~app.sim.session.SimSession` 's robot behind the fault wrappers, in place.

    ``session.robot`` is replaced (what the tree gets); the session's own backends, the reset
    and the scoring are untouched.

    Returns:
        The injector (its ``events`` after the episode).
    """
    from app.sim.pybullet_world import SEG_OBJECT

    inj = FaultInjector(specs, rng, world=session.world)

    def object_mask() -> np.ndarray | None:
        raw = session.camera.last_raw()
        return None if raw is None else raw.mask == SEG_OBJECT

    session.robot = wrap_robot(session.robot, inj, object_mask)
    return inj


# ------------------------------------------------------------------------------ model loader
def faulty_weights(spec: FaultSpec, source: Path, target: Path, rng: np.random.Generator) -> Path:
    """A weights directory for the loader with ``spec`` 's damage, built in ``target``.

    The undamaged files are links to ``source`` 's (an empty placeholder where none ships, so
    the loader reaches the damaged file; it stops at the first bad one).
    """
    from app.perception import GAN_FILE, POLICY_FILE

    target.mkdir(parents=True, exist_ok=True)
    bad = str(spec.param("file"))
    for name in (GAN_FILE, POLICY_FILE):
        if name == bad:
            continue
        if (source / name).is_file():
            os.symlink((source / name).resolve(), target / name)
        else:
            (target / name).write_bytes(b"")
    if spec.kind == "checkpoint_corrupt":
        src = source / bad
        if spec.param("mode") == "truncate" and src.is_file():
            data = src.read_bytes()
            (target / bad).write_bytes(data[: len(data) // 2])
        else:
            (target / bad).write_bytes(rng.bytes(GARBAGE_BYTES))
    return target
