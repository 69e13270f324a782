"""``calibrate``: the VS targets of the hardware file match what the simulated camera sees."""

import numpy as np

from app.hardware_config import load_hardware
from app.tools.calibrate import TOLERANCE_PX, calibrate
from app.transforms import Pose


def test_default_mount_targets_match_the_render() -> None:
    rows = calibrate(load_hardware())
    assert len(rows) == 4
    assert all(r.ok for r in rows), [(r.z_g, r.error_px, r.error_deg) for r in rows]
    # y* = -0.055 / Z_g for a camera 5.5 cm beside the grasp axis
    for r in rows:
        assert r.y_target == np.float64(-0.055 / r.z_g) or abs(r.y_target + 0.055 / r.z_g) < 1e-9


def test_miscalibrated_mount_is_caught() -> None:
    hw = load_hardware()
    wrong = Pose(hw.mount.position + np.array([0.0, 0.015, 0.0]), hw.mount.matrix)  # 1.5 cm off
    rows = calibrate(hw, assumed_mount=wrong)
    assert not all(r.ok for r in rows)
    assert max(r.error_px for r in rows) > TOLERANCE_PX
