"""Pictures of the compliant objects, rendered by the simulator: at rest, and held in the gripper.

``python -m app compliant --pictures PATH`` writes one PNG: a column per compliant object, the
top row the object resting on the table, the bottom row the same object after an oracle grasp,
lifted 15 cm (chains sag beside the fingers, pads dent under them), both seen from the side in
the ``real`` look (the arm behind the wrist is not drawn, as in every render).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from app.robot.interfaces import Intrinsics
from app.sim.grasping import oracle_grasp
from app.sim.objects import ObjectSpec
from app.sim.session import SimSession
from app.transforms import Pose, rot_z

TILE = (200, 150)  # px (width, height) of one view
FOCAL = 330.0  # px: about 17 cm across at the 28 cm viewing distance
VIEW_DISTANCE = 0.28  # m from the side camera to what it looks at
# Side camera looking along +y (base frame): x right, y down, z forward.
SIDE = np.array([[1.0, 0.0, 0.0], [0.0, 0.0, 1.0], [0.0, -1.0, 0.0]])


def side_view(session: SimSession, target: np.ndarray) -> np.ndarray:
    """RGB (H, W, 3) uint8 of ``target`` (base frame, m) from the side, in the session's look."""
    w, h = TILE
    k = Intrinsics(FOCAL, FOCAL, w / 2, h / 2, w, h)
    cam = Pose(target - VIEW_DISTANCE * SIDE[:, 2], SIDE)
    return session.world.render(cam, k, session.domain.render).rgb


def picture(specs: Sequence[ObjectSpec], domain: str = "real") -> np.ndarray:
    """The two-row picture (RGB uint8) of ``specs``: at rest above, held below."""
    columns = []
    with SimSession(domain=domain, seed=0) as s:
        for spec in specs:
            place = Pose(np.array([*s.hw.start_position[:2], spec.rest_height + 0.002]), rot_z(0.0))
            rest = s.reset(spec, place)
            top = side_view(s, rest.position)
            out = oracle_grasp(s)
            if not out.success:
                raise RuntimeError(f"{spec.name}: the oracle grasp for the picture failed: {out.reason}")
            held = s.world.gripper_pose().position + np.array([0.0, 0.0, -0.03])  # fingers and object
            columns.append(np.concatenate([top, side_view(s, held)], axis=0))
    return np.concatenate(columns, axis=1)


def write_picture(specs: Sequence[ObjectSpec], path: Path) -> Path:
    """Render :func:`picture` and save it as a PNG at ``path``."""
    import cv2

    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(picture(specs), cv2.COLOR_RGB2BGR), [cv2.IMWRITE_PNG_COMPRESSION, 9])
    return path
