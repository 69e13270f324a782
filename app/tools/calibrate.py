"""``python -m app calibrate``: compute the VS targets of a hardware file and check them.

For the camera mount and intrinsics in ``config/hardware.yaml`` (or ``--config``), prints the
targets (x*_g, y*_g, alpha*) over the range of object distances VS works at, and checks them in
the simulator: an elongated box is placed exactly on the grasp axis, across the finger line, at
several heights below the camera; its blob's measured features (from the true mask, moments as
at run time) must match the computed targets within ``TOLERANCE_PX`` pixels and
``TOLERANCE_DEG`` degrees. In the simulator the camera sits where the file says, so this checks
the target computation and projection end to end; on a real robot the same check with a bar
placed on the grasp axis catches a wrong mount (``assumed_mount`` plays that role in tests).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np

from app.controllers.features import FeatureParams, extract_features
from app.controllers.vs import compute_targets
from app.hardware_config import HardwareConfig, depth_range_checks, load_hardware
from app.sim.objects import ObjectSpec
from app.sim.session import SimSession
from app.transforms import Pose, delta_pose, rot_z

TOLERANCE_PX = 2.0  # px at 128 px: the blob centroid of a rendered box vs the projected axis
TOLERANCE_DEG = 3.0  # deg: orientation of the box's primary axis vs alpha*
PROBE = ObjectSpec(name="calibration_bar", shape="box", size=(0.02, 0.08, 0.01), mass=0.05, friction=0.6,
                   color=(0.9, 0.1, 0.1))  # a thin bar: its top face sits 1 cm above the table
DESCENTS = (0.0, 0.10, 0.20, 0.30)  # m below the start pose: VS works from 0.6 m down to 0.3 m


@dataclass
class CalibrationRow:
    """Computed vs measured targets at one height."""

    z_g: float
    x_target: float
    y_target: float
    alpha_target_deg: float
    x_measured: float
    y_measured: float
    alpha_measured_deg: float
    error_px: float
    error_deg: float

    @property
    def ok(self) -> bool:
        """Within both tolerances."""
        return self.error_px <= TOLERANCE_PX and self.error_deg <= TOLERANCE_DEG


def calibrate(hw: HardwareConfig, assumed_mount: Pose | None = None) -> list[CalibrationRow]:
    """Check the computed targets against the simulator at each of :data:`DESCENTS`.

    Args:
        hw: Hardware file (the simulated camera is mounted as it says).
        assumed_mount: The mount the targets are computed from (default ``hw.mount``); a
            different one stands for a miscalibrated file.
    """
    mount = assumed_mount or hw.mount
    rows = []
    k = hw.intrinsics
    with SimSession(hw, domain="sim", seed=0) as s:
        for descent in DESCENTS:
            grip = hw.start_pose() @ delta_pose(0.0, 0.0, descent, 0.0)
            # The bar lies on the grasp axis with its long side across the finger line.
            bar = Pose(np.array([grip.position[0], grip.position[1], PROBE.rest_height]), rot_z(grip.yaw))
            s.reset(PROBE, bar, settle=False)
            s.arm.teleport(grip)
            s.camera.invalidate()
            s.camera.get_frame()
            mask = s.truth.last_mask()
            top = np.array([bar.position[0], bar.position[1], PROBE.extents[2]])
            z_g = float(s.arm.camera_pose().inverse().apply(top)[2])
            t = compute_targets(z_g, mount)
            f = extract_features(mask, k, FeatureParams())
            if not f.ok:
                rows.append(CalibrationRow(z_g, t.x, t.y, np.degrees(t.alpha), np.nan, np.nan, np.nan, np.inf, np.inf))
                continue
            err_px = float(np.hypot((f.x_g - t.x) * k.fx, (f.y_g - t.y) * k.fy))
            d_alpha = (f.alpha - t.alpha + np.pi / 2) % np.pi - np.pi / 2
            rows.append(CalibrationRow(z_g, t.x, t.y, float(np.degrees(t.alpha)), f.x_g, f.y_g,
                                       float(np.degrees(f.alpha)), err_px, float(abs(np.degrees(d_alpha)))))
    return rows


def tallest_object() -> float:
    """Height (m) of the tallest object of the seen and unseen sets: the nearest surface."""
    from app.sim.objects import load_object_set

    return max(float(o.extents[2]) for name in ("seen", "unseen") for o in load_object_set(name).objects)


def run_calibrate(args: argparse.Namespace) -> int:
    """Entry point: print the table; exit 0 when every check passes, 1 otherwise.
    ``calibrate hand-eye`` solves the camera mount instead (:mod:`app.tools.handeye`)."""
    hw = load_hardware(args.config)
    if getattr(args, "what", "vs") == "hand-eye":
        from app.tools.handeye import run_hand_eye

        return run_hand_eye(args, hw)
    rows = calibrate(hw)
    tallest = tallest_object()
    ranges = depth_range_checks(hw, DESCENTS, tallest)
    if getattr(args, "json", False):
        print(json.dumps([r.__dict__ | {"ok": r.ok} for r in rows]
                         + [{"depth_range": list(hw.depth_range)} | r.__dict__ for r in ranges]))
    else:
        lo, hi = hw.depth_range
        print(f"Depth range of camera profile '{hw.camera_profile}': {lo}-{hi} m (table and the top "
              f"of the tallest object, {tallest * 100:.0f} cm, must both read)")
        for r in ranges:
            where = "start pose" if r.descent == 0 else f"{r.descent * 100:.0f} cm below it"
            print(f"  {where:17s} table {r.table:.3f} m, object top {r.nearest:.3f} m: "
                  f"{'inside' if r.ok else 'OUTSIDE the depth range'}")
        print(f"VS targets for {hw.source} (camera at {hw.mount.position.tolist()} m in the gripper frame)")
        print("  Z_g (m)   x*      y*      alpha*   | measured x    y       alpha   | error")
        for r in rows:
            print(f"  {r.z_g:6.3f}  {r.x_target:+.4f} {r.y_target:+.4f} {r.alpha_target_deg:+6.1f}  | "
                  f"{r.x_measured:+.4f} {r.y_measured:+.4f} {r.alpha_measured_deg:+6.1f}  | "
                  f"{r.error_px:.2f} px {r.error_deg:.1f} deg {'ok' if r.ok else 'FAILED'}")
    return 0 if all(r.ok for r in rows) and all(r.ok for r in ranges) else 1
