"""The physics grasp judge, the oracle grasp and the grasp tool.

Episodes are short (~0.3-0.5 s of CPU each): one trial per object.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from app.hardware_config import load_hardware
from app.sim import grasp_tool, grasping
from app.sim.grasping import MIN_LIFT, execute_grasp, nearest_grasp, oracle_grasp
from app.sim.objects import load_object_set, load_objects
from app.transforms import Pose, rot_z


@pytest.fixture(scope="module")
def session():
    """A rigid-world session in the plain sim domain (rendering is not needed here)."""
    from app.sim.session import SimSession

    s = SimSession(domain="sim", seed=0)
    yield s
    s.close()


@pytest.fixture(scope="module")
def objects():
    """Every object of both sets by name."""
    return {o.name: o for _, o in load_objects("seen,unseen")}


def _place(session, spec, x: float = 0.52, y: float = 0.03, yaw: float = 0.6) -> Pose:
    return session.reset(spec, Pose(np.array([x, y, spec.rest_height + 0.002]), rot_z(yaw)))


@pytest.mark.parametrize("name", ["marker", "peach", "duck"])  # thin elongated, round, mesh
def test_oracle_grasp_lifts_and_holds(session, objects, name):
    spec = objects[name]
    rest = _place(session, spec)
    out = oracle_grasp(session)
    assert out.success, out.reason
    assert out.reason == ""
    # The lift criterion: at least 10 cm above the rest height after the 1 s hold, in both fingers.
    assert out.lift_height >= MIN_LIFT
    assert session.truth.object_pose().position[2] - rest.position[2] >= MIN_LIFT
    assert session.truth.object_lifted(rest.position[2], MIN_LIFT)
    assert out.ticks < 200  # bounded: ~4 s of simulated time at 30 ticks/s


def test_wrong_yaw_on_elongated_object_fails_with_reason(session, objects):
    spec = objects["spatula"]  # 11 cm long: cannot pass between the 8 cm fingers lengthwise
    obj = _place(session, spec)
    x, y, z, yaw = spec.grasps[0]
    wrong = obj @ Pose.top_down(np.array([x, y, z]), np.radians(yaw + 90.0))
    out = execute_grasp(session, wrong)
    assert not out.success
    assert out.reason
    assert out.lift_height < MIN_LIFT


def test_grasp_beside_object_closes_on_nothing(session, objects):
    # 2.5 cm wide: 6 cm off along the finger line, the block lies outside the open fingers
    # (each 4 cm from the centre). At 4 cm a finger lands on it and may push it into the grasp.
    spec = objects["jenga_block"]
    obj = _place(session, spec)
    x, y, z, yaw = spec.grasps[0]
    off = obj @ Pose.top_down(np.array([x, y + 0.06, z]), np.radians(yaw))
    out = execute_grasp(session, off)
    assert not out.success
    assert "closed on nothing" in out.reason
    assert abs(out.lift_height) < 0.01


def test_lift_below_ten_centimetres_is_a_failure(session, objects, monkeypatch):
    spec = objects["tomato_can"]
    _place(session, spec)
    monkeypatch.setattr(grasping, "LIFT_HEIGHT", 0.06)  # held, but only 6 cm up
    out = oracle_grasp(session)
    assert not out.success
    assert "< 10 cm" in out.reason
    assert 0.03 < out.lift_height < MIN_LIFT


def test_unreachable_grasp_fails_fast_with_reason(session, objects):
    _place(session, objects["jenga_block"])
    out = execute_grasp(session, Pose.top_down(np.array([1.5, 0.0, 0.05]), 0.0))
    assert not out.success
    assert out.reason.startswith("approach failed: unreachable")
    assert out.ticks < 5


def test_non_finite_grasp_pose_is_refused(session, objects):
    _place(session, objects["jenga_block"])
    out = execute_grasp(session, Pose.top_down(np.array([np.nan, 0.0, 0.05]), 0.0))
    assert not out.success and "not finite" in out.reason


def test_nearest_grasp_uses_the_half_turn_twin():
    current = Pose.top_down(np.array([0.5, 0.0, 0.3]), 0.0)
    far_yaw = Pose.top_down(np.array([0.5, 0.0, 0.02]), np.radians(170.0))
    g = nearest_grasp([far_yaw], current)
    assert np.isclose(np.degrees(g.yaw), -10.0, atol=1e-6)  # same grasp, turned by pi
    assert np.allclose(g.position, far_yaw.position)
    assert np.allclose(g.matrix[:, 2], far_yaw.matrix[:, 2])  # same approach axis


def test_nearest_grasp_prefers_the_closer_pose():
    current = Pose.top_down(np.array([0.5, 0.0, 0.3]), 0.0)
    near = Pose.top_down(np.array([0.51, 0.0, 0.02]), np.radians(30.0))
    far = Pose.top_down(np.array([0.56, 0.0, 0.02]), 0.0)
    assert nearest_grasp([far, near], current) is not far


def test_proposals_cross_the_narrow_side_and_stay_in_range():
    hw = load_hardware()
    seen = load_object_set("seen")
    spatula = grasp_tool.propose_grasps(seen.get("spatula"), hw)  # longer along x
    assert 2 <= len(spatula) <= 10
    assert all(g[3] == 90.0 for g in spatula)  # finger line along the object's y (narrow) axis
    assert all(abs(g[1]) < 1e-9 and abs(g[0]) < 0.055 for g in spatula)  # offsets along the long axis
    tuna = grasp_tool.propose_grasps(seen.get("tuna_can"), hw)  # round: several yaws at the centre
    assert len({g[3] for g in tuna}) == len(tuna) >= 4
    for spec in seen.objects:  # never lower than the fingertip clearance above the table
        for g in grasp_tool.propose_grasps(spec, hw):
            assert g[2] + spec.rest_height >= load_hardware().fingertip_reach + grasp_tool.TIP_MARGIN - 1e-9


def test_grasp_tool_verifies_writes_and_measures(tmp_path: Path, capsys):
    objs = tmp_path / "one.yaml"
    objs.write_text("name: one\nobjects:\n  - {name: block, shape: box, size: [0.07, 0.03, 0.03], mass: 0.1, "
                    "friction: 0.6, color: [0.5, 0.5, 0.5]}\n")
    out, rates = tmp_path / "grasps.yaml", tmp_path / "rates.json"
    argv = ["--objects", str(objs), "--trials", "1", "--seed", "3", "--out", str(out),
            "--oracle-trials", "2", "--oracle-out", str(rates)]
    assert grasp_tool.main(argv) == 0
    from app.sim.objects import load_grasps

    grasps = load_grasps(out)["block"]
    assert 2 <= len(grasps) <= 10
    report = json.loads(rates.read_text())
    assert report["seed"] == 3 and "--seed 3" in report["command"]
    assert report["objects"]["block"]["trials"] == 2
    assert report["objects"]["block"]["rate"] == 1.0


def test_grasp_tool_reports_bad_object_file(tmp_path: Path, capsys):
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\nobjects:\n  - {name: x, shape: box, size: [0.05, 0.03, 0.03], mass: 0.1, "
                   "friction: slippery, color: [0.5, 0.5, 0.5]}\n")
    assert grasp_tool.main(["--objects", str(bad), "--out", str(tmp_path / "g.yaml")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "objects[0].friction" in err
