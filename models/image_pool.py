"""A history of generated images for the discriminator update (Shrivastava et al., CycleGAN).

Until the pool is full every new image is stored and returned as is; afterwards each new image
is, with probability ½, swapped for a random stored one (which is returned), otherwise returned
as is. This shows the discriminators older fakes too and damps oscillation. Seeded; its state
(images and random generator) goes into training checkpoints.
"""

from __future__ import annotations

from typing import Any

import torch

SWAP_PROBABILITY = 0.5  # the original CycleGAN code's choice


class ImagePool:
    """Fixed-size buffer of past generator outputs.

    Args:
        size: Number of images kept (50 in CycleGAN); 0 disables the pool.
        seed: Seed of the pool's own random generator.
    """

    def __init__(self, size: int = 50, seed: int = 0) -> None:
        if size < 0:
            raise ValueError(f"image pool: expected size >= 0, found {size}")
        self.size = size
        self.images: list[torch.Tensor] = []
        self.gen = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return len(self.images)

    def query(self, images: torch.Tensor) -> torch.Tensor:
        """Return a batch for the discriminator, updating the pool.

        Args:
            images: (B, C, H, W) freshly generated images (detached by this call).

        Returns:
            (B, C, H, W): each entry either the new image or a stored older one.
        """
        images = images.detach()
        if self.size == 0:
            return images
        out: list[torch.Tensor] = []
        for img in images:
            img = img.clone()
            if len(self.images) < self.size:
                self.images.append(img)
                out.append(img)
            elif torch.rand((), generator=self.gen).item() < SWAP_PROBABILITY:
                i = int(torch.randint(0, self.size, (), generator=self.gen).item())
                out.append(self.images[i])
                self.images[i] = img
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        """Plain-tensor state: ``size``, ``images`` (N, C, H, W) or None, ``rng`` (uint8)."""
        return {"size": self.size,
                "images": torch.stack(self.images) if self.images else None,
                "rng": self.gen.get_state()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore :meth:`state_dict` output (the size must match)."""
        if int(state["size"]) != self.size:
            raise ValueError(f"image pool: expected size {self.size}, found {state['size']}")
        imgs = state["images"]
        self.images = [] if imgs is None else [t.clone() for t in imgs]
        self.gen.set_state(state["rng"])
