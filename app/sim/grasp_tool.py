"""Good grasps from geometry, verified by physics; and the oracle's success-rate campaign.

``python -m app grasps`` proposes 2-10 top-down grasps per object from its extents, executes
each one in the simulator on several randomised placements (:func:`app.sim.grasping.execute_grasp`)
and writes only the grasps that succeeded every time to ``config/objects/grasps.yaml``
(``NAME: {grasps: [[x, y, z, yaw_deg], ...]}``, object frame, metres and degrees). It can then
measure the oracle's success rate per object and write it to ``results/oracle_grasps.json``.

Proposals (object frame: x, y horizontal, z up, origin at the geometric centre):

* the finger line closes across the narrower horizontal side (yaw 90 deg when the object is
  longer along x); round objects get eight yaws 22.5 deg apart;
* the centre, plus offsets along the long axis (a quarter and an eighth of the length, kept off
  the ends by half a finger pad and, for capsules, the end caps);
* a grasp across the long side too, when it is narrow enough to fit between open fingers;
* height: straight-sided objects are held just below their top (the pads, ``finger_depth``
  tall, fully on the side); bulging ones (spheres, ellipsoids, capsules, meshes) across their
  widest section; never so low that the fingertips (``fingertip_reach`` below the grasp point,
  ``config/hardware.yaml``) come within :data:`TIP_MARGIN` of the table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import numpy as np

from app import CONFIG_DIR, ROOT
from app.errors import AppError, SimulationError
from app.hardware_config import HardwareConfig, load_hardware
from app.outputs import atomic_write_text, check_output_file
from app.sim.grasping import GraspOutcome, execute_grasp, nearest_grasp, oracle_grasp
from app.sim.objects import ObjectSpec, load_grasps, load_objects
from app.sim.session import SimSession
from app.transforms import Pose

Grasp = tuple[float, float, float, float]  # (x, y, z) m and yaw deg, object frame

TIP_MARGIN = 0.0015  # m the fingertips keep above the table (grasp point: + hardware fingertip_reach = 10 mm)
PAD_HALF_WIDTH = 0.01  # m, half the width of a finger pad (perpendicular to the closing line)
CROSS_MAX = 0.065  # m: a side this wide still passes between the 8 cm open fingers with margin
BULGING = {"sphere", "ellipsoid", "capsule", "mesh", "urdf"}  # widest at mid-height
ROUND_YAWS = tuple(22.5 * i for i in range(8))  # deg: any yaw is within 11.25 deg of one
MAX_GRASPS = 10  # at most this many good grasps per object
DEFAULT_GRASPS = CONFIG_DIR / "objects" / "grasps.yaml"
DEFAULT_RESULTS = ROOT / "results" / "oracle_grasps.json"


def grasp_height(spec: ObjectSpec, finger_depth: float, fingertip_reach: float) -> float:
    """Grasp point height (m, object frame) for a top-down grasp of ``spec``.

    Args:
        spec: The object (its frame at the geometric centre, resting on its base).
        finger_depth: How far the finger pads reach above the grasp point (m).
        fingertip_reach: How far the fingertips reach below the grasp point (m).
    """
    half = float(spec.extents[2]) / 2
    if spec.shape in BULGING:
        z = -finger_depth / 2  # pads centred on the widest section (z = 0)
    else:
        z = half - finger_depth  # pads fully on the side, their top at the object's top
    return float(max(z, -half + fingertip_reach + TIP_MARGIN))


def propose_grasps(spec: ObjectSpec, hw: HardwareConfig) -> list[Grasp]:
    """Candidate top-down grasps of ``spec`` from its geometry (object frame).

    Returns:
        2-10 grasps ``(x, y, z, yaw_deg)``, the centre one first.
    """
    ex, ey, _ = (float(v) for v in spec.extents)
    z = round(grasp_height(spec, hw.finger_depth, hw.fingertip_reach), 4)
    if spec.round:
        return [(0.0, 0.0, z, yaw) for yaw in ROUND_YAWS]
    along_x = ex >= ey
    long_side = max(ex, ey)
    across = 90.0 if along_x else 0.0  # finger line along the object's shorter horizontal axis
    cap = float(spec.size[0]) if spec.shape == "capsule" else 0.0  # hemispherical ends, radius
    limit = long_side / 2 - PAD_HALF_WIDTH - cap  # furthest offset that keeps the pads on
    out: list[Grasp] = [(0.0, 0.0, z, across)]
    for frac in (0.25, 0.125):  # of the length
        s = round(min(long_side * frac, limit), 4)
        if s >= 0.008:  # 8 mm: closer offsets duplicate the centre grasp
            for sign in (1.0, -1.0):
                out.append((sign * s, 0.0, z, across) if along_x else (0.0, sign * s, z, across))
    if long_side <= CROSS_MAX:
        out.append((0.0, 0.0, z, across - 90.0 if across else 90.0))
    return out[:MAX_GRASPS]


def grasp_pose(object_pose: Pose, grasp: Grasp) -> Pose:
    """A grasp ``(x, y, z, yaw_deg)`` in the object frame as a gripper pose in the base frame."""
    x, y, z, yaw = grasp
    return object_pose @ Pose.top_down(np.array([x, y, z]), np.radians(yaw))


def _trial_rng(seed: int, *keys: int) -> np.random.Generator:
    return np.random.default_rng([seed, *keys])


class Sessions:
    """One rigid and (on demand) one deformable simulator session, reused across objects."""

    def __init__(self, hw: HardwareConfig) -> None:
        self.hw = hw
        self._rigid: SimSession | None = None
        self._soft: SimSession | None = None

    def for_object(self, spec: ObjectSpec) -> SimSession:
        """The session that can hold ``spec`` (soft objects need a deformable world)."""
        if spec.shape == "soft":
            if self._soft is None:
                self._soft = SimSession(self.hw, domain="sim", deformable=True)
            return self._soft
        if self._rigid is None:
            self._rigid = SimSession(self.hw, domain="sim")
        return self._rigid

    def close(self) -> None:
        """Disconnect every session."""
        for s in (self._rigid, self._soft):
            if s is not None:
                s.close()

    def __enter__(self) -> Sessions:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def try_grasp(session: SimSession, spec: ObjectSpec, grasp: Grasp, rng: np.random.Generator) -> GraspOutcome:
    """Place ``spec`` at a random pose and execute ``grasp`` (its nearer yaw twin) by physics."""
    obj = session.reset(spec, session.sample_placement(spec, rng))
    target = nearest_grasp([grasp_pose(obj, grasp)], session.robot.arm.pose())
    try:
        return execute_grasp(session, target)
    except SimulationError as e:  # a compliant object went unstable: this grasp fails, by name
        return GraspOutcome(False, str(e), grasp_pose=target)


def verify_object(sessions: Sessions, spec: ObjectSpec, trials: int, seed: int,
                  log: bool = True) -> list[Grasp]:
    """The proposed grasps of ``spec`` that succeed in every one of ``trials`` placements."""
    good: list[Grasp] = []
    session = sessions.for_object(spec)
    for i, g in enumerate(propose_grasps(spec, sessions.hw)):
        fails = []
        for t in range(trials):
            out = try_grasp(session, spec, g, _trial_rng(seed, i, t))
            if not out.success:
                fails.append(out.reason)
                break  # one failure disqualifies the grasp
        if not fails:
            good.append(g)
        if log:
            verdict = "ok" if not fails else f"REJECTED ({fails[0]})"
            print(f"  {spec.name:16s} grasp {list(g)}: {verdict}", flush=True)
    return good


def write_grasps(path: Path, grasps: dict[str, list[Grasp]], note: str) -> None:
    """Write ``NAME: {grasps: [[x, y, z, yaw_deg], ...]}`` with a header comment."""
    lines = [f"# {line}" for line in note.splitlines()]
    for name, items in grasps.items():
        rows = ", ".join("[" + ", ".join(f"{v:g}" for v in g) + "]" for g in items)
        lines.append(f"{name}: {{grasps: [{rows}]}}")
    atomic_write_text(path, "\n".join(lines) + "\n")


def oracle_rates(objects: str | Sequence[ObjectSpec], trials: int, seed: int,
                 grasps_path: Path | None = None, log: bool = True) -> dict[str, dict[str, object]]:
    """Success rate of the oracle grasp per object over randomised placements.

    Args:
        objects: ``--objects``-style set names/paths (``"seen,unseen"``) or object specs.
        trials: Randomised placements (position and yaw) per object.
        seed: Seed of the placements.
        grasps_path: Good grasps to use instead of those the objects were loaded with.
        log: Print one line per object.

    Returns:
        Per object name: ``trials``, ``successes``, ``rate``, ``mean_lift_m``, ``soft``,
        ``seconds`` and the ``failures`` (trial index and reason).
    """
    specs = [o for _, o in load_objects(objects)] if isinstance(objects, str) else list(objects)
    if grasps_path is not None:
        table = load_grasps(grasps_path)
        specs = [replace(s, grasps=tuple(table.get(s.name, s.grasps))) for s in specs]
    out: dict[str, dict[str, object]] = {}
    with Sessions(load_hardware()) as sessions:
        for k, spec in enumerate(specs):
            session = sessions.for_object(spec)
            t0 = time.perf_counter()
            wins, lifts, failures = 0, [], []
            for t in range(trials):
                rng = _trial_rng(seed, k, t)
                session.reset(spec, session.sample_placement(spec, rng))
                try:
                    res = oracle_grasp(session)
                except SimulationError as e:  # a compliant object went unstable: a failure, named
                    res = GraspOutcome(False, str(e))
                wins += res.success
                lifts.append(res.lift_height)
                if not res.success:
                    failures.append({"trial": t, "reason": res.reason})
            out[spec.name] = {
                "trials": trials, "successes": wins, "rate": wins / max(trials, 1),
                "mean_lift_m": round(float(np.mean(lifts)) if lifts else 0.0, 4),
                "soft": spec.shape == "soft", "seconds": round(time.perf_counter() - t0, 1),
                "failures": failures,
            }
            if log:
                print(f"  oracle {spec.name:16s} {wins}/{trials}", flush=True)
    return out


PROG = "python -m app grasps"  # how the CLI runs this tool (recorded in every output)


def build_parser(prog: str = PROG) -> argparse.ArgumentParser:
    """The ``grasps`` command's flags."""
    ap = argparse.ArgumentParser(prog=prog, description=__doc__.splitlines()[0])
    ap.add_argument("--objects", default="seen,unseen", help="object sets or YAML paths, comma-separated")
    ap.add_argument("--trials", type=int, default=5, help="randomised placements that must all succeed per grasp")
    ap.add_argument("--seed", type=int, default=0, help="seed of the placements")
    ap.add_argument("--out", type=Path, default=DEFAULT_GRASPS, help="grasps YAML to write")
    ap.add_argument("--oracle-trials", type=int, default=0,
                    help="then measure the oracle on this many placements per object (0: skip)")
    ap.add_argument("--oracle-out", type=Path, default=DEFAULT_RESULTS, help="oracle rates JSON to write")
    ap.add_argument("--skip-verify", action="store_true", help="only measure the oracle with the grasps in --out")
    return ap


def main(argv: list[str] | None = None, prog: str = PROG) -> int:
    """Propose, verify and write good grasps; optionally measure the oracle.

    Args:
        argv: Flags (default: ``sys.argv[1:]``).
        prog: The command as typed, recorded in the outputs with the flags.

    Returns:
        0 when every object has >= 2 verified grasps (and every oracle rate is >= 95 %), 1 when
        not, 2 on a configuration error.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["--"]:  # a parent CLI may pass its own separator along
        argv = argv[1:]
    args = build_parser(prog).parse_args(argv)
    command = " ".join([prog, *argv])
    try:
        if not args.skip_verify:  # before any work: one line and exit 2
            check_output_file(args.out, "--out")
        if args.oracle_trials > 0:
            check_output_file(args.oracle_out, "--oracle-out")
        specs = load_objects(args.objects)
        status = 0
        if not args.skip_verify:
            found: dict[str, list[Grasp]] = dict(load_grasps(args.out))  # objects not verified now stay
            with Sessions(load_hardware()) as sessions:
                for _, spec in specs:
                    good = verify_object(sessions, spec, args.trials, args.seed)
                    found[spec.name] = good
                    if len(good) < 2:
                        print(f"error: {spec.name}: only {len(good)} verified grasps (need >= 2)", file=sys.stderr)
                        status = 1
            note = (f"Good grasps [x, y, z, yaw_deg] in each object's frame (m, deg), written by\n"
                    f"`{command}`: each succeeded in all {args.trials} randomised physics trials.")
            write_grasps(args.out, found, note)
            print(f"wrote {args.out}")
        if args.oracle_trials > 0:
            rates = oracle_rates([s for _, s in specs], args.oracle_trials, args.seed, grasps_path=args.out)
            worst = min(float(r["rate"]) for r in rates.values())  # type: ignore[arg-type]
            report = {"command": command, "seed": args.seed, "trials_per_object": args.oracle_trials,
                      "min_rate": worst, "objects": rates}
            args.oracle_out.parent.mkdir(parents=True, exist_ok=True)
            atomic_write_text(args.oracle_out, json.dumps(report, indent=2) + "\n")
            print(f"wrote {args.oracle_out} (lowest rate {worst:.2f})")
            if worst < 0.95:  # the bar: every object >= 95 %
                status = 1
        return status
    except AppError as e:
        print(f"error: {e}", file=sys.stderr)
        return e.exit_code


if __name__ == "__main__":
    sys.exit(main(prog="python -m app.sim.grasp_tool"))
