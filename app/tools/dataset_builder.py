"""``python -m app dataset``: the CycleGAN dataset, from the poses the robot visits.

Sim-domain images (with ground-truth masks) and real-domain images (no masks) come from
independent seeds and scenes: paired renders are for evaluation only. Camera poses are drawn
from a scripted distribution of where the grasp tree takes the camera: the start pose, after
each 15 cm pose step, along VS trajectories (lower, offset, rotated) and with the object near
the image border. Only the ``Camera``/``Arm`` interfaces are used to take the images, so the
same command collects real images with ``--backend real`` (masks then come from nowhere: real
images never need them): there the arm is homed first, every move goes through the safety
envelope from the start pose and back, and a failed move stops the collection with its reason. Resumable: finished samples are kept; ``index.json`` is rewritten
every 25 samples and at the end.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from app.errors import ConfigError, HardwareError
from app.outputs import check_output_dir, owned, prepare_output_dir, write_guard
from app.robot.interfaces import Arm, MotionStatus, Robot
from app.robot.safety import SafeArm, SafetyLimits, load_safety
from app.transforms import Pose, delta_pose
from models.dataset import read_index, sample_id, write_index, write_sample

#: Kinds of camera pose and their share of the dataset.
POSE_KINDS = {"start": 0.15, "after_step_1": 0.2, "after_step_2": 0.25, "servoing": 0.3, "border": 0.1}
VAL_FRACTION = 0.1  # held-out validation samples per domain, from other seeds
SEED_STRIDE = 1_000_003  # seeds of the sim, real and validation streams never overlap


def sample_camera_delta(kind: str, rng: np.random.Generator, object_offset: np.ndarray) -> tuple[float, float, float, float]:
    """A relative gripper move (dx, dy, dz in m, dyaw in rad) from the start pose for ``kind``.

    Args:
        kind: One of :data:`POSE_KINDS`.
        rng: Random generator.
        object_offset: Object (x, y) relative to the start gripper axis, gripper frame (m).
    """
    if kind == "start":
        return 0.0, 0.0, 0.0, 0.0
    if kind in ("after_step_1", "after_step_2"):  # a partly corrected pose step
        dz = 0.15 if kind == "after_step_1" else 0.30
        frac = rng.uniform(0.0, 1.0)
        dx, dy = object_offset * frac + rng.normal(0, 0.015, 2)
        return float(dx), float(dy), dz, float(rng.uniform(-np.pi / 2, np.pi / 2))
    if kind == "servoing":  # near the object at VS heights, small residual offsets
        dx, dy = object_offset + rng.normal(0, 0.02, 2)
        return float(dx), float(dy), float(rng.uniform(0.20, 0.32)), float(rng.uniform(-np.pi / 2, np.pi / 2))
    # border: object towards an image edge at a low height
    angle = rng.uniform(0, 2 * np.pi)
    dz = float(rng.uniform(0.15, 0.30))
    reach = 0.27 * (0.6 - dz) / 0.6 * 0.45  # ~ the half-width of the view at that height (m)
    dx, dy = object_offset - reach * np.array([np.cos(angle), np.sin(angle)])
    return float(dx), float(dy), dz, float(rng.uniform(-np.pi / 2, np.pi / 2))


def build_sim_split(out: Path, n: int, seed: int, domain: str, with_mask: bool, objects: str,
                    desc: str, samples: list[dict[str, Any]]) -> None:
    """Render ``n`` samples of one domain into ``out`` (sim backend), appending to ``samples``."""
    from tqdm import tqdm

    from app.sim.objects import load_object_set
    from app.sim.session import SimSession

    oset = load_object_set(objects)
    specs = [o for o in oset.objects if o.shape != "soft"]
    done = {s["id"] for s in samples}
    dom = "sim" if with_mask else "real"
    kinds, probs = list(POSE_KINDS), np.array(list(POSE_KINDS.values()))
    with SimSession(domain=domain, seed=seed) as s:
        for i in tqdm(range(n), desc=desc, unit="img", mininterval=2):
            sid = sample_id(i)
            if sid in done:
                continue
            rng = np.random.default_rng([seed, i])
            spec = specs[int(rng.integers(len(specs)))]
            s.rng = s.camera.rng = rng
            obj = s.reset(spec, s.sample_placement(spec, rng), settle=True)
            start = s.arm.pose()
            offset = start.inverse().apply(obj.position)[:2]
            kind = kinds[int(rng.choice(len(kinds), p=probs / probs.sum()))]
            dx, dy, dz, dyaw = sample_camera_delta(kind, rng, offset)
            try:
                s.arm.teleport(start @ delta_pose(dx, dy, dz, dyaw))
            except Exception:  # an unreachable sample pose: keep the start view instead
                kind = "start"
            s.camera.invalidate()
            frame = s.camera.get_frame()
            mask = s.truth.last_mask() if with_mask else None
            write_sample(out, dom, sid, frame.rgb, frame.depth, mask)
            samples.append({"id": sid, "object": spec.name, "kind": kind, "seed": seed})
            if len(samples) % 25 == 0:
                _save(out, samples, dom)


def _save(out: Path, samples: list[dict[str, Any]], dom: str) -> None:
    prev = _existing(out)
    prev[dom] = samples
    write_index(out, prev, 128, 128, {"note": "built by python -m app dataset"})


def _existing(out: Path) -> dict[str, list[dict[str, Any]]]:
    try:
        idx = read_index(out)
        return {d: list(idx["domains"][d]) for d in ("sim", "real")}
    except Exception:
        return {"sim": [], "real": []}


def build_dataset(out: str | Path, n: int, seed: int, objects: str = "seen", sim_domain: str = "sim",
                  real_domain: str = "real") -> Path:
    """Build the training set in ``out`` and the validation set in ``out/val`` (simulator)."""
    out = Path(out)
    for split, count, base in (("train", n, seed), ("val", max(1, int(round(n * VAL_FRACTION))), seed + 7)):
        d = out if split == "train" else out / "val"
        with write_guard(d):
            d.mkdir(parents=True, exist_ok=True)
        existing = _existing(d)
        for dom, domain, stream in (("sim", sim_domain, 0), ("real", real_domain, 1)):
            samples = existing[dom]
            build_sim_split(d, count, base + SEED_STRIDE * (stream + 1), domain,
                            dom == "sim", objects, f"{split} {dom}", samples)
            _save(d, samples, dom)
        info = {"n": count, "seed": base, "objects": objects, "sim_domain": sim_domain, "real_domain": real_domain}
        idx = _existing(d)
        from app.sim.domain import load_domain

        info["domain_sha256"] = {"sim": load_domain(sim_domain).sha256, "real": load_domain(real_domain).sha256}
        write_index(d, idx, 128, 128, info)
    return out


class CollectionStopped(HardwareError):
    """Real data collection stopped on a failed move (the message names the sample and why)."""


HOMED_TOLERANCE_M = 0.01  # m: the collection starts only this close to the start pose
HOMED_TOLERANCE_RAD = np.radians(3.0)  # rad, and this close in angle
MOVE_TIMEOUT_S = 20.0  # s of clock time one move may take (0.45 m at 0.25 m/s is < 3 s)


def _move(robot: Robot, arm: Arm, target: Pose, what: str) -> None:
    """Move ``arm`` to ``target`` and wait (one clock period per poll).

    Raises:
        CollectionStopped: The move failed, was refused by the envelope or timed out.
    """
    arm.move_to(target)
    deadline = robot.clock.now() + MOVE_TIMEOUT_S
    while arm.motion_status() == MotionStatus.MOVING:
        if robot.clock.now() >= deadline:
            arm.stop()
            raise CollectionStopped(f"{what}: the move did not end within {MOVE_TIMEOUT_S:g} s")
        robot.clock.advance()
    if arm.motion_status() == MotionStatus.FAILED:
        raise CollectionStopped(f"{what}: {arm.motion_error() or 'motion failed'}")


def build_real_dataset(out: str | Path, n: int, seed: int, robot: Robot, start_pose: Pose,
                       limits: SafetyLimits) -> Path:
    """Collect ``n`` real images on the hardware at the same scripted poses (no masks).

    The user places an object in view. The arm must already be at ``start_pose`` (homed);
    every move goes through the safety envelope, from the start pose to a sample pose and back.
    A failed or refused move stops the collection (samples taken so far are kept: resumable).

    Args:
        out: Dataset directory.
        n: Samples to collect (ids 0..n-1; existing ones are skipped).
        seed: Seed of the pose draws.
        robot: The connected real robot (its arm raw or already behind a SafeArm).
        start_pose: Gripper start pose (base frame) the poses are drawn around.
        limits: The safety envelope.

    Raises:
        CollectionStopped: Not homed, or a move failed (the message names the sample).
    """
    from tqdm import tqdm

    out = Path(out)
    arm: Arm = robot.arm if isinstance(robot.arm, SafeArm) else SafeArm(robot.arm, limits,
                                                                         robot.clock.period)
    d, r = arm.pose().distance(start_pose)
    if d > HOMED_TOLERANCE_M or r > HOMED_TOLERANCE_RAD:
        raise CollectionStopped(f"not at the start pose ({d * 100:.1f} cm / {np.degrees(r):.0f} deg "
                                "away): home the arm first")
    samples = _existing(out)["real"]
    done = {s["id"] for s in samples}
    kinds, probs = list(POSE_KINDS), np.array(list(POSE_KINDS.values()))
    for i in tqdm(range(n), desc="real", unit="img"):
        sid = sample_id(i)
        if sid in done:
            continue
        rng = np.random.default_rng([seed, i])
        kind = kinds[int(rng.choice(len(kinds), p=probs / probs.sum()))]
        dx, dy, dz, dyaw = sample_camera_delta(kind, rng, np.zeros(2))
        _move(robot, arm, start_pose @ delta_pose(dx, dy, dz, dyaw), f"sample {sid} ({kind})")
        frame = robot.camera.get_frame()
        write_sample(out, "real", sid, frame.rgb, frame.depth, None)
        samples.append({"id": sid, "kind": kind, "seed": seed})
        _save(out, samples, "real")
        _move(robot, arm, start_pose, f"back to the start pose after sample {sid}")
    return out


def _collect_real(args: argparse.Namespace, connect: Callable[[], Robot] | None) -> None:
    """Real collection inside the session lifecycle: connect, home, collect, shut down.

    Raises:
        HardwareError: The collection stopped (the reason names the sample and the move).
    """
    from app.hardware_config import load_hardware
    from app.lifecycle import RobotSession

    hw = load_hardware(args.config)
    limits = load_safety()
    if connect is None:
        from app.hardware.real_session import RealSession

        def connect() -> Robot:
            return RealSession(hw, args.robot_host, limits=limits).robot

    def collect(robot: Robot) -> str:
        try:
            build_real_dataset(args.out, args.n, args.seed, robot, hw.start_pose(), limits)
        except CollectionStopped as e:
            return str(e)
        return ""

    with RobotSession(connect, hw.start_pose(), limits=limits, home_joints=hw.home_joints,
                      place_height=hw.place_height) as session:
        session.start()
        session.home()
        stopped = session.execute(collect)
        if stopped:
            raise CollectionStopped(f"data collection stopped at {stopped}")
        session.home()


def build_robot_dataset(args: argparse.Namespace, connect: Callable[[], Robot] | None = None) -> None:
    """A training set for a lab on the robot (``python -m app lab --backend real``): the sim half
    rendered in the ``sim`` domain with masks (the look the agent trained in), the real half
    collected on the robot (:func:`build_real_dataset`). Resumable: both halves keep their samples.

    Args:
        args: ``out``, ``n``, ``seed``, ``config``, ``robot_host`` as for :func:`run_dataset`.
        connect: Opens the real robot (tests pass the fake's); default the RealSession.
    """
    out = Path(args.out)
    with write_guard(out):
        out.mkdir(parents=True, exist_ok=True)
    samples = _existing(out)["sim"]
    build_sim_split(out, args.n, args.seed + SEED_STRIDE, "sim", True, "seen", "train sim", samples)
    _save(out, samples, "sim")
    _collect_real(args, connect)  # keeps the sim half of the index


def run_dataset(args: argparse.Namespace, connect: Callable[[], Robot] | None = None) -> int:
    """Entry point of ``python -m app dataset``.

    Args:
        args: The parsed command line.
        connect: Opens the real robot (tests pass the fake's); default the RealSession.
    """
    check_output_dir(args.out, "--out")  # before any work: one line and exit 2
    if args.n < 1:
        raise ConfigError(f"--n: expected >= 1, found {args.n}")
    with owned(prepare_output_dir(args.out, "--out", command="dataset", lock=True)):
        if args.backend == "real":
            _collect_real(args, connect)
        else:
            build_dataset(args.out, args.n, args.seed, objects=args.objects, real_domain=args.domain)
    idx = read_index(args.out)
    print(json.dumps({d: len(v) for d, v in idx["domains"].items()}), "samples in", args.out)
    return 0


