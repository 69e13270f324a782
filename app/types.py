"""Shared array aliases. Shapes and units are stated where each is used."""

from typing import Any

import numpy as np
import numpy.typing as npt

Vec3 = npt.NDArray[np.float64]  # (3,)
Mat3 = npt.NDArray[np.float64]  # (3, 3)
Mat4 = npt.NDArray[np.float64]  # (4, 4)
RGB = npt.NDArray[np.uint8]  # (H, W, 3)
Depth = npt.NDArray[np.float32]  # (H, W), metres, 0 = no reading
Mask = npt.NDArray[np.uint8]  # (H, W), 0 background, 1 object, 2 gripper
Array = npt.NDArray[Any]
