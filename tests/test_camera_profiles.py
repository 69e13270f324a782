"""Camera profiles (``config/hardware.yaml``): each one's intrinsics and depth sensor reach the
simulator, so models trained with a profile are trained for that camera; bad profiles are one line."""

from __future__ import annotations

import numpy as np
import pytest

from app.errors import ConfigError
from app.hardware_config import load_hardware
from app.sim.domain import load_domain


def test_shipped_profiles_load() -> None:
    hw = load_hardware()
    assert hw.camera_profile == "sr300" and hw.register_to == "depth" and hw.sdk_below == "2.55.1"
    assert hw.native.fx == 475.9  # the shipped weights' geometry
    d435 = load_hardware(profile="d435")
    assert (d435.camera_model, d435.register_to, d435.depth_range, d435.depth_unit) == \
        ("D435", "color", (0.3, 3.0), 0.001)
    assert d435.intrinsics.fov_deg()[0] == pytest.approx(2 * np.degrees(np.arctan(240 / 621.0)))
    assert load_hardware(profile="d405").depth_range == (0.07, 0.5)


def test_unknown_profile_is_one_line(tmp_path) -> None:
    with pytest.raises(ConfigError, match=r"key 'camera.profile': expected one of \['d405', 'd435', "
                                          r"'sr300', 'sr300_color'\] \(camera_profiles\), found 'l515'"):
        load_hardware(profile="l515")
    text = open(load_hardware().source).read().replace("    register_to: depth", "    register_to: infrared", 1)
    f = tmp_path / "hw.yaml"
    f.write_text(text)
    with pytest.raises(ConfigError, match=r"camera_profiles.sr300.register_to': expected one of"):
        load_hardware(f)


def test_depth_model_takes_the_profile_range_and_unit() -> None:
    real = load_domain("real")
    # 5 cm to 1 m along the columns, ~1 mm a pixel: smooth, so no edge dropout.
    z = np.tile(np.linspace(0.05, 1.0, 1024, dtype=np.float32), (16, 1))
    rgb = np.full((16, 1024, 3), 200, np.uint8)  # bright: no dark dropout
    d = real.apply_depth(z, rgb, np.random.default_rng(0), valid_range=(0.07, 0.5), unit=0.0001)
    read = d > 0
    assert read.mean() > 0.3
    assert d[read].min() >= 0.07 and d[read].max() <= 0.5  # a D405 reads nothing beyond 0.5 m
    assert np.allclose(d[read] / 0.0001, np.round(d[read] / 0.0001), atol=1e-2)
    sr300 = real.apply_depth(z, rgb, np.random.default_rng(0))  # the domain's own: SR300
    assert sr300[sr300 > 0].max() > 0.9 and sr300[sr300 > 0].min() >= 0.2


def test_simulated_camera_is_the_profile_camera(seen) -> None:
    from app.sim.session import SimSession

    hw = load_hardware(profile="d435")
    with SimSession(hw, domain="real", seed=0) as s:
        s.reset(seen.get("sugar_box"), 1)
        f = s.camera.get_frame()
    assert f.intrinsics == hw.intrinsics  # rendered with the D435 colour field of view
    read = f.depth[f.depth > 0]
    assert read.size > 0.5 * f.depth.size
    assert read.min() >= 0.3  # nothing closer than the D435's 0.3 m (the fingers read 0)
    assert np.allclose(read / 0.001, np.round(read / 0.001), atol=1e-2)  # 1 mm units


def test_depth_range_at_the_start_pose_and_vs_heights() -> None:
    from app.hardware_config import depth_range_checks

    descents = (0.0, 0.1, 0.2, 0.3)  # the start pose and the VS heights calibrate checks
    sr300 = depth_range_checks(load_hardware(), descents, 0.09)
    # Camera 0.60 m above the table at the start pose (0.50 m + the 10 cm mount), 0.30 m lowest.
    assert [round(c.table, 3) for c in sr300] == [0.6, 0.5, 0.4, 0.3]
    assert [round(c.nearest, 3) for c in sr300] == [0.51, 0.41, 0.31, 0.21]
    assert all(c.ok for c in sr300)
    # A D435 (0.3 m minimum) loses the top of a 9 cm object at the lowest VS height; a D405
    # (0.5 m maximum) loses the table at the start pose.
    assert [c.ok for c in depth_range_checks(load_hardware(profile="d435"), descents, 0.09)] == \
        [True, True, True, False]
    assert [c.ok for c in depth_range_checks(load_hardware(profile="d405"), descents, 0.09)] == \
        [False, True, True, True]


def test_calibrate_says_when_the_profile_cannot_read_depth(tmp_path, capsys) -> None:
    import argparse

    from app.tools.calibrate import run_calibrate

    text = open(load_hardware().source).read().replace("profile: sr300", "profile: d405", 1)
    f = tmp_path / "hw.yaml"
    f.write_text(text)
    assert run_calibrate(argparse.Namespace(config=str(f), json=False)) == 1
    out = capsys.readouterr().out
    assert "Depth range of camera profile 'd405': 0.07-0.5 m" in out
    assert "start pose        table 0.600 m, object top 0.510 m: OUTSIDE the depth range" in out
    assert "30 cm below it    table 0.300 m, object top 0.210 m: inside" in out


def test_shipped_weights_say_which_camera_they_were_trained_for(tmp_path) -> None:
    from app.hardware_config import check_training_camera, write_training_camera
    from app.perception import WEIGHTS_DIR

    check_training_camera(WEIGHTS_DIR, load_hardware())  # the default profile: the shipped weights'
    for other in ("d435", "sr300_color", "d405"):
        with pytest.raises(ConfigError, match=rf"training_camera.yaml: the weights were trained for camera "
                                              rf"profile 'sr300' \(53\.5 deg at 128 px\), .* has '{other}'"):
            check_training_camera(WEIGHTS_DIR, load_hardware(profile=other))
    # A run trained for the D435 records it, and then only the D435 profile passes.
    write_training_camera(tmp_path, load_hardware(profile="d435"))
    check_training_camera(tmp_path, load_hardware(profile="d435"))
    with pytest.raises(ConfigError, match="trained for camera profile 'd435'"):
        check_training_camera(tmp_path, load_hardware())
    with pytest.raises(ConfigError, match="trained at 128 px, .* has camera.resolution 64"):
        check_training_camera(tmp_path, load_hardware(profile="d435", resolution=64))
    with pytest.raises(ConfigError, match=r"training_camera.yaml: missing"):
        check_training_camera(tmp_path / "none", load_hardware())


def test_real_run_refuses_weights_of_another_camera_before_connecting(tmp_path, capsys) -> None:
    from app.cli import main

    text = open(load_hardware().source).read().replace("profile: sr300", "profile: d435", 1)
    f = tmp_path / "hw.yaml"
    f.write_text(text)
    # No robot at this address: the camera check comes first, so the exit is 2, not 3.
    code = main(["--tree", "drl_gan_vs", "--backend", "real", "--robot-host", "192.0.2.1",
                 "--config", str(f), "--log-dir", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "the weights were trained for camera profile 'sr300'" in err and "has 'd435'" in err
