"""RealSenseCamera through librealsense's own ``software_device`` (no camera needed).

A software device with a depth and a colour sensor stands in for the SR300: frames pushed into
it come back through an ``rs.syncer`` (or, recorded, through a real ``rs.pipeline``) exactly as
a camera's would, so alignment, depth units, cropping and resizing are librealsense's and ours.
These tests must run wherever pyrealsense2 imports: a missing libusb fails them, never skips.
"""

from __future__ import annotations

import dataclasses
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from app.errors import ConfigError, HardwareError, HardwareUnavailable
from app.hardware.realsense import RealSenseCamera, _import_rs, coverage, fit_crop
from app.hardware_config import HardwareConfig, load_hardware
from app.robot.interfaces import Camera, Intrinsics

rs = _import_rs()  # pyrealsense2, after the libusb-package library is loaded (no system libusb)

W, H = 64, 48  # px, a small 4:3 stream like the SR300's 640x480
FX, CX, CY = 50.0, 31.5, 23.5  # px, centred principal point
UNITS = 0.000125  # m per raw unit, the SR300's fixed depth unit (FACTS.md)
RES = 24  # px, model resolution: the 48 px square crop halved


def _hw(resolution: int = RES, **changes: object) -> HardwareConfig:
    """The shipped hardware file with a camera profile for the software device's streams."""
    fields = {"native": Intrinsics(FX, FX, CX, CY, W, H), "register_to": "color", **changes}
    return dataclasses.replace(load_hardware(), resolution=resolution, **fields)


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
    """An ``rs.software_device`` with SR300-like depth (z16) and colour (rgb8) sensors.

    Each stream has its own intrinsics ``(width, height, fx, cx, cy)`` (default: both the same
    64x48 stream); the two share one optical centre (identity extrinsics, registered so that
    ``rs.align`` can reproject between them).
    """

    def __init__(self, depth_k: tuple[int, int, float, float, float] = (W, H, FX, CX, CY),
                 colour_k: tuple[int, int, float, float, float] = (W, H, FX, CX, CY),
                 name: str = "software SR300") -> None:
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.name, name)
        self.device.register_info(rs.camera_info.serial_number, "0000")
        self.depth_sensor = self.device.add_sensor("Depth")
        self.colour_sensor = self.device.add_sensor("Color")
        self.depth_k, self.colour_k = depth_k, colour_k
        self.depth_profile = self.depth_sensor.add_video_stream(
            self._stream(rs.stream.depth, rs.format.z16, 2, 0, depth_k))
        self.colour_profile = self.colour_sensor.add_video_stream(
            self._stream(rs.stream.color, rs.format.rgb8, 3, 1, colour_k))
        same_centre = rs.extrinsics()
        same_centre.rotation, same_centre.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
        self.depth_profile.register_extrinsics_to(self.colour_profile, same_centre)
        self.depth_sensor.add_read_only_option(rs.option.depth_units, UNITS)
        self.device.create_matcher(rs.matchers.default)
        self.frame_number = 0
        self._keep: list[np.ndarray] = []  # librealsense reads pushed pixels later: keep them alive

    @staticmethod
    def _stream(kind: rs.stream, fmt: rs.format, bpp: int, uid: int,
                geometry: tuple[int, int, float, float, float]) -> rs.video_stream:
        w, h, fx, cx, cy = geometry
        k = rs.intrinsics()
        k.width, k.height, k.fx, k.fy, k.ppx, k.ppy = w, h, fx, fx, cx, cy
        k.model, k.coeffs = rs.distortion.none, [0.0] * 5
        s = rs.video_stream()
        s.type, s.index, s.uid, s.width, s.height, s.fps, s.bpp, s.fmt = kind, 0, uid, w, h, 30, bpp, fmt
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
        for sensor, profile, pixels, bpp, width in (
                (self.depth_sensor, self.depth_profile, depth, 2, self.depth_k[0]),
                (self.colour_sensor, self.colour_profile, rgb, 3, self.colour_k[0])):
            if pixels is None:
                continue
            pixels = np.ascontiguousarray(pixels)
            self._keep.append(pixels)
            f = rs.software_video_frame()
            f.pixels, f.bpp, f.stride = pixels, bpp, bpp * width
            f.timestamp, f.domain, f.frame_number = n * 1000 / 30, rs.timestamp_domain.hardware_clock, n
            f.profile = profile.as_video_stream_profile()
            if bpp == 2 and hasattr(f, "depth_units"):  # librealsense < 2.55 takes the option's
                f.depth_units = UNITS
            sensor.on_video_frame(f)


class PushingSource:
    """A frame source that pushes the next frame pair just before each read (deterministic)."""

    def __init__(self, depth: np.ndarray | None, rgb: np.ndarray | None,
                 camera: SoftwareCamera | None = None) -> None:
        self.camera = camera or SoftwareCamera()
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


_CHILD = "RS_PLAYBACK_TEST_CHILD"  # set in the child process that runs a playback test's body


def _ran_in_child(request: pytest.FixtureRequest, tries: int = 3) -> bool:
    """Run the calling test in a child pytest process; True in the parent (the test is done).

    librealsense 2.59 can abort while it tears a playback device down (its reader thread makes a
    pure virtual call while ``~playback_device`` joins it: seen about once in 50 runs on a loaded
    2-core machine, gdb backtrace rs2_delete_device -> ~dispatcher), which would kill the whole
    test session. The child runs the same test; only a child killed by a signal is run again, up
    to ``tries`` times, and said so; a failed assertion fails at once, as in the parent.
    """
    if os.environ.get(_CHILD):
        return False  # the child: run the body
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
               request.node.nodeid]
    root = str(request.config.rootpath)
    for attempt in range(1, tries + 1):
        done = subprocess.run(command, cwd=root, env={**os.environ, _CHILD: "1"},
                              capture_output=True, text=True, timeout=300)  # s: a hang guard
        if done.returncode >= 0:
            break
        name = signal.Signals(-done.returncode).name
        print(f"librealsense killed the child with {name} (try {attempt} of {tries})", file=sys.stderr)
    assert done.returncode == 0, f"child rc {done.returncode}:\n{done.stdout[-4000:]}{done.stderr[-2000:]}"
    return True


def test_a_child_failure_fails_the_parent(request: pytest.FixtureRequest, tmp_path: Path,
                                         capfd: pytest.CaptureFixture[str]) -> None:
    """The isolation retries a child killed by a signal, and never swallows a failed assertion."""
    if os.environ.get(_CHILD):
        once = Path(os.environ["RS_ABORT_ONCE"])
        if not once.exists():  # the first child dies as librealsense's abort would
            once.touch()
            os.abort()
        assert os.environ.get("RS_EXPECT_FAIL") != "1", "the child failed on purpose"
        return
    os.environ["RS_ABORT_ONCE"] = str(tmp_path / "aborted")
    try:
        assert _ran_in_child(request)  # aborted once, then passed
        assert "killed the child with SIGABRT (try 1 of 3)" in capfd.readouterr().err
        os.environ["RS_EXPECT_FAIL"] = "1"
        with pytest.raises(AssertionError, match="the child failed on purpose"):
            _ran_in_child(request)
    finally:
        os.environ.pop("RS_EXPECT_FAIL", None)
        del os.environ["RS_ABORT_ONCE"]


def _record(path: Path, frames: int, name: str = "software SR300") -> None:
    """Record ``frames`` depth+colour pairs from a software device (depth raw = 1600 + k)."""
    cam = SoftwareCamera(name=name)
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


def test_replays_a_recording_through_a_pipeline(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if _ran_in_child(request):  # a librealsense abort must not end the session
        return
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
        RealSenseCamera(load_hardware(profile="d435"))  # a camera every librealsense >= 2.54 has
    assert "\n" not in str(e.value)


def test_module_imports_pyrealsense2_lazily() -> None:
    import inspect
    import re

    import app.hardware.realsense as module

    assert not re.search(r"^(import|from) pyrealsense2", inspect.getsource(module), re.M)


# ------------------------------------------------------------------ geometry: issue 14 section 2
def _target(native: Intrinsics, resolution: int = RES) -> Intrinsics:
    """The frames' intrinsics the simulator renders for a profile with ``native`` intrinsics."""
    return native.crop_square().resize(resolution, resolution)


def test_fit_crop_of_the_trained_camera_is_the_centred_square() -> None:
    native = Intrinsics(FX, FX, CX, CY, W, H)
    rows, cols, k = fit_crop(native, _target(native), 0.02)
    assert (rows, cols) == (slice(0, 48), slice(8, 56))
    assert k == _target(native)


def test_fit_crop_of_a_wider_camera_crops_to_the_trained_field_of_view() -> None:
    # 80x60 at the same focal length sees more: the trained 48 px square is cut out of its middle.
    rows, cols, k = fit_crop(Intrinsics(FX, FX, 39.5, 29.5, 80, 60), _target(Intrinsics(FX, FX, CX, CY, W, H)), 0.02)
    assert (rows, cols) == (slice(6, 54), slice(16, 64))
    assert k == Intrinsics(25.0, 25.0, 11.5, 11.5, RES, RES)
    # A longer focal length at a higher resolution: 100 px focal -> a 96 px crop, halved twice.
    rows, cols, k = fit_crop(Intrinsics(100.0, 100.0, 63.5, 47.5, 128, 96), _target(Intrinsics(FX, FX, CX, CY, W, H)), 0.02)
    assert (rows.stop - rows.start, cols.start) == (96, 16)
    assert k == Intrinsics(25.0, 25.0, 11.5, 11.5, RES, RES)


def test_fit_crop_centres_on_an_off_centre_principal_point() -> None:
    trained = _target(Intrinsics(FX, FX, CX, CY, W, H))
    rows, cols, k = fit_crop(Intrinsics(FX, FX, 35.5, 27.5, 80, 60), trained, 0.02)
    assert (rows, cols) == (slice(4, 52), slice(12, 60))
    assert k == trained
    # Too close to the top edge: the largest square centred on it is 44 px, 9 % too narrow.
    with pytest.raises(ConfigError, match=r"fx off by 9\.1%, over camera.fov_tolerance 2\.0%"):
        fit_crop(Intrinsics(FX, FX, 35.5, 21.5, 80, 60), trained, 0.02)


def test_fit_crop_refuses_a_narrower_camera_in_one_line() -> None:
    # The SR300 case: colour fx ~616 at 640x480 against the depth-stream fx 475.9 it was trained on.
    trained = _target(Intrinsics(475.9, 475.9, 319.5, 239.5, 640, 480), 128)
    with pytest.raises(ConfigError) as e:
        fit_crop(Intrinsics(616.4, 616.4, 319.5, 239.5, 640, 480), trained, 0.02, "the colour stream")
    msg = str(e.value)
    assert "\n" not in msg
    assert msg.startswith("the colour stream 640x480 (fx 616.4")
    assert "gives a 42.5 deg square field of view, the models were trained on 53.5 deg" in msg
    assert "fx off by 29.5%" in msg
    # Within the tolerance it is accepted: a 1 % longer focal length.
    _, _, k = fit_crop(Intrinsics(480.6, 480.6, 319.5, 239.5, 640, 480), trained, 0.02)
    assert k.fx == pytest.approx(trained.fx, rel=0.02)


def test_coverage_of_the_trained_view() -> None:
    k = Intrinsics(FX, FX, CX, CY, W, H)
    assert coverage(k, k) == pytest.approx(1.0)
    # Twice the focal length: half the field of view each way, a quarter of the area.
    assert coverage(Intrinsics(2 * FX, 2 * FX, CX, CY, W, H), k) == pytest.approx(0.25)
    assert coverage(Intrinsics(FX / 2, FX / 2, CX, CY, W, H), k) == pytest.approx(1.0)


def _edge_columns(row: np.ndarray, low: float, high: float) -> list[int]:
    """Columns where ``row`` changes from ``low`` to ``high`` (ignoring zero pinholes)."""
    valid = np.flatnonzero(row > 0)
    return [int(valid[i + 1]) for i in range(len(valid) - 1)
            if np.isclose(row[valid[i]], low) and np.isclose(row[valid[i + 1]], high)]


def test_registered_to_colour_reprojects_depth_into_the_colour_geometry() -> None:
    # Colour 64x48 at fx 50 (the trained profile), depth at fx 40 (wider, as on a D435).
    cam = SoftwareCamera(depth_k=(W, H, 40.0, CX, CY))
    raw = np.full((H, W), 4000, np.uint16)  # 0.5 m ...
    raw[:, 40:] = 2400                      # ... and 0.3 m from depth column 40 on
    s = PushingSource(raw, _rgb(), cam)
    try:
        f = RealSenseCamera.from_source(s, _hw()).get_frame()
    finally:
        s.stop()
    assert f.intrinsics == _hw().intrinsics == Intrinsics(25.0, 25.0, 11.5, 11.5, RES, RES)
    # The step at depth column 40 (left edge 39.5) is at angle 8 / 40 from the axis: output
    # column 16.5 at fx 25, so the first 0.3 m pixel is column 17. Depth used unprojected with
    # the colour intrinsics would put it at column 16.
    edge = (40 - 0.5 - CX) / 40.0 * f.intrinsics.fx + f.intrinsics.cx
    rows = [_edge_columns(f.depth[v], 0.5, 0.3) for v in range(2, RES - 2)]
    assert sum(1 for r in rows if r) >= len(rows) * 0.8, rows
    assert all(r == [int(np.ceil(edge))] for r in rows if r), (rows, edge)
    # Colour is untouched: the centred 48x48 crop, halved.
    np.testing.assert_array_equal(f.rgb, _rgb()[::2, 8:56:2])


def test_registered_to_depth_reprojects_colour_into_the_trained_depth_geometry() -> None:
    # The shipped SR300 profile's choice: frames in the depth stream's geometry (fx 40 here),
    # colour (fx 30, wider, so it covers the view) reprojected onto it.
    cam = SoftwareCamera(depth_k=(W, H, 40.0, CX, CY), colour_k=(W, H, 30.0, CX, CY))
    rgb = np.zeros((H, W, 3), np.uint8)
    rgb[:, 40:] = 200  # bright from colour column 40 on
    s = PushingSource(np.full((H, W), 4000, np.uint16), rgb, cam)
    hw = _hw(native=Intrinsics(40.0, 40.0, CX, CY, W, H), register_to="depth")
    try:
        f = RealSenseCamera.from_source(s, hw).get_frame()
    finally:
        s.stop()
    assert f.intrinsics == hw.intrinsics == Intrinsics(20.0, 20.0, 11.5, 11.5, RES, RES)
    assert np.all(f.depth[f.depth > 0] == np.float32(4000) * np.float32(UNITS))
    # Colour column 40 (left edge 39.5) is at angle 8 / 30 from the axis: output position 16.83
    # (pixel-centre coordinates) at fx 20; colour used unprojected would put it at 15.5. The
    # measured edge: where a row's brightness (a step of 200, area-averaged) would start.
    expected = (40 - 0.5 - CX) / 30.0 * f.intrinsics.fx + f.intrinsics.cx
    measured = RES - 0.5 - f.rgb[2:RES - 2, :, 0].astype(float).sum(axis=1) / 200.0
    assert np.all(np.abs(measured - expected) <= 0.5), (measured, expected)


def test_colour_that_cannot_cover_the_trained_view_is_refused() -> None:
    # A real SR300 with the shipped weights: registered to depth (fx 40), colour narrower
    # (fx 50): the top and bottom 10 % of the trained view would have no colour.
    cam = SoftwareCamera(depth_k=(W, H, 40.0, CX, CY), colour_k=(W, H, 50.0, CX, CY))
    s = PushingSource(np.full((H, W), 4000, np.uint16), _rgb(), cam)
    hw = _hw(native=Intrinsics(40.0, 40.0, CX, CY, W, H), register_to="depth")
    try:
        camera = RealSenseCamera.from_source(s, hw)
        with pytest.raises(ConfigError, match=r"the colour stream 64x48 .* sees only 80% of the "
                                              r"trained 61\.9 deg square registered to depth") as e:
            camera.get_frame()
    finally:
        s.stop()
    assert "\n" not in str(e.value)


def test_colour_narrower_than_the_trained_view_is_refused_when_registered_to_colour() -> None:
    # Registered to colour instead: the colour stream itself cannot give the trained view.
    cam = SoftwareCamera(depth_k=(W, H, 40.0, CX, CY), colour_k=(W, H, 50.0, CX, CY))
    s = PushingSource(np.full((H, W), 4000, np.uint16), _rgb(), cam)
    hw = _hw(native=Intrinsics(40.0, 40.0, CX, CY, W, H), register_to="color")
    try:
        with pytest.raises(ConfigError, match=r"colour stream 64x48 \(fx 50\.0.*fx off by 25\.0%"):
            RealSenseCamera.from_source(s, hw).get_frame()
    finally:
        s.stop()


def test_a_wider_live_camera_is_cropped_to_the_trained_view() -> None:
    # 80x60 streams at the trained focal length: the frames are the trained 48 px square, halved.
    big = (80, 60, FX, 39.5, 29.5)
    v, u = np.mgrid[0:60, 0:80]
    rgb = np.stack([(u // 2) * 6, (v // 2) * 8, np.full_like(u, 50)], axis=-1).astype(np.uint8)
    s = PushingSource(np.full((60, 80), 4000, np.uint16), rgb, SoftwareCamera(big, big))
    try:
        camera = RealSenseCamera.from_source(s, _hw())
        f = camera.get_frame()
    finally:
        s.stop()
    assert f.intrinsics == _hw().intrinsics
    assert camera.native_intrinsics == Intrinsics(FX, FX, 39.5, 29.5, 80, 60)
    np.testing.assert_array_equal(f.rgb, rgb[6:54:2, 16:64:2])


# ------------------------------------------------------- start-up checks: issue 17 section 1
def test_sdk_check_of_the_sr300_profile() -> None:
    from app.hardware.realsense import check_sdk

    hw = load_hardware(profile="sr300")
    check_sdk(hw, "2.54.2.5684")  # the pinned [sr300] extra
    check_sdk(hw, "2.50.0")
    for removed in ("2.55.1", "2.59.1.11053"):
        with pytest.raises(ConfigError, match=r"camera profile 'sr300' .* needs pyrealsense2 < 2\.55\.1, "
                                              rf"found {removed}.*\[hardware,sr300\]"):
            check_sdk(hw, removed)
    check_sdk(load_hardware(profile="d435"), "2.59.1")


def test_live_sr300_profile_on_the_installed_sdk() -> None:
    from app.hardware.realsense import sdk_version

    version = sdk_version(rs)
    if tuple(int(x) for x in version.split(".")[:3]) >= (2, 55, 1):
        # The default SDK cannot see an SR300: refused before looking, naming the extra.
        with pytest.raises(ConfigError, match=rf"found {version} \(librealsense 2\.55\.1 removed"):
            RealSenseCamera(load_hardware(profile="sr300"))
    elif len(rs.context().query_devices()) == 0:  # the pinned SDK: it looks for the camera
        with pytest.raises(HardwareUnavailable, match="^no RealSense camera connected"):
            RealSenseCamera(load_hardware(profile="sr300"))


def test_replay_names_the_camera_and_sdk(tmp_path: Path, request: pytest.FixtureRequest,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    if _ran_in_child(request):  # a librealsense abort must not end the session
        return
    from app.hardware.realsense import sdk_version

    path = tmp_path / "session.db3"
    _record(path, 2)
    with RealSenseCamera(_hw(), playback=path, real_time=False) as cam:
        assert cam.device_info["name"] == "software SR300"
        cam.get_frame()
    err = capsys.readouterr().err
    assert err.startswith("camera: software SR300 (serial 0000")
    assert f"librealsense {sdk_version(rs)}, profile 'sr300': frames registered to color 64x48" in err


def _profile(name: str) -> dict[str, object]:
    """The profile fields of ``name`` from the shipped hardware file (not its intrinsics)."""
    hw = load_hardware(profile=name)
    return {"camera_profile": hw.camera_profile, "camera_model": hw.camera_model,
            "depth_unit": hw.depth_unit, "sdk_below": hw.sdk_below, "sdk_min": hw.sdk_min}


def test_replay_of_another_camera_model_is_refused(tmp_path: Path, request: pytest.FixtureRequest) -> None:
    if _ran_in_child(request):  # a librealsense abort must not end the session
        return
    path = tmp_path / "d435.db3"
    _record(path, 2, name="software D435")
    with pytest.raises(ConfigError, match=r"^camera profile 'sr300' .* expects a SR30, the recording "
                                          r"holds 'software D435'") as e:
        RealSenseCamera(_hw(), playback=path, real_time=False)
    assert "\n" not in str(e.value)
    # The same recording under a D435 profile gets as far as the depth unit (0.000125 m recorded,
    # 0.001 m in the profile; a recording's unit cannot be set).
    with pytest.raises(ConfigError, match=r"profile 'd435' .* depth_unit 0\.001 m, the device reports "
                                          r"0\.000125 m and it cannot be set"):
        RealSenseCamera(_hw(**_profile("d435")), playback=path, real_time=False)
    # ... and with the unit the recording has, it plays.
    hw = _hw(**{**_profile("d435"), "depth_unit": UNITS})
    with RealSenseCamera(hw, playback=path, real_time=False, quiet=True) as cam:
        assert cam.get_frame().intrinsics == hw.intrinsics


# ------------------------------------------------------------- fresh machine: issue 14 section 1
def test_backend_imports_without_the_system_libusb(tmp_path: Path) -> None:
    """In a clean process the RealSense backend imports with the libusb-package library, never
    the system's: the one mapped is the wheel's copy, whether the system has one or not."""
    import json
    import os
    import subprocess
    import sys

    import libusb_package

    script = (
        "import ctypes.util, json, app.hardware.realsense as r\n"
        "system = ctypes.util.find_library('usb-1.0')\n"
        "rs = r._import_rs()\n"
        "maps = open('/proc/self/maps').read().split('\\n')\n"
        "libusb = sorted({l.split()[-1] for l in maps if 'libusb-1.0' in l})\n"
        "print(json.dumps({'system': system, 'mapped': libusb, 'sdk': r.sdk_version(rs),"
        " 'devices': len(rs.context().query_devices())}))\n")
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    env["LD_LIBRARY_PATH"] = str(tmp_path)  # an empty directory: nothing to find there
    env["PYTHONPATH"] = os.pathsep.join([str(Path(__file__).resolve().parents[1]), *sys.path[1:]])
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True,
                         timeout=60)
    assert out.returncode == 0, out.stderr
    seen = json.loads(out.stdout.strip().splitlines()[-1])
    wheel = str(Path(libusb_package.get_library_path()).resolve())
    assert [str(Path(p).resolve()) for p in seen["mapped"]] == [wheel]
    assert seen["devices"] >= 0 and seen["sdk"]


def test_an_sr300_with_the_shipped_profiles() -> None:
    """SR300 streams at 640x480 (depth fx 475.9, colour fx 616.4) under the shipped file."""
    depth_k, colour_k = (640, 480, 475.9, 319.5, 239.5), (640, 480, 616.4, 319.5, 239.5)
    raw = np.full((480, 640), 4000, np.uint16)
    rgb = np.full((480, 640, 3), 90, np.uint8)
    # The default profile (the shipped weights' depth geometry): the colour camera cannot cover it.
    s = PushingSource(raw, rgb, SoftwareCamera(depth_k, colour_k))
    try:
        with pytest.raises(ConfigError, match=r"^camera profile 'sr300': the colour stream 640x480 "
                                              r"\(fx 616\.4.*sees only 77% of the trained 53\.5 deg"):
            RealSenseCamera.from_source(s, load_hardware()).get_frame()
    finally:
        s.stop()
    # Trained for its colour stream instead (sr300_color): 128 px frames of that geometry.
    s = PushingSource(raw, rgb, SoftwareCamera(depth_k, colour_k))
    hw = load_hardware(profile="sr300_color")
    try:
        f = RealSenseCamera.from_source(s, hw).get_frame()
    finally:
        s.stop()
    got, want = f.intrinsics, hw.intrinsics  # librealsense stores intrinsics as float32
    assert (got.width, got.height) == (want.width, want.height) == (128, 128)
    assert (got.fx, got.fy, got.cx, got.cy) == pytest.approx((want.fx, want.fy, want.cx, want.cy), rel=1e-6)
    assert np.all(f.rgb == 90) and (f.depth > 0).mean() > 0.9
