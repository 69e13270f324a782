"""``python -m app dataset --backend real``: the real half of the CycleGAN dataset, on the robot.

The person puts an object on the table under the start pose. Placement after placement, the
collection finds the object in the start view from depth alone (:func:`find_object`:
the blob that stands above the fitted table plane, its centroid moved into the gripper frame
through the camera mount; never simulator ground truth), visits the scripted poses around it
(:func:`app.tools.dataset_builder.sample_camera_delta`, as the simulator does around the true
object), and after every ``--prompt-every`` images homes the arm and asks the person to move or
swap the object (Enter goes on, ``q`` stops and keeps what was taken). ``--no-prompt`` never
waits on stdin: the arm still homes and finds the object again between placements, and no object
in view stops the run in one line (exit 3) rather than collect images of an empty table.

Every move goes through the safety envelope (from the start pose to a sample pose and back;
homing through the session lifecycle); a failed move stops the collection with its reason.
Resumable: each sample is written to the index as it is taken, with its ``placement`` and the
``object_offset_m`` it was drawn around.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from functools import partial
from pathlib import Path

import numpy as np

from app.controllers.locate import Sighting, locate_object
from app.errors import AppError, HardwareError
from app.outputs import write_guard
from app.robot.interfaces import Arm, MotionStatus, Robot
from app.robot.safety import SafeArm, SafetyLimits, load_safety
from app.tools.dataset_builder import (
    POSE_KINDS,
    SEED_STRIDE,
    build_sim_split,
    existing_samples,
    sample_camera_delta,
    save_domain,
)
from app.transforms import Pose, delta_pose
from models.dataset import sample_id, write_sample


class CollectionStopped(HardwareError):
    """Real data collection stopped on a failed move (the message names the sample and why)."""


class NoObjectInView(CollectionStopped):
    """No object found in the start view, or one outside the range the poses are drawn for."""


class StoppedByPerson(AppError):
    """The person answered ``q`` at a prompt: the arm is homed, the images taken are kept."""

    exit_code = 130  # as Ctrl-C: the person stopped the run, the dataset is not complete


HOMED_TOLERANCE_M = 0.01  # m: the collection starts only this close to the start pose
HOMED_TOLERANCE_RAD = np.radians(3.0)  # rad, and this close in angle
MOVE_TIMEOUT_S = 20.0  # s of clock time one move may take (0.45 m at 0.25 m/s is < 3 s)
# Images per placement of the object before the person is asked to move or swap it: 655 images
# then see ~13 placements (objects, positions, orientations) rather than one, and at ~4 s a
# sample (~2 s each way at 0.25 m/s and 1 rad/s) the person is asked every ~3 min, not every few s.
DEFAULT_PROMPT_EVERY = 50
STOP_ANSWERS = ("q", "quit")  # answers to a prompt that stop the collection

#: Shows a prompt and returns the person's answer (``input``; tests pass a script).
Ask = Callable[[str], str]


def add_collection_arguments(p: argparse.ArgumentParser) -> None:
    """The real collection's flags (``dataset`` and ``lab``; read with ``--backend real`` only)."""
    p.add_argument("--prompt-every", type=int, default=DEFAULT_PROMPT_EVERY, metavar="N",
                   help="--backend real: home the arm and ask for the object to be moved or swapped every N "
                        f"images (default {DEFAULT_PROMPT_EVERY}; q at the prompt stops, keeping the images)")
    p.add_argument("--no-prompt", action="store_true",
                   help="--backend real: never wait on stdin (unattended; still homes and finds the object "
                        "again every N images, and stops if none is in view)")


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


def find_object(robot: Robot, xy_range: float | None = None) -> Sighting:
    """The object in the camera's current view, from depth alone (:func:`locate_object`).

    Args:
        robot: The robot; its camera gives the frame, its arm the camera mount (hand-eye).
        xy_range: Largest |x| and |y| (m) of the object's offset accepted (the square the
            simulator places objects in, ``workspace.object_xy_range``); None: any.

    Returns:
        The sighting: (x, y) in the gripper frame of the current pose (m), or None and why (one
        sentence for the person: none found, or one outside ``xy_range``).
    """
    frame = robot.camera.get_frame()
    seen = locate_object(frame.depth, frame.intrinsics, robot.arm.camera_mount)
    if seen.offset is None:
        return Sighting(None, f"no object found in the start view: {seen.reason}", seen.centroid_px,
                        seen.distance, seen.area_px)
    if xy_range is not None and float(np.max(np.abs(seen.offset))) > xy_range:
        x, y = (round(float(v) * 100) for v in seen.offset)  # cm, whole (no "-0")
        return Sighting(None, f"the object in the start view is at ({x}, {y}) cm from the start axis, outside "
                        f"the +-{xy_range * 100:.0f} cm the poses are drawn for: move it nearer the middle",
                        seen.centroid_px, seen.distance, seen.area_px)
    return seen


def build_real_dataset(out: str | Path, n: int, seed: int, robot: Robot, start_pose: Pose,
                       limits: SafetyLimits, *, placement: int = 0, max_images: int | None = None,
                       xy_range: float | None = None) -> int:
    """Collect real images (no masks) of one placement of the object at the scripted poses.

    The arm must already be at ``start_pose`` (homed). The object is found in the start view
    from depth (:func:`find_object`: the blob above the table plane, through the camera mount),
    and the poses are drawn around it as the simulator draws them around the true object
    (:func:`sample_camera_delta`). Every move goes through the safety envelope, from the start
    pose to a sample pose and back. A failed or refused move stops the collection (samples taken
    so far are kept: resumable). Each sample records its ``placement`` and ``object_offset_m``.

    Args:
        out: Dataset directory.
        n: Samples of the whole set (ids 0..n-1; existing ones are skipped).
        seed: Seed of the pose draws.
        robot: The connected real robot (its arm raw or already behind a SafeArm).
        start_pose: Gripper start pose (base frame) the poses are drawn around.
        limits: The safety envelope.
        placement: Number of this placement of the object (recorded with each sample).
        max_images: Images of this placement at most, counting those the index already holds
            for it (None: until the set is complete).
        xy_range: As for :func:`find_object`.

    Returns:
        The number of images taken.

    Raises:
        CollectionStopped: Not homed, or a move failed (the message names the sample).
        NoObjectInView: No object found in the start view (the reason says why), or one outside
            ``xy_range``; nothing was moved.
    """
    from tqdm import tqdm

    out = Path(out)
    arm: Arm = robot.arm if isinstance(robot.arm, SafeArm) else SafeArm(robot.arm, limits,
                                                                         robot.clock.period)
    d, r = arm.pose().distance(start_pose)
    if d > HOMED_TOLERANCE_M or r > HOMED_TOLERANCE_RAD:
        raise CollectionStopped(f"not at the start pose ({d * 100:.1f} cm / {np.degrees(r):.0f} deg "
                                "away): home the arm first")
    samples = existing_samples(out)["real"]
    done = {s["id"] for s in samples}
    budget = n if max_images is None else max_images - sum(s.get("placement") == placement for s in samples)
    todo = [i for i in range(n) if sample_id(i) not in done][:max(0, budget)]
    if not todo:
        return 0
    seen = find_object(robot, xy_range)
    if seen.offset is None:
        raise NoObjectInView(seen.reason)
    offset = seen.offset
    kinds, probs = list(POSE_KINDS), np.array(list(POSE_KINDS.values()))
    for i in tqdm(todo, desc=f"real (placement {placement})", unit="img"):
        sid = sample_id(i)
        rng = np.random.default_rng([seed, i])
        kind = kinds[int(rng.choice(len(kinds), p=probs / probs.sum()))]
        dx, dy, dz, dyaw = sample_camera_delta(kind, rng, offset)
        _move(robot, arm, start_pose @ delta_pose(dx, dy, dz, dyaw), f"sample {sid} ({kind})")
        frame = robot.camera.get_frame()
        write_sample(out, "real", sid, frame.rgb, frame.depth, None)
        samples.append({"id": sid, "kind": kind, "seed": seed, "placement": placement,
                        "object_offset_m": [round(float(v), 4) for v in offset]})  # 0.1 mm
        save_domain(out, samples, "real")
        _move(robot, arm, start_pose, f"back to the start pose after sample {sid}")
    return len(todo)


def _missing(out: Path, n: int) -> int:
    """Real samples of ids 0..n-1 not yet in ``out``'s index."""
    have = {s["id"] for s in existing_samples(out)["real"]}
    return sum(sample_id(i) not in have for i in range(n))


def _stops(ask: Ask, prompt: str) -> bool:
    """Ask ``prompt``; whether the answer stops the collection (``q``, or no more input)."""
    try:
        answer = ask(prompt)
    except EOFError:  # stdin closed (a pipe, nohup): nobody can answer
        print("no answer on stdin: stopping (use --no-prompt for unattended runs)", flush=True)
        return True
    return answer.strip().lower() in STOP_ANSWERS


def collect_real(args: argparse.Namespace, connect: Callable[[], Robot] | None, ask: Ask = input) -> None:
    """Real collection inside the session lifecycle: connect, home, then placement after placement.

    Each placement: find the object in the start view, take up to ``args.prompt_every`` images
    around it (:func:`build_real_dataset`), home the arm, and ask the person to move or swap the
    object (Enter goes on, ``q`` stops). With ``args.no_prompt`` nobody is asked: the arm still
    homes and finds the object again between placements, and no object in view stops the run.
    In attended runs no object in view is said in one line and the person is asked to place one.

    Args:
        args: ``out``, ``n``, ``seed``, ``config``, ``robot_host``, ``prompt_every``, ``no_prompt``.
        connect: Opens the real robot (tests pass the fake's); default the RealSession.
        ask: Shows a prompt and returns the answer (default ``input``); never called with
            ``no_prompt``.

    Raises:
        HardwareError: The collection stopped (the reason names the sample and the move), or no
            object in view with ``no_prompt``.
        StoppedByPerson: ``q`` at a prompt (the arm homed first; the images taken are kept).
    """
    from app.hardware_config import load_hardware
    from app.lifecycle import RobotSession, SessionState

    hw = load_hardware(args.config)
    limits = load_safety()
    out, every, attended = Path(args.out), int(args.prompt_every), not args.no_prompt
    if connect is None:
        from app.hardware.real_session import RealSession

        def connect() -> Robot:
            return RealSession(hw, args.robot_host, limits=limits).robot

    placement = 1 + max((int(s.get("placement", -1)) for s in existing_samples(out)["real"]), default=-1)

    def collect(robot: Robot, placement: int) -> CollectionStopped | None:
        try:
            build_real_dataset(out, args.n, args.seed, robot, hw.start_pose(), limits, placement=placement,
                               max_images=every, xy_range=hw.object_xy_range)
        except CollectionStopped as e:
            return e
        return None

    stopped = False
    with RobotSession(connect, hw.start_pose(), limits=limits, home_joints=hw.home_joints,
                      place_height=hw.place_height) as session:
        session.start()
        session.home()
        while _missing(out, args.n) and not stopped:
            error = session.execute(partial(collect, placement=placement))
            if session.state == SessionState.SHUT_DOWN:
                raise CollectionStopped(f"data collection stopped: the robot session shut down "
                                        f"({session.fault_reason or 'no reason given'})")
            if isinstance(error, NoObjectInView):  # nothing moved: the arm is still at the start pose
                if not attended:
                    raise CollectionStopped(f"data collection stopped: {error} (--no-prompt: place an object "
                                            "under the camera and rerun the same command; the images taken are kept)")
                print(error, flush=True)
                stopped = _stops(ask, "place an object under the camera, then press Enter (q to stop): ")
                continue
            if error is not None:
                raise CollectionStopped(f"data collection stopped at {error}")
            session.home()  # after every placement, the last one included
            left = _missing(out, args.n)
            if left and attended:
                stopped = _stops(ask, f"placement {placement} done, {args.n - left}/{args.n} images: "
                                      "move or swap the object, then press Enter (q to stop): ")
            placement += 1
    if stopped:
        raise StoppedByPerson(f"data collection stopped at your request: {args.n - _missing(out, args.n)}/{args.n} "
                              f"real images in {out} (kept): rerun the same command to go on (lab: with --resume)")


def build_robot_dataset(args: argparse.Namespace, connect: Callable[[], Robot] | None = None,
                        ask: Ask = input) -> None:
    """A training set for a lab on the robot (``python -m app lab --backend real``): the sim half
    rendered in the ``sim`` domain with masks (the look the agent trained in), the real half
    collected on the robot (:func:`collect_real`). Resumable: both halves keep their samples.

    Args:
        args: ``out``, ``n``, ``seed``, ``config``, ``robot_host``, ``prompt_every``, ``no_prompt``
            as for :func:`app.tools.dataset.run_dataset`.
        connect: Opens the real robot (tests pass the fake's); default the RealSession.
        ask: Shows a prompt and returns the answer (default ``input``).

    Raises:
        StoppedByPerson: ``q`` at a prompt (the lab's dataset stage is then not done).
    """
    out = Path(args.out)
    with write_guard(out):
        out.mkdir(parents=True, exist_ok=True)
    samples = existing_samples(out)["sim"]
    build_sim_split(out, args.n, args.seed + SEED_STRIDE, "sim", True, "seen", "train sim", samples)
    save_domain(out, samples, "sim")
    collect_real(args, connect, ask)  # keeps the sim half of the index
