"""Recovery nodes: "Re-grasp" (back off, approach again, bounded) and "Reacquire Object" (hold,
look, give up with a reason), ticked with scripted leaves (statuses per tick) and in the
simulator with :class:`tests.fakes.truth_models.TruthModels`.
"""

from __future__ import annotations

import numpy as np
import py_trees
import pytest
from py_trees.common import Status

from app.hardware_config import load_hardware
from app.robot.fault_injection import inject_sim, load_faults
from app.runner import _leaf_failure, run_episode
from app.tree_config import load_tree_config
from app.trees import build_tree
from behaviours.recovery import RegraspParams, RetryGrasp
from tests.fakes.truth_models import TruthModels


class Scripted(py_trees.behaviour.Behaviour):
    """A leaf that returns the next (status, message) of its script each tick (the last one
    repeats); ``runs`` counts how often it was started."""

    def __init__(self, name: str, script: list[tuple[Status, str]]) -> None:
        super().__init__(name)
        self.script, self.i, self.runs = script, 0, 0

    def initialise(self) -> None:
        self.runs += 1

    def update(self) -> Status:
        status, message = self.script[min(self.i, len(self.script) - 1)]
        self.i += 1
        self.feedback_message = message
        return status


OK, RUN, FAIL = Status.SUCCESS, Status.RUNNING, Status.FAILURE


def _retry(close_script, approach_script=None, attempts=3):
    approach = Scripted("Approach", approach_script or [(OK, "there")])
    close = Scripted("Close Gripper", close_script)
    attempt = py_trees.composites.Sequence("Grasp Attempt", memory=True, children=[approach, close])
    back = Scripted("Back Off Along Approach", [(RUN, "moving"), (OK, "backed off")] * 10)
    root = RetryGrasp(attempt, back, RegraspParams(max_attempts=attempts))
    py_trees.blackboard.Blackboard.clear()
    tree = py_trees.trees.BehaviourTree(root)
    return tree, root, approach, close, back


def _tick(tree, root, nodes):
    tree.tick()
    return (root.status, root.feedback_message, *[n.status for n in nodes])


def test_regrasp_backs_off_and_runs_the_whole_attempt_again() -> None:
    tree, root, approach, close, back = _retry([(FAIL, "nothing between the fingers"), (OK, "holding")])
    ticks = [_tick(tree, root, (approach, close, back)) for _ in range(4)]
    # tick 1: the attempt fails at Close Gripper -> Re-grasp RUNNING, backing off next
    assert ticks[0][0] == RUN and ticks[0][2:] == (OK, FAIL, Status.INVALID)
    assert ticks[0][1] == "attempt 1/3: backing off after 'Close Gripper: nothing between the fingers'"
    # tick 2: back-off running; tick 3: back-off done -> attempt 2 next
    assert ticks[1][0] == RUN and ticks[1][4] == RUN
    assert ticks[2][0] == RUN and ticks[2][1].startswith("attempt 2/3 (previous: 'Close Gripper")
    # tick 4: the attempt restarted from its first child (the approach ran again) and grasped
    assert ticks[3][0] == OK and ticks[3][2:4] == (OK, OK)
    assert approach.runs == 2 and close.runs == 2 and back.runs == 1
    assert py_trees.blackboard.Blackboard.get("regrasps") == 1


def test_regrasp_gives_up_after_max_attempts_with_the_last_reason() -> None:
    tree, root, approach, close, back = _retry([(FAIL, "empty 1"), (FAIL, "empty 2"), (FAIL, "empty 3")])
    statuses = []
    for _ in range(20):
        tree.tick()
        statuses.append(root.status)
        if root.status != RUN:
            break
    # 3 attempts, each failing, with 2 back-offs of 2 ticks between them: 1 + 2 + 1 + 2 + 1 ticks
    assert statuses == [RUN, RUN, RUN, RUN, RUN, RUN, FAIL]
    assert close.runs == 3 and back.runs == 2
    assert root.feedback_message == "gave up after 3/3 attempts, last: Close Gripper: empty 3"
    assert _leaf_failure(root) == ("Close Gripper", "empty 3")  # what the episode reports
    assert py_trees.blackboard.Blackboard.get("regrasps") == 2


def test_regrasp_passes_other_failures_through_at_once() -> None:
    tree, root, approach, close, back = _retry([(OK, "holding")], approach_script=[(FAIL, "no object")])
    tree.tick()
    assert root.status == FAIL and back.status == Status.INVALID and close.runs == 0
    assert _leaf_failure(root) == ("Approach", "no object")


def test_one_attempt_builds_no_regrasp_node(tmp_path) -> None:
    text = open(load_tree_config("drl_gan_vs").path).read().replace("max_attempts: 3", "max_attempts: 1")
    f = tmp_path / "once.yaml"
    f.write_text(text)
    names = [n.name for n in build_tree(load_tree_config(str(f)), load_hardware()).iterate()]
    assert "Re-grasp" not in names and "Close Gripper" in names
    names = [n.name for n in build_tree(load_tree_config("drl_gan_vs"), load_hardware()).iterate()]
    assert {"Re-grasp", "Grasp Attempt", "Back Off Along Approach", "Reacquire Object", "Note Object Seen"} <= set(names)
    drl_gan = [n.name for n in build_tree(load_tree_config("drl_gan"), load_hardware()).iterate()]
    assert "Return Along Approach" in drl_gan and "Reacquire Object" not in drl_gan


@pytest.mark.parametrize("edit, match", [
    ("max_attempts: 3", "max_attempts: 0"), ("wait_s: 1.5", "wait_s: -1"), ("back_off: 0.08", "back_off: 2"),
])
def test_bad_recovery_keys_are_one_line_errors(tmp_path, edit: str, match: str) -> None:
    from app.errors import ConfigError

    f = tmp_path / "bad.yaml"
    f.write_text(open(load_tree_config("drl_gan_vs").path).read().replace(edit, match))
    with pytest.raises(ConfigError, match=match.split(":")[0]):
        load_tree_config(str(f))


# ------------------------------------------------------------------------------ in the simulator
class _Hidden(TruthModels):
    """Perfect segmentation, except that the object is hidden while ``hidden`` is set."""

    hidden = False

    def segment(self, frame):
        mask = super().segment(frame)
        return np.zeros_like(mask) if self.hidden else mask

    def segment_raw(self, frame):
        return self.segment(frame)


def _watch(root, names):
    trace: list[dict[str, tuple[str, str]]] = []

    def hook(tick: int) -> None:
        trace.append({n.name: (n.status.value, n.feedback_message) for n in root.iterate() if n.name in names})
    return trace, hook


@pytest.mark.slow
def test_gripper_fail_is_regrasped_in_the_simulator(real_session, seen) -> None:
    s = real_session
    s.reset(seen.get("sugar_box"), 3)
    saved = s.robot
    try:
        inject_sim(s, [load_faults()["gripper_fail"]], np.random.default_rng(0))
        cfg = load_tree_config("vs_only")
        root = build_tree(cfg, load_hardware())
        trace, hook = _watch(root, ("Re-grasp", "Close Gripper", "Back Off Along Approach", "Until VS Converged"))
        res = run_episode(root, s.robot, TruthModels(s), cfg.max_ticks, on_tick=hook)
    finally:
        s.robot = saved
    assert res.success, (res.failed_node, res.reason)
    assert res.regrasps == 1
    failed = next(i for i, t in enumerate(trace) if t["Close Gripper"][0] == "FAILURE")
    moving = next(i for i, t in enumerate(trace) if t["Back Off Along Approach"][0] == "RUNNING")
    backed = next(i for i, t in enumerate(trace) if t["Re-grasp"][1].startswith("attempt 2/3"))  # back-off done
    assert failed < moving < backed
    again = next(i for i in range(backed, len(trace)) if trace[i]["Until VS Converged"][0] == "RUNNING")
    closed = next(i for i, t in enumerate(trace) if t["Close Gripper"][0] == "SUCCESS")
    assert failed < backed < again < closed
    assert trace[failed]["Re-grasp"][1].startswith("attempt 1/3: backing off after 'Close Gripper")
    assert trace[closed]["Re-grasp"] == ("RUNNING", "attempt 2/3 (previous: 'Close Gripper: nothing between the "
                                                    "fingers (closed to 80 mm)')")


@pytest.mark.slow
@pytest.mark.parametrize("hide_ticks, grasped", [(10, True), (80, False)])
def test_hidden_object_is_reacquired_or_given_up(real_session, seen, hide_ticks: int, grasped: bool) -> None:
    """Hidden 10 ticks: hold, then re-acquire and grasp. Hidden 80 ticks (> wait_s 1.5 s = 45
    ticks): give up at "Reacquire Object", naming how long it waited."""
    s = real_session
    s.reset(seen.get("sugar_box"), 4)
    cfg = load_tree_config("vs_only")
    root = build_tree(cfg, load_hardware())
    models = _Hidden(s)
    trace, watch = _watch(root, ("Reacquire Object", "Note Object Seen", "Linear VS Step"))
    poses = []
    window: dict[str, int] = {}

    def hook(tick: int) -> None:
        watch(tick)
        poses.append(s.robot.arm.pose().position.copy())
        if "start" not in window and trace[-1]["Linear VS Step"][0] == "SUCCESS" and tick > 30:
            window["start"] = tick
        start = window.get("start")
        models.hidden = start is not None and start <= tick < start + hide_ticks

    res = run_episode(root, s.robot, models, cfg.max_ticks, on_tick=hook)
    first = window["start"]  # index of the first tick whose frame is hidden: the next one
    holding = [t for t in trace if t["Reacquire Object"][0] == "RUNNING"]
    assert holding and all("object not seen" in t["Reacquire Object"][1] for t in holding)
    held = np.array(poses[first + 1:first + 1 + min(hide_ticks, 40)])
    assert np.ptp(held, axis=0).max() < 0.003  # the arm held still (m) while waiting
    if grasped:
        assert res.success, (res.failed_node, res.reason)
        assert res.reacquisitions == 1
        assert len(holding) == hide_ticks
        assert any(t["Note Object Seen"][1].startswith("re-acquired after") for t in trace)
    else:
        assert not res.success and res.failed_node == "Reacquire Object"
        assert res.reason.startswith("object not seen for 1.5 s (waited 1.5 s) (last seen at")
        assert res.reacquisitions == 0
        assert 44 <= len(holding) <= 46  # 1.5 s at 30 fps, then the failure


class _FakeArm:
    def __init__(self) -> None:
        self.twists: list[np.ndarray] = []
        self.stops = 0

    def command_velocity(self, twist, frame="camera") -> None:
        assert frame == "camera"
        self.twists.append(np.asarray(twist, float))

    def stop(self) -> None:
        self.stops += 1


class _FakeClock:
    period = 1 / 30

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t


@pytest.mark.parametrize("near_border", [True, False])
def test_reacquire_moves_back_towards_the_border_then_gives_up(near_border: bool) -> None:
    """Lost at the image border (last seen at x_g +0.3, y_g -0.1): the camera moves back that
    way at search_speed for at most search_distance, then holds; away from the border it only
    holds. After wait_s the node fails with the reason, every tick before that RUNNING."""
    from types import SimpleNamespace

    from behaviours.recovery import ReacquireObject, ReacquireParams

    py_trees.blackboard.Blackboard.clear()
    params = ReacquireParams(wait_s=1.0, search_speed=0.02, search_distance=0.01)
    leaf = ReacquireObject(params)
    arm, clock = _FakeArm(), _FakeClock()
    leaf.setup(robot=SimpleNamespace(arm=arm, clock=clock))
    bb = py_trees.blackboard.Client(name="test")
    bb.register_key("last_seen", access=py_trees.common.Access.WRITE)
    bb.last_seen = SimpleNamespace(x_g=0.3, y_g=-0.1, near_border=near_border)
    statuses = []
    for _ in range(40):
        leaf.tick_once()
        statuses.append(leaf.status)
        clock.t += clock.period
        if leaf.status != RUN:
            break
    assert statuses == [RUN] * 30 + [FAIL]  # 1.0 s at 30 fps, then the give-up
    assert leaf.feedback_message.startswith("object not seen for 1.0 s (waited 1.0 s) (last seen at x_g +0.30")
    if near_border:
        assert len(arm.twists) == 15  # 1 cm at 2 cm/s = 0.5 s of ticks
        v = arm.twists[0]
        assert v[0] > 0 and v[1] < 0 and np.linalg.norm(v[:2]) == pytest.approx(0.02) and not v[2:].any()
    else:
        assert arm.twists == []
    assert arm.stops == 2  # once when it starts to hold, once at the give-up
