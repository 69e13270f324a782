"""Checkpoint files: plain tensor state dicts, loaded only with ``weights_only=True``.

Two kinds, both a single ``torch.save`` mapping with a ``format`` tag and a ``version``:

* the **inference file** (``cyclegan.pt``, shipped): ``G_YX``, ``D_X`` and ``D_Y`` state dicts
  (optionally stored as float16, loaded as float32) and the architecture they were built with
  (``model``: :class:`~models.unet.UNetConfig`, ``depth``: :class:`~models.preprocess.DepthRange`,
  plain types). The loader rebuilds the networks from that metadata, checks it against the
  config the caller expects, and loads the weights strictly.
* the **training state** (``train_state.pt``, for resuming): all four networks, both
  optimisers, both history pools, the epoch, the loss history, torch's random state and the
  resolved config.

Anything wrong — a missing file, a corrupt or truncated one, one that is not a plain tensor
file (a pickle that would run code is refused by ``weights_only``), a wrong format or a
mismatched architecture — raises :class:`~app.errors.CheckpointError` with one line naming the
file, what was expected and what was found.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from app.errors import CheckpointError
from app.outputs import atomic_write_bytes, write_guard
from models.cyclegan import CycleGANTrainer, RealToSim, SemanticCycleGAN
from models.preprocess import DepthRange
from models.unet import UNetConfig

INFERENCE_FORMAT = "simgrasp-cyclegan-inference"
TRAINING_FORMAT = "simgrasp-cyclegan-training"
FORMAT_VERSION = 1
INFERENCE_NETS = ("g_yx", "d_x", "d_y")
_DTYPES = {"float32": torch.float32, "float16": torch.float16}
_PLAIN = (str, int, float, bool, type(None))
_MAX_SHOWN = 160  # characters of an underlying error message kept in the one-line report


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split())
    if not text:
        return f"{e.__class__.__name__} (empty or truncated file)"
    text = text if len(text) <= _MAX_SHOWN else text[: _MAX_SHOWN - 3] + "..."
    return f"{e.__class__.__name__}: {text}"


def _load_failure(e: BaseException) -> str:
    """The useful part of ``torch.load``'s error (its weights-only message is a page long)."""
    marker = "WeightsUnpickler error:"
    text = str(e)
    if marker in text:
        detail = " ".join(text.split(marker, 1)[1].split())
        detail = detail.split(". ")[0].split(" Check the documentation")[0].rstrip(".")
        return f"content that weights_only refuses ({detail[:_MAX_SHOWN]})"
    return _one_line(e)


def check_plain(obj: Any, where: str = "metadata") -> None:
    """Refuse anything but str/int/float/bool/None, lists, tuples, str-keyed dicts and tensors.

    Raises:
        TypeError: Naming the offending entry (a programming error, not a user one).
    """
    if isinstance(obj, (*_PLAIN, torch.Tensor)):
        return
    if isinstance(obj, list | tuple):
        for i, v in enumerate(obj):
            check_plain(v, f"{where}[{i}]")
        return
    if isinstance(obj, Mapping):
        for k, v in obj.items():
            if not isinstance(k, str | int):
                raise TypeError(f"{where}: key {k!r} is not a string or integer")
            check_plain(v, f"{where}.{k}")
        return
    raise TypeError(f"{where}: {type(obj).__name__} is not a plain type")


def save_file(path: str | Path, obj: Mapping[str, Any]) -> int:
    """Write a plain mapping atomically (temporary file, ``fsync``, then rename), so a failed
    save (full disk, folder removed) never replaces a good file with a truncated one.

    Returns:
        The file size in bytes.

    Raises:
        OutputWriteError: The save failed; ``path`` is as it was (exit code 4).
    """
    check_plain(obj, "checkpoint")
    path = Path(path)
    with write_guard(path.parent):
        path.parent.mkdir(parents=True, exist_ok=True)
    buf = io.BytesIO()  # serialised in memory: torch's file writer reports a full disk as RuntimeError
    torch.save(dict(obj), buf)
    atomic_write_bytes(path, buf.getvalue(), hint="the last good checkpoint is kept: rerun with --resume")
    return path.stat().st_size


def load_file(path: str | Path, fmt: str, version: int = FORMAT_VERSION) -> dict[str, Any]:
    """Load a checkpoint with ``weights_only=True`` and check its format tag and version.

    Args:
        path: The file.
        fmt: Expected ``format`` tag.
        version: Expected ``version``.

    Raises:
        CheckpointError: Missing, unreadable, unsafe, corrupt or of another format.
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: no such file (expected a {fmt} checkpoint)")
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:  # torch raises many types for corrupt, truncated or unsafe files
        raise CheckpointError(f"{path}: cannot load as plain tensors (expected a {fmt} checkpoint), "
                              f"found {_load_failure(e)}") from e
    if not isinstance(obj, dict) or obj.get("format") != fmt:
        found = obj.get("format") if isinstance(obj, dict) else type(obj).__name__
        raise CheckpointError(f"{path}: expected format {fmt!r}, found {found!r}")
    if obj.get("version") != version:
        raise CheckpointError(f"{path}: expected {fmt} version {version}, found {obj.get('version')!r}")
    return obj


def _arch_meta(model: UNetConfig, depth: DepthRange) -> dict[str, dict[str, Any]]:
    return {"model": model.to_dict(), "depth": depth.to_dict()}


def check_arch(path: str | Path, found: Mapping[str, Any], model: UNetConfig, depth: DepthRange) -> None:
    """Compare stored architecture metadata with the expected one, key by key.

    Raises:
        CheckpointError: At the first difference: ``file: model.ngf: expected 16, found 32``.
    """
    for part, values in _arch_meta(model, depth).items():
        stored = found.get(part)
        if not isinstance(stored, Mapping):
            raise CheckpointError(f"{path}: expected '{part}' metadata, found {stored!r}")
        for key, value in values.items():
            if stored.get(key) != value:
                raise CheckpointError(f"{path}: {part}.{key}: expected {value!r} (from the config), "
                                      f"found {stored.get(key)!r}")


def _load_weights(path: str | Path, net: torch.nn.Module, state: Any, name: str) -> None:
    if not isinstance(state, Mapping):
        raise CheckpointError(f"{path}: expected a state dict for {name}, found {type(state).__name__}")
    try:
        net.load_state_dict({k: v.float() if v.is_floating_point() else v for k, v in state.items()})
    except (RuntimeError, AttributeError) as e:
        raise CheckpointError(f"{path}: {name} weights do not fit the network built from the metadata "
                              f"({_one_line(e)})") from e


def save_inference(path: str | Path, nets: SemanticCycleGAN | RealToSim, dtype: str = "float16",
                   info: Mapping[str, Any] | None = None) -> int:
    """Ship ``G_YX``, ``D_X`` and ``D_Y`` with their architecture.

    Args:
        path: Output file (``.pt``).
        nets: The full model or its inference part.
        dtype: ``"float16"`` (half the size; weights are cast back to float32 on load) or
            ``"float32"``.
        info: Extra plain-type metadata (epoch, config name, …).

    Returns:
        File size in bytes.
    """
    cast = _DTYPES[dtype]
    obj: dict[str, Any] = {"format": INFERENCE_FORMAT, "version": FORMAT_VERSION, "dtype": dtype,
                           **_arch_meta(nets.model_cfg, nets.depth_range), "info": dict(info or {})}
    for name in INFERENCE_NETS:
        sd = getattr(nets, name).state_dict()
        obj[name] = {k: v.detach().to(cast) if v.is_floating_point() else v for k, v in sd.items()}
    return save_file(path, obj)


def load_inference(path: str | Path, model: UNetConfig | None = None,
                   depth: DepthRange | None = None) -> RealToSim:
    """Rebuild :class:`RealToSim` from an inference file.

    Args:
        path: The file written by :func:`save_inference`.
        model: Architecture the caller's config expects (checked when given).
        depth: Depth range the caller's config expects (checked when given).

    Returns:
        The networks in eval mode, float32.

    Raises:
        CheckpointError: Missing, corrupt, unsafe, mismatched or incomplete file.
    """
    obj = load_file(path, INFERENCE_FORMAT)
    try:
        stored_model = UNetConfig.from_dict(dict(obj["model"]))
        stored_depth = DepthRange.from_dict(dict(obj["depth"]))
    except Exception as e:  # missing keys, wrong types, invalid values
        raise CheckpointError(f"{path}: expected valid 'model' and 'depth' metadata, "
                              f"found {_one_line(e)}") from e
    check_arch(path, obj, model or stored_model, depth or stored_depth)
    inf = RealToSim(stored_model, stored_depth)
    for name in INFERENCE_NETS:
        _load_weights(path, getattr(inf, name), obj.get(name), name)
    return inf.eval()


def save_training(path: str | Path, trainer: CycleGANTrainer, epoch: int,
                  history: list[dict[str, float]], config: Mapping[str, Any]) -> int:
    """Write everything needed to resume after ``epoch`` completed epochs.

    Args:
        path: Output file (``train_state.pt``).
        trainer: Networks, optimisers and pools.
        epoch: Number of completed epochs.
        history: One row of mean losses per completed epoch.
        config: The resolved config (plain mapping).

    Returns:
        File size in bytes.
    """
    gan = trainer.gan
    obj = {"format": TRAINING_FORMAT, "version": FORMAT_VERSION, "epoch": epoch,
           "history": [dict(r) for r in history], "config": dict(config),
           **_arch_meta(gan.model_cfg, gan.depth_range),
           "trainer": trainer.state_dict(), "torch_rng": torch.get_rng_state()}
    return save_file(path, obj)


def load_training(path: str | Path, trainer: CycleGANTrainer) -> tuple[int, list[dict[str, float]]]:
    """Restore a training state into ``trainer`` (whose networks were built from config).

    Returns:
        ``(completed_epochs, history)``.

    Raises:
        CheckpointError: Missing, corrupt, unsafe or mismatched file.
    """
    obj = load_file(path, TRAINING_FORMAT)
    check_arch(path, obj, trainer.gan.model_cfg, trainer.gan.depth_range)
    try:
        trainer.load_state_dict(obj["trainer"])
        torch.set_rng_state(obj["torch_rng"])
        epoch = int(obj["epoch"])
        history = [dict(r) for r in obj["history"]]
    except (KeyError, RuntimeError, ValueError, TypeError) as e:
        raise CheckpointError(f"{path}: expected a complete training state, found {_one_line(e)}") from e
    return epoch, history
