"""RGB-D frames ↔ network tensors, for the CycleGAN and for the pose policy.

CycleGAN tensors are ``(4, H, W)`` float32 in [-1, 1]: channels 0–2 the colour, channel 3 the
depth. Depth is normalised linearly from its valid range ``[near, far]`` (the SR300's
0.2–1.5 m by default) to [-1, 1].

**Missing depth.** A reading of 0 m (the sensor's "no reading"), a non-finite value, or one
closer than ``near`` (which an SR300 cannot measure: it reports 0 there) is encoded as -1, the
same code as ``near`` itself; readings beyond ``far`` are clipped to ``far`` (+1). Decoding
treats every value below ``missing_below`` (default -0.98) as "no reading" and returns 0 m. So
-1 means "no reading", and the only valid depths that do not survive a round trip are those
within ``(missing_below + 1) / 2 · (far − near)`` (13 mm by default) of ``near``, which decode
as missing. No fifth channel is needed, the generator learns to fill holes by writing values
above the threshold, and both domains agree on what "nothing" looks like.

The pose policy takes a smaller, [0, 1] float observation instead
(:func:`policy_observation`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import cv2
import numpy as np
import torch

from app.errors import InputError
from app.types import RGB, Depth, Mask

SR300_NEAR_M = 0.2  # m, SR300 indoor range (librealsense docs)
SR300_FAR_M = 1.5  # m
MISSING_BELOW = -0.98  # encoded depth below this decodes as "no reading" (13 mm above near)
POLICY_DEPTH_SCALE_M = 1.5  # m: policy depth channel = depth / 1.5, the SR300's far limit


@dataclass(frozen=True)
class DepthRange:
    """How depth is normalised for the CycleGAN.

    Attributes:
        near: Nearest valid reading (m); encoded as -1.
        far: Farthest valid reading (m); encoded as +1.
        missing_below: Encoded values below this decode as 0 m ("no reading").
    """

    near: float = SR300_NEAR_M
    far: float = SR300_FAR_M
    missing_below: float = MISSING_BELOW

    def __post_init__(self) -> None:
        if not 0.0 < self.near < self.far:
            raise InputError(f"depth range: expected 0 < near < far, found near={self.near}, far={self.far}")
        if not -1.0 <= self.missing_below < 1.0:
            raise InputError(f"depth range: expected missing_below in [-1, 1), found {self.missing_below}")

    def to_dict(self) -> dict[str, float]:
        """Plain-type form (for checkpoint metadata and saved configs)."""
        return {k: float(v) for k, v in asdict(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> DepthRange:
        """Inverse of :meth:`to_dict`."""
        return cls(float(data["near"]), float(data["far"]), float(data["missing_below"]))


def _shape(a: Any) -> str:
    return str(tuple(a.shape)) if isinstance(a, np.ndarray | torch.Tensor) else type(a).__name__


def check_rgbd(rgb: Any, depth: Any) -> None:
    """Validate one RGB-D frame at a module boundary.

    Args:
        rgb: Expected (H, W, 3) uint8.
        depth: Expected (H, W) float32 or float64, metres (raw uint16 sensor units are refused).

    Raises:
        InputError: One line naming what was expected and what was found.
    """
    if not isinstance(rgb, np.ndarray) or rgb.ndim != 3 or rgb.shape[2] != 3 or rgb.dtype != np.uint8:
        found = f"{_shape(rgb)} {getattr(rgb, 'dtype', '')}".strip()
        raise InputError(f"rgb: expected (H, W, 3) uint8, found {found}")
    h, w = rgb.shape[:2]
    if (not isinstance(depth, np.ndarray) or depth.shape != (h, w)
            or not np.issubdtype(depth.dtype, np.floating)):
        found = f"{_shape(depth)} {getattr(depth, 'dtype', '')}".strip()
        raise InputError(f"depth: expected ({h}, {w}) float32 metres, found {found}")


def encode_depth(depth: np.ndarray, rng: DepthRange) -> np.ndarray:
    """Depth in metres → [-1, 1] (see the module docstring for missing readings).

    Args:
        depth: (H, W) float depth in metres, 0 = no reading.
        rng: The valid range.

    Returns:
        (H, W) float32 in [-1, 1]; -1 where there is no reading.
    """
    d = np.asarray(depth, dtype=np.float32)
    missing = ~np.isfinite(d) | (d < rng.near)
    d = np.clip(np.nan_to_num(d, nan=rng.near), rng.near, rng.far)
    out = 2.0 * (d - rng.near) / (rng.far - rng.near) - 1.0
    out[missing] = -1.0
    return out.astype(np.float32)


def decode_depth(code: np.ndarray, rng: DepthRange) -> np.ndarray:
    """[-1, 1] → depth in metres; codes below ``rng.missing_below`` → 0 m ("no reading").

    Args:
        code: (H, W) float array, the network's depth channel.
        rng: The valid range.

    Returns:
        (H, W) float32 metres in ``{0} ∪ [near, far]``.
    """
    c = np.clip(np.asarray(code, dtype=np.float32), -1.0, 1.0)
    d = rng.near + (c + 1.0) * 0.5 * (rng.far - rng.near)
    d[c < rng.missing_below] = 0.0
    return d.astype(np.float32)


def to_tensor(rgb: RGB, depth: Depth, rng: DepthRange | None = None) -> torch.Tensor:
    """One RGB-D frame → CycleGAN tensor.

    Args:
        rgb: (H, W, 3) uint8.
        depth: (H, W) float32 metres, 0 = no reading.
        rng: Depth normalisation (default: SR300 range).

    Returns:
        (4, H, W) float32 in [-1, 1]: RGB then depth.

    Raises:
        InputError: Wrong shape or dtype.
    """
    check_rgbd(rgb, depth)
    rng = rng or DepthRange()
    colour = rgb.astype(np.float32) / 127.5 - 1.0  # 255 / 2: uint8 → [-1, 1]
    stacked = np.concatenate([colour.transpose(2, 0, 1), encode_depth(depth, rng)[None]], axis=0)
    return torch.from_numpy(np.ascontiguousarray(stacked))


def from_tensor(t: torch.Tensor, rng: DepthRange | None = None) -> tuple[RGB, Depth]:
    """CycleGAN tensor → one RGB-D frame (inverse of :func:`to_tensor`).

    Args:
        t: (4, H, W) float tensor in [-1, 1] (values outside are clipped).
        rng: Depth normalisation (default: SR300 range).

    Returns:
        ``(rgb, depth)``: (H, W, 3) uint8 and (H, W) float32 metres, 0 = no reading.

    Raises:
        InputError: Wrong shape.
    """
    if not isinstance(t, torch.Tensor) or t.ndim != 3 or t.shape[0] != 4:
        raise InputError(f"tensor: expected (4, H, W), found {_shape(t)}")
    rng = rng or DepthRange()
    a = t.detach().to("cpu", torch.float32).numpy()
    rgb = np.clip(np.round((a[:3] + 1.0) * 127.5), 0, 255).astype(np.uint8).transpose(1, 2, 0)
    return np.ascontiguousarray(rgb), decode_depth(a[3], rng)


def to_batch(rgbs: Sequence[RGB], depths: Sequence[Depth], rng: DepthRange | None = None) -> torch.Tensor:
    """Several frames of one size → (B, 4, H, W) float32 (see :func:`to_tensor`).

    Raises:
        InputError: Different counts, sizes, or a bad frame.
    """
    if len(rgbs) != len(depths) or len(rgbs) == 0:
        raise InputError(f"batch: expected equal, non-zero numbers of rgb and depth images, "
                         f"found {len(rgbs)} and {len(depths)}")
    tensors = [to_tensor(r, d, rng) for r, d in zip(rgbs, depths, strict=True)]
    first = tuple(tensors[0].shape)
    for t in tensors:
        if tuple(t.shape) != first:
            raise InputError(f"batch: expected every frame {first[1:]}, found {tuple(t.shape)[1:]}")
    return torch.stack(tensors)


def from_batch(t: torch.Tensor, rng: DepthRange | None = None) -> list[tuple[RGB, Depth]]:
    """(B, 4, H, W) tensor → list of ``(rgb, depth)`` frames (see :func:`from_tensor`)."""
    if not isinstance(t, torch.Tensor) or t.ndim != 4 or t.shape[1] != 4:
        raise InputError(f"batch tensor: expected (B, 4, H, W), found {_shape(t)}")
    return [from_tensor(x, rng) for x in t]


def mask_to_tensor(mask: Mask, classes: int = 3) -> torch.Tensor:
    """Segmentation mask → int64 class-index tensor for cross-entropy.

    Args:
        mask: (H, W) uint8, 0 background, 1 object, 2 gripper.
        classes: Number of classes; every value must be below it.

    Returns:
        (H, W) int64.

    Raises:
        InputError: Wrong shape, dtype or an out-of-range class.
    """
    if not isinstance(mask, np.ndarray) or mask.ndim != 2 or mask.dtype != np.uint8:
        found = f"{_shape(mask)} {getattr(mask, 'dtype', '')}".strip()
        raise InputError(f"mask: expected (H, W) uint8, found {found}")
    if mask.size and int(mask.max()) >= classes:
        raise InputError(f"mask: expected classes 0..{classes - 1}, found {int(mask.max())}")
    return torch.from_numpy(mask.astype(np.int64))


def policy_observation(rgb: RGB, depth: Depth, size: int,
                       depth_scale: float = POLICY_DEPTH_SCALE_M) -> np.ndarray:
    """Downscale a frame into the pose policy's observation.

    RGB is resized with area averaging (no aliasing), depth with nearest neighbour (so holes stay
    holes and no depth is invented between an object and the table).

    Args:
        rgb: (H, W, 3) uint8.
        depth: (H, W) float32 metres, 0 = no reading.
        size: Output side S in pixels.
        depth_scale: Depth (m) that maps to 1.0; deeper readings are clipped to 1.

    Returns:
        (4, S, S) float32: RGB / 255 in [0, 1], then ``clip(depth / depth_scale, 0, 1)``
        (0 = no reading or non-finite).

    Raises:
        InputError: Wrong shape or dtype, or a non-positive size.
    """
    check_rgbd(rgb, depth)
    if size <= 0:
        raise InputError(f"policy observation: expected size > 0, found {size}")
    small_rgb = cv2.resize(rgb, (size, size), interpolation=cv2.INTER_AREA)
    d = np.nan_to_num(depth.astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
    small_d = cv2.resize(d, (size, size), interpolation=cv2.INTER_NEAREST)
    obs = np.empty((4, size, size), np.float32)
    obs[:3] = small_rgb.transpose(2, 0, 1).astype(np.float32) / 255.0
    obs[3] = np.clip(small_d / depth_scale, 0.0, 1.0)
    return obs
