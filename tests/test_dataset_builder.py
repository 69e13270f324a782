"""Real data collection (``python -m app dataset --backend real``) through the panda_py fake:
homed first, every move inside the safety envelope, stopped with a reason on a failed move."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import panda_py
import pytest

from app.errors import HardwareError
from app.hardware.panda import hand_to_gripper
from app.hardware.real_session import RealSession
from app.hardware_config import HardwareConfig, load_hardware
from app.robot.interfaces import Frame, Intrinsics, Robot
from app.robot.safety import load_safety
from app.tools.dataset_builder import CollectionStopped, build_real_dataset, run_dataset
from app.transforms import Pose
from models.dataset import read_index
from tests.fakes import FakePandaPy
from tests.fakes.fake_panda_py import START_Q

HOST = "172.16.0.2"
AWAY_Q = np.array([0.1, 0.15, -0.1, -0.3, 0.0, 0.45, 0.3])  # rad off the homing posture: ~20 cm low


class StubCamera:
    """Blank frames at the model resolution."""

    def __init__(self, hw: HardwareConfig) -> None:
        self._k: Intrinsics = hw.intrinsics
        self.frames = 0

    @property
    def intrinsics(self) -> Intrinsics:
        return self._k

    def get_frame(self) -> Frame:
        self.frames += 1
        r = self._k.width
        return Frame(np.zeros((r, r, 3), np.uint8), np.ones((r, r), np.float32), self._k, 0.0, self.frames)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def hw() -> HardwareConfig:
    return load_hardware()


def _fake(**options: object) -> FakePandaPy:
    """A robot left where a previous run stopped: low, yawed (joints and pose consistent)."""
    q = START_Q + AWAY_Q
    return FakePandaPy(start_q=q, start_pose=panda_py.fk(q), fk=panda_py.fk, time_scale=0.03, **options)


def _args(out: Path, n: int) -> argparse.Namespace:
    return argparse.Namespace(backend="real", n=n, seed=0, out=str(out), config=None,
                              robot_host=HOST, objects="seen", domain="real")


def _connect(hw: HardwareConfig, fake: FakePandaPy):  # noqa: ANN202 - a test helper
    return lambda: RealSession(hw, HOST, camera=StubCamera(hw), panda_module=fake).robot


def test_real_collection_is_homed_and_stays_in_the_envelope(hw: HardwareConfig, tmp_path: Path) -> None:
    fake = _fake()
    assert run_dataset(_args(tmp_path, 3), connect=_connect(hw, fake)) == 0
    assert len(read_index(tmp_path)["domains"]["real"]) == 3
    limits = load_safety()
    names = [c.name for c in fake.calls]
    assert names.index("Panda.move_to_joint_position") < names.index("Panda.move_to_pose", names.index(
        "Panda.move_to_joint_position"))  # homed through joint space before the first sample
    targets = [hand_to_gripper(Pose.from_quat(*c.args)) for c in fake.calls_to("Panda.move_to_pose")]
    assert all(limits.pose_violation(t) == "" for t in targets)
    # Homing (straight up, joints, the start pose), then a sample pose drawn around the start
    # pose and back, three times, then homing again at the end.
    start = hw.start_pose()
    assert len(targets) == 2 + 2 * 3 + 1
    assert targets[1].distance(start)[0] < 1e-9 and targets[-1].distance(start)[0] < 1e-9
    for sample, back in zip(targets[2:8:2], targets[3:9:2], strict=True):
        assert back.distance(start)[0] < 1e-9
        assert sample.position[2] <= start.position[2] + 1e-9  # at or below the start height


def test_failed_move_stops_the_collection_with_its_reason(hw: HardwareConfig, tmp_path: Path) -> None:
    fake = _fake(obstacle_z=0.28, contact_reflex=False)  # something below 28 cm blocks the hand
    with pytest.raises(HardwareError, match=r"^data collection stopped at sample 0000\d+ \(\w+\): move "
                                            r"to .* short of the target"):
        run_dataset(_args(tmp_path, 10), connect=_connect(hw, fake))
    taken = read_index(tmp_path)["domains"]["real"]
    assert 0 < len(taken) < 10  # kept up to the failure: resumable


def test_collection_refuses_to_start_away_from_home(hw: HardwareConfig, tmp_path: Path) -> None:
    fake = _fake()
    robot: Robot = RealSession(hw, HOST, camera=StubCamera(hw), panda_module=fake).robot
    with pytest.raises(CollectionStopped, match=r"not at the start pose \(\d+\.\d cm / \d+ deg away\): "
                                                "home the arm first"):
        build_real_dataset(tmp_path, 2, 0, robot, hw.start_pose(), load_safety())
    assert not fake.calls_to("Panda.move_to_pose")
