"""The evaluation campaign: plan and seeds, scoring, results file, summaries, resume, kill -9.

Campaigns here use the ``oracle`` tree (no learned models) on a two-object set whose good grasps
are written inline, so they need neither weights nor ``config/objects/grasps.yaml``.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import py_trees
import pytest

from app import episode as ep
from app.campaigns import evaluate as ev
from app.campaigns.report import read_results
from app.campaigns.stats import newcombe_difference, wilson_interval
from app.errors import ConfigError
from app.transforms import Pose, rot_y
from app.tree_config import load_tree_config

ROOT = Path(__file__).resolve().parents[1]
# Top-down grasps at the centre, fingers across the narrow side (box) / any yaw (can).
OBJECTS = """
name: tiny
objects:
  - {name: block, shape: box, size: [0.08, 0.03, 0.03], mass: 0.1, friction: 0.6, color: [0.2, 0.4, 0.9],
     grasps: [[0.0, 0.0, 0.0, 90.0], [0.02, 0.0, 0.0, 90.0]]}
  - {name: can, shape: cylinder, size: [0.03, 0.06], mass: 0.2, friction: 0.6, color: [0.8, 0.1, 0.1], round: true,
     grasps: [[0.0, 0.0, 0.01, 0.0]]}
"""
SUMMARY_KEYS = {"trials", "successes", "rate", "ci95", "paper_score_rate"}
LINE_KEYS = {"tree", "object", "object_set", "trial", "seed", "success", "paper_success", "failed_node", "reason",
             "pose_error", "pose_steps", "vs_iterations", "vs_fallbacks", "sim_time", "wall_time", "run_dir",
             "safety_refusals", "safety_clamps", "table_strikes", "object_pushed_m", "self_collisions_or_limits",
             "gap_sample", "gap", "gap_sha256", "split"}


@pytest.fixture
def objects(tmp_path: Path) -> str:
    path = tmp_path / "tiny.yaml"
    path.write_text(OBJECTS)
    return str(path)


@pytest.fixture
def oracle_copy(tmp_path: Path) -> str:
    """A second tree by YAML path: the oracle under another name."""
    path = tmp_path / "oracle_b.yaml"
    path.write_text(Path(load_tree_config("oracle").path).read_text().replace("name: oracle", "name: oracle_b"))
    return str(path)


def _args(out: Path, objects: str, *extra: str, trees: str = "oracle", trials: int = 2, workers: int = 1):
    return ev.build_parser().parse_args(["--trees", trees, "--objects", objects, "--trials", str(trials),
                                         "--seed", "0", "--out", str(out), "--workers", str(workers), *extra])


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / ev.RESULTS).read_text().splitlines()]


# ------------------------------------------------------------------------------ plan and scoring
def test_seeds_depend_on_object_and_trial_not_tree(objects: str, oracle_copy: str) -> None:
    from app.sim.objects import load_object_set

    trees = [load_tree_config("oracle"), load_tree_config(oracle_copy)]
    plan = ev.plan_trials(trees, [load_object_set(objects)], 3, base_seed=7)
    assert len(plan) == 2 * 2 * 3
    by_key = {}
    for t in plan:
        by_key.setdefault((t.object, t.trial), set()).add(t.seed)
    assert all(len(seeds) == 1 for seeds in by_key.values())  # every tree: the same placement
    assert len({next(iter(s)) for s in by_key.values()}) == 6  # objects and trials differ
    assert ev.trial_seed(7, "block", 1) == ev.trial_seed(7, "block", 1) != ev.trial_seed(8, "block", 1)
    assert 0 <= ev.trial_seed(7, "block", 1) < 2**31
    with pytest.raises(ConfigError, match="tree names must differ"):
        ev.plan_trials([trees[0], trees[0]], [load_object_set(objects)], 1, 0)
    with pytest.raises(ConfigError, match="no object 'mug'"):
        ev.plan_trials(trees, [load_object_set(objects)], 1, 0, only_object="mug")


def test_dev_and_test_seed_streams_are_disjoint_and_legacy_is_unchanged(objects: str) -> None:
    import hashlib

    from app.sim.objects import load_object_set

    dev = {ev.trial_seed(s, o, k, "dev") for s in range(3) for o in ("block", "can", "mug") for k in range(200)}
    test = {ev.trial_seed(s, o, k, "test") for s in range(3) for o in ("block", "can", "mug") for k in range(200)}
    assert all(x % 2 == 0 for x in dev) and all(x % 2 == 1 for x in test) and not dev & test
    assert len(dev) == len(test) == 1800 and max(dev | test) < 2**31
    legacy = int.from_bytes(hashlib.sha256(b"7/block/1").digest()[:4], "big") & 0x7FFFFFFF
    assert ev.trial_seed(7, "block", 1) == legacy  # the seeds of every campaign before the split
    plan = ev.plan_trials([load_tree_config("oracle")], [load_object_set(objects)], 2, 0, split="test")
    assert [t.seed for t in plan] == [ev.trial_seed(0, t.object, t.trial, "test") for t in plan]
    with pytest.raises(ConfigError, match="--split: expected one of"):
        ev.trial_seed(0, "block", 0, "train")


def test_pose_errors_hand_computed() -> None:
    grasps = [Pose.top_down(np.array([0.50, 0.00, 0.02]), 0.0), Pose.top_down(np.array([0.60, 0.0, 0.02]), 0.0)]
    # straight down, 3 cm / 4 cm off the first grasp, 5 cm above it, finger line at 100 deg vs axis at -85 deg
    e = ep.pose_errors(Pose.top_down(np.array([0.53, 0.04, 0.07]), np.radians(100)), grasps, np.radians(-85))
    assert e["position_m"] == pytest.approx(0.05) and e["height_m"] == pytest.approx(0.05)
    assert e["yaw_deg"] == pytest.approx(5.0)  # 185 deg modulo 180
    # tilted 45 deg towards +x from 10 cm above (0.5, 0): its axis meets z = 0.02 at x = 0.58
    tilted = Pose(np.array([0.50, 0.0, 0.10]), rot_y(np.radians(-45)) @ Pose.top_down(np.zeros(3), 0.0).matrix)
    e = ep.pose_errors(tilted, grasps, None)
    assert e["position_m"] == pytest.approx(0.02, abs=1e-9) and e["height_m"] == pytest.approx(0.08)
    assert e["yaw_deg"] is None  # round object: no grasp axis
    assert ep.pose_errors(tilted, [], 0.0)["position_m"] is None


def test_paper_success_needs_close_and_4_cm() -> None:
    assert ep.paper_success({"at": "close", "position_m": 0.039})
    assert ep.paper_success({"at": "close", "position_m": 0.04})
    assert not ep.paper_success({"at": "close", "position_m": 0.041})
    assert not ep.paper_success({"at": "end", "position_m": 0.0})  # failed before closing
    assert not ep.paper_success({"at": "close", "position_m": None})


class _Truth:
    """Ground truth that refuses reads while locked, like app.sim.truth.GroundTruth."""

    def __init__(self) -> None:
        self.locked = True

    def good_grasps(self) -> list[Pose]:
        assert not self.locked
        return [Pose.top_down(np.array([0.5, 0.0, 0.02]), 0.0)]

    def grasp_axis_yaw(self) -> float:
        assert not self.locked
        return 0.0


def test_close_probe_measures_once_when_close_gripper_starts() -> None:
    arm = SimpleNamespace(pose=lambda: Pose.top_down(np.array([0.52, 0.0, 0.03]), np.radians(10)))
    session = SimpleNamespace(truth=_Truth(), arm=arm)
    root = py_trees.composites.Sequence("Grasp", memory=True, children=[
        py_trees.behaviours.Success(name="Descend"), py_trees.behaviours.Running(name=ep.CLOSE_NODE)])
    probe = ep.CloseProbe(root, session)
    probe(0)
    assert probe.measured is None  # Close Gripper not ticked yet
    root.tick_once()
    probe(1)
    assert probe.measured == pytest.approx({"at": "close", "tick": 1, "position_m": 0.02, "height_m": 0.01,
                                            "yaw_deg": 10.0})
    assert session.truth.locked  # the lock is back for the rest of the episode
    arm.pose = lambda: Pose.top_down(np.array([0.9, 0.0, 0.3]), 0.0)
    probe(2)
    assert probe.measured["tick"] == 1  # the first start only


def test_a_broken_world_is_a_failed_trial_with_a_finished_run_dir(tmp_path: Path, objects: str,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    from app.errors import SimulationError
    from app.sim.objects import load_object_set
    from app.sim.session import SimSession

    def explode(self, spec, placement=None, settle=True):
        raise SimulationError("soft body exploded\nsecond line")

    monkeypatch.setattr(SimSession, "reset", explode)
    rec = ep.run_sim_episode(load_tree_config("oracle"), load_object_set(objects).get("block"), 3, "real", None,
                       tmp_path / "runs")
    assert (rec["success"], rec["paper_success"], rec["tree_outcome"]) == (False, False, "error")
    assert (rec["failed_node"], rec["reason"]) == ("(simulation)", "SimulationError: soft body exploded")
    run = Path(rec["run_dir"])
    assert (run / "episode.json").is_file() and not (run / "RUNNING").exists()


# ------------------------------------------------------------------------------ results file
def test_read_results_drops_torn_tail_and_rejects_damage(tmp_path: Path) -> None:
    path = tmp_path / ev.RESULTS
    good = '{"tree": "t", "object": "a", "trial": 0}\n{"tree": "t", "object": "a", "trial": 1}\n'
    path.write_text(good + '{"tree": "t", "obj')
    records, n = read_results(path)
    assert [r["trial"] for r in records] == [0, 1] and n == len(good)
    path.write_text('{"tree": "t", "obj\n' + good)
    with pytest.raises(ConfigError, match="line 1 is damaged"):
        read_results(path)
    path.write_text(good + good)
    with pytest.raises(ConfigError, match="line 3: trial .* appears twice"):
        read_results(path)


def _record(tree: str, obj: str, oset: str, trial: int, success: bool, index: int = 0) -> dict:
    return {"tree": tree, "object": obj, "object_set": oset, "trial": trial, "success": success,
            "paper_success": success, "outcome": "success" if success else "failure",
            "failed_node": "" if success else "Close Gripper", "reason": "",
            "pose_error": {"at": "close", "position_m": 0.01, "yaw_deg": None}, "object_index": index,
            "base_seed": 0, "domain": "real", "domain_sha256": "abc", "hardware": None}


def test_summary_contract_paper_columns_and_oracle_difference(tmp_path: Path) -> None:
    records = ([_record("drl_gan_vs", "mug", "seen", k, k < 2) for k in range(3)]
               + [_record("drl_gan_vs", "fillet", "unseen", k, True) for k in range(3)]
               + [_record("oracle", "mug", "seen", k, True) for k in range(3)]
               + [_record("oracle", "fillet", "unseen", k, True) for k in range(3)])
    (tmp_path / ev.RESULTS).write_text("".join(json.dumps(r) + "\n" for r in records))
    s = ev.summarize(tmp_path)
    assert json.loads((tmp_path / "summary.json").read_text()) == s
    assert set(s) >= {"trees", "per_object", "config", "domain_sha256"}
    seen = s["trees"]["drl_gan_vs"]["seen"]
    assert SUMMARY_KEYS <= set(seen)
    assert (seen["trials"], seen["successes"], seen["rate"]) == (3, 2, pytest.approx(2 / 3))
    assert seen["ci95"] == pytest.approx(list(wilson_interval(2, 3)))
    assert seen["paper_rate"] == 0.83 and s["trees"]["oracle"]["seen"]["paper_rate"] is None
    assert s["per_object"]["drl_gan_vs"]["mug"] == {"trials": 3, "successes": 2, "paper_score_successes": 2,
                                                   "object_set": "seen"}
    diff = s["vs_oracle"]["drl_gan_vs"]["seen"]
    assert diff["difference"] == pytest.approx(-1 / 3)
    assert diff["ci95"] == pytest.approx(list(newcombe_difference(2, 3, 3, 3)))
    assert s["domain_sha256"] == "abc" and s["config"]["trials_per_object"] == 3
    assert s["failures"]["drl_gan_vs"] == {"Close Gripper": 1}
    md = (tmp_path / "summary.md").read_text()
    assert "| drl_gan_vs (DRL+GAN+VS) | seen | 3 | 2 | 67 % |" in md and "| 83 % |" in md
    for fig in ("per_object_seen.png", "per_object_unseen.png", "rates.png", "pose_errors.png"):
        assert (tmp_path / fig).stat().st_size > 1000 and f"({fig})" in md
    (tmp_path / "summary.md").unlink()
    assert ev.main(["--out", str(tmp_path), "--summarize-only"]) == 0
    assert (tmp_path / "summary.md").read_text() == md


def test_summary_counts_raw_mask_fallbacks() -> None:
    from app.campaigns.report import build_summary, summary_markdown

    records = [{**_record("drl_gan_vs", "fillet", "unseen", k, k != 1), "mask_source": "raw"} for k in range(3)]
    records += [{**_record("drl_gan_vs", "mug", "seen", 0, True), "mask_source": "adapted"},
                _record("oracle", "mug", "seen", 0, True)]  # an old line without the key
    s = build_summary(records)
    assert s["raw_mask_fallbacks"] == {"drl_gan_vs": {"trials": 3, "successes": 2}}
    assert "- drl_gan_vs: 3 trials, 2 grasped" in summary_markdown(s, [])


def test_summarize_without_results_is_a_one_line_error(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    assert ev.main(["--out", str(tmp_path), "--summarize-only"]) == 2
    assert "no results to summarize" in capsys.readouterr().err


def test_missing_weights_stop_the_campaign(tmp_path: Path, objects: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from app import perception
    from app.errors import CheckpointError

    monkeypatch.setattr(perception, "WEIGHTS_DIR", tmp_path / "no_weights")
    with pytest.raises(CheckpointError, match="cyclegan.pt: missing"):
        ev.run_evaluate(_args(tmp_path / "camp", objects, trees="vs_only", trials=1))
    assert (tmp_path / "camp" / ev.RESULTS).read_text() == ""  # no trial is recorded as failed


# ------------------------------------------------------------------------------ campaigns
@pytest.mark.slow
def test_campaign_two_workers_writes_the_contract(tmp_path: Path, objects: str, oracle_copy: str) -> None:
    from app.sim.gap import load_gap

    out = tmp_path / "camp"
    assert ev.run_evaluate(_args(out, objects, "--split", "test", trees=f"oracle,{oracle_copy}", workers=2)) == 0
    lines = _lines(out)
    assert all(r["seed"] % 2 == 1 and r["split"] == "test" and r["gap"] == "lab" for r in lines)  # real: lab
    assert all(r["table_strikes"] == 0 and r["self_collisions_or_limits"] == 0 for r in lines)
    assert len({json.dumps(r["gap_sample"]) for r in lines}) == 4  # drawn per (object, trial), same per tree
    assert len(lines) == 2 * 2 * 2 and all(LINE_KEYS <= set(r) for r in lines)
    assert len({(r["tree"], r["object"], r["trial"]) for r in lines}) == 8
    seeds = {(r["object"], r["trial"]): set() for r in lines}
    for r in lines:
        seeds[(r["object"], r["trial"])].add(r["seed"])
        run = out / r["run_dir"]
        assert (run / "episode.json").is_file() and not (run / "RUNNING").exists()
        assert r["success"] and r["paper_success"], r  # the oracle grasps at the grasp itself
        assert r["pose_error"]["at"] == "close" and r["pose_error"]["position_m"] < 0.015  # lab: settles mm off
    assert all(len(s) == 1 for s in seeds.values())
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["gap"], summary["gap_sha256"], summary["split"]) == ("lab", load_gap("lab").sha256, "test")
    assert summary["physical_audit"]["oracle"]["table_strikes"] == 0
    assert summary["physical_audit"]["oracle"]["audited_trials"] == 4
    assert "split `test`" in (out / "summary.md").read_text() and "Physical audit" in (out / "summary.md").read_text()
    with pytest.raises(ConfigError, match="another --gap or --split"):
        ev.run_evaluate(_args(out, objects, "--split", "dev", "--resume", trees=f"oracle,{oracle_copy}"))
    for tree in ("oracle", "oracle_b"):
        v = summary["trees"][tree]["tiny"]
        assert SUMMARY_KEYS <= set(v)
        assert v["trials"] == 4 and v["successes"] == sum(r["success"] for r in lines if r["tree"] == tree)
        assert sum(o["trials"] for o in summary["per_object"][tree].values()) == 4
    assert summary["config"]["object_sets"] == {"tiny": ["block", "can"]}
    first = (out / "summary.json").read_text()
    (out / "summary.json").unlink()
    ev.summarize(out)  # rebuilt from results.jsonl alone
    assert (out / "summary.json").read_text() == first
    assert (out / "per_object_tiny.png").is_file() and "oracle_b" in (out / "summary.md").read_text()


@pytest.mark.slow
def test_resume_skips_done_trials_and_repairs_a_torn_line(tmp_path: Path, objects: str) -> None:
    out = tmp_path / "camp"
    assert ev.run_evaluate(_args(out, objects, trials=1)) == 0
    before = (out / ev.RESULTS).read_bytes()
    assert len(before.splitlines()) == 2
    with pytest.raises(ConfigError, match="pass --resume"):
        ev.run_evaluate(_args(out, objects, trials=2))
    with (out / ev.RESULTS).open("ab") as f:  # a write cut by kill -9
        f.write(b'{"tree": "oracle", "object": "block", "tri')
    other_seed = _args(out, objects, "--resume", trials=2)
    other_seed.seed = 1
    with pytest.raises(ConfigError, match="another --seed"):
        ev.run_evaluate(other_seed)
    assert ev.run_evaluate(_args(out, objects, "--resume", trials=2)) == 0
    after = (out / ev.RESULTS).read_bytes()
    assert after.startswith(before)  # done trials untouched, not rerun
    keys = [(r["tree"], r["object"], r["trial"]) for r in _lines(out)]
    assert sorted(keys) == sorted(("oracle", o, k) for o in ("block", "can") for k in (0, 1))
    assert len(list((out / ev.RUNS).iterdir())) == 4  # 2 + 2 episodes: nothing ran twice
    assert ev.run_evaluate(_args(out, objects, "--resume", trials=2)) == 0  # nothing left: no-op
    assert (out / ev.RESULTS).read_bytes() == after


def _alive_in_group(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, from /proc."""
    alive = []
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            try:
                fields = (d / "stat").read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":  # fields: state, ppid, pgrp, ...
                alive.append(int(d.name))
    return alive


def _count_lines(path: Path) -> int:
    return path.read_bytes().count(b"\n") if path.exists() else 0


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads process groups from /proc")
def test_kill9_at_random_points_then_resume_keeps_every_trial_once(tmp_path: Path, objects: str) -> None:
    out, log = tmp_path / "camp", (tmp_path / "campaign.log").open("w")
    cmd = [sys.executable, "-m", "app.campaigns.evaluate", "--trees", "oracle", "--objects", objects, "--trials", "6",
           "--seed", "0", "--out", str(out), "--workers", "2"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    rng = random.Random(5)
    kills = 0
    for attempt in range(3):
        n0 = _count_lines(out / ev.RESULTS)
        p = subprocess.Popen(cmd + (["--resume"] if attempt else []), cwd=ROOT, env=env, stdout=log,
                             stderr=subprocess.STDOUT, start_new_session=True)
        try:
            deadline = time.monotonic() + 90  # s: start-up of the workers plus the first trials
            while _count_lines(out / ev.RESULTS) <= n0 and p.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(rng.uniform(0.0, 1.0))  # a random point after a new result line
            if p.poll() is None:
                p.send_signal(signal.SIGKILL)
                kills += 1
            p.wait(timeout=30)
            deadline = time.monotonic() + 10  # s: the workers notice the campaign is gone
            while _alive_in_group(p.pid) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert not _alive_in_group(p.pid), "orphaned workers kept running"
        finally:
            for pid in _alive_in_group(p.pid):
                os.kill(pid, signal.SIGKILL)
    assert kills >= 1
    done = subprocess.run(cmd + ["--resume"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, timeout=180)
    assert done.returncode == 0, (tmp_path / "campaign.log").read_text()[-2000:]
    lines = _lines(out)  # every line parses
    keys = [(r["tree"], r["object"], r["trial"]) for r in lines]
    assert sorted(keys) == sorted(("oracle", o, k) for o in ("block", "can") for k in range(6))
    runs = [d for d in (out / ev.RUNS).iterdir() if not d.name.startswith(".new-")]  # not staging
    finished = {str(Path(ev.RUNS) / d.name) for d in runs if (d / "episode.json").exists()}
    assert {r["run_dir"] for r in lines} <= finished
    for d in runs:  # an interrupted episode is marked, never taken for a result
        assert (d / "RUNNING").exists() != (d / "episode.json").exists()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["trees"]["oracle"]["tiny"]["trials"] == 12


# ------------------------------------------------------------------ multi-object scenes and clearing (issue 13)
def test_multi_scene_plan_and_clearing_summary(tmp_path, monkeypatch) -> None:
    """`evaluate --scene multi:N`: one trial per scene, seeded by the scene key (same for every
    tree); a clear_table campaign's lines give clearing.json/md with Wilson intervals."""
    from app.campaigns import clear_report
    from app.campaigns.engine import Campaign, ResultsWriter
    from app.sim.objects import load_object_set

    trees = [load_tree_config("clear_table"), load_tree_config("drl_gan_vs_gated")]
    sets = [load_object_set("seen"), load_object_set("unseen")]
    plan = ev.plan_trials(trees, sets, 3, 2000, scene="multi:4")
    assert len(plan) == 6 and {t.object for t in plan} == {"multi:4"}
    assert plan[0].seed == plan[1].seed != plan[2].seed  # trees innermost, same scene
    assert plan[0].set_ref == f"{sets[0].path},{sets[1].path}"

    calls = []

    gaps = []

    def fake_clear(cfg, pool, n, seed, *a, **k):
        calls.append((cfg.name, n, len(pool), seed))
        gaps.append(k.get("gap"))
        k_placed = 3 if seed % 2 else 4
        return {"success": k_placed == 4, "paper_success": False, "tree_outcome": "success", "failed_node": "",
                "reason": "", "pose_error": {"at": "none"}, "run_dir": str(tmp_path / "runs" / "x"), "objects": 4,
                "n_placed": k_placed, "n_cleared": k_placed, "placed": [], "cleared": [], "picks_attempted": 5,
                "picks_placed": k_placed, "picks": [], "pick_failures": {"Extract Features": 5 - k_placed},
                "off_table": [], "table_strikes": 0, "sim_time": 60.0, "picks_per_hour": k_placed * 60.0,
                "ticks": 1800, "wall_time": 1.0, "scene_objects": ["a", "b", "c", "d"], "end": "table clear"}

    monkeypatch.setattr("app.scene_episode.run_clear_episode", fake_clear)
    monkeypatch.setattr("app.perception.load_perception", lambda *a, **k: None)
    c = Campaign(str(tmp_path), 2000, "real", "sha", None)
    w = ResultsWriter(tmp_path / "results.jsonl")
    for t in [t for t in plan if t.tree == "clear_table"]:
        w.append(ev._run_job(t, c))
    w.close()
    assert [(n, k, pool) for n, k, pool, _ in calls] == [("clear_table", 4, 16)] * 3
    assert [g.name for g in gaps] == [c.gap] * 3  # scene episodes draw the campaign's physical gap
    assert all(r["gap"] == c.gap and r["gap_sha256"] == c.gap_sha256 for r in read_results(tmp_path / "results.jsonl")[0])
    s = clear_report.summarize_clearing(tmp_path)
    v = s["trees"]["clear_table"]
    placed = sum(3 if t.seed % 2 else 4 for t in plan if t.tree == "clear_table")
    assert v["objects"] == 12 and v["objects_cleared"] == placed and v["picks_attempted"] == 15
    assert v["cleared_ci95"] == list(wilson_interval(placed, 12))
    assert v["picks_per_hour"] == pytest.approx(placed / (180 / 3600))
    assert v["failures_by_node"] == {"Extract Features": 15 - placed}
    assert "objects cleared" in (tmp_path / "clearing.md").read_text()
