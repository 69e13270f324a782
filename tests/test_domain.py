"""Appearance domains: the gap is real (paired renders differ as intended) and files validate."""

import numpy as np
import pytest

from app.errors import ConfigError
from app.sim.domain import load_domain


@pytest.fixture(scope="module")
def paired(real_session, seen):
    """The same scene rendered in both domains (sugar box at a fixed placement)."""
    s = real_session
    s.reset(seen.get("sugar_box"), 1)
    rng = np.random.default_rng(0)
    sim = s.truth.render(load_domain("sim"), rng)
    real = s.truth.render(load_domain("real"), rng)
    return sim, real


@pytest.fixture(scope="module")
def exact_view(real_session, paired):
    """The renderer's own depth buffer of that state, and where the camera was (after ``paired``)."""
    s = real_session
    return s.camera.render_raw(load_domain("sim")).depth, s.arm.camera_pose(), s.camera.intrinsics


def test_sim_depth_is_exact(paired, exact_view) -> None:
    (rgb, depth, mask), _ = paired
    raw_depth, cam_pose, k = exact_view
    assert depth.dtype == np.float32
    assert (depth == 0).mean() == 0.0  # every pixel sees the table, the object or the gripper
    # The sim domain's sensor adds nothing: its depth is the renderer's depth buffer, bit for bit.
    np.testing.assert_array_equal(depth, raw_depth)
    # Independent of the code under test: table pixels back-projected through the intrinsics and
    # the camera pose lie on the table plane z = 0 (base frame), with no noise.
    v, u = np.nonzero(mask == 0)
    z = depth[v, u].astype(float)
    pts = np.stack([(u - k.cx) / k.fx * z, (v - k.cy) / k.fy * z, z], axis=1)
    base = pts @ cam_pose.matrix.T + cam_pose.position
    assert len(base) > 1000
    assert np.abs(base[:, 2]).max() < 2e-4  # m: measured ~3 um (float32 depth buffer); sensor noise is mm


def test_real_depth_has_holes_noise_and_units(paired) -> None:
    (_, sim_d, mask), (_, real_d, _) = paired
    holes = real_d == 0
    assert 0.01 < holes.mean() < 0.5  # missing readings, but most pixels read
    # fingers are closer than 0.2 m: no reading there in the real domain
    assert np.all(real_d[(sim_d > 0) & (sim_d < 0.2)] == 0)
    both = (real_d > 0) & (sim_d > 0)
    err = np.abs(real_d[both] - sim_d[both])
    assert err.mean() > 2e-4  # noisy
    assert np.median(err) < 0.01  # but still the same scene
    units = real_d[both] / 0.000125
    assert np.allclose(units, np.round(units), atol=1e-2)  # quantised to the SR300 unit
    # holes at depth edges: the object's outline loses readings more than the flat table
    obj = mask == 1
    import cv2
    edge = cv2.morphologyEx(obj.astype(np.uint8), cv2.MORPH_GRADIENT, np.ones((3, 3), np.uint8)) > 0
    assert holes[edge].mean() > 3 * holes[mask == 0].mean()


def test_colour_statistics_shift(paired) -> None:
    (sim_rgb, _, mask), (real_rgb, _, _) = paired
    s = sim_rgb.reshape(-1, 3).astype(float).mean(axis=0)
    r = real_rgb.reshape(-1, 3).astype(float).mean(axis=0)
    assert np.abs(s - r).max() > 10  # colour cast
    # warm white balance: red over blue ratio higher in the real look
    assert r[0] / max(r[2], 1) > s[0] / max(s[2], 1) + 0.1
    assert real_rgb[mask == 0].std(axis=0).mean() > sim_rgb[mask == 0].std(axis=0).mean()  # texture + noise


def test_same_state_two_looks_same_mask(real_session) -> None:
    rng = np.random.default_rng(1)
    _, _, m1 = real_session.truth.render(load_domain("sim"), rng)
    _, _, m2 = real_session.truth.render(load_domain("real"), rng)
    assert np.array_equal(m1, m2)


def test_domain_hash_and_path(tmp_path) -> None:
    real = load_domain("real")
    assert len(real.sha256) == 64
    copy = tmp_path / "lab.yaml"
    copy.write_text(open(real.path).read())
    assert load_domain(str(copy)).sha256 == real.sha256


@pytest.mark.parametrize("old,new,key", [
    ("shadows: true", "shadows: maybe", "render.shadows"),
    ("gamma: 1.25", "gamma: -1", "image.gamma"),
    ("model: sr300", "model: kinect", "depth.model"),
    ("valid_range: [0.2, 1.5]", "valid_range: [1.5, 0.2]", "depth.valid_range"),
    ("noise_std: 4.0", "noise_stdev: 4.0", "image.noise_stdev"),
])
def test_malformed_domain_names_key(tmp_path, old, new, key) -> None:
    text = open(load_domain("real").path).read()
    assert old in text
    f = tmp_path / "bad.yaml"
    f.write_text(text.replace(old, new))
    with pytest.raises(ConfigError, match=key.replace(".", r"\.")) as e:
        load_domain(str(f))
    assert "\n" not in str(e.value)
