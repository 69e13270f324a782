"""Weights record the domain they were trained for; another domain's hash warns in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from app.cli import build_parser
from app.errors import CheckpointError
from app.perception import WEIGHTS_DIR
from app.sim.domain import load_domain
from app.weights_domain import (
    TRAINING_DOMAIN_FILE,
    domain_warning,
    read_training_domain,
    warn_domain,
    write_training_domain,
)


def test_shipped_weights_record_the_real_domain() -> None:
    rec = read_training_domain(WEIGHTS_DIR)
    assert rec == {"name": "real", "sha256": load_domain("real").sha256}


def test_same_hash_is_silent_other_hash_warns_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    real = load_domain("real")
    write_training_domain(tmp_path, real.name, real.sha256)
    assert warn_domain(tmp_path, "real") is None
    assert capsys.readouterr().err == ""
    msg = warn_domain(tmp_path, "config/domains/lab_cool.yaml")
    err = capsys.readouterr().err
    assert msg and err == msg + "\n" and err.count("\n") == 1
    assert "trained for domain 'real'" in err and "'lab_cool'" in err and real.sha256[:12] in err


def test_no_record_is_silent_bad_record_is_one_line(tmp_path: Path) -> None:
    assert domain_warning(tmp_path, "real", "x" * 64) is None
    (tmp_path / TRAINING_DOMAIN_FILE).write_text("name: real\n")
    with pytest.raises(CheckpointError, match=r"training_domain.yaml: expected a mapping with string keys"):
        read_training_domain(tmp_path)


@pytest.mark.parametrize("argv", [["--weights", "W"], ["evaluate", "--out", "o", "--weights", "W"],
                                  ["faults", "--out", "o", "--weights", "W"], ["eval-models", "--out", "o", "--weights", "W"],
                                  ["bench", "pipeline", "--weights", "W"], ["lab", "--out", "o", "--weights", "W"]])
def test_every_command_that_runs_the_models_takes_weights(argv: list[str]) -> None:
    assert build_parser().parse_args(argv).weights == "W"
