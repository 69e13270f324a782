"""The gripper's sim look in adapted frames (issue 11 §1): what the agent sees at run time equals
what it trained on, in the finger region."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import InputError
from app.fingers import FingerTemplate
from app.perception import load_perception
from app.sim.domain import load_domain
from app.sim.fingers import GRIPPER, render_finger_template
from app.sim.objects import load_object_set
from app.sim.session import SimSession
from app.transforms import delta_pose

DEPTH_TOL_M = 1e-5  # m: renders of the same geometry agree to float precision


@pytest.fixture(scope="module")
def template() -> FingerTemplate:
    return render_finger_template()


def test_template_is_the_gripper_within_the_fingers_depth(template: FingerTemplate) -> None:
    assert 100 < template.pixels < 2000  # the fingertips in the top corners, not the whole image
    d = template.depth[template.mask]
    assert 0.05 < d.min() and d.max() < 0.2  # nearer than the SR300's 0.2 m: the generator's "no reading"
    assert not template.depth[~template.mask].any() and not template.rgb[~template.mask].any()


@pytest.mark.parametrize("move", [(0.0, 0.0, 0.0, 0.0), (0.03, -0.02, 0.15, 1.2), (-0.01, 0.02, 0.3, -1.5)])
def test_every_sim_frame_shows_the_template(template: FingerTemplate, move: tuple[float, float, float, float]) -> None:
    """Rigid mount, open fingers: the gripper's pixels, colour and depth do not depend on the pose or scene."""
    with SimSession(domain="sim", seed=3) as s:
        s.reset(load_object_set("seen").get("sugar_box"), 4)
        s.arm.teleport(s.arm.pose() @ delta_pose(*move))
        s.camera.invalidate()
        frame = s.camera.get_frame()
        np.testing.assert_array_equal(s.truth.last_mask() == GRIPPER, template.mask)
    m = template.mask
    np.testing.assert_array_equal(frame.rgb[m], template.rgb[m])
    assert np.abs(frame.depth[m] - template.depth[m]).max() < DEPTH_TOL_M


def test_adapted_frame_shows_the_fingers_the_agent_trained_on(template: FingerTemplate) -> None:
    """A sim frame and an adapted real frame of the same scene agree in the finger region; without
    the template the adapted frame reads no depth there (the bug of issue 11 §1)."""
    with SimSession(domain="real", seed=5) as s:
        s.reset(load_object_set("seen").get("tuna_can"), 9)
        s.arm.teleport(s.arm.pose() @ delta_pose(0.01, 0.0, 0.15, 0.4))
        s.camera.invalidate()
        real = s.camera.get_frame()
        sim_rgb, sim_depth, _ = s.truth.render(load_domain("sim"), np.random.default_rng(0))
    m = template.mask
    plain = load_perception(fingers=False).adapt(real)
    assert np.count_nonzero(plain.depth[m] == 0.0) > 0.9 * template.pixels  # the generator's "no reading"
    adapted = load_perception().adapt(real)
    np.testing.assert_array_equal(adapted.rgb[m], sim_rgb[m])
    assert np.abs(adapted.depth[m] - sim_depth[m]).max() < DEPTH_TOL_M
    assert np.array_equal(adapted.rgb[~m], plain.rgb[~m])  # nothing else changes


def test_apply_copies_and_checks_the_size(template: FingerTemplate) -> None:
    rgb = np.full((*template.mask.shape, 3), 7, np.uint8)
    depth = np.full(template.mask.shape, 0.5, np.float32)
    r, d = template.apply(rgb, depth)
    assert (rgb == 7).all() and (depth == 0.5).all()  # inputs untouched
    assert (d[template.mask] == template.depth[template.mask]).all() and (d[~template.mask] == 0.5).all()
    with pytest.raises(InputError, match=r"finger template: expected frames of \(128, 128\)"):
        template.apply(rgb[:64, :64], depth[:64, :64])
