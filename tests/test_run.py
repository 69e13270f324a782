"""The main job: summary, exit codes, run directory contents, --record."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from app.cli import main
from app.episode import run_sim_episode
from app.sim.objects import load_object_set
from app.tree_config import load_tree_config
from tests.fakes.truth_models import ColourModels

pytestmark = pytest.mark.slow


def test_oracle_main_job_grasps_and_writes_a_run_dir(tmp_path, capsys) -> None:
    code = main(["--tree", "oracle", "--objects", "unseen", "--episodes", "2", "--log-dir", str(tmp_path)])
    out = capsys.readouterr().out
    assert code == 0
    assert out.count("GRASPED") == 2 and "banana" in out and "peach" in out  # episodes cycle objects
    runs = sorted(p for p in tmp_path.iterdir() if p.is_dir())
    assert len(runs) == 2
    for run in runs:
        assert not (run / "RUNNING").exists()
        episode = json.loads((run / "episode.json").read_text())
        assert episode["success"] and episode["physics_lifted"]
        lines = (run / "ticks.jsonl").read_text().splitlines()
        events = [json.loads(x)["event"] for x in lines]
        assert events[0] == "episode_start" and "episode_end" in events and events[-1] == "scored"


def test_record_saves_images_of_each_tick(tmp_path) -> None:
    tree = tmp_path / "short.yaml"  # 30 ticks are enough to see the images written
    tree.write_text(open(load_tree_config("vs_only").path).read().replace("max_ticks: 2400", "max_ticks: 30"))
    rec = run_sim_episode(load_tree_config(str(tree)), load_object_set("seen").get("sugar_box"), 5, "sim",
                          ColourModels(), tmp_path, record=True)
    assert rec["tree_outcome"] == "timeout" and rec["reason"] == "episode exceeded 30 ticks"
    images = Path(rec["run_dir"]) / "images"
    raw = sorted(images.glob("*_raw.png"))
    masks = sorted(images.glob("*_mask.png"))
    assert 25 <= len(raw) <= 30 and len(masks) >= 25  # from the first tick that has a frame
    assert len(list(images.glob("*_raw_depth.png"))) == len(raw)
