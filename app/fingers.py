"""The gripper's fixed look in the camera: restore it in adapted frames.

The camera is rigidly mounted on the hand, and the fingers stay open while the pose steps and
visual servoing look at the image, so the gripper covers the same pixels, with the same colour
and the same depth, in every sim-domain frame (measured: 229 pixels at 0.093–0.106 m with the
shipped hardware file, identical to the bit across heights and yaws). The pose agent trained on
those sim frames. The generator cannot reproduce them: its depth code maps everything nearer
than the sensor's 0.2 m to "no reading", so its output reads 0 m there. :class:`FingerTemplate`
holds the sim look of that region, rendered once from the configured hardware geometry only (an
empty-looking start view in the ``sim`` domain; no scene content), and :meth:`FingerTemplate.apply`
writes it into an adapted frame, so the agent sees at run time what it trained on.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from app.errors import InputError
from app.types import RGB, Depth, Mask


@dataclass(frozen=True)
class FingerTemplate:
    """The sim-domain look of the gripper in the camera image.

    Attributes:
        mask: (H, W) bool, pixels covered by the gripper.
        rgb: (H, W, 3) uint8, the sim-domain colour there (zero elsewhere).
        depth: (H, W) float32 metres, the exact sim depth there (camera optical frame, zero elsewhere).
    """

    mask: Mask
    rgb: RGB
    depth: Depth

    @property
    def pixels(self) -> int:
        """Number of gripper pixels."""
        return int(np.count_nonzero(self.mask))

    def apply(self, rgb: RGB, depth: Depth) -> tuple[RGB, Depth]:
        """Copies of ``rgb`` and ``depth`` with the gripper region set to its sim look.

        Args:
            rgb: (H, W, 3) uint8 frame of the template's size.
            depth: (H, W) float depth in metres.

        Returns:
            ``(rgb, depth)``, new arrays.

        Raises:
            InputError: The frame's size is not the template's.
        """
        if rgb.shape[:2] != self.mask.shape or depth.shape != self.mask.shape:
            raise InputError(f"finger template: expected frames of {self.mask.shape}, "
                             f"found rgb {rgb.shape[:2]} and depth {depth.shape}")
        out_rgb, out_depth = rgb.copy(), depth.astype(np.float32, copy=True)
        out_rgb[self.mask] = self.rgb[self.mask]
        out_depth[self.mask] = self.depth[self.mask]
        return out_rgb, out_depth
