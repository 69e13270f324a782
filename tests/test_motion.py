"""Motion leaves' reflex handling on the real backends (the panda_py fake): retry what a retry
can fix, back off and fail after a contact."""

from __future__ import annotations

import time

import numpy as np
import py_trees
import pytest
from py_trees.common import Status

from app.hardware.real_session import RealSession
from app.hardware_config import HardwareConfig, load_hardware
from app.robot.interfaces import Frame, Intrinsics
from app.robot.reflexes import BACKOFF_M, reflex_kind
from behaviours.motion import Descend, RecoverFromReflex
from tests.fakes import FakePandaPy
from tests.fakes.fake_panda_py import COMMUNICATION_MESSAGE, REFLEX_MESSAGE, STILL_MOVING_MESSAGE

HOST = "172.16.0.2"


class StubCamera:
    def __init__(self, hw: HardwareConfig) -> None:
        self._k: Intrinsics = hw.intrinsics

    @property
    def intrinsics(self) -> Intrinsics:
        return self._k

    def get_frame(self) -> Frame:
        r = self._k.width
        return Frame(np.zeros((r, r, 3), np.uint8), np.zeros((r, r), np.float32), self._k, 0.0, 0)

    def close(self) -> None:
        pass


@pytest.fixture(scope="module")
def hw() -> HardwareConfig:
    return load_hardware()


def _run(fake: FakePandaPy, hw: HardwareConfig) -> tuple[RecoverFromReflex, Status]:
    """Descend 10 cm under the reflex decorator until the tree ends."""
    with RealSession(hw, HOST, camera=StubCamera(hw), panda_module=fake) as session:
        root = RecoverFromReflex(Descend(0.10), max_recoveries=2)
        tree = py_trees.trees.BehaviourTree(root)
        tree.setup(robot=session.robot)
        end = time.monotonic() + 10.0
        tree.tick()
        while root.status == Status.RUNNING and time.monotonic() < end:
            session.robot.clock.advance()
            tree.tick()
    return root, root.status


def test_reflex_kinds() -> None:
    assert reflex_kind(" ".join(COMMUNICATION_MESSAGE.split())) == "retry"
    assert reflex_kind(STILL_MOVING_MESSAGE) == "retry"
    assert reflex_kind(f"move to (0.5, 0, 0.3) m failed: {REFLEX_MESSAGE}") == "contact"
    assert reflex_kind('libfranka: ... ["joint_reflex"]') == "contact"
    assert reflex_kind("move to (0.5, 0, 0.3) m ended 2.0 cm short of the target") is None


def test_a_communication_reflex_is_retried_towards_the_same_goal(hw: HardwareConfig) -> None:
    fake = FakePandaPy(reflex_on_move=True, reflex_message=COMMUNICATION_MESSAGE)
    root, status = _run(fake, hw)
    assert status == Status.SUCCESS and root.recoveries == 1
    first, second = (c.args[0] for c in fake.calls_to("Panda.move_to_pose"))
    np.testing.assert_allclose(first, second)  # resumed towards the first attempt's goal


def test_a_contact_reflex_backs_off_and_fails(hw: HardwareConfig) -> None:
    fake = FakePandaPy(reflex_on_move=True)  # cartesian_reflex halfway down: it hit something
    root, status = _run(fake, hw)
    assert status == Status.FAILURE and root.recoveries == 0
    assert root.feedback_message.startswith(f"contact reflex, backed off {BACKOFF_M * 100:.0f} cm: "
                                            "move to")
    assert "cartesian_reflex" in root.feedback_message
    descend, back_off = fake.calls_to("Panda.move_to_pose")  # no second descent
    assert descend.args[0][2] == pytest.approx(0.4)
    # up from where the reflex stopped it: about halfway (the arm lags its reference a little)
    assert back_off.args[0][2] == pytest.approx(0.45 + BACKOFF_M, abs=0.008)
    names = [c.name for c in fake.calls]
    second = [i for i, n in enumerate(names) if n == "Panda.move_to_pose"][1]
    assert "Panda.recover" in names[names.index("Panda.move_to_pose") + 1:second]  # recovered first
