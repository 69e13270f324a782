"""The clear_table tree: its loop, moves and config (fast), and one clearing run ticked in the
simulator with ground-truth models (slow)."""

from __future__ import annotations

import numpy as np
import py_trees
import pytest
from py_trees.common import Status

from app.errors import ConfigError
from app.transforms import Pose
from behaviours.clearing import UntilTableClear, subdivide


class _Scripted(py_trees.behaviour.Behaviour):
    """Returns the next status of ``script`` at each tick (the last one repeats)."""

    def __init__(self, name: str, script: list[Status], message: str = "") -> None:
        super().__init__(name)
        self.script, self.i, self.message = script, 0, message

    def update(self) -> Status:
        st = self.script[min(self.i, len(self.script) - 1)]
        self.i += 1
        self.feedback_message = self.message if st == Status.FAILURE else ""
        return st


def _loop(look: list[Status], grasp: list[Status], max_picks: int = 5) -> tuple[UntilTableClear, list[str]]:
    py_trees.blackboard.Blackboard.clear()
    look_node = _Scripted("Look For Objects", look)
    grasp_node = _Scripted("Close Gripper", grasp, "fingers closed on nothing")
    pick = py_trees.composites.Sequence("Pick", memory=True, children=[look_node, grasp_node])
    loop = UntilTableClear(pick, look_node, max_picks)
    statuses = []
    for _ in range(50):
        loop.tick_once()
        statuses.append(loop.status.value)
        if loop.status != Status.RUNNING:
            break
    return loop, statuses


def test_loop_ends_when_the_look_sees_nothing() -> None:
    S, F = Status.SUCCESS, Status.FAILURE
    loop, statuses = _loop([S, S, F], [S])
    assert statuses == ["RUNNING", "RUNNING", "SUCCESS"]
    assert [p["outcome"] for p in loop.picks] == ["placed", "placed"]
    assert loop.feedback_message == "table clear: no object seen after 2 picks"
    assert py_trees.blackboard.Blackboard.get("picks_done") == 2


def test_failed_picks_are_named_and_the_budget_ends_the_loop() -> None:
    S, F = Status.SUCCESS, Status.FAILURE
    loop, statuses = _loop([S], [F], max_picks=3)
    assert statuses[-1] == "SUCCESS" and len(loop.picks) == 3
    assert all(p == {"pick": k + 1, "outcome": "failed", "failed_node": "Close Gripper",
                     "reason": "fingers closed on nothing"} for k, p in enumerate(loop.picks))
    assert loop.feedback_message == "attempt budget spent: 3 picks"
    assert py_trees.blackboard.Blackboard.get("last_pick")["pick"] == 3


def test_subdivide_keeps_every_leg_short() -> None:
    a = Pose(np.array([0.5, 0.0, 0.5]), np.eye(3))
    b = Pose(np.array([0.5, 0.42, 0.2]), np.eye(3))
    legs = subdivide(a, b, 0.25)
    assert np.allclose(legs[-1].position, b.position) and len(legs) == 3
    prev = a.position
    for leg in legs:
        assert np.linalg.norm(leg.position - prev) <= 0.25 + 1e-9
        prev = leg.position
    assert len(subdivide(a, a, 0.25)) == 1
    # a 113 deg turn back to the start yaw (a failed campaign pick before this split): legs <= 45 deg
    from app.transforms import rot_z

    turned = Pose(b.position, rot_z(np.radians(113)))
    legs = subdivide(turned, a, 0.25)
    prev = turned.matrix
    for leg in legs:
        cos = (np.trace(prev.T @ leg.matrix) - 1) / 2
        assert np.degrees(np.arccos(np.clip(cos, -1, 1))) <= 45.0 + 1e-6
        prev = leg.matrix
    assert np.allclose(legs[-1].matrix, a.matrix) and np.allclose(legs[-1].position, a.position)


def test_clear_table_tree_structure_and_config_errors(tmp_path) -> None:
    from app.hardware_config import load_hardware
    from app.tree_config import load_tree_config
    from app.trees import build_tree

    cfg = load_tree_config("clear_table")
    assert cfg.clear is not None and cfg.clear.max_picks == 8 and cfg.first_blob == "nearest_centre"
    def pre(n: py_trees.behaviour.Behaviour) -> list[str]:
        return [n.name] + [m for c in n.children for m in pre(c)]

    names = pre(build_tree(cfg, load_hardware()))
    order = ["Until Table Clear", "Pick", "Return To Start", "Look For Objects", "Reset Pick", "Centre Over Object",
             "Move By Policy 1",
             "Visual Servoing", "Close Gripper", "Lift And Verify", "Carry To Bin", "Release"]
    assert [n for n in names if n in order][:len(order)] == order
    assert "Gate By Depth" in names and "Flatten Table" in names
    text = open(cfg.path).read()
    bad = tmp_path / "bad.yaml"
    bad.write_text(text.replace("max_picks: 8", "max_picks: 0"))
    with pytest.raises(ConfigError, match="clear.max_picks"):
        load_tree_config(str(bad))
    bad.write_text(text.replace("  max_leg:", "  bin_colour: 3\n  max_leg:"))
    with pytest.raises(ConfigError, match="bin_colour"):
        load_tree_config(str(bad))


@pytest.mark.slow
def test_clearing_run_places_both_objects_in_the_bin(tmp_path, monkeypatch) -> None:
    """A whole clearing run, ticked in the simulator with perfect segmentation (no weights): every
    pick tick-logged, both objects in the bin, the loop ends on "table clear"."""
    import json

    import app.scene_episode as se
    from app.sim.objects import load_object_set
    from app.sim.session import SimSession
    from app.tree_config import load_tree_config
    from tests.fakes.truth_models import TruthModels

    text = open(load_tree_config("clear_table").path).read()
    f = tmp_path / "clear_vs.yaml"  # VS-only picks: the truth models have no policy worth running
    f.write_text(text.replace("pose_steps: 3", "pose_steps: 0").replace("adapt: true", "adapt: false")
                 .replace("name: clear_table", "name: clear_vs"))
    cfg = load_tree_config(str(f))
    seen = load_object_set("seen")
    sessions: list[SimSession] = []

    class Session(SimSession):  # the episode builds its own session: keep it for the truth models
        def __init__(self, *a, **k) -> None:
            super().__init__(*a, **k)
            sessions.append(self)

    real_run = se.run_episode
    monkeypatch.setattr("app.sim.session.SimSession", Session)
    monkeypatch.setattr(se, "run_episode", lambda root, robot, models, *a, **k: real_run(
        root, robot, TruthModels(sessions[-1]), *a, **k))
    r = se.run_clear_episode(cfg, [seen.get("sugar_box"), seen.get("tomato_can")], 2, 5, "sim", None, tmp_path)
    assert r["picks_attempted"] >= 2 and r["n_placed"] == 2 and r["n_cleared"] == 2, (r.get("picks"), r)
    assert r["success"] and r["off_table"] == [] and r["table_strikes"] == 0
    assert r["end"].startswith("table clear")
    ticks = [json.loads(line) for line in open(f"{r['run_dir']}/ticks.jsonl")]
    picks = [t["blackboard"]["last_pick"] for t in ticks if "last_pick" in t.get("blackboard", {})]
    assert [p["pick"] for p in picks] == list(range(1, r["picks_attempted"] + 1))


@pytest.mark.slow
@pytest.mark.parametrize("target", ["Start", "Bin"])
def test_moves_unwind_a_wound_wrist_in_joint_space(target: str) -> None:
    """The failure of the clearing campaign ("Return To Start: unreachable target … 16 deg
    away"): with joint 7 wound near its limit, no straight Cartesian path reaches the start
    orientation; the straight leg fails and the joint-space unwind brings the gripper to the start
    pose, every command through the safety envelope."""
    from app.clearing import carry_to_bin, return_to_start
    from app.hardware_config import load_hardware
    from app.robot.interfaces import Robot
    from app.robot.safety import SafeArm, load_safety
    from app.sim.session import SimSession
    from app.tree_config import load_tree_config

    hw = load_hardware()
    params = load_tree_config("clear_table").clear
    with SimSession(hw, "sim", seed=0) as s:
        wound = np.array(hw.home_joints)
        wound[6] = s.world.upper[6] - 0.05  # joint 7 near its upper limit: the wrist turned ~-135 deg
        wound[0] = 0.35  # over the table towards the bin
        s.world.reset_arm(wound, finger_width=hw.max_width)
        s.arm.teleport(s.arm.pose())
        safe = SafeArm(s.arm, load_safety(hardware=hw), hw.period)
        robot = Robot(s.camera, safe, s.gripper, s.clock, backend="sim")
        root = (return_to_start if target == "Start" else carry_to_bin)(params, hw)
        for node in root.iterate():
            node.setup(robot=robot)
        failed, homed_at = [], []
        homing = next(n for n in root.iterate() if n.name == "Homing Posture")
        for _ in range(2000):
            root.tick_once()
            failed += [n.name for n in root.iterate() if n.status == Status.FAILURE]
            if homing.status == Status.SUCCESS and not homed_at:  # really there: a memory Selector once
                homed_at.append(s.world.joint_positions())       # stopped the joint move a tick in
            if root.status != Status.RUNNING:
                break
            s.clock.advance()
        assert root.status == Status.SUCCESS, [(n.name, n.feedback_message) for n in root.iterate()]
        assert f"Straight To {target}" in failed  # the straight way was tried and is out of reach
        assert homed_at and np.max(np.abs(homed_at[0] - np.array(hw.home_joints))) < 0.02
        if target == "Start":
            d, r = s.arm.pose().distance(hw.start_pose())
            assert d < 0.01 and np.degrees(r) < 2.0
        else:
            drop = np.array([*params.bin_position, params.drop_height])
            assert np.linalg.norm(s.arm.pose().position - drop) < 0.01
        assert not [e for e in safe.events if e.kind == "refused"]


def test_centre_over_object_moves_the_gripper_over_the_blob_nearest_the_centre() -> None:
    """A dev scene's lemon sat at the edge of the start view: the pose agent's steps took the
    camera down and lost it, five picks in a row. The gripper is first moved, at its height and
    orientation, over the blob nearest the image centre, its point from the camera and depth."""
    from types import SimpleNamespace

    import cv2
    from py_trees.common import Access

    from app.controllers.depth import DepthParams
    from app.controllers.features import FeatureParams
    from app.robot.interfaces import Frame, Intrinsics, MotionStatus
    from behaviours.clearing import CentreOverObject

    k = Intrinsics(120.0, 120.0, 63.5, 63.5, 128, 128)
    mount = Pose(np.array([0.0, 0.055, -0.10]), np.eye(3))
    start = Pose.top_down(np.array([0.5, 0.0, 0.5]), 0.0)

    class Arm:
        def __init__(self) -> None:
            self.goals: list[Pose] = []

        def pose(self) -> Pose:
            return start

        def camera_pose(self) -> Pose:
            return start @ mount

        def move_to(self, target: Pose) -> None:
            self.goals.append(target)

        def motion_status(self) -> MotionStatus:
            return MotionStatus.DONE

    mask = np.zeros((128, 128), np.uint8)
    cv2.circle(mask, (108, 30), 6, 1, -1)  # the lemon, near the corner
    cv2.circle(mask, (20, 110), 9, 1, -1)  # an object farther from the centre
    depth = np.full((128, 128), 0.60, np.float32)
    depth[mask == 1] = 0.55
    py_trees.blackboard.Blackboard.clear()
    arm = Arm()
    leaf = CentreOverObject(FeatureParams(), DepthParams(), "nearest_centre")
    leaf.setup(robot=SimpleNamespace(arm=arm))
    bb = py_trees.blackboard.Client(name="test")
    for key in ("mask", "frame"):
        bb.register_key(key, access=Access.WRITE)
    bb.mask = mask
    bb.frame = Frame(np.zeros((128, 128, 3), np.uint8), depth, k, 0.0, 1)
    assert leaf.tick_once() is None and leaf.status == Status.SUCCESS, leaf.feedback_message
    (goal,) = arm.goals
    u, v = 108, 30  # the blob's centroid; its point at 0.55 m in the camera frame, then in the base frame
    point = (start @ mount).matrix @ np.array([(u - 63.5) / 120 * 0.55, (v - 63.5) / 120 * 0.55, 0.55]) \
        + (start @ mount).position
    assert np.allclose(goal.position[:2], point[:2], atol=0.004) and goal.position[2] == start.position[2]
    assert np.allclose(goal.matrix, start.matrix)
    assert "moved" in leaf.feedback_message
    bb.mask = np.zeros((128, 128), np.uint8)
    leaf.tick_once()
    assert leaf.status == Status.FAILURE and "no object blob to centre on" in leaf.feedback_message


def test_a_finished_move_does_not_stop_the_next_one_when_its_selector_clears_it() -> None:
    """py_trees' Selector with memory invalidates its finished children on the next tick; the
    failed straight move then stopped the joint-space unwind its sibling had just started (a test
    campaign's scene: "Homing Posture" succeeded a tick in, the arm still wound)."""
    from types import SimpleNamespace

    from app.robot.interfaces import MotionStatus
    from behaviours.clearing import MoveThrough, MoveToJoints

    class Arm:
        def __init__(self) -> None:
            self.status, self.stops, self.ticks_left = MotionStatus.IDLE, 0, 0

        def pose(self) -> Pose:
            return Pose.top_down(np.array([0.5, 0.2, 0.2]), 0.0)

        def move_to(self, target: Pose) -> None:
            self.status = MotionStatus.FAILED  # unreachable: refused at once

        def move_to_joints(self, q: np.ndarray) -> None:
            self.status, self.ticks_left = MotionStatus.MOVING, 5

        def motion_status(self) -> MotionStatus:
            return self.status

        def motion_error(self) -> str:
            return "unreachable target" if self.status == MotionStatus.FAILED else ""

        def stop(self) -> None:
            self.stops += 1
            if self.status == MotionStatus.MOVING:
                self.status = MotionStatus.DONE

        def advance(self) -> None:
            if self.status == MotionStatus.MOVING:
                self.ticks_left -= 1
                if self.ticks_left == 0:
                    self.status = MotionStatus.DONE

    arm = Arm()
    home = MoveToJoints("Homing Posture", (0.0,) * 7)
    root = py_trees.composites.Selector("Return To Start", memory=True, children=[
        MoveThrough("Straight To Start", lambda here: [here], 0.25), home])
    for n in root.iterate():
        n.setup(robot=SimpleNamespace(arm=arm))
    ticks = 0
    while ticks < 20:
        root.tick_once()
        ticks += 1
        if root.status != Status.RUNNING:
            break
        arm.advance()
    assert root.status == Status.SUCCESS and arm.stops == 0 and ticks == 6  # the whole 5-tick joint move
