"""Render the gripper's sim-domain look in the camera (see :mod:`app.fingers`)."""

from __future__ import annotations

import functools

import numpy as np

from app.fingers import FingerTemplate
from app.hardware_config import load_hardware

GRIPPER = 2  # class index of the gripper in the simulator's masks


@functools.lru_cache(maxsize=4)
def render_finger_template(hardware: str | None = None) -> FingerTemplate:
    """The gripper region, colour and depth of a ``sim``-domain frame at the start pose.

    Only the configured hardware geometry decides it (camera mount and intrinsics, hand and
    finger opening): the view is rendered with no object in the scene, gripper open.

    Args:
        hardware: Hardware YAML path (None: ``config/hardware.yaml``).

    Returns:
        The template (cached per hardware path and process).
    """
    from app.sim.session import SimSession

    with SimSession(hardware=load_hardware(hardware), domain="sim", seed=0) as s:
        s.world.reset_arm(s.world.joint_positions(), finger_width=s.hw.max_width)  # fingers open, as in every reset
        s.camera.invalidate()
        frame = s.camera.get_frame()
        raw = s.camera.last_raw()
        assert raw is not None  # get_frame just rendered it
    mask = raw.mask == GRIPPER
    rgb = np.where(mask[..., None], frame.rgb, 0).astype(np.uint8)
    depth = np.where(mask, frame.depth, 0.0).astype(np.float32)
    return FingerTemplate(mask=mask, rgb=rgb, depth=depth)
