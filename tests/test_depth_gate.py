"""Depth gate (app/controllers/depth_gate.py) and its leaves (behaviours/scene.py)."""

from __future__ import annotations

import cv2
import numpy as np
import py_trees
from py_trees.common import Status

from app.controllers.depth_gate import DepthGateParams, fit_table_plane, flatten_table, gate_mask
from app.robot.interfaces import Frame, Intrinsics

SIZE = 128
K = Intrinsics(fx=120.0, fy=120.0, cx=63.5, cy=63.5, width=SIZE, height=SIZE)


def _tilted_table(distance: float = 0.35, tilt: float = 0.15) -> np.ndarray:
    """Depth (m) of a plane seen at ``distance`` on the axis, tilted about the camera x axis."""
    v = (np.arange(SIZE)[:, None] - K.cy) / K.fy
    return np.repeat(distance / (1.0 - tilt * v), SIZE, axis=1).astype(np.float32)


def _scene(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    depth = _tilted_table()
    depth = depth + rng.normal(0, 0.001, depth.shape).astype(np.float32)  # 1 mm sensor noise
    depth[50:70, 50:70] -= 0.03  # a 3 cm tall object
    depth[rng.random(depth.shape) < 0.02] = 0.0  # dropped readings
    depth[49, 50:70] = 0.0  # its edge reads nothing
    mask = np.zeros((SIZE, SIZE), np.uint8)
    mask[48:72, 48:72] = 1  # the object, a little too large
    mask[10:30, 90:120] = 1  # printed clutter labelled "object" on the table
    mask[0:6, 0:10] = 2  # a fingertip
    return depth, mask


def test_plane_is_found_despite_the_object_and_noise() -> None:
    depth, _ = _scene(np.random.default_rng(0))
    plane = fit_table_plane(depth, K, DepthGateParams())
    assert plane is not None and plane.d > 0
    clean = fit_table_plane(_tilted_table(), K, DepthGateParams())
    assert abs(abs(float(plane.normal @ clean.normal)) - 1) < 1e-3 and abs(plane.d - clean.d) < 0.003


def test_gate_removes_flat_clutter_keeps_the_object() -> None:
    depth, mask = _scene(np.random.default_rng(1))
    res = gate_mask(mask, depth, K, DepthGateParams(min_height=0.008))
    assert (res.mask[10:30, 90:120] == 0).all()  # clutter on the table plane: background now
    assert (res.mask[52:68, 52:68] == 1).all()  # the object's inside stays, edge without depth too
    assert (res.mask[49, 52:68] == 1).all()
    assert (res.mask[0:6, 0:10] == 2).all()  # other classes untouched
    assert res.removed_px >= 20 * 30


def test_gate_without_depth_passes_the_mask() -> None:
    depth, mask = _scene(np.random.default_rng(2))
    res = gate_mask(mask, np.zeros_like(depth), K, DepthGateParams())
    assert res.plane is None and (res.mask == mask).all()


def test_flatten_paints_only_the_table() -> None:
    depth, _ = _scene(np.random.default_rng(3))
    rgb = np.random.default_rng(4).integers(0, 255, (SIZE, SIZE, 3), dtype=np.uint8)
    out, n = flatten_table(rgb, depth, K, DepthGateParams(), (200, 190, 150))
    assert n > 0.8 * SIZE * SIZE - 400
    assert (out[10:30, 90:120] == (200, 190, 150)).all()
    assert (out[52:68, 52:68] == rgb[52:68, 52:68]).all()


def test_gate_leaf_ticks_on_the_blackboard() -> None:
    from behaviours.scene import FlattenTable, GateByDepth

    py_trees.blackboard.Blackboard.clear()
    depth, mask = _scene(np.random.default_rng(5))
    rgb = np.zeros((SIZE, SIZE, 3), np.uint8)
    gate, flat = GateByDepth(DepthGateParams()), FlattenTable(DepthGateParams(), (10, 20, 30))
    w = py_trees.blackboard.Client(name="test")
    for key in ("mask", "frame"):
        w.register_key(key, access=py_trees.common.Access.WRITE)
    w.frame = Frame(rgb=rgb, depth=depth, intrinsics=K, timestamp=0.0, seq=1)
    w.mask = mask
    root = py_trees.composites.Sequence("s", memory=False, children=[flat, gate])
    root.tick_once()
    assert gate.status == Status.SUCCESS and "removed" in gate.feedback_message
    assert (w.mask[10:30, 90:120] == 0).all()
    assert (w.frame.rgb[10:30, 90:120] == (10, 20, 30)).all() and w.frame.seq == 1
    assert "painted" in flat.feedback_message


def _components(mask: np.ndarray) -> list[int]:
    n, _, stats, _ = cv2.connectedComponentsWithStats(mask.astype(np.uint8), connectivity=8)
    return sorted((int(stats[c, cv2.CC_STAT_AREA]) for c in range(1, n)), reverse=True)


def test_touching_objects_become_one_blob_each() -> None:
    """The clearing campaign's VS livelock: a tomato can, a ball and a marker touching made one
    blob (centroid between them, box at the border for ever). Split: three blobs, each nearly
    whole; a single object (with holes from dark labels), a long thin one and a banana-like bend
    stay one blob."""
    from app.controllers.depth_gate import split_touching

    p = DepthGateParams(split_touching=True)
    m = np.zeros((128, 128), np.uint8)
    cv2.circle(m, (40, 40), 22, 1, -1)  # big round object
    cv2.circle(m, (70, 63), 17, 1, -1)  # a smaller one touching it (a wide neck)
    cv2.line(m, (93, 62), (126, 48), 1, 10)  # a marker touching the small one
    m[67:70, 66:69] = 0  # a hole (a dark label without depth)
    assert len(_components(m > 0)) == 1
    parts = _components(split_touching(m > 0, p))
    assert len(parts) == 3
    assert parts[0] > 0.9 * np.pi * 22 ** 2 and parts[1] > 0.8 * np.pi * 17 ** 2 and parts[2] > 150
    assert int(split_touching(m > 0, p).sum()) > 0.85 * int(m.sum())  # only the seams are lost
    from app.controllers.features import (  # VS's clean-up must not join them again
        FeatureParams,
        clean_mask,
    )

    cleaned = _components(clean_mask(split_touching(m > 0, p).astype(np.uint8), FeatureParams()) > 0)
    assert len([a for a in cleaned if a >= FeatureParams().min_blob_area_px]) == 3

    single = np.zeros((128, 128), np.uint8)
    cv2.ellipse(single, (64, 64), (40, 14), 30, 0, 360, 1, -1)  # a long object (spatula, sausage)
    single[60:63, 60:66] = 0
    assert _components(split_touching(single > 0, p)) == _components(single > 0)
    bend = np.zeros((128, 128), np.uint8)
    cv2.ellipse(bend, (64, 80), (40, 40), 0, 200, 340, 1, 12)  # a banana's arc
    assert _components(split_touching(bend > 0, p)) == _components(bend > 0)


def test_gate_splits_only_when_asked() -> None:


    k = Intrinsics(120.0, 120.0, 63.5, 63.5, 128, 128)
    depth = np.full((128, 128), 0.40, np.float32)  # a table 40 cm away, square to the camera
    cls = np.zeros((128, 128), np.uint8)
    cv2.circle(cls, (40, 40), 20, 1, -1)
    cv2.circle(cls, (72, 62), 20, 1, -1)
    depth[cls == 1] = 0.34  # both 6 cm tall
    assert len(_components(gate_mask(cls, depth, k, DepthGateParams()).mask == 1)) == 1
    assert len(_components(gate_mask(cls, depth, k, DepthGateParams(split_touching=True)).mask == 1)) == 2
