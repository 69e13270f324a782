"""RealSenseCamera through librealsense's own ``software_device`` (no camera needed).

A software device with a depth and a colour sensor stands in for the SR300: frames pushed into
it come back through an ``rs.syncer`` (or, recorded, through a real ``rs.pipeline``) exactly as
a camera's would, so alignment, depth units, cropping and resizing are librealsense's and ours.
These tests must run wherever pyrealsense2 imports: a missing libusb fails them, never skips.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyrealsense2 as rs
import pytest

from app.errors import HardwareError, HardwareUnavailable
from app.hardware.realsense import RealSenseCamera, square_crop
from app.hardware_config import HardwareConfig, load_hardware
from app.robot.interfaces import Camera, Intrinsics

W, H = 64, 48  # px, a small 4:3 stream like the SR300's 640x480
FX, CX, CY = 50.0, 31.5, 23.5  # px, centred principal point
UNITS = 0.000125  # m per raw unit, the SR300's fixed depth unit (FACTS.md)
RES = 24  # px, model resolution: the 48 px square crop halved


def _hw(resolution: int = RES) -> HardwareConfig:
    return dataclasses.replace(load_hardware(), resolution=resolution)


def _depth_raw() -> np.ndarray:
    """(H, W) uint16 raw depth 0.2-0.7 m with a hole (no reading) in the top-left corner."""
    v, u = np.mgrid[0:H, 0:W]
    raw = (1600 + 40 * u + 20 * v).astype(np.uint16)  # 1600 units = 0.2 m
    raw[:10, 8:20] = 0
    return raw


def _rgb() -> np.ndarray:
    """(H, W, 3) uint8, constant on 2x2 blocks so a 2:1 area resize is exact."""
    v, u = np.mgrid[0:H, 0:W]
    return np.stack([(u // 2) * 8, (v // 2) * 10, np.full_like(u, 77)], axis=-1).astype(np.uint8)


class SoftwareCamera:
    """An ``rs.software_device`` with SR300-like depth (z16) and colour (rgb8) sensors."""

    def __init__(self) -> None:
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.name, "software SR300")
        self.device.register_info(rs.camera_info.serial_number, "0000")
        self.depth_sensor = self.device.add_sensor("Depth")
        self.colour_sensor = self.device.add_sensor("Color")
        self.depth_profile = self.depth_sensor.add_video_stream(
            self._stream(rs.stream.depth, rs.format.z16, 2, uid=0))
        self.colour_profile = self.colour_sensor.add_video_stream(
            self._stream(rs.stream.color, rs.format.rgb8, 3, uid=1))
        self.depth_sensor.add_read_only_option(rs.option.depth_units, UNITS)
        self.device.create_matcher(rs.matchers.default)
        self.frame_number = 0
        self._keep: list[np.ndarray] = []  # librealsense reads pushed pixels later: keep them alive

    @staticmethod
    def _stream(kind: rs.stream, fmt: rs.format, bpp: int, uid: int) -> rs.video_stream:
        k = rs.intrinsics()
        k.width, k.height, k.fx, k.fy, k.ppx, k.ppy = W, H, FX, FX, CX, CY
        k.model, k.coeffs = rs.distortion.none, [0.0] * 5
        s = rs.video_stream()
        s.type, s.index, s.uid, s.width, s.height, s.fps, s.bpp, s.fmt = kind, 0, uid, W, H, 30, bpp, fmt
        s.intrinsics = k
        return s

    def start(self, sink: object) -> None:
        """Open both sensors and stream into ``sink`` (an ``rs.syncer`` or a callback)."""
        self.depth_sensor.open(self.depth_profile)
        self.colour_sensor.open(self.colour_profile)
        self.depth_sensor.start(sink)
        self.colour_sensor.start(sink)

    def stop(self) -> None:
        for s in (self.depth_sensor, self.colour_sensor):
            s.stop()
            s.close()

    def push(self, depth: np.ndarray | None, rgb: np.ndarray | None) -> None:
        """Push one depth and/or colour frame, both with the same timestamp and number."""
        n = self.frame_number
        self.frame_number += 1
        for sensor, profile, pixels, bpp in ((self.depth_sensor, self.depth_profile, depth, 2),
                                             (self.colour_sensor, self.colour_profile, rgb, 3)):
            if pixels is None:
                continue
            pixels = np.ascontiguousarray(pixels)
            self._keep.append(pixels)
            f = rs.software_video_frame()
            f.pixels, f.bpp, f.stride = pixels, bpp, bpp * W
            f.timestamp, f.domain, f.frame_number = n * 1000 / 30, rs.timestamp_domain.hardware_clock, n
            f.profile = profile.as_video_stream_profile()
            if bpp == 2:
                f.depth_units = UNITS
            sensor.on_video_frame(f)


class PushingSource:
    """A frame source that pushes the next frame pair just before each read (deterministic)."""

    def __init__(self, depth: np.ndarray | None, rgb: np.ndarray | None) -> None:
        self.camera = SoftwareCamera()
        self.syncer = rs.syncer()
        self.camera.start(self.syncer)
        self.depth, self.rgb = depth, rgb
        self.reads = 0

    def wait_for_frames(self, timeout_ms: int) -> rs.composite_frame:
        self.reads += 1
        self.camera.push(self.depth, self.rgb)
        return self.syncer.wait_for_frames(timeout_ms)

    def stop(self) -> None:
        self.camera.stop()


def _expected_depth(raw: np.ndarray) -> np.ndarray:
    """Metres at the pixel centres that a 2:1 nearest resize of the 48x48 centre crop samples."""
    crop = raw[:, 8:56].astype(np.float64) * UNITS
    return crop[1::2, 1::2]  # centre of output pixel i lies in source pixel floor((i+0.5)*2) = 2i+1


@pytest.fixture
def source() -> Iterator[PushingSource]:
    s = PushingSource(_depth_raw(), _rgb())
    yield s
    s.stop()


def test_frame_from_software_device(source: PushingSource) -> None:
    cam = RealSenseCamera.from_source(source, _hw())
    assert isinstance(cam, Camera)
    f = cam.get_frame()
    assert f.rgb.shape == (RES, RES, 3) and f.rgb.dtype == np.uint8
    assert f.depth.shape == (RES, RES) and f.depth.dtype == np.float32
    assert f.rgb.flags.c_contiguous and f.depth.flags.c_contiguous
    # The first frameset held one stream only (see FACTS.md): the camera read on until both came.
    assert source.reads >= 1
    assert f.seq == source.camera.frame_number - 1
    assert f.timestamp == pytest.approx(f.seq / 30, abs=1e-6)
    # Colour: the centred 48x48 crop, 2:1 area-averaged (exact on the 2x2-constant pattern).
    np.testing.assert_array_equal(f.rgb, _rgb()[::2, 8:56:2])


def test_depth_in_metres_matches_pushed(source: PushingSource) -> None:
    f = RealSenseCamera.from_source(source, _hw()).get_frame()
    expected = _expected_depth(_depth_raw())
    valid = f.depth > 0
    # rs.align of two identical streams is not the identity: rounding in align_z_to_other
    # leaves pinholes (0) and lets a few pixels take a neighbour's reading. Every reading it
    # keeps is a pushed one, in metres: at its own pixel or, rarely, one pixel over.
    assert valid.mean() > 0.8
    exact = np.isclose(f.depth, expected, rtol=0, atol=1e-6) & valid
    assert exact.sum() >= 0.95 * valid.sum()
    crop = np.pad(_depth_raw()[:, 8:56].astype(np.float64) * UNITS, 1)
    i, j = np.nonzero(valid)
    neighbours = np.stack([crop[2 * i + 2 + dv, 2 * j + 2 + du]
                           for dv in (-1, 0, 1) for du in (-1, 0, 1)])
    assert np.all(np.min(np.abs(neighbours - f.depth[valid]), axis=0) < 1e-6)
    assert 0.2 <= f.depth[valid].min() and f.depth.max() < 0.75


def test_flat_depth_is_exact() -> None:
    raw = np.full((H, W), 4000, np.uint16)  # 4000 units = 0.5 m
    s = PushingSource(raw, _rgb())
    try:
        f = RealSenseCamera.from_source(s, _hw()).get_frame()
    finally:
        s.stop()
    valid = f.depth > 0
    assert valid.mean() > 0.8
    assert np.all(f.depth[valid] == np.float32(4000) * np.float32(UNITS))
    assert f.depth[valid][0] == pytest.approx(0.5, abs=1e-7)


def test_zeros_stay_zeros(source: PushingSource) -> None:
    f = RealSenseCamera.from_source(source, _hw()).get_frame()
    hole = _expected_depth(_depth_raw()) == 0
    assert hole.sum() >= 20  # the pushed hole survives the crop and the resize
    assert np.all(f.depth[hole] == 0.0)


def test_intrinsics_cropped_and_resized(source: PushingSource) -> None:
    cam = RealSenseCamera.from_source(source, _hw())
    f = cam.get_frame()
    # 64x48 -> centred 48x48 crop (cx 31.5 - 8 = 23.5) -> 24x24: focal halves, the pixel-centre
    # model maps 23.5 to (23.5 + 0.5) / 2 - 0.5 = 11.5, the centre of the 24 px image.
    assert f.intrinsics == Intrinsics(25.0, 25.0, 11.5, 11.5, RES, RES)
    assert cam.intrinsics == f.intrinsics
    assert cam.native_intrinsics == Intrinsics(FX, FX, CX, CY, W, H)
    assert cam.intrinsics.fov_deg()[0] == pytest.approx(np.degrees(2 * np.arctan(24 / 50)))


def test_full_crop_resolution_keeps_pixels(source: PushingSource) -> None:
    f = RealSenseCamera.from_source(source, _hw(resolution=48)).get_frame()
    np.testing.assert_array_equal(f.rgb, _rgb()[:, 8:56])
    exact = np.isclose(f.depth, _depth_raw()[:, 8:56] * UNITS, rtol=0, atol=1e-6)
    assert exact.mean() > 0.85  # the rest: align's pinholes and neighbour readings (see above)
    assert f.intrinsics == Intrinsics(FX, FX, 23.5, 23.5, 48, 48)


def test_timeout_is_a_hardware_error() -> None:
    cam = SoftwareCamera()
    syncer = rs.syncer()
    cam.start(syncer)
    try:
        camera = RealSenseCamera.from_source(syncer, _hw(), timeout_ms=100)
        with pytest.raises(HardwareError, match=r"no colour\+depth frameset within 100 ms") as e:
            camera.get_frame()
        assert "\n" not in str(e.value)
    finally:
        cam.stop()


def test_one_stream_only_times_out_saying_which() -> None:
    s = PushingSource(None, _rgb())
    try:
        camera = RealSenseCamera.from_source(s, _hw(), timeout_ms=150)
        with pytest.raises(HardwareError, match=r"within 150 ms \(got colour only\)"):
            camera.get_frame()
    finally:
        s.stop()


def test_closed_camera_refuses_frames(source: PushingSource) -> None:
    cam = RealSenseCamera.from_source(source, _hw())
    cam.close()
    cam.close()  # idempotent
    with pytest.raises(HardwareError, match="closed"):
        cam.get_frame()


def test_square_crop_of_odd_difference() -> None:
    rows, cols, k = square_crop(Intrinsics(100.0, 100.0, 20.0, 10.0, 41, 20))
    # 41 - 20 = 21 is odd: the last column is dropped, then 10 columns each side.
    assert (rows, cols) == (slice(0, 20), slice(10, 30))
    assert k == Intrinsics(100.0, 100.0, 10.0, 10.0, 20, 20)


def _record(path: Path, frames: int) -> None:
    """Record ``frames`` depth+colour pairs from a software device (depth raw = 1600 + k)."""
    cam = SoftwareCamera()
    recorder = rs.recorder(str(path), cam.device)
    sensors = recorder.query_sensors()  # the recorder's wrappers of the depth and colour sensors
    got: list[int] = []
    sensors[0].open(cam.depth_profile)
    sensors[1].open(cam.colour_profile)
    for s in sensors:
        s.start(lambda f: got.append(f.get_frame_number()))
    for k in range(frames):
        cam.push(np.full((H, W), 1600 + k, np.uint16), np.full((H, W, 3), k, np.uint8))
    for s in sensors:
        s.stop()
        s.close()
    assert len(got) == 2 * frames
    del sensors, recorder  # the recording is written out when the recorder is released


def test_replays_a_recording_through_a_pipeline(tmp_path: Path) -> None:
    path = tmp_path / "session.db3"  # librealsense 2.59 records rosbag2 (.db3) only
    _record(path, 5)
    with RealSenseCamera(_hw(), playback=path, real_time=False) as cam:
        assert cam.depth_scale == pytest.approx(UNITS)
        seen = []
        for _ in range(5):
            f = cam.get_frame()
            seen.append(f.seq)
            assert f.rgb.shape == (RES, RES, 3)
            np.testing.assert_array_equal(f.rgb, f.seq)
            valid = f.depth > 0
            assert valid.mean() > 0.8
            np.testing.assert_allclose(f.depth[valid], (1600 + f.seq) * UNITS, atol=1e-6)
        # Non-real-time playback hands out every recorded frame, in order.
        assert seen == [0, 1, 2, 3, 4]
        with pytest.raises(HardwareError, match="recording ended after 5 frames"):
            cam.get_frame()


def test_missing_recording_is_unavailable(tmp_path: Path) -> None:
    with pytest.raises(HardwareUnavailable, match="cannot replay camera recording .*no such file"):
        RealSenseCamera(_hw(), playback=tmp_path / "none.db3")


def test_no_camera_connected_is_unavailable() -> None:
    if len(rs.context().query_devices()) > 0:
        pytest.skip("a RealSense camera is connected to this machine")
    with pytest.raises(HardwareUnavailable, match="^no RealSense camera connected") as e:
        RealSenseCamera(_hw())
    assert "\n" not in str(e.value)


def test_module_imports_pyrealsense2_lazily() -> None:
    import inspect
    import re

    import app.hardware.realsense as module

    assert not re.search(r"^(import|from) pyrealsense2", inspect.getsource(module), re.M)
