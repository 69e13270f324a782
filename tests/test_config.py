"""Configuration loading: named files, paths, and one-line errors naming the key."""

import pytest

from app.config import Section, load_yaml, resolve
from app.errors import ConfigError
from app.hardware_config import load_hardware


def test_resolve_name_and_path(tmp_path) -> None:
    assert resolve("real", "domains").name == "real.yaml"
    f = tmp_path / "lab.yaml"
    f.write_text("a: 1\n")
    assert resolve(str(f), "domains") == f
    with pytest.raises(ConfigError, match="no such file"):
        resolve("nonexistent", "domains")


def test_invalid_yaml_is_one_line(tmp_path) -> None:
    f = tmp_path / "bad.yaml"
    f.write_text("a: [1, 2\n")
    with pytest.raises(ConfigError, match="invalid YAML") as e:
        load_yaml(f)
    assert "\n" not in str(e.value)
    f.write_text("- 1\n- 2\n")
    with pytest.raises(ConfigError, match="expected a mapping"):
        load_yaml(f)


def test_section_errors_name_the_key() -> None:
    s = Section({"a": {"b": "x", "v": [1, 2]}}, "f.yaml")
    with pytest.raises(ConfigError, match=r"f.yaml: key 'a.b': expected a number"):
        s.section("a").number("b")
    with pytest.raises(ConfigError, match=r"key 'a.v': expected a list of 3 numbers"):
        s.section("a").vector("v", 3)
    with pytest.raises(ConfigError, match=r"missing key 'a.c'"):
        s.section("a").integer("c")
    assert s.section("a").number("c", default=2.5) == 2.5
    with pytest.raises(ConfigError, match="expected a finite number"):
        Section({"x": float("inf")}, "f").number("x")


def test_hardware_defaults() -> None:
    hw = load_hardware()
    k = hw.intrinsics
    assert (k.width, k.height) == (128, 128)
    assert 50 < k.fov_deg()[0] < 60  # SR300 depth stream cropped square: ~53.5 deg
    # After the two 15 cm steps the camera is still beyond the SR300's 0.2 m from a 9 cm object.
    camera_z = (hw.start_pose() @ hw.mount).position[2] - 0.30
    assert camera_z - 0.09 >= hw.depth_range[0]


def test_hardware_bad_value(tmp_path) -> None:
    text = (load_hardware().source and open(load_hardware().source).read())
    f = tmp_path / "hw.yaml"
    f.write_text(text.replace("resolution: 128", "resolution: big"))
    with pytest.raises(ConfigError, match=r"camera.resolution"):
        load_hardware(f)
