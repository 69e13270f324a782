"""The physical audit: table strikes, the object's push before closing, limits and unreachable targets."""

from __future__ import annotations

import numpy as np
import pytest

from app.sim.audit import PhysicalAudit
from app.sim.objects import load_object_set
from app.sim.session import SimSession
from app.transforms import Pose, rot_z

FAR = Pose(np.array([0.7, 0.25, 0.02]), rot_z(0.0))  # the object out of the hand's way


@pytest.fixture(scope="module")
def session():
    s = SimSession(domain="sim", seed=0)
    yield s
    s.close()


def _fresh(session: SimSession) -> PhysicalAudit:
    session.reset(load_object_set("seen").get("tuna_can"), FAR)
    return PhysicalAudit(session)


def test_pressing_the_fingers_into_the_table_is_a_strike_and_hovering_is_not(session) -> None:
    audit = _fresh(session)
    with audit:
        start = session.arm.pose()
        session.arm.move_to(Pose(np.array([0.5, 0.0, 0.012]), start.matrix))  # tips 3.5 mm above the table
        for _ in range(90):
            session.clock.advance()
        assert audit.record()["table_strikes"] == 0
        session.arm.move_to(Pose(np.array([0.5, 0.0, -0.01]), start.matrix))  # raw arm: no envelope
        for _ in range(30):
            session.clock.advance()
    rec = audit.record()
    assert rec["table_strikes"] == 1 and rec["audit"]["max_table_force_n"] > 1.0
    session.clock.advance()  # detached: no more counting
    assert audit.record()["table_strikes"] == 1


def test_object_push_is_measured_until_close_gripper_starts(session) -> None:
    audit = _fresh(session)
    session.world.set_object_pose(Pose(FAR.position + [0.02, 0.0, 0.0], FAR.matrix))
    assert audit.record()["object_pushed_m"] == pytest.approx(0.02, abs=0.001)  # not frozen: up to now
    audit.freeze()
    session.world.set_object_pose(Pose(FAR.position + [0.0, 0.0, 0.1], FAR.matrix))  # lifted: allowed
    assert audit.record()["object_pushed_m"] == pytest.approx(0.02, abs=0.001)


def test_unreachable_targets_and_joint_limits_are_counted(session) -> None:
    audit = _fresh(session)
    with audit:
        session.arm.move_to(Pose(np.array([1.5, 0.0, 0.3]), session.arm.pose().matrix))  # beyond the arm
        session.clock.advance()
        assert audit.record()["self_collisions_or_limits"] == 1
        w = session.world
        q = w.joint_positions()
        q[0] = w.upper[0]  # joint 1 at its limit
        w.reset_arm(q)
        session.clock.advance()
        session.clock.advance()  # still there: one onset, counted once
    rec = audit.record()
    assert rec["audit"] == {"joint_limit_hits": 1, "unreachable_targets": 1, "max_table_force_n": 0.0}
    assert rec["self_collisions_or_limits"] == 2
