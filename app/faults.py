"""Fault injection: wrappers at the Camera, Arm and Gripper interfaces and at the model loader,
and the campaign ``python -m app faults`` that measures how a tree copes with each fault.

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

The arm wrapper sits *inside* the safety envelope (:class:`~app.safety.SafeArm`): it is the
hardware's side, so it sees every command that left the envelope and re-checks it against the
limits (``unsafe_commands``, which must stay 0). The campaign reuses the machinery of
:mod:`app.evaluate` and :mod:`app.report` (seeds, workers, the fsync'ed resumable ``results.jsonl``,
torn-line repair).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from app import CONFIG_DIR
from app.config import Section, file_sha256, load_yaml
from app.errors import CheckpointError, ConfigError, HardwareError, SimulationError
from app.evaluate import (
    RUNS,
    Campaign,
    ResultsWriter,
    _cached,
    _init_worker,
    _resume_state,
    _split,
    trial_seed,
)
from app.interfaces import (
    Arm,
    Camera,
    Clock,
    Frame,
    FrameName,
    Gripper,
    Intrinsics,
    MotionStatus,
    Robot,
)
from app.report import RESULTS, _write_atomic, read_results
from app.safety import SafeArm, SafetyLimits, load_safety
from app.stats import wilson_interval
from app.transforms import Pose, rot_z

KINDS = ("frame_drop", "frame_timeout", "stale_frame", "depth_nan", "depth_zero", "mask_empty", "object_push",
         "arm_reflex", "gripper_fail", "latency_spike", "checkpoint_missing", "checkpoint_corrupt",
         "object_hidden")  # appended last: each kind's random stream is seeded by its index
#: Kinds a tree should ride out (the issue's target: >= 90 % grasped).
TRANSIENT = frozenset({"frame_drop", "stale_frame", "arm_reflex", "latency_spike"})
CHECKPOINT_KINDS = frozenset({"checkpoint_missing", "checkpoint_corrupt"})
BASELINE = "none"  # the same trials without a fault
PHASES = ["any", "moving", "vs"]
TRANSIENT_TARGET = 0.9  # fraction of transient-fault trials that must still grasp
#: Kinds the recovery nodes (re-grasp, re-acquire) must ride out, and the fraction grasped (issue 12).
RECOVERED_TARGETS = {"gripper_fail": 0.9, "mask_empty": 0.9, "object_push": 0.95}
GIVE_UP_NODE = "Reacquire Object"  # where `object_hidden` must end: a clean, named give-up
GARBAGE_BYTES = 4096  # size of a random-bytes "checkpoint"
SHOWN_INJECTIONS = 5  # injections kept per results line

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
    "arm_reflex": {"reflex": lambda s: s.string("reflex", "cartesian_reflex")},
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
    """An ``Arm`` that can reflex mid-motion, and audits every command it receives.

    Placed inside :class:`~app.safety.SafeArm`, it receives exactly the commands that left the
    envelope; each is re-checked against the limits (:attr:`unsafe` lists the violations).

    Args:
        arm: The wrapped (hardware) arm.
        injector: The episode's injector (the arm registers itself there).
        limits: The envelope to audit against.
        period: Control period (s): a velocity command lasts one period.
    """

    def __init__(self, arm: Arm, injector: FaultInjector, limits: SafetyLimits, period: float) -> None:
        self.arm, self.inj = arm, injector
        self.audit = SafeArm(arm, limits, period)  # used for its checks only, never to command
        self.unsafe: list[str] = []
        self.audited = 0
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

    def _check(self, command: str, why: str) -> bool:
        """Record the audit of one command; False when it must not reach the arm (reflex)."""
        self.audited += 1
        if why:
            self.unsafe.append(f"{command}: {why}")
        if self._reflex:
            self.refused += 1
            return False
        return True

    def move_to(self, target: Pose) -> None:
        """Audit, then forward unless in reflex."""
        if self._check("move_to", self.audit.check_target(target)):
            self.arm.move_to(target)

    def move_relative(self, delta: Pose, frame: FrameName = "gripper") -> None:
        """Resolve to an absolute target (as :class:`~app.safety.SafeArm` does) and :meth:`move_to`."""
        current, m = self.arm.pose(), self.arm.camera_mount
        target = {"gripper": lambda: current @ delta, "camera": lambda: current @ m @ delta @ m.inverse(),
                  "base": lambda: Pose(current.position + delta.position, delta.matrix @ current.matrix)}[frame]()
        self.move_to(target)

    def command_velocity(self, twist: np.ndarray, frame: FrameName = "camera") -> None:
        """Audit (a twist the envelope would clamp or refuse is unsafe), then forward unless in reflex."""
        self.inj.last_velocity_tick = self.inj.tick
        t = np.asarray(twist, dtype=float)
        out, why = self.audit.filter_twist(t, frame)
        if out is not None and not np.allclose(out, t.reshape(-1)):
            why = "speed above the limits"
        if self._check("command_velocity", why):
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


def wrap_robot(robot: Robot, injector: FaultInjector, limits: SafetyLimits | None = None,
               object_mask: Callable[[], np.ndarray | None] | None = None) -> Robot:
    """``robot`` with every interface behind its fault wrapper (put the result behind SafeArm).

    Args:
        robot: The backends (sim or real).
        injector: What the wrappers share.
        limits: Envelope the arm audits against (default ``config/safety.yaml``).
        object_mask: See :class:`FaultCamera`.
    """
    return Robot(FaultCamera(robot.camera, injector, object_mask),
                 FaultArm(robot.arm, injector, limits or load_safety(), robot.clock.period),
                 FaultGripper(robot.gripper, injector), FaultClock(robot.clock, injector), robot.backend)


def inject_sim(session: Any, specs: Iterable[FaultSpec], rng: np.random.Generator,
               limits: SafetyLimits | None = None) -> FaultInjector:
    """Put a :class:`~app.sim.session.SimSession` 's robot behind the fault wrappers, in place.

    ``session.robot`` is replaced (what the tree gets); the session's own backends, the reset
    and the scoring are untouched.

    Returns:
        The injector (its ``events`` and ``arm.unsafe`` after the episode).
    """
    from app.sim.pybullet_world import SEG_OBJECT

    inj = FaultInjector(specs, rng, world=session.world)

    def object_mask() -> np.ndarray | None:
        raw = session.camera.last_raw()
        return None if raw is None else raw.mask == SEG_OBJECT

    session.robot = wrap_robot(session.robot, inj, limits, object_mask)
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


def checkpoint_trial(spec: FaultSpec, source: Path, rng: np.random.Generator) -> dict[str, Any]:
    """Load the models from a damaged copy; the fault is handled when the loader refuses it with
    a one-line :class:`~app.errors.CheckpointError` (exit code 2) before any tick."""
    from app.perception import load_perception

    with tempfile.TemporaryDirectory(prefix="faulty_weights_") as tmp:
        weights = faulty_weights(spec, source, Path(tmp), rng)
        try:
            load_perception(weights, threads=1)
        except CheckpointError as e:
            reason = str(e).replace(tmp, "<weights>")
            ok = e.exit_code == 2 and bool(reason) and "\n" not in reason
            return {"success": ok, "outcome": "refused", "failed_node": "(model loader)", "reason": reason,
                    "exit_code": e.exit_code, "exception": False, "ticks": 0}
        except Exception as e:  # any other escape is what the campaign counts
            return {"success": False, "outcome": "error", "failed_node": "(model loader)",
                    "reason": f"unhandled {type(e).__name__}: {e}".splitlines()[0], "exit_code": 1,
                    "exception": True, "exception_type": type(e).__name__, "ticks": 0}
    return {"success": False, "outcome": "loaded", "failed_node": "(model loader)", "exit_code": 0,
            "reason": f"the loader accepted a {spec.kind} weights directory", "exception": False, "ticks": 0}


# ------------------------------------------------------------------------------ campaign
@dataclass(frozen=True)
class FaultTrial:
    """One episode (or loader trial) of the campaign."""

    kind: str
    tree: str
    tree_ref: str
    object_set: str
    set_ref: str
    object: str
    object_index: int
    trial: int
    seed: int

    @property
    def case(self) -> str:
        """``TREE:KIND``: the results line's ``tree`` field, so evaluate's resume keys fit."""
        return f"{self.tree}:{self.kind}"

    @property
    def key(self) -> tuple[str, str, int]:
        """(case, object, trial): what resume matches on."""
        return self.case, self.object, self.trial


@dataclass(frozen=True)
class FaultCampaign:
    """What every trial shares: the evaluate campaign's fields, the faults and the models."""

    campaign: Campaign
    faults: dict[str, FaultSpec]
    faults_sha256: str
    weights: str  # weights directory: the models, and the source of the damaged copies
    models_factory: Callable[[Any], Any] | None = None  # session -> model bundle (tests)


def plan_faults(tree: Any, sets: Sequence[Any], kinds: Sequence[str], trials: int, base_seed: int) -> list[FaultTrial]:
    """Every (trial, kind), kinds innermost; trial ``k`` uses object ``k mod n`` over the sets, with
    :func:`app.evaluate.trial_seed`, so every kind meets the same placements."""
    objects = [(s, i, o) for s in sets for i, o in enumerate(s.objects)]
    if not objects:
        raise ConfigError("faults: no objects in the selected sets")
    plan = []
    for k in range(trials):
        s, i, o = objects[k % len(objects)]
        plan += [FaultTrial(kind, tree.name, tree.path, s.name, s.path, o.name, i, k,
                            trial_seed(base_seed, o.name, k)) for kind in kinds]
    return plan


def _kind_rng(t: FaultTrial) -> np.random.Generator:
    return np.random.default_rng([t.seed, (KINDS + (BASELINE,)).index(t.kind)])


def _episode(t: FaultTrial, fc: FaultCampaign) -> dict[str, Any]:
    """One simulated episode of ``t`` with its fault, scored by :func:`app.episode.run_sim_episode`."""
    from app.episode import run_sim_episode
    from app.hardware_config import load_hardware
    from app.perception import load_perception
    from app.sim.domain import load_domain
    from app.sim.objects import load_object_set
    from app.sim.session import SimSession
    from app.trees import load_tree_config

    c = fc.campaign
    cfg = _cached(("tree", t.tree_ref), lambda: load_tree_config(t.tree_ref))
    spec = _cached(("set", t.set_ref), lambda: load_object_set(t.set_ref)).get(t.object)
    domain = _cached(("domain", c.domain), lambda: load_domain(c.domain))
    hw = _cached(("hardware", str(c.hardware)), lambda: load_hardware(c.hardware))
    session = SimSession(hw, domain=domain, seed=t.seed, deformable=spec.shape == "soft")
    try:
        specs = [] if t.kind == BASELINE else [fc.faults[t.kind]]
        inj = inject_sim(session, specs, _kind_rng(t))
        if fc.models_factory is not None:
            models = fc.models_factory(session)
        else:
            models = (_cached(("models", fc.weights), lambda: load_perception(fc.weights, threads=1))
                      if cfg.uses_models else None)
        ep = run_sim_episode(cfg, spec, t.seed, domain, models, Path(c.out) / RUNS / t.kind, hardware=hw,
                             session=session, trial=t.trial)
    finally:
        session.close()
    extra = ep.get("extra") or {}
    assert inj.arm is not None
    return {"success": ep["success"], "outcome": ep["tree_outcome"], "failed_node": ep["failed_node"],
            "reason": ep["reason"], "exception": bool(extra.get("exception")),
            "exception_type": extra.get("exception_type"), "exit_code": None,
            "unsafe_commands": len(inj.arm.unsafe), "unsafe": inj.arm.unsafe[:SHOWN_INJECTIONS],
            "commands_audited": inj.arm.audited, "refused_in_reflex": inj.arm.refused,
            "injected": len(inj.events), "injections": [asdict(e) for e in inj.events[:SHOWN_INJECTIONS]],
            **{k: ep[k] for k in ("ticks", "sim_time", "wall_time", "vs_iterations", "safety_refusals",
                                  "safety_clamps")},
            "regrasps": int(ep.get("regrasps") or 0), "reacquisitions": int(ep.get("reacquisitions") or 0),
            "run_dir": os.path.relpath(ep["run_dir"], c.out)}


def run_fault_job(t: FaultTrial, fc: FaultCampaign) -> dict[str, Any]:
    """Run one trial in this process and return its results line (never raises an app error:
    anything that escapes the episode is recorded as an unhandled exception)."""
    t0 = time.perf_counter()
    try:
        if t.kind in CHECKPOINT_KINDS:
            body = checkpoint_trial(fc.faults[t.kind], Path(fc.weights), _kind_rng(t))
            body.update(injected=1, unsafe_commands=0)
        else:
            body = _episode(t, fc)
    except Exception as e:  # counted, never hidden: the campaign's "unhandled exceptions"
        body = {"success": False, "outcome": "error", "failed_node": "(fault campaign)",
                "reason": f"unhandled {type(e).__name__}: {e}".splitlines()[0], "exception": True,
                "exception_type": type(e).__name__, "unsafe_commands": 0, "injected": 0}
    c = fc.campaign
    spec = fc.faults.get(t.kind)
    return {"tree": t.case, "tree_name": t.tree, "kind": t.kind, "object": t.object, "object_set": t.object_set,
            "object_index": t.object_index, "trial": t.trial, "seed": t.seed, **body,
            "fault": asdict(spec) if spec and t.kind != BASELINE else None,
            "trial_wall_time": round(time.perf_counter() - t0, 3), "base_seed": c.base_seed, "domain": c.domain,
            "domain_sha256": c.domain_sha256, "hardware": c.hardware, "faults_sha256": fc.faults_sha256}


def _execute(todo: list[FaultTrial], fc: FaultCampaign, workers: int) -> Iterator[dict[str, Any]]:
    """Results lines as trials end: in this process (1 worker) or a spawned pool (evaluate's
    worker set-up: one torch thread, exit when the campaign process dies)."""
    if workers <= 1:
        yield from (run_fault_job(t, fc) for t in todo)
        return
    import multiprocessing as mp
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    os.environ["OMP_NUM_THREADS"] = "1"
    pool = ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn"), initializer=_init_worker,
                               initargs=(os.getpid(),))
    try:
        for f in as_completed([pool.submit(run_fault_job, t, fc) for t in todo]):
            yield f.result()
    except BrokenProcessPool as e:
        raise SimulationError(f"a worker process died ({e}); the finished trials are saved: rerun with "
                              f"--resume") from e
    finally:
        pool.shutdown(wait=False, cancel_futures=True)


def run_faults(args: argparse.Namespace, models_factory: Callable[[Any], Any] | None = None) -> int:
    """Run (or resume) a fault campaign, then write its summary files.

    Args:
        args: The parsed flags (:func:`add_arguments` and :func:`app.cli.add_common`).
        models_factory: Builds the model bundle from the episode's session instead of loading
            the weights (tests: ``TruthModels``); None loads ``--weights``.

    Returns:
        0 when it completed with no unsafe command, no unhandled exception and no unnamed
        failure; 1 otherwise.
    """
    from tqdm import tqdm

    from app.perception import WEIGHTS_DIR, load_perception
    from app.sim.domain import load_domain
    from app.sim.objects import load_object_set
    from app.trees import load_tree_config

    out = Path(args.out)
    if args.summarize_only:
        return _report(summarize_faults(out))
    if args.backend != "sim":
        raise ConfigError("faults: campaigns run on the simulator (--backend sim)")
    if args.trials < 1 or (args.workers is not None and args.workers < 1):
        raise ConfigError(f"faults: expected --trials >= 1 and --workers >= 1, found {args.trials}, {args.workers}")
    kinds = _split(args.kinds) if args.kinds else list(KINDS)
    unknown = [k for k in kinds if k not in (*KINDS, BASELINE)]
    if unknown or not kinds:
        raise ConfigError(f"--kinds: unknown {unknown or kinds} (expected some of {[*KINDS, BASELINE]})")
    kinds += [] if args.no_baseline or BASELINE in kinds else [BASELINE]
    faults_path = Path(args.faults) if args.faults else CONFIG_DIR / "faults.yaml"
    faults = load_faults(faults_path)
    tree = load_tree_config(args.tree)
    weights = str(Path(args.weights) if args.weights else WEIGHTS_DIR)
    if tree.uses_models and models_factory is None and set(kinds) - CHECKPOINT_KINDS:
        load_perception(weights, threads=1)  # no weights: exit 2 now, not one failure per trial
    sets = [load_object_set(s) for s in _split(args.objects)]
    plan = plan_faults(tree, sets, kinds, args.trials, args.seed)
    domain = load_domain(args.domain)
    c = Campaign(str(out), args.seed, args.domain, domain.sha256, args.config)
    fc = FaultCampaign(c, faults, file_sha256(faults_path), weights, models_factory)
    out.mkdir(parents=True, exist_ok=True)
    done = _resume_state(out, args.resume, c)
    previous, _ = read_results(out / RESULTS)
    if previous and previous[0].get("faults_sha256") != fc.faults_sha256:
        raise ConfigError(f"{out / RESULTS}: --resume with another faults file than {faults_path}")
    todo = [t for t in plan if t.key not in done]
    workers = min(args.workers or os.cpu_count() or 1, max(1, len(todo)))
    writer = ResultsWriter(out / RESULTS)
    try:
        with tqdm(total=len(plan), initial=len(plan) - len(todo), desc="faults", unit="trial",
                  file=sys.stderr, dynamic_ncols=True) as bar:
            for rec in _execute(todo, fc, workers):
                writer.append(rec)
                bar.update()
    finally:
        writer.close()
    print(f"{len(todo)} trials run ({len(plan) - len(todo)} already done); summary in {out / 'summary.md'}")
    return _report(summarize_faults(out))


def _report(summary: dict[str, Any]) -> int:
    for kind, v in summary["faults"].items():
        print(f"  {kind}: {v['successes']}/{v['trials']} ({v['outcomes']}), unsafe {v['unsafe_commands']}, "
              f"unhandled {v['unhandled_exceptions']}, unnamed {v['unnamed_failures']}")
    return 0 if summary["checks"]["all_zero"] else 1


# ------------------------------------------------------------------------------ summaries
def _unnamed(r: dict[str, Any]) -> bool:
    return not r["success"] and not (r.get("failed_node") and r.get("reason"))


def when(fault: dict[str, Any] | None) -> str:
    """When a fault (a results line's ``fault``) fires, in words."""
    if not fault:
        return "–"
    if fault["kind"] in CHECKPOINT_KINDS:
        return "at load"
    phase = "" if fault["phase"] == "any" else f" ({fault['phase']})"
    lasting = f", {fault['duration']} ticks" if fault["duration"] > 1 else ""
    if fault["at"] is not None:
        return f"tick >= {fault['at']}{phase}{lasting}"
    return f"{fault['rate']:.2f}/tick{phase}{lasting}"


def _kind_summary(kind: str, rs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    n, k = len(rs), sum(bool(r["success"]) for r in rs)
    hit = [r for r in rs if r.get("injected")]
    k_hit = sum(bool(r["success"]) for r in hit)
    fails = Counter(r.get("failed_node") or r["outcome"] for r in rs if not r["success"])
    reasons = Counter(r.get("reason") or "" for r in rs if not r["success"])
    rate = k / n if n else 0.0
    v = {"trials": n, "successes": k, "unsafe_commands": sum(int(r.get("unsafe_commands") or 0) for r in rs),
         "unhandled_exceptions": sum(bool(r.get("exception")) for r in rs),
         "unnamed_failures": sum(_unnamed(r) for r in rs), "transient": kind in TRANSIENT,
         "rate": rate, "ci95": list(wilson_interval(k, n)), "injected_trials": len(hit),
         "successes_injected": k_hit, "when": when(rs[0].get("fault") if rs else None),
         "outcomes": dict(Counter(r["outcome"] for r in rs)), "failures": dict(fails.most_common()),
         "reasons": [r for r, _ in reasons.most_common(3)], "target": None, "meets_target": None,
         "regrasps": sum(int(r.get("regrasps") or 0) for r in rs),
         "reacquisitions": sum(int(r.get("reacquisitions") or 0) for r in rs)}
    if kind in CHECKPOINT_KINDS:
        v["target"] = "every trial ends at start: exit code 2, one-line CheckpointError"
        v["meets_target"] = k == n
    elif kind in RECOVERED_TARGETS:  # the recovery nodes' targets, on the trials the fault reached
        v["target"] = f">= {RECOVERED_TARGETS[kind]:.0%} of the injected trials grasped"
        v["meets_target"] = k_hit >= RECOVERED_TARGETS[kind] * len(hit) if hit else None
    elif kind == "object_hidden":  # a clean give-up: every failure at the re-acquire node, named
        v["target"] = f"every failure ends at '{GIVE_UP_NODE}' with a reason"
        v["meets_target"] = all(r.get("failed_node") == GIVE_UP_NODE and r.get("reason")
                                for r in rs if not r["success"])
    elif kind in TRANSIENT:  # judged on the trials the fault actually reached (None: none did)
        v["target"] = f">= {TRANSIENT_TARGET:.0%} of the injected trials grasped"
        v["meets_target"] = k_hit >= TRANSIENT_TARGET * len(hit) if hit else None
    return v


def build_fault_summary(records: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """The ``summary.json`` object of a fault campaign's results lines (pure).

    ``faults`` holds, per kind, the contract keys (``trials``, ``successes``, ``unsafe_commands``,
    ``unhandled_exceptions``, ``unnamed_failures``, ``transient``) plus rates and breakdowns; a
    checkpoint kind's ``successes`` are trials refused at start with exit code 2. ``baseline``:
    the same trials without a fault; ``checks``: the must-be-zero totals over both.
    """
    kinds = [k for k in KINDS if any(r["kind"] == k for r in records)]
    faults = {k: _kind_summary(k, [r for r in records if r["kind"] == k]) for k in kinds}
    base = [r for r in records if r["kind"] == BASELINE]
    baseline = _kind_summary(BASELINE, base) if base else None
    counted = [*faults.values(), *([baseline] if baseline else [])]
    checks = {key: sum(v[key] for v in counted) for key in ("unsafe_commands", "unhandled_exceptions", "unnamed_failures")}
    checks["all_zero"] = not any(checks.values())
    first = records[0] if records else {}
    config = {"tree": first.get("tree_name"), "trials_per_kind": 1 + max((r["trial"] for r in records), default=-1),
              "seed": first.get("base_seed"), "domain": first.get("domain"), "hardware": first.get("hardware"),
              "faults_sha256": first.get("faults_sha256"), "objects": sorted({r["object"] for r in records}),
              "faults": {k: next(r.get("fault") for r in records if r["kind"] == k) for k in kinds},
              "transient_kinds": sorted(TRANSIENT), "transient_target": TRANSIENT_TARGET,
              "total_trials": len(records),
              "seed_rule": "trial k: object k mod n over the sets, sha256('SEED/OBJECT/k'); the same for every kind"}
    return {"faults": faults, "baseline": baseline, "checks": checks, "config": config}


def _pct(x: float) -> str:
    return f"{100 * x:.0f} %"


def fault_markdown(summary: dict[str, Any]) -> str:
    """``summary.md``: one row per kind (and the fault-free baseline)."""
    cfg, checks = summary["config"], summary["checks"]
    lines = ["# Fault-injection campaign", "",
             f"Tree `{cfg['tree']}`, {cfg['trials_per_kind']} trials per kind, seed {cfg['seed']}, domain "
             f"`{cfg['domain']}`; every kind meets the same placements. Grasped = lifted 10 cm and held (physics). "
             "Unsafe = commands that reached the arm outside the safety envelope; unhandled = episodes ended by "
             "an exception; unnamed = failures without a node and a reason. Checkpoint kinds: 'grasped' counts "
             "trials refused at start with exit code 2 and a one-line reason.", "",
             "| Kind | When | Transient | Trials | Injected | Grasped | Rate | 95 % CI | Unsafe | Unhandled | Unnamed "
             "| Re-grasps | Re-acquisitions | Target met | Main failure |",
             "|---|---|---|---:|---:|---:|---:|---|---:|---:|---:|---:|---:|---|---|"]
    rows = list(summary["faults"].items()) + ([("(no fault)", summary["baseline"])] if summary["baseline"] else [])
    fault_kinds = set(summary["faults"])
    for kind, v in rows:
        lo, hi = v["ci95"]
        main = next(iter(v["failures"].items()), None)
        met = "–" if v["target"] is None else {True: "yes", False: "**no**", None: "not injected"}[v["meets_target"]]
        transient = "–" if kind not in fault_kinds else ("yes" if v["transient"] else "no")
        lines.append(f"| {kind} | {v['when']} | {transient} | {v['trials']} | {v['injected_trials']} | "
                     f"{v['successes']} | {_pct(v['rate'])} | {100 * lo:.0f}–{100 * hi:.0f} % | "
                     f"{v['unsafe_commands']} | {v['unhandled_exceptions']} | {v['unnamed_failures']} | "
                     f"{v.get('regrasps', 0)} | {v.get('reacquisitions', 0)} | {met} | "
                     f"{f'{main[0]} × {main[1]}' if main else '–'} |")
    lines += ["", f"Totals: unsafe commands {checks['unsafe_commands']}, unhandled exceptions "
                  f"{checks['unhandled_exceptions']}, unnamed failures {checks['unnamed_failures']} "
                  f"({'all zero' if checks['all_zero'] else '**not all zero**'}).", "", "Most frequent reasons:", ""]
    for kind, v in rows:
        if v["reasons"]:
            lines.append(f"- {kind}: " + "; ".join(f"`{r}`" for r in v["reasons"]))
    return "\n".join(lines) + "\n"


def summarize_faults(out: str | Path) -> dict[str, Any]:
    """Rebuild ``summary.json`` and ``summary.md`` of ``out`` from its results.jsonl.

    Raises:
        ConfigError: No results, or a damaged results file.
    """
    import json

    out = Path(out)
    records, _ = read_results(out / RESULTS)
    if not records:
        raise ConfigError(f"{out / RESULTS}: no results to summarize")
    summary = build_fault_summary(records)
    _write_atomic(out / "summary.json", json.dumps(summary, indent=2) + "\n")
    _write_atomic(out / "summary.md", fault_markdown(summary))
    return summary


# ------------------------------------------------------------------------------ the command
def add_arguments(p: argparse.ArgumentParser) -> None:
    """The faults command's own flags (``--objects``, ``--domain``, ``--seed``, ``--config`` come
    from :func:`app.cli.add_common`)."""
    p.add_argument("--out", required=True, help="campaign directory (results.jsonl, summary files, runs/)")
    p.add_argument("--trials", type=int, default=20, help="trials per fault kind (objects cycled over the sets)")
    p.add_argument("--workers", type=int, default=None, help="worker processes (default: the number of cores)")
    p.add_argument("--resume", action="store_true", help="skip the trials already in OUT/results.jsonl")
    p.add_argument("--kinds", default=None, help=f"comma-separated fault kinds (default: all of {', '.join(KINDS)})")
    p.add_argument("--tree", default="drl_gan_vs", help="tree name or YAML path")
    p.add_argument("--faults", default=None, help="fault file (default config/faults.yaml)")
    p.add_argument("--weights", default=None, help="weights directory (default models/weights)")
    p.add_argument("--no-baseline", action="store_true", help="skip the fault-free trials ('none')")
    p.add_argument("--summarize-only", action="store_true", help="rebuild the summary files from results.jsonl")
    p.set_defaults(objects="seen,unseen")


def build_parser() -> argparse.ArgumentParser:
    """The parser of ``python -m app.faults``: the CLI's common flags plus :func:`add_arguments`."""
    from app.cli import standalone_parser

    return standalone_parser("python -m app.faults", __doc__, add_arguments)


def main(argv: list[str] | None = None) -> int:
    """``python -m app.faults ...``: the faults command on its own, same flags and exit codes as the CLI."""
    from app.cli import standalone_main

    return standalone_main("python -m app.faults", __doc__, add_arguments, run_faults, argv)


if __name__ == "__main__":
    # Import under the package name, so that what workers unpickle is app.faults', not __main__'s.
    from app.faults import main as _main

    sys.exit(_main())
