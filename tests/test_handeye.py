"""Hand-eye calibration: the solve on exact poses, and the whole command in the simulator with
a camera mounted elsewhere than the hardware file says."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from app.errors import HardwareError
from app.hardware_config import HardwareConfig, load_hardware
from app.robot.safety import load_safety
from app.tools.handeye import (
    CALIBRATION_RESOLUTION,
    calibrate_hand_eye,
    calibration_poses,
    park_martin,
    place_sim_board,
    solve,
)
from app.transforms import Pose, rot_x, rot_y, rot_z

TOLERANCE_MM = 2.0  # mm: the recovered mount vs the true one (measured: 0.4 mm)
TOLERANCE_DEG = 0.5  # deg (measured: 0.09 deg)


@pytest.fixture(scope="module")
def hw() -> HardwareConfig:
    return load_hardware()


def _true_mount(hw: HardwareConfig) -> Pose:
    """The camera as actually mounted: 9 mm and 2.8 deg from the file's nominal mount."""
    return Pose(hw.mount.position + [0.004, 0.005, 0.006],
                hw.mount.matrix @ rot_z(np.radians(2.0)) @ rot_y(np.radians(-1.5)) @ rot_x(np.radians(1.0)))


def test_park_martin_recovers_a_mount_from_exact_views(hw: HardwareConfig) -> None:
    mount = _true_mount(hw)
    board = Pose(np.array([0.55, 0.05, 0.002]), rot_z(0.3))  # fixed in the base
    grippers = calibration_poses(board.position, hw.mount, 8, seed=1)
    boards = [(g @ mount).inverse() @ board for g in grippers]  # what the camera would see
    for solver in (park_martin, lambda g, b: solve(g, b)[0]):
        d, r = solver(grippers, boards).distance(mount)
        assert d < 1e-9 and r < 1e-6  # cv2.Rodrigues works near float32 precision


def test_hand_eye_in_the_simulator_recovers_the_true_mount(hw: HardwareConfig) -> None:
    from app.sim.session import SimSession

    true = _true_mount(hw)
    # The simulated camera sits where it really is; the calibration knows only the file.
    sim_hw = dataclasses.replace(hw, mount=true, resolution=CALIBRATION_RESOLUTION)
    centre = np.array([*(hw.start_pose() @ hw.mount).position[:2], 0.002])
    with SimSession(sim_hw, domain="sim", seed=0) as s:
        place_sim_board(s, centre)
        s.arm.teleport(hw.start_pose())
        result = calibrate_hand_eye(s.robot, hw, load_safety(), centre, n=12, seed=0)
        d_home, _ = s.arm.pose().distance(hw.start_pose())
    d, r = result.mount.distance(true)
    assert d * 1000 < TOLERANCE_MM and np.degrees(r) < TOLERANCE_DEG
    assert result.views >= 10 and result.residual_max_mm < 2.0
    true_change = true.distance(hw.mount)
    assert result.change_mm == pytest.approx(true_change[0] * 1000, abs=TOLERANCE_MM)
    assert result.as_dict()["mount"]["xyz"] == pytest.approx(list(true.position), abs=0.002)
    assert d_home < 0.005  # back at the start pose


def test_no_board_in_view_is_one_line(hw: HardwareConfig) -> None:
    from app.sim.session import SimSession

    centre = np.array([*(hw.start_pose() @ hw.mount).position[:2], 0.002])
    with SimSession(dataclasses.replace(hw, resolution=CALIBRATION_RESOLUTION), domain="sim") as s:
        s.arm.teleport(hw.start_pose())
        with pytest.raises(HardwareError, match=r"^hand-eye calibration: the board was found in 0 of 6 "
                                                r"views, 5 needed \(view 0: fewer than 8 board corners"):
            calibrate_hand_eye(s.robot, hw, load_safety(), centre, n=6, seed=0)
