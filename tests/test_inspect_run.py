"""``python -m app inspect``: run directories made by real simulated episodes are explained.

The episodes use :class:`tests.fakes.truth_models.TruthModels` (perfect segmentation) so that
the cause of each failure is known: the test makes it happen, then asks ``inspect`` for it.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import py_trees
import pytest

from app.errors import InputError
from app.tools.inspect_run import (
    PLOT_NAME,
    failing_leaf,
    format_report,
    inspect_run,
    main_inspect,
    read_records,
)

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
LOST_AT_TICK = 5  # the object leaves the scene after this tick
INTERRUPT_AT_TICK = 20  # Ctrl-C after this tick (VS is running by then)


def _episode(session: Any, spec: Any, seed: int, log_dir: Path,
             on_tick: Callable[[int], None] | None = None) -> Path:
    """One vs_only episode written as :func:`app.run.run_sim_episode` writes it, with a hook.

    A KeyboardInterrupt from ``on_tick`` leaves the run as Ctrl-C does: RUNNING, no result.
    """
    from app.hardware_config import load_hardware
    from app.logs import RunLog, finish_run_dir, make_run_dir
    from app.runner import run_episode
    from app.tree_config import load_tree_config
    from app.trees import build_tree
    from tests.fakes.truth_models import TruthModels

    cfg = load_tree_config("vs_only")
    session.reset(spec, seed)
    run_dir = make_run_dir(log_dir, cfg.name, spec.name, seed, 0)
    log = RunLog(run_dir / "ticks.jsonl")
    try:
        log.log.info("episode_start", tree=cfg.name, object=spec.name, seed=seed, backend="sim")
        res = run_episode(build_tree(cfg, load_hardware()), session.robot, TruthModels(session),
                          cfg.max_ticks, log, on_tick=on_tick)
        finish_run_dir(run_dir, {"tree": cfg.name, "object": spec.name, "seed": seed,
                                 "success": res.success, **asdict(res), "run_dir": str(run_dir)})
    except KeyboardInterrupt:
        pass
    finally:
        log.close()
    return run_dir


@pytest.fixture(scope="module")
def lost_blob_run(real_session, seen, tmp_path_factory) -> Path:
    """A failing grasp with a known cause: the object vanishes at tick 5 (the blob is lost)."""
    from app.transforms import Pose, rot_z

    def vanish(tick: int) -> None:
        if tick == LOST_AT_TICK:
            real_session.world.set_object_pose(Pose(np.array([2.0, 2.0, 0.02]), rot_z(0.0)))  # 2 m away

    return _episode(real_session, seen.get("sugar_box"), 13, tmp_path_factory.mktemp("lost"), vanish)


@pytest.mark.slow
def test_lost_blob_failure_is_explained(lost_blob_run: Path, capsys: pytest.CaptureFixture[str]) -> None:
    r = inspect_run(lost_blob_run)
    assert r.outcome == "failure"
    assert (r.failed_node, r.failure_source) == ("Reacquire Object", "tick log")
    assert r.reason.startswith("object not seen for 1.5 s")
    assert r.ticks == LOST_AT_TICK + 1 + 45  # the tick after the object left, then 1.5 s of waiting
    assert not r.notes  # the episode record agrees with the tick log
    # the wait and the give-up, as recovery events
    assert [(t, n, st) for t, n, st, _ in r.recoveries if n == "Reacquire Object"] == [
        (LOST_AT_TICK + 1, "Reacquire Object", "RUNNING"), (LOST_AT_TICK + 46, "Reacquire Object", "FAILURE")]
    assert main_inspect(str(lost_blob_run), as_json=False) == 0
    text = capsys.readouterr().out
    assert "Outcome: FAILURE" in text and "failed node: Reacquire Object: object not seen" in text
    assert "Recovery: 0 re-grasps, 0 re-acquisitions" in text
    assert main_inspect(str(lost_blob_run), as_json=True) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["failed_node"] == "Reacquire Object" and out["outcome"] == "failure"


@pytest.mark.slow
def test_successful_episode_shows_switch_and_plot(real_session, seen, tmp_path: Path) -> None:
    # seed 2: one of the shortest successful vs_only sugar-box episodes (~450 ticks)
    run_dir = _episode(real_session, seen.get("sugar_box"), 2, tmp_path)
    episode = json.loads((run_dir / "episode.json").read_text())
    assert episode["success"], episode
    r = inspect_run(run_dir)
    assert (r.outcome, r.failed_node, r.tree, r.object) == ("success", "", "vs_only", "sugar_box")
    assert r.vs_iterations == episode["vs_iterations"]
    assert len(r.vs_switches) >= 1 and (r.vs_switches[0].old, r.vs_switches[0].new) == ("linear", "full")
    assert r.final_vs_mode == "full" and r.final_vs_error is not None
    ticks = {n.node: n.ticks for n in r.nodes}
    assert ticks["Linear VS Step"] + ticks["Full VS Step"] == r.vs_iterations  # one step per iteration
    assert ticks[f"Grasp ({r.tree})"] == r.ticks  # the root is ticked every tick
    assert r.period_s == pytest.approx(1 / 30, rel=0.01)  # the simulator's 30 fps control period
    # Wall time: each leaf its own, each parent inclusive. Own times add up to the tree's time
    # (shared tick times would add up to many times it), and rendering outweighs a condition.
    nodes = {n.node: n for n in r.nodes}
    root = nodes[f"Grasp ({r.tree})"]
    assert not root.leaf and root.wall_s == pytest.approx(r.tree_wall_s, rel=1e-3)
    assert sum(n.own_wall_s for n in r.nodes) == pytest.approx(r.tree_wall_s, rel=0.02)
    leaves = [n for n in r.nodes if n.leaf]
    assert {"Acquire Frame", "Linear VS Step", "Object Near Border?"} <= {n.node for n in leaves}
    assert nodes["Acquire Frame"].own_wall_s > 3 * nodes["Object Near Border?"].own_wall_s
    assert r.outside_wall_s is not None and r.outside_wall_s > 0  # physics steps between ticks
    png = run_dir / PLOT_NAME
    assert r.plot_path == str(png)
    assert png.read_bytes()[:8] == PNG_SIGNATURE
    import matplotlib.image

    assert matplotlib.image.imread(png).shape[:2] == (600, 1000)  # figsize x dpi


@pytest.mark.slow
def test_interrupted_run_is_not_a_result(real_session, seen, tmp_path: Path) -> None:
    def ctrl_c(tick: int) -> None:
        if tick == INTERRUPT_AT_TICK:
            raise KeyboardInterrupt

    run_dir = _episode(real_session, seen.get("sugar_box"), 7, tmp_path, ctrl_c)
    with (run_dir / "ticks.jsonl").open("a") as f:  # killed mid-write: a torn last line
        f.write('{"tick": 21, "sim_time": 0.66, "nodes": [{"node": "Acq')
    assert (run_dir / "RUNNING").exists() and not (run_dir / "episode.json").exists()
    r = inspect_run(run_dir)
    assert r.outcome == "interrupted"
    assert (r.failed_node, r.reason) == ("", "")
    assert r.ticks == INTERRUPT_AT_TICK
    assert r.active_node  # what it was doing
    assert any("torn last line" in n for n in r.notes)
    assert any("RUNNING marker" in n for n in r.notes)
    assert r.vs_iterations > 0


def _tick(tick: int, root: str, nodes: list[tuple[str, str, str]], bb: dict[str, Any] | None = None) -> str:
    return json.dumps({"event": "tick", "tick": tick, "sim_time": round((tick - 1) / 30, 4),
                       "wall_time": tick * 0.04, "tick_ms": 5.0, "root": root,
                       "nodes": [{"node": n, "status": s, "message": m} for n, s, m in nodes],
                       "blackboard": bb or {}})


def _real_like_run(tmp_path: Path) -> Path:
    """A run directory as the real robot writes it: full VS, a border fallback, then a timeout."""
    d = tmp_path / "drl_gan_vs__real__s0_e0__x"
    d.mkdir()
    vs = [("Acquire Frame", "SUCCESS", "frame"), ("Until VS Converged", "RUNNING", ""),
          ("Grasp (drl_gan_vs)", "RUNNING", "")]
    lines = [json.dumps({"event": "episode_start", "tree": "drl_gan_vs", "backend": "real"})]
    modes = ["linear", "linear", "full", "full", "linear", "full"]  # iteration 5: border fallback
    fallbacks = [0, 0, 0, 0, 1, 1]
    for i, (mode, fb) in enumerate(zip(modes, fallbacks, strict=True), 1):
        lines.append(_tick(i, "RUNNING", vs, {"vs_iterations": i, "vs_mode": mode, "vs_fallbacks": fb,
                                              "vs_error": [0.01 / i, -0.02 / i, 0.1 / i],
                                              "vs_twist": [0.005, -0.01, 0, 0, 0, 0.05]}))
    lines.insert(3, json.dumps({"event": "safety_clamped", "command": "command_velocity", "detail": "speed limited"}))
    end = {"outcome": "timeout", "failed_node": "Until VS Converged", "reason": "episode exceeded 6 ticks",
           "ticks": 6, "vs_iterations": 6, "extra": {}}
    lines.append(json.dumps({"event": "episode_end", **end}))
    (d / "ticks.jsonl").write_text("\n".join(lines) + "\n")
    (d / "episode.json").write_text(json.dumps({"success": False, **end, "pose_error_cm": 1.2}))
    return d


def test_real_robot_run_with_fallback_needs_no_simulator(tmp_path: Path) -> None:
    d = _real_like_run(tmp_path)
    code = ("import sys; from pathlib import Path; from app.tools.inspect_run import inspect_run; "
            f"r = inspect_run(Path({str(d)!r})); "
            "assert 'pybullet' not in sys.modules and 'torch' not in sys.modules, 'simulator imported'; "
            "print(r.outcome)")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parents[1], check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "timeout"
    r = inspect_run(d)
    assert (r.backend, r.failed_node, r.failure_source) == ("real", "Until VS Converged", "episode record")
    assert [(s.iteration, s.old, s.new, s.fallback) for s in r.vs_switches] == [
        (3, "linear", "full", False), (5, "full", "linear", True), (6, "linear", "full", False)]
    assert r.vs_fallbacks == 1 and r.vs_iterations == 6
    assert r.episode_extras == {"pose_error_cm": 1.2}
    clamp = r.log_events["safety_clamped"]
    assert (clamp.count, clamp.first_tick, clamp.first) == (1, 3, "command_velocity: speed limited")
    assert r.final_vs_error == pytest.approx([0.01 / 6, -0.02 / 6, 0.1 / 6])
    assert (d / PLOT_NAME).read_bytes()[:8] == PNG_SIGNATURE


def test_exception_record_names_the_raising_leaf(tmp_path: Path) -> None:
    d = tmp_path / "run"
    d.mkdir()
    exc = {"event": "exception", "tick": 2, "node": "Segment Object", "reason": "unhandled ValueError: bad"}
    end = {"event": "episode_end", "outcome": "failure", "failed_node": "Segment Object",
           "reason": exc["reason"], "extra": {"exception": True}}
    (d / "ticks.jsonl").write_text("\n".join([_tick(1, "RUNNING", [("Open Gripper", "RUNNING", "")]),
                                              json.dumps(exc), json.dumps(end)]) + "\n")
    r = inspect_run(d, plot=False)
    assert (r.outcome, r.failed_node, r.failure_source) == ("failure", "Segment Object", "exception")
    assert r.plot_path is None and not (d / PLOT_NAME).exists()


def test_scoring_failure_after_tree_success_names_the_record(tmp_path: Path) -> None:
    """The tree held the object but the physics check did not: the episode record says why."""
    d = tmp_path / "run"
    d.mkdir()
    end = {"outcome": "success", "failed_node": "", "reason": "", "extra": {}}
    (d / "ticks.jsonl").write_text("\n".join([
        _tick(1, "SUCCESS", [("Lift And Verify", "SUCCESS", "holding"), ("Grasp (oracle)", "SUCCESS", "")]),
        json.dumps({"event": "episode_end", **end})]) + "\n")
    (d / "episode.json").write_text(json.dumps({
        "success": False, "tree_outcome": "success", **end, "failed_node": "Lift And Verify",
        "reason": "scoring: object not held 10 cm up"}))
    r = inspect_run(d)
    assert (r.outcome, r.failed_node, r.failure_source) == ("failure", "Lift And Verify", "episode record")
    assert "not held" in r.reason and r.vs_iterations == 0 and r.plot_path is None


def test_disagreeing_episode_record_is_noted(tmp_path: Path) -> None:
    d = tmp_path / "run"
    d.mkdir()
    nodes = [("Linear VS Converged?", "FAILURE", ""), ("Full VS", "FAILURE", ""),
             ("Linear VS Step", "FAILURE", "no valid depth over the object blob"), ("Grasp (vs_only)", "FAILURE", "")]
    end = {"event": "episode_end", "outcome": "failure", "failed_node": "Linear VS Converged?", "reason": ""}
    (d / "ticks.jsonl").write_text(_tick(1, "FAILURE", nodes) + "\n" + json.dumps(end) + "\n")
    r = inspect_run(d)
    assert (r.failed_node, r.failure_source) == ("Linear VS Step", "tick log")
    assert r.notes == ["the episode record names 'Linear VS Converged?'"]


VS_ROOT = [("VS Iteration", "FAILURE", ""), ("Until VS Converged", "FAILURE", "iteration failed: see children"),
           ("Grasp (vs_only)", "FAILURE", "")]


@pytest.mark.parametrize(("nodes", "expected"), [
    # Full VS was not chosen (normal control flow), then the linear step itself failed
    ([("Extract Features", "SUCCESS", "x_g"), ("Linear VS Converged?", "FAILURE", ""), ("Full VS", "FAILURE", ""),
      ("Linear VS Step", "FAILURE", "no valid depth over the object blob"), ("Choose VS Mode", "FAILURE", ""),
      *VS_ROOT], ("Linear VS Step", "no valid depth over the object blob")),
    # near the border: the inverted condition fails, the linear fallback runs, then depth is lost
    ([("Object Near Border?", "SUCCESS", "near"), ("Away From Border?", "FAILURE", "success -> failure"),
      ("Full VS", "FAILURE", ""), ("Linear VS Step", "FAILURE", "no valid depth"),
      ("Choose VS Mode", "FAILURE", ""), *VS_ROOT], ("Linear VS Step", "no valid depth")),
    # the loop ran out of iterations: its children succeeded, the decorator says why
    ([("Linear VS Step", "SUCCESS", "linear"), ("VS Iteration", "SUCCESS", ""),
      ("Until VS Converged", "FAILURE", "not converged after 900 iterations"), ("Grasp (vs_only)", "FAILURE", "")],
     ("Until VS Converged", "not converged after 900 iterations")),
    # a genuine condition failure (no other cause): reported
    ([("Object Visible?", "FAILURE", "3 object px"), ("Perceive", "FAILURE", "")], ("Perceive", "")),
    ([("Object Visible?", "FAILURE", "3 object px")], ("Object Visible?", "3 object px")),
])
def test_failing_leaf_skips_control_flow(nodes: list[tuple[str, str, str]], expected: tuple[str, str]) -> None:
    assert failing_leaf([{"node": n, "status": s, "message": m} for n, s, m in nodes]) == expected


def test_torn_and_unreadable_lines_are_skipped_with_notes(tmp_path: Path) -> None:
    p = tmp_path / "ticks.jsonl"
    p.write_text(_tick(1, "RUNNING", []) + "\nnot json\n" + _tick(2, "RUNNING", []) + '\n{"tick": 3, "sim')
    records, notes = read_records(p)
    assert [r["tick"] for r in records] == [1, 2]
    assert "unreadable line 2" in notes[0]
    assert "torn last line" in notes[1]


def test_bad_run_directory_is_an_input_error(tmp_path: Path) -> None:
    with pytest.raises(InputError, match="not found"):
        inspect_run(tmp_path / "missing")
    with pytest.raises(InputError, match="no ticks.jsonl"):
        main_inspect(str(tmp_path), as_json=False)
    with pytest.raises(InputError) as e:
        inspect_run(tmp_path / "missing")
    assert "\n" not in str(e.value)  # one line for the CLI


def test_segmentation_fallback_is_reported(tmp_path: Path) -> None:
    """The tick at which VS switched from D_X's mask to D_Y's shows in the report."""
    from app.tools.inspect_run import format_report, mask_source_changes

    ticks = [{"event": "tick", "tick": 1, "blackboard": {"pose_step": 1}},
             {"event": "tick", "tick": 4, "blackboard": {"mask_source": "adapted", "vs_iterations": 1}},
             {"event": "tick", "tick": 5, "blackboard": {"vs_iterations": 2}},
             {"event": "tick", "tick": 9, "blackboard": {"mask_source": "raw"}}]
    assert mask_source_changes(ticks) == [(4, "adapted"), (9, "raw")]
    d = tmp_path / "run"
    d.mkdir()
    (d / "ticks.jsonl").write_text("".join(json.dumps({**t, "sim_time": t["tick"] / 30, "wall_time": 0.0,
                                                       "nodes": [], "root": "RUNNING"}) + "\n" for t in ticks))
    r = inspect_run(d, plot=False)
    assert r.mask_sources == [(4, "adapted"), (9, "raw")]
    r.vs_iterations = 2  # the synthetic log has no VS errors: force the VS section
    text = format_report(r)
    assert "tick 9: VS mask from D_Y on the raw image (segmentation fallback)" in text


def test_rejected_static_blob_is_reported(tmp_path: Path) -> None:
    """A blob "Blob Moves With Scene?" rejected shows with its tick, before the mask fallback."""
    reject = "the blob at (18, 4) px stayed put while the camera moved: fixed in the image"
    ticks = [{"event": "tick", "tick": 4, "blackboard": {"mask_source": "adapted", "vs_iterations": 1},
              "nodes": [{"node": "Blob Moves With Scene?", "status": "SUCCESS", "message": "no verdict yet"}]},
             {"event": "tick", "tick": 30, "blackboard": {"mask_source": "raw", "static_blobs_found": 1},
              "nodes": [{"node": "Blob Moves With Scene?", "status": "FAILURE", "message": reject},
                        {"node": "Blob Moves With Scene?", "status": "SUCCESS", "message": "no verdict yet"}]}]
    d = tmp_path / "run"
    d.mkdir()
    (d / "ticks.jsonl").write_text("".join(json.dumps({**t, "sim_time": t["tick"] / 30, "wall_time": 0.0,
                                                       "root": "RUNNING"}) + "\n" for t in ticks))
    r = inspect_run(d, plot=False)
    assert r.static_blobs == [(30, reject)]
    r.vs_iterations = 2
    text = format_report(r)
    assert f"tick 30: blob rejected by 'Blob Moves With Scene?': {reject}" in text
    assert text.index("blob rejected") < text.index("tick 30: VS mask from D_Y")


def test_inspect_lists_the_picks_of_a_clearing_run() -> None:
    """clear_table runs: every pick with its outcome, failing node, ticks and chosen blob."""
    from app.tools.inspect_run import picks_of

    chose = {"node": "Extract Features", "status": "SUCCESS",
             "message": "chose the blob nearest the image centre of 3 at (60, 70) px; x_g +0.01"}
    ticks = [{"tick": 1, "nodes": [chose]}, {"tick": 2, "nodes": [], "blackboard": {"last_pick": {
                 "pick": 1, "outcome": "failed", "failed_node": "Extract Features", "reason": "blob lost"}}},
             {"tick": 3, "nodes": []},
             {"tick": 4, "nodes": [], "blackboard": {"last_pick": {"pick": 2, "outcome": "placed",
                                                                   "failed_node": "", "reason": ""}}}]
    picks = picks_of(ticks)
    assert [(p["pick"], p["outcome"], p["first_tick"], p["last_tick"]) for p in picks] == [
        (1, "failed", 1, 2), (2, "placed", 3, 4)]
    assert picks[0]["failed_node"] == "Extract Features" and picks[0]["chose"].startswith("chose the blob nearest")
    assert picks[1]["chose"] == ""


class _Busy(py_trees.behaviour.Behaviour):
    """A leaf whose update takes ``cost`` seconds of a fake clock."""

    def __init__(self, name: str, clock: list[float], cost: float,
                 status: py_trees.common.Status = py_trees.common.Status.SUCCESS) -> None:
        super().__init__(name)
        self.clock, self.cost, self.result = clock, cost, status

    def update(self) -> py_trees.common.Status:
        self.clock[0] += self.cost
        return self.result


def test_node_timer_own_and_inclusive_times() -> None:
    """Own time per leaf, inclusive per parent, on a fake clock (no timing of this machine)."""
    from app.runner import NodeTimer

    S = py_trees.common.Status
    clock = [0.0]
    a, b, c = _Busy("A", clock, 3.0), _Busy("B", clock, 1.0, S.FAILURE), _Busy("C", clock, 5.0)
    skipped = _Busy("D", clock, 100.0)
    sel = py_trees.composites.Selector("Sel", memory=False, children=[b, c, skipped])
    root = py_trees.composites.Sequence("Root", memory=False, children=[a, sel])
    tree = py_trees.trees.BehaviourTree(root)
    timer = NodeTimer(now=lambda: clock[0])
    tree.add_visitor(timer)
    tree.tick()
    own, incl = timer.own, timer.inclusive(root)
    assert [own[n.id] for n in (a, b, c)] == [3.0, 1.0, 5.0]  # each leaf its own, not the tick's 9
    assert own[sel.id] == 0.0 and own[root.id] == 0.0
    assert incl[sel.id] == 6.0 and incl[root.id] == 9.0
    assert skipped.id not in own and skipped.id not in incl  # not ticked


def test_inspect_shows_own_and_inclusive_times(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    d = tmp_path / "run"
    d.mkdir()
    nodes = [{"node": "Acquire Frame", "status": "SUCCESS", "message": "", "leaf": True, "own_ms": 20.0, "incl_ms": 20.0},
             {"node": "Near?", "status": "FAILURE", "message": "", "leaf": True, "own_ms": 1.0, "incl_ms": 1.0},
             {"node": "Root", "status": "RUNNING", "message": "", "leaf": False, "own_ms": 0.5, "incl_ms": 21.5}]
    lines = [json.dumps({"event": "tick", "tick": t, "sim_time": t / 30, "wall_time": 0.05 * t, "tick_ms": 21.5,
                         "root": "RUNNING", "nodes": nodes}) for t in (1, 2)]
    (d / "ticks.jsonl").write_text("\n".join(lines) + "\n" + json.dumps({"event": "episode_end", "outcome": "timeout"}) + "\n")
    r = inspect_run(d, plot=False)
    rows = {n.node: n for n in r.nodes}
    assert (rows["Acquire Frame"].wall_s, rows["Near?"].wall_s, rows["Root"].wall_s) == (0.04, 0.002, 0.043)
    assert rows["Root"].own_wall_s == 0.001 and not rows["Root"].leaf
    assert (r.tree_wall_s, r.outside_wall_s) == (0.043, 0.057)
    text = format_report(r)
    assert "Acquire Frame" in text and "0.040 own" in text and "0.043 incl" in text
    assert "a leaf's own wall time, a parent's inclusive" in text
    # A log from before per-node timing: no invented wall times, and a note says so.
    old = tmp_path / "old"
    old.mkdir()
    (old / "ticks.jsonl").write_text(_tick(1, "RUNNING", [("Acquire Frame", "SUCCESS", "")]) + "\n")
    r = inspect_run(old, plot=False)
    assert r.nodes[0].wall_s is None and r.tree_wall_s is None
    assert "no per-node wall times" in format_report(r)
