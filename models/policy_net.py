"""The pose agent's network: an SB3 feature extractor for RGB-D, and its shippable actor.

* :class:`RGBDExtractor` — a ``BaseFeaturesExtractor`` for ``Box(0, 1, (4, S, S), float32)``
  observations (see :func:`models.preprocess.policy_observation`): convolutions, flatten, one
  linear layer to ``features_dim`` (256), sized by one dry forward pass. Use it with
  ``policy_kwargs=dict(features_extractor_class=RGBDExtractor, normalize_images=False)``.
* :class:`PosePolicy` — the deterministic actor alone, in plain torch: extractor → SB3's
  ``mlp_extractor.policy_net`` → ``action_net`` → clip to the action bounds. This is exactly what
  ``model.predict(obs, deterministic=True)`` computes for a Gaussian PPO policy, but it loads
  from a plain state dict (``weights_only=True``), never from SB3's zip (which unpickles).
* :func:`export_policy` / :func:`load_policy` — write and read that file.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.torch_layers import BaseFeaturesExtractor
from torch import nn

from app.errors import CheckpointError, InputError
from models.checkpoint import load_file, save_file

POLICY_FORMAT = "simgrasp-pose-policy"
POLICY_VERSION = 1
FEATURES_DIM = 256  # FACTS.md: a 3-conv CNN + 256-d linear layer learned the pose task on a CPU
CONV_CHANNELS = (32, 64, 64)  # NatureCNN widths
CONV_KERNELS = (8, 4, 3)  # NatureCNN kernels: 64 px → 15 → 6 → 4
CONV_STRIDES = (4, 2, 1)
ACTIVATIONS: dict[str, type[nn.Module]] = {
    cls.__name__: cls for cls in (nn.Tanh, nn.ReLU, nn.LeakyReLU, nn.ELU, nn.GELU, nn.SiLU)}


class RGBDExtractor(BaseFeaturesExtractor):
    """Convolutional features of a ``(C, S, S)`` float observation in [0, 1].

    Args:
        observation_space: ``Box`` of shape ``(C, S, S)`` (C = 4: RGB, depth).
        features_dim: Output features (after a ReLU).
        channels: Output channels of each convolution.
        kernels: Kernel size of each convolution.
        strides: Stride of each convolution.

    Raises:
        InputError: A non-image space, mismatched layer lists, or an image too small for them.
    """

    def __init__(self, observation_space: gym.spaces.Box, features_dim: int = FEATURES_DIM,
                 channels: Sequence[int] = CONV_CHANNELS, kernels: Sequence[int] = CONV_KERNELS,
                 strides: Sequence[int] = CONV_STRIDES) -> None:
        shape = tuple(observation_space.shape or ())
        if len(shape) != 3:
            raise InputError(f"RGBDExtractor: expected a (C, S, S) observation space, found {shape}")
        if not len(channels) == len(kernels) == len(strides) >= 1:
            raise InputError(f"RGBDExtractor: expected equal, non-empty layer lists, found channels={channels}, "
                             f"kernels={kernels}, strides={strides}")
        super().__init__(observation_space, features_dim)
        self.arch: dict[str, Any] = {"features_dim": int(features_dim), "channels": [int(c) for c in channels],
                                     "kernels": [int(k) for k in kernels], "strides": [int(s) for s in strides]}
        layers: list[nn.Module] = []
        c_in = shape[0]
        for c, k, s in zip(channels, kernels, strides, strict=True):
            layers += [nn.Conv2d(c_in, c, k, stride=s), nn.ReLU()]
            c_in = c
        layers.append(nn.Flatten())
        self.cnn = nn.Sequential(*layers)
        with torch.no_grad():  # the SB3 way: size the linear layer by one dry forward pass
            try:
                n_flat = self.cnn(torch.zeros((1, *shape))).shape[1]
            except RuntimeError as e:
                raise InputError(f"RGBDExtractor: observation {shape} too small for kernels {list(kernels)} "
                                 f"and strides {list(strides)}") from e
        self.linear = nn.Sequential(nn.Linear(n_flat, features_dim), nn.ReLU())

    def forward(self, observations: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) float → (B, features_dim)."""
        return self.linear(self.cnn(observations))


class PosePolicy(nn.Module):
    """The deterministic actor of a PPO policy with an :class:`RGBDExtractor`.

    Args:
        arch: Architecture metadata as written by :func:`export_policy` (``obs_shape``,
            ``action_low``, ``action_high``, ``extractor``, ``pi_layers``, ``activation``).
    """

    def __init__(self, arch: Mapping[str, Any]) -> None:
        super().__init__()
        self.arch = dict(arch)
        shape = tuple(int(v) for v in arch["obs_shape"])
        space = gym.spaces.Box(0.0, 1.0, shape, np.float32)
        self.extractor = RGBDExtractor(space, **arch["extractor"])
        act = ACTIVATIONS[str(arch["activation"])]
        layers: list[nn.Module] = []
        last = int(arch["extractor"]["features_dim"])
        for width in arch["pi_layers"]:  # the same layout as SB3's MlpExtractor.policy_net
            layers += [nn.Linear(last, int(width)), act()]
            last = int(width)
        self.policy_net = nn.Sequential(*layers)
        low = torch.tensor(arch["action_low"], dtype=torch.float32)
        high = torch.tensor(arch["action_high"], dtype=torch.float32)
        self.action_net = nn.Linear(last, low.numel())
        self.register_buffer("low", low, persistent=False)
        self.register_buffer("high", high, persistent=False)
        self.obs_shape = shape
        self.meta: dict[str, Any] = {}  # the exporter's extra metadata, filled by load_policy
        self.eval()

    @property
    def obs_size(self) -> int:
        """Side S of the square observation the policy takes (px)."""
        return self.obs_shape[-1]

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        """(B, C, S, S) observations → (B, A) deterministic actions (Gaussian mean, clipped)."""
        mean = self.action_net(self.policy_net(self.extractor(obs.float())))
        return torch.clamp(mean, self.low, self.high)

    @torch.no_grad()
    def predict(self, obs: np.ndarray) -> np.ndarray:
        """Numpy convenience: (C, S, S) → (A,) or (B, C, S, S) → (B, A) float32.

        Raises:
            InputError: An observation of another shape.
        """
        single = obs.ndim == len(self.obs_shape)
        batch = obs[None] if single else obs
        if tuple(batch.shape[1:]) != self.obs_shape:
            raise InputError(f"policy: expected observation {self.obs_shape}, found {tuple(obs.shape)}")
        act = self(torch.as_tensor(batch, dtype=torch.float32)).numpy()
        return act[0] if single else act


def _policy_arch(sb3_model: BaseAlgorithm) -> dict[str, Any]:
    policy = sb3_model.policy
    extractor = getattr(policy, "pi_features_extractor", None)
    if not isinstance(extractor, RGBDExtractor):
        raise InputError(f"export_policy: expected an RGBDExtractor policy, found {type(extractor).__name__}")
    if getattr(policy, "squash_output", False):
        raise InputError("export_policy: expected an unsquashed Gaussian policy, found squash_output=True")
    space = sb3_model.action_space
    if not isinstance(space, gym.spaces.Box):
        raise InputError(f"export_policy: expected a Box action space, found {type(space).__name__}")
    pi_layers = [m.out_features for m in policy.mlp_extractor.policy_net if isinstance(m, nn.Linear)]
    return {"obs_shape": [int(v) for v in sb3_model.observation_space.shape],
            "action_low": [float(v) for v in space.low], "action_high": [float(v) for v in space.high],
            "extractor": dict(extractor.arch), "pi_layers": pi_layers,
            "activation": policy.activation_fn.__name__}


def export_policy(sb3_model: BaseAlgorithm, path: str | Path, meta: Mapping[str, Any] | None = None) -> int:
    """Write the deterministic actor of a trained SB3 PPO model as a plain state dict.

    Args:
        sb3_model: A PPO model whose policy uses :class:`RGBDExtractor` and a Box action space.
        path: Output file (``.pt``).
        meta: Extra plain-type metadata (training steps, observation size, env config, …).

    Returns:
        File size in bytes.
    """
    arch = _policy_arch(sb3_model)
    policy = sb3_model.policy
    state: dict[str, torch.Tensor] = {}
    for prefix, module in (("extractor.", policy.pi_features_extractor),
                           ("policy_net.", policy.mlp_extractor.policy_net), ("action_net.", policy.action_net)):
        state.update({prefix + k: v.detach().cpu().clone() for k, v in module.state_dict().items()})
    return save_file(path, {"format": POLICY_FORMAT, "version": POLICY_VERSION, "arch": arch,
                            "meta": dict(meta or {}), "state_dict": state})


def load_policy(path: str | Path) -> PosePolicy:
    """Rebuild the shipped actor (``weights_only=True``).

    Raises:
        CheckpointError: Missing, corrupt, unsafe or mismatched file (one line).
    """
    obj = load_file(path, POLICY_FORMAT, POLICY_VERSION)
    try:
        policy = PosePolicy(obj["arch"])
    except (KeyError, TypeError, ValueError, InputError) as e:
        raise CheckpointError(f"{path}: expected valid policy architecture metadata, found "
                              f"{e.__class__.__name__}: {e}") from e
    try:
        policy.load_state_dict(obj["state_dict"])
    except (KeyError, RuntimeError) as e:
        first = " ".join(str(e).split())[:160]
        raise CheckpointError(f"{path}: weights do not fit the network built from its metadata ({first})") from e
    policy.meta = dict(obj.get("meta", {}))
    return policy.eval()
