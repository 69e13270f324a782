"""The CycleGAN dataset on disk: format, writer helpers and reader.

Layout of a dataset directory::

    DIR/index.json
    DIR/sim/00000_rgb.png     8-bit RGB
    DIR/sim/00000_depth.png   16-bit single channel, depth / 0.000125 m (SR300 units), 0 = missing
    DIR/sim/00000_mask.png    8-bit single channel, classes 0 background, 1 object, 2 gripper
    DIR/real/00000_rgb.png    (real samples have no mask file)
    DIR/real/00000_depth.png

``index.json``::

    {"format": "simgrasp-gan-dataset", "version": 1, "depth_unit_m": 0.000125,
     "height": 128, "width": 128, "classes": ["background", "object", "gripper"],
     "domains": {"sim": [{"id": "00000", ...}, ...], "real": [{"id": "00000", ...}, ...]},
     "info": {...}}

Each sample entry needs only ``id`` (a string of digits); generators may add plain fields
(object, seed, pose). ``info`` is free-form (seeds, domain hashes, command line). Depth beyond
the 16-bit range (8.19 m) or non-finite is stored as 0 (missing).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from app.errors import InputError
from app.outputs import atomic_write_text, write_guard
from app.types import RGB, Depth, Mask

DATASET_FORMAT = "simgrasp-gan-dataset"
DATASET_VERSION = 1
DEPTH_UNIT_M = 0.000125  # SR300 depth unit (librealsense)
UINT16_MAX = 65535
CLASSES = ["background", "object", "gripper"]
DOMAINS = ("sim", "real")


def encode_depth_png(depth: Depth, unit: float = DEPTH_UNIT_M) -> np.ndarray:
    """Metres → uint16 sensor units (0 = missing; out of range or non-finite → 0)."""
    d = np.asarray(depth, dtype=np.float64)
    units = np.round(np.where(np.isfinite(d), d, 0.0) / unit)
    units[(units < 0) | (units > UINT16_MAX)] = 0
    return units.astype(np.uint16)


def decode_depth_png(units: np.ndarray, unit: float = DEPTH_UNIT_M) -> Depth:
    """uint16 sensor units → float32 metres (0 stays 0)."""
    return (units.astype(np.float64) * unit).astype(np.float32)


def sample_id(index: int) -> str:
    """Zero-padded file stem of sample ``index`` (``7`` → ``"00007"``)."""
    return f"{index:05d}"


RESUME_HINT = "the samples listed in index.json are kept: rerun the same command to continue"


def write_sample(root: str | Path, domain: str, sid: str, rgb: RGB, depth: Depth,
                 mask: Mask | None = None) -> None:
    """Write one sample's PNG files (``mask`` required for ``sim``, refused for ``real``).

    Raises:
        InputError: Wrong domain, shapes or dtypes.
        OutputWriteError: A file could not be written (exit code 4).
    """
    if domain not in DOMAINS:
        raise InputError(f"dataset: expected domain in {list(DOMAINS)}, found {domain!r}")
    if (mask is None) != (domain == "real"):
        need = "sim samples need a mask" if domain == "sim" else "real samples take no mask"
        raise InputError(f"dataset: {need}")
    if rgb.dtype != np.uint8 or rgb.ndim != 3 or rgb.shape[2] != 3 or depth.shape != rgb.shape[:2]:
        raise InputError(f"dataset: expected (H, W, 3) uint8 rgb and (H, W) depth, "
                         f"found {rgb.shape} {rgb.dtype} and {depth.shape}")
    d = Path(root) / domain
    with write_guard(d, RESUME_HINT):
        d.mkdir(parents=True, exist_ok=True)
    files: list[tuple[str, np.ndarray]] = [
        (f"{sid}_rgb.png", cv2.cvtColor(rgb, cv2.COLOR_RGB2BGR)),
        (f"{sid}_depth.png", encode_depth_png(depth))]
    if mask is not None:
        if mask.shape != rgb.shape[:2] or mask.dtype != np.uint8:
            raise InputError(f"dataset: expected {rgb.shape[:2]} uint8 mask, found {mask.shape} {mask.dtype}")
        files.append((f"{sid}_mask.png", mask))
    for name, img in files:
        ok, png = cv2.imencode(".png", img)
        if not ok:
            raise InputError(f"{d / name}: the PNG encoder refused the image")
        with write_guard(d / name, RESUME_HINT):
            (d / name).write_bytes(png.tobytes())


def write_index(root: str | Path, samples: Mapping[str, Sequence[Mapping[str, Any]]],
                height: int, width: int, info: Mapping[str, Any] | None = None) -> Path:
    """Write ``index.json`` (atomically) listing the samples of each domain."""
    root = Path(root)
    index = {"format": DATASET_FORMAT, "version": DATASET_VERSION, "depth_unit_m": DEPTH_UNIT_M,
             "height": height, "width": width, "classes": CLASSES,
             "domains": {dom: [dict(s) for s in samples.get(dom, [])] for dom in DOMAINS},
             "info": dict(info or {})}
    path = root / "index.json"
    atomic_write_text(path, json.dumps(index, indent=1), RESUME_HINT)
    return path


def read_index(root: str | Path) -> dict[str, Any]:
    """Read and check ``index.json``.

    Raises:
        InputError: Missing, malformed or of another format.
    """
    path = Path(root) / "index.json"
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as e:
        raise InputError(f"{path}: cannot read a dataset index ({e.__class__.__name__}: {e})") from e
    if not isinstance(index, dict) or index.get("format") != DATASET_FORMAT:
        found = index.get("format") if isinstance(index, dict) else type(index).__name__
        raise InputError(f"{path}: expected format {DATASET_FORMAT!r}, found {found!r}")
    if index.get("version") != DATASET_VERSION:
        raise InputError(f"{path}: expected version {DATASET_VERSION}, found {index.get('version')!r}")
    domains = index.get("domains")
    if not isinstance(domains, dict) or any(not isinstance(domains.get(d), list) for d in DOMAINS):
        raise InputError(f"{path}: expected 'domains' with lists 'sim' and 'real'")
    return index


def _read_png(path: Path, flags: int) -> np.ndarray:
    img = cv2.imread(str(path), flags)
    if img is None:
        raise InputError(f"{path}: missing or unreadable image")
    return img


def read_sample(root: str | Path, domain: str, sid: str,
                unit: float = DEPTH_UNIT_M) -> tuple[RGB, Depth, Mask | None]:
    """Read one sample: ``(rgb (H, W, 3) uint8, depth (H, W) float32 m, mask or None)``.

    Raises:
        InputError: A missing, unreadable or mis-typed file.
    """
    d = Path(root) / domain
    rgb = cv2.cvtColor(_read_png(d / f"{sid}_rgb.png", cv2.IMREAD_COLOR), cv2.COLOR_BGR2RGB)
    raw = _read_png(d / f"{sid}_depth.png", cv2.IMREAD_UNCHANGED)
    if raw.dtype != np.uint16 or raw.shape != rgb.shape[:2]:
        raise InputError(f"{d / f'{sid}_depth.png'}: expected {rgb.shape[:2]} uint16, "
                         f"found {raw.shape} {raw.dtype}")
    mask = None
    if domain == "sim":
        mask = _read_png(d / f"{sid}_mask.png", cv2.IMREAD_UNCHANGED)
        if mask.dtype != np.uint8 or mask.shape != rgb.shape[:2]:
            raise InputError(f"{d / f'{sid}_mask.png'}: expected {rgb.shape[:2]} uint8, "
                             f"found {mask.shape} {mask.dtype}")
    return rgb, decode_depth_png(raw, unit), mask


@dataclass
class DomainImages:
    """All images of one domain, in memory.

    Attributes:
        rgb: (N, H, W, 3) uint8.
        depth: (N, H, W) float32 metres, 0 = missing.
        mask: (N, H, W) uint8 classes for ``sim``; None for ``real``.
        ids: Sample ids, in order.
    """

    rgb: np.ndarray
    depth: np.ndarray
    mask: np.ndarray | None
    ids: list[str]

    def __len__(self) -> int:
        return len(self.ids)


def load_domain(root: str | Path, domain: str, limit: int | None = None) -> DomainImages:
    """Read every (or the first ``limit``) sample of one domain.

    Raises:
        InputError: Bad index, no samples, a bad file, or an image of another size.
    """
    index = read_index(root)
    entries = index["domains"][domain][:limit] if limit else index["domains"][domain]
    if not entries:
        raise InputError(f"{Path(root) / 'index.json'}: expected {domain} samples, found none")
    h, w = int(index["height"]), int(index["width"])
    unit = float(index.get("depth_unit_m", DEPTH_UNIT_M))
    rgbs, depths, masks, ids = [], [], [], []
    for e in entries:
        sid = str(e["id"])
        rgb, depth, mask = read_sample(root, domain, sid, unit)
        if rgb.shape[:2] != (h, w):
            raise InputError(f"{Path(root) / domain / f'{sid}_rgb.png'}: expected {h}x{w}, found "
                             f"{rgb.shape[0]}x{rgb.shape[1]}")
        rgbs.append(rgb)
        depths.append(depth)
        ids.append(sid)
        if mask is not None:
            masks.append(mask)
    return DomainImages(np.stack(rgbs), np.stack(depths), np.stack(masks) if masks else None, ids)


def synthetic_frame(rng: np.random.Generator, size: int, real: bool) -> tuple[RGB, Depth, Mask]:
    """A toy wrist-camera frame: flat table, one coloured box, two gripper fingers.

    ``real=True`` adds a warm cast, a brightness gradient, colour noise and SR300-like depth
    (noise and holes along the object's edges) — a small, cheap reality gap for tests.

    Returns:
        (size, size, 3) uint8 RGB, (size, size) float32 depth in metres, (size, size) uint8 mask.
    """
    table_depth, object_height, finger_depth = 0.45, 0.05, 0.25  # m: start pose above a 5 cm object
    rgb = np.full((size, size, 3), 209, np.uint8)  # 0.82 · 255: the sim table grey
    depth = np.full((size, size), table_depth, np.float32)
    mask = np.zeros((size, size), np.uint8)
    h, w = rng.integers(size // 8, size // 3, 2)
    top, left = rng.integers(size // 8, size - size // 8 - h), rng.integers(size // 6, size - size // 6 - w)
    rgb[top:top + h, left:left + w] = rng.integers(20, 235, 3)
    depth[top:top + h, left:left + w] = table_depth - object_height
    mask[top:top + h, left:left + w] = 1
    finger = size // 10  # fingertips show at the left and right image edges
    for cols in (slice(0, finger), slice(size - finger, size)):
        rgb[size // 3: 2 * size // 3, cols] = 90
        depth[size // 3: 2 * size // 3, cols] = finger_depth
        mask[size // 3: 2 * size // 3, cols] = 2
    if real:
        gradient = np.linspace(0.8, 1.05, size, dtype=np.float32)[None, :, None]  # oblique light
        warm = np.array([1.1, 1.0, 0.84], np.float32)  # white balance as in config/domains/real.yaml
        noisy = rgb.astype(np.float32) * gradient * warm + rng.normal(0.0, 4.0, rgb.shape)
        rgb = np.clip(noisy, 0, 255).astype(np.uint8)
        depth = depth + rng.normal(0.0, 0.002, depth.shape).astype(np.float32)  # 2 mm sensor noise
        edges = cv2.dilate(cv2.Canny(mask * 100, 50, 150), np.ones((3, 3), np.uint8)) > 0
        depth[edges & (rng.random(depth.shape) < 0.7)] = 0.0  # most edge pixels read nothing
        depth = (np.round(depth / DEPTH_UNIT_M) * DEPTH_UNIT_M).astype(np.float32)
    return rgb, depth.astype(np.float32), mask


def write_synthetic_dataset(root: str | Path, n: int = 8, size: int = 128, seed: int = 0) -> Path:
    """Write a tiny dataset of :func:`synthetic_frame` images (tests and demos).

    Args:
        root: Output directory.
        n: Samples per domain.
        size: Image side in pixels.
        seed: Random seed (sim and real use independent streams).

    Returns:
        The path of ``index.json``.
    """
    samples: dict[str, list[dict[str, Any]]] = {}
    for k, domain in enumerate(DOMAINS):
        rng = np.random.default_rng([seed, k])
        samples[domain] = []
        for i in range(n):
            rgb, depth, mask = synthetic_frame(rng, size, real=domain == "real")
            sid = sample_id(i)
            write_sample(root, domain, sid, rgb, depth, mask if domain == "sim" else None)
            samples[domain].append({"id": sid})
    return write_index(root, samples, size, size, {"generator": "models.dataset.write_synthetic_dataset",
                                                   "seed": seed})
