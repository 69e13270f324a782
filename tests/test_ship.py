"""Tests of models.ship: a finished run's files into the shipped set or a candidate set."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from models import ship


def _ppo_run(tmp_path: Path, best: bool = True) -> Path:
    """A finished PPO run folder built from the shipped agent's files."""
    run = tmp_path / "run"
    run.mkdir()
    for src, dst in ship.FILES["ppo"].items():
        shutil.copyfile(ship.WEIGHTS / dst, run / src)
    if best:
        (run / "best.json").write_text('{"timesteps": 500000}\n')
    return run


def test_candidate_set_is_the_shipped_set_with_the_new_agent(tmp_path: Path) -> None:
    run = _ppo_run(tmp_path)
    (run / "eval.csv").write_text("timesteps\n500000\n")  # marks the new run's files
    log = tmp_path / "ppo.log"
    log.write_text("ppo:  50%|5   | 1/2\rppo: 100%|##| 2/2\n")
    dest = tmp_path / "candidate"
    assert ship.main(["--ppo", str(run), "--ppo-log", str(log), "--to", str(dest)]) == 0
    assert (dest / "ppo_eval.csv").read_text() == "timesteps\n500000\n"
    assert (dest / "ppo_best.json").exists()
    assert (dest / "ppo_train.log").read_text() == "ppo: 100%|##| 2/2\n"  # the last redraw only
    assert (dest / "cyclegan.pt").read_bytes() == (ship.WEIGHTS / "cyclegan.pt").read_bytes()
    assert (ship.WEIGHTS / "ppo_eval.csv").read_text() != "timesteps\n500000\n"  # shipped set untouched


def test_files_of_the_previous_run_do_not_stay_beside_the_new_one(tmp_path: Path) -> None:
    dest = tmp_path / "candidate"
    shutil.copytree(ship.WEIGHTS, dest)
    (dest / "ppo_best.json").write_text("{}\n")
    ship.ship("ppo", _ppo_run(tmp_path, best=False), log=None, dest=dest)
    assert not (dest / "ppo_best.json").exists() and not (dest / "ppo_train.log").exists()


def test_a_missing_file_is_named_and_nothing_is_copied(tmp_path: Path) -> None:
    run = _ppo_run(tmp_path)
    (run / "eval.png").unlink()
    dest = tmp_path / "candidate"
    with pytest.raises(SystemExit, match=r"eval\.png: missing \(expected a finished ppo run\)"):
        ship.ship("ppo", run, log=None, dest=dest)
    assert not any(dest.iterdir())


def test_nested_bars_keep_their_last_state_and_plain_lines_stay() -> None:
    """A lab log: an outer stage bar and an inner epoch bar redrawing on lines of their own."""
    up = "\x1b[A"
    text = ("lab: train:  20%|##  | 1/5\n"
            f"epoch 1/2:  10%|#   | 1/10{up}\nepoch 1/2:  90%|### | 9/10{up}\nepoch 1/2: 100%|####| 10/10\n"
            f"epoch 2/2:  50%|##  | 5/10{up}\rlab: train:  40%|####| 2/5\nepoch 2/2: 100%|####| 10/10\n"
            "saved runs/gan/cyclegan.pt\n"
            "lab: after:  80%|### | 4/5\r\n")
    assert ship.clean_log(text).splitlines() == [
        "epoch 1/2: 100%|####| 10/10", "lab: train:  40%|####| 2/5", "epoch 2/2: 100%|####| 10/10",
        "saved runs/gan/cyclegan.pt", "lab: after:  80%|### | 4/5"]


def test_shipped_camera_record_names_the_hardware_file_within_the_repository(tmp_path: Path) -> None:
    run = _ppo_run(tmp_path)
    text = (ship.WEIGHTS / "training_camera.yaml").read_text()
    text = text.replace(text[text.index("hardware:"):], "hardware: /home/me/wt/s8/config/hardware.yaml\n")
    (run / "training_camera.yaml").write_text(text)
    dest = tmp_path / "candidate"
    shutil.copytree(ship.WEIGHTS, dest)
    ship.ship("ppo", run, log=None, dest=dest)
    assert (dest / "training_camera.yaml").read_text().splitlines()[-1] == "hardware: config/hardware.yaml"
