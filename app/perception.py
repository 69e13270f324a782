"""The learned models at run time: G_Y->X (adapt), D_X / D_Y (segment) and the pose policy.

Weights ship under ``models/weights/`` as plain tensor ``state_dict`` s, loaded with
``torch.load(..., weights_only=True)`` into networks rebuilt from their stored config
(:mod:`models.checkpoint`, :mod:`models.policy_net`). Torch threads are set once here.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from app import ROOT
from app.errors import CheckpointError
from app.fingers import FingerTemplate
from app.robot.interfaces import Frame
from models.preprocess import from_tensor, policy_observation, to_tensor

if TYPE_CHECKING:
    from models.fast_infer import InferenceOptions

WEIGHTS_DIR = ROOT / "models" / "weights"
GAN_FILE = "cyclegan.pt"
POLICY_FILE = "policy.pt"


@dataclass
class Perception:
    """The model bundle every tree's leaves receive in ``setup(models=...)``.

    One generator pass per frame: :meth:`adapt` caches its result for the last frame object, so
    adapt → segment → policy on the same frame costs one G, one D and one policy pass.
    """

    gan: Any  # RealToSim or models.fast_infer.FastRealToSim: adapt / segment / segment_real, depth_range
    policy_net: torch.nn.Module
    obs_size: int
    timings_ms: dict[str, list[float]] = field(default_factory=lambda: {"generator": [], "segmentation": [], "policy": []})
    fingers: FingerTemplate | None = None  # the gripper's sim look, written into every adapted frame (app.fingers)
    _cache: tuple[Frame, Frame, torch.Tensor] | None = None  # (input frame, adapted frame, tensor)

    def adapt(self, frame: Frame) -> Frame:
        """Real-looking frame → sim-looking frame (G_Y->X), depth in metres again."""
        if self._cache is not None and self._cache[0] is frame:
            return self._cache[1]
        t0 = time.perf_counter()
        x = to_tensor(frame.rgb, frame.depth, self.gan.depth_range)
        sim = self.gan.adapt(x)
        rgb, depth = from_tensor(sim, self.gan.depth_range)
        if self.fingers is not None:  # the gripper as the agent and D_X saw it in training
            rgb, depth = self.fingers.apply(rgb, depth)
            sim = to_tensor(rgb, depth, self.gan.depth_range)
        self.timings_ms["generator"].append((time.perf_counter() - t0) * 1000)
        out = frame.with_images(rgb, depth)
        self._cache = (frame, out, sim)
        return out

    def _tensor(self, frame: Frame) -> torch.Tensor:
        if self._cache is not None and self._cache[1] is frame:
            return self._cache[2]
        return to_tensor(frame.rgb, frame.depth, self.gan.depth_range)

    def segment(self, frame: Frame) -> np.ndarray:
        """D_X's class mask of a sim-looking (adapted) frame."""
        t0 = time.perf_counter()
        mask = self.gan.segment(self._tensor(frame)).to(torch.uint8).numpy()
        self.timings_ms["segmentation"].append((time.perf_counter() - t0) * 1000)
        return mask

    def segment_raw(self, frame: Frame) -> np.ndarray:
        """D_Y's class mask of a raw real-looking frame (the alternative)."""
        x = to_tensor(frame.rgb, frame.depth, self.gan.depth_range)
        return self.gan.segment_real(x).to(torch.uint8).numpy()

    @torch.no_grad()
    def policy(self, frame: Frame) -> np.ndarray:
        """Deterministic pose action in [-1, 1]^4."""
        t0 = time.perf_counter()
        obs = torch.from_numpy(policy_observation(frame.rgb, frame.depth, self.obs_size))[None]
        a = self.policy_net(obs)[0].numpy()
        self.timings_ms["policy"].append((time.perf_counter() - t0) * 1000)
        return a


def load_perception(weights_dir: str | Path | None = None, threads: int = 2, fingers: bool = True,
                    hardware: str | None = None, options: InferenceOptions | None = None) -> Perception:
    """Load the shipped (or given) weights, with the inference levers of ``options``.

    Args:
        weights_dir: Weights directory (None: ``models/weights``).
        threads: Torch intra-op threads.
        fingers: Restore the gripper's sim look in adapted frames (:mod:`app.fingers`), rendered
            from ``hardware``'s geometry; False gives the generator's output as it is.
        hardware: Hardware YAML path (None: ``config/hardware.yaml``).
        options: Inference levers (None: ``config/inference.yaml``; see :mod:`models.fast_infer`).

    Raises:
        CheckpointError: One line naming the missing, corrupt or mismatched file.
    """
    from models.checkpoint import load_inference
    from models.fast_infer import fast
    from models.policy_net import load_policy

    torch.set_num_threads(threads)
    d = Path(weights_dir) if weights_dir else WEIGHTS_DIR
    for name in (GAN_FILE, POLICY_FILE):
        if not (d / name).is_file():
            raise CheckpointError(f"{d / name}: missing (expected the shipped weights; train them with "
                                  f"`python -m app train {'gan' if name == GAN_FILE else 'ppo'}`)")
    gan = fast(load_inference(d / GAN_FILE), options)
    policy = load_policy(d / POLICY_FILE)
    template = None
    if fingers:
        from app.sim.fingers import render_finger_template

        template = render_finger_template(hardware)
    return Perception(gan=gan, policy_net=policy, obs_size=int(policy.obs_size), fingers=template)
