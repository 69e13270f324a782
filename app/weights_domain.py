"""Which appearance domain a weights directory was trained for, and the warning when it differs.

A CycleGAN learns one lab's look. ``training_domain.yaml`` beside the weights records the
real-looking domain of its training images (name and SHA-256 of the domain file); running the
models in a domain whose hash differs prints one line on stderr (the models still run: measuring
shipped weights in a new lab is how ``python -m app lab`` shows what the lab's own weights buy).
"""

from __future__ import annotations

import sys
from pathlib import Path

import yaml

from app.errors import CheckpointError

TRAINING_DOMAIN_FILE = "training_domain.yaml"


def write_training_domain(directory: str | Path, name: str, sha256: str) -> Path:
    """Record the real-looking domain the weights in ``directory`` were trained on.

    Args:
        directory: A weights directory.
        name: The domain's name (from its YAML).
        sha256: SHA-256 of the domain file.

    Returns:
        The path written.
    """
    from app.outputs import atomic_write_text

    path = Path(directory) / TRAINING_DOMAIN_FILE
    atomic_write_text(path, yaml.safe_dump({"name": name, "sha256": sha256}, sort_keys=False))
    return path


def read_training_domain(directory: str | Path) -> dict[str, str] | None:
    """The recorded domain (``name``, ``sha256``), or None when the weights record none.

    Raises:
        CheckpointError: The file exists but is not a mapping with both keys (one line).
    """
    path = Path(directory) / TRAINING_DOMAIN_FILE
    if not path.is_file():
        return None
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as e:
        raise CheckpointError(f"{path}: not valid YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict) or not all(isinstance(data.get(k), str) for k in ("name", "sha256")):
        raise CheckpointError(f"{path}: expected a mapping with string keys 'name' and 'sha256', found {data!r}")
    return {"name": data["name"], "sha256": data["sha256"]}


def domain_warning(directory: str | Path, name: str, sha256: str) -> str | None:
    """The one-line warning for running ``directory``'s weights in domain ``name``, or None.

    None when the hashes agree, or when the weights record no domain (older runs).
    """
    trained = read_training_domain(directory)
    if trained is None or trained["sha256"] == sha256:
        return None
    return (f"warning: the weights in {directory} were trained for domain {trained['name']!r} "
            f"(sha256 {trained['sha256'][:12]}), running in {name!r} (sha256 {sha256[:12]}): "
            f"expect worse adaptation; train this lab's own with `python -m app lab`")


def warn_domain(directory: str | Path | None, domain: str) -> str | None:
    """Print :func:`domain_warning` for the weights (None: the shipped ones) in ``domain``."""
    from app.perception import WEIGHTS_DIR
    from app.sim.domain import load_domain

    d = load_domain(domain)
    msg = domain_warning(Path(directory) if directory else WEIGHTS_DIR, d.name, d.sha256)
    if msg:
        print(msg, file=sys.stderr)
    return msg
