"""Tests of app.logs: run directories are born marked, finished atomically."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.logs import finish_run_dir, make_run_dir


def _visible(root: Path) -> list[Path]:
    return [d for d in root.iterdir() if not d.name.startswith(".")]


def test_make_run_dir_is_born_with_its_marker_and_leaves_no_staging(tmp_path: Path) -> None:
    d = make_run_dir(tmp_path, "oracle", "can", 3, 1)
    assert d.parent == tmp_path and d.name.startswith("oracle__can__s3_e1__")
    assert (d / "RUNNING").exists() and not (d / "episode.json").exists()
    assert list(tmp_path.iterdir()) == [d]  # the staging folder was renamed, not copied


def test_a_death_before_the_marker_leaves_no_visible_unmarked_run(tmp_path: Path,
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    """The kill -9 window of the campaign test: between making the folder and writing RUNNING."""
    def die(self: Path, *args: object, **kwargs: object) -> int:
        raise KeyboardInterrupt  # stands for a SIGKILL at this point

    monkeypatch.setattr(Path, "write_text", die)
    with pytest.raises(KeyboardInterrupt):
        make_run_dir(tmp_path, "oracle", "can", 3, 1)
    assert _visible(tmp_path) == []  # only a hidden staging folder may stay behind


def test_finish_run_dir_swaps_the_marker_for_the_outcome(tmp_path: Path) -> None:
    d = make_run_dir(tmp_path, "oracle", "can", 3, 1)
    finish_run_dir(d, {"outcome": "GRASPED", "ticks": 12})
    assert (d / "episode.json").exists() and not (d / "RUNNING").exists()
    assert '"GRASPED"' in (d / "episode.json").read_text()
