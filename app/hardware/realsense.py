"""The wrist RealSense camera as a :class:`~app.robot.interfaces.Camera`.

This is the only module that imports ``pyrealsense2`` (and ``libusb_package``), and it does so
lazily (inside functions), so the simulator and the tests that do not touch the camera need
nothing of it. Before the import, the ``libusb-1.0`` that the ``libusb-package`` wheel ships is
loaded globally: pyrealsense2 links ``libusb-1.0.so.0``, and a machine without Debian's
``libusb-1.0-0`` then imports it all the same.

One :meth:`RealSenseCamera.get_frame` waits for a colour + depth frameset and registers both to
one stream (``rs.align``): the stream named by the camera profile's ``register_to``
(``config/hardware.yaml``), whose geometry the models were trained on. It converts depth to
float32 metres with the frame's depth units (0 = no reading), crops both images to the square
of the *trained* field of view, centred on the principal point (:func:`fit_crop`), and resizes
them to the model resolution, so the frames have the intrinsics the simulator renders
(``HardwareConfig.intrinsics``) within ``camera.fov_tolerance``.

At start-up (:meth:`RealSenseCamera.__init__`) the device must match the profile: the
librealsense version supports the camera (the SR300 needs pyrealsense2 < 2.55.1), the device
name contains the profile's model, the depth unit is the profile's (set when the device allows),
the registered stream can be cropped to the trained field of view, and the other stream covers
it. A mismatch is one line and exit 2 (:class:`~app.errors.ConfigError`); the camera found and
the SDK version are printed on stderr.

Frames come from one of three sources:

* a live camera (the default): an ``rs.pipeline`` started with an ``rs.config``;
* a recorded session: ``playback=PATH`` replays a librealsense recording (``.db3``);
* any started frame source (:meth:`RealSenseCamera.from_source`): an object whose
  ``wait_for_frames(timeout_ms)`` yields composite framesets, e.g. an ``rs.syncer`` fed by an
  ``rs.software_device`` (how the tests drive this class without a camera).
"""

from __future__ import annotations

import ctypes
import math
import sys
import time
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from app.errors import ConfigError, HardwareError, HardwareUnavailable
from app.hardware_config import HardwareConfig
from app.robot.interfaces import Frame, Intrinsics

DEFAULT_TIMEOUT_MS = 1000  # ms to wait for a complete frameset (30 frame periods at 30 fps)


class FrameSource(Protocol):
    """Anything that hands out librealsense composite framesets (``rs.pipeline``, ``rs.syncer``)."""

    def wait_for_frames(self, timeout_ms: int) -> Any:
        """The next frameset; raises ``RuntimeError`` when none arrives within ``timeout_ms``."""


DEPTH_UNIT_TOLERANCE = 0.01  # relative: a device depth unit this close to the profile's is the same
_libusb_path: str | None = None


def preload_libusb() -> str | None:
    """Load the ``libusb-1.0`` shipped by the ``libusb-package`` wheel, globally (RTLD_GLOBAL).

    pyrealsense2's extension links ``libusb-1.0.so.0``; the dynamic loader satisfies that name
    with an already loaded library of the same soname, so loading the wheel's copy first lets
    pyrealsense2 import on a machine without Debian's ``libusb-1.0-0``. Idempotent.

    Returns:
        The path loaded, or None when the wheel is not installed (the system library, if any,
        is then used).
    """
    global _libusb_path
    if _libusb_path is None:
        try:
            import libusb_package
        except ImportError:
            return None
        path = libusb_package.get_library_path()
        if path is None:  # no library for this platform in the wheel
            return None
        ctypes.CDLL(str(path), mode=ctypes.RTLD_GLOBAL)
        _libusb_path = str(path)
    return _libusb_path


def _import_rs() -> Any:
    """Import ``pyrealsense2`` (after :func:`preload_libusb`) or say in one line why it cannot."""
    try:
        preload_libusb()
    except OSError as e:  # a broken wheel: say so rather than fail later on the import
        raise HardwareUnavailable(f"the libusb-package library cannot be loaded ({_one_line(e)})") from e
    try:
        import pyrealsense2 as rs
    except ImportError as e:  # the wheel is missing, or libusb-1.0 is (FACTS.md)
        raise HardwareUnavailable(
            f"pyrealsense2 cannot be imported ({_one_line(e)}): install the 'hardware' extra "
            "(it brings libusb-package)") from e
    return rs


def sdk_version(rs: Any) -> str:
    """The librealsense version of the imported ``pyrealsense2`` ("2.59.1"); 2.54 wheels do
    not re-export ``__version__`` at the top level."""
    version = getattr(rs, "__version__", None) or getattr(getattr(rs, "pyrealsense2", None),
                                                          "__version__", None)
    if not version:
        try:
            version = metadata.version("pyrealsense2")
        except metadata.PackageNotFoundError:
            version = "unknown"
    return str(version)


def _version_tuple(version: str) -> tuple[int, ...]:
    """(2, 59, 1) from "2.59.1.11053"; the build number is ignored, non-numbers stop the parse."""
    out = []
    for part in version.split(".")[:3]:
        if not part.isdigit():
            break
        out.append(int(part))
    return tuple(out)


def check_sdk(hw: HardwareConfig, version: str) -> None:
    """Refuse a librealsense version that does not support the profile's camera.

    Raises:
        ConfigError: One line naming the profile, the version found and what to install.
    """
    found = _version_tuple(version)
    name = f"camera profile '{hw.camera_profile}' ({hw.source})"
    if hw.sdk_below and found >= _version_tuple(hw.sdk_below):
        raise ConfigError(
            f"{name} needs pyrealsense2 < {hw.sdk_below}, found {version} (librealsense "
            f"{hw.sdk_below} removed this camera): pip install 'pyrealsense2<{hw.sdk_below}' "
            "(for the SR300: pip install -e '.[hardware,sr300]')")
    if hw.sdk_min and found < _version_tuple(hw.sdk_min):
        raise ConfigError(f"{name} needs pyrealsense2 >= {hw.sdk_min}, found {version}")


def _one_line(error: BaseException) -> str:
    """An exception's message folded onto one line (librealsense messages may span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def _frame_intrinsics(frame: Any) -> Intrinsics:
    """Intrinsics of a video frame's stream profile."""
    return _to_intrinsics(frame.get_profile().as_video_stream_profile().get_intrinsics())


def _info(rs: Any, device: Any, key: Any) -> str:
    """A ``camera_info`` field of ``device``, or "" when the device does not report it."""
    return str(device.get_info(key)) if device.supports(key) else ""


def _match_depth_unit(rs: Any, sensor: Any, hw: HardwareConfig, writable: bool) -> float:
    """The depth sensor's unit in metres, set to the profile's when it differs and can be set.

    Raises:
        ConfigError: The unit differs from the profile's and cannot be set.
    """
    unit = float(sensor.get_depth_scale())
    if abs(unit / hw.depth_unit - 1.0) <= DEPTH_UNIT_TOLERANCE:
        return unit
    option = rs.option.depth_units
    if writable and sensor.supports(option) and not sensor.is_option_read_only(option):
        sensor.set_option(option, hw.depth_unit)
        unit = float(sensor.get_depth_scale())
        if abs(unit / hw.depth_unit - 1.0) <= DEPTH_UNIT_TOLERANCE:
            return unit
    raise ConfigError(
        f"camera profile '{hw.camera_profile}' ({hw.source}) has depth_unit {hw.depth_unit:g} m, "
        f"the device reports {unit:g} m and it cannot be set")


def _to_intrinsics(rs_intrinsics: Any) -> Intrinsics:
    """Our pinhole :class:`Intrinsics` from an ``rs.intrinsics``; distortion coefficients are
    dropped (the simulator and the servoing use the pinhole model)."""
    k = rs_intrinsics
    return Intrinsics(float(k.fx), float(k.fy), float(k.ppx), float(k.ppy), int(k.width),
                      int(k.height))


def fit_crop(live: Intrinsics, target: Intrinsics, tolerance: float,
             what: str = "camera") -> tuple[slice, slice, Intrinsics]:
    """The square crop of a live image that, resized to ``target``'s size, has ``target``'s
    field of view, and the intrinsics it gives.

    The crop's side is ``live.fx * target.width / target.fx`` (rounded to whole pixels), centred
    on the live principal point; a crop that does not fit the image is shrunk to the largest
    that does. A live camera equal to the one the target came from gets the target back.

    Args:
        live: Intrinsics of the registered stream (pixels).
        target: Intrinsics the frames must have: square, model resolution (pixels); the ones
            the simulator renders and the models were trained on.
        tolerance: Largest relative focal-length error, and principal-point offset as a
            fraction of the side, accepted.
        what: Names the stream in the error.

    Returns:
        (row slice, column slice, intrinsics of the resized crop).

    Raises:
        ConfigError: The live field of view cannot match the target within ``tolerance``.
    """
    side_px = target.width
    want = live.fx * side_px / target.fx  # px of the live image spanning the target's field of view
    # Largest square centred (to the nearest pixel) on the principal point that fits the image.
    fit = int(min(2 * (live.cx + 0.5), 2 * (live.width - 0.5 - live.cx),
                  2 * (live.cy + 0.5), 2 * (live.height - 0.5 - live.cy)))
    side = max(1, min(int(math.floor(want + 0.5)), fit, live.width, live.height))
    x0 = min(max(int(math.floor(live.cx - (side - 1) / 2 + 0.5)), 0), live.width - side)
    y0 = min(max(int(math.floor(live.cy - (side - 1) / 2 + 0.5)), 0), live.height - side)
    k = Intrinsics(live.fx, live.fy, live.cx - x0, live.cy - y0, side, side).resize(side_px, side_px)
    errors = {"fx": k.fx / target.fx - 1.0, "fy": k.fy / target.fy - 1.0,
              "cx": (k.cx - target.cx) / side_px, "cy": (k.cy - target.cy) / side_px}
    worst = max(errors, key=lambda key: abs(errors[key]))
    if abs(errors[worst]) > tolerance:
        fov_live = math.degrees(2 * math.atan(side / 2 / live.fx))
        fov_target = target.fov_deg()[0]
        raise ConfigError(
            f"{what} {live.width}x{live.height} (fx {live.fx:.1f}, fy {live.fy:.1f}, cx {live.cx:.1f}, "
            f"cy {live.cy:.1f}) gives a {fov_live:.1f} deg square field of view, the models were "
            f"trained on {fov_target:.1f} deg (fx {target.fx:.1f} at {side_px} px): {worst} off by "
            f"{abs(errors[worst]):.1%}, over camera.fov_tolerance {tolerance:.1%} (use the camera "
            "profile the models were trained for, or retrain for this one)")
    return slice(y0, y0 + side), slice(x0, x0 + side), k


def coverage(other: Intrinsics, target: Intrinsics) -> float:
    """Fraction of ``target``'s field of view that a stream with intrinsics ``other`` sees.

    Both are compared as rectangles of normalised image coordinates about a common optical
    centre: the baseline between the sensors (a few cm) and their relative rotation are ignored.
    """
    def box(k: Intrinsics) -> tuple[float, float, float, float]:
        return ((-0.5 - k.cx) / k.fx, (k.width - 0.5 - k.cx) / k.fx,
                (-0.5 - k.cy) / k.fy, (k.height - 0.5 - k.cy) / k.fy)

    ox0, ox1, oy0, oy1 = box(other)
    tx0, tx1, ty0, ty1 = box(target)
    inter = max(0.0, min(ox1, tx1) - max(ox0, tx0)) * max(0.0, min(oy1, ty1) - max(oy0, ty0))
    return inter / ((tx1 - tx0) * (ty1 - ty0))


class RealSenseCamera:
    """RealSense colour + depth camera giving square, model-resolution :class:`Frame` s.

    Args:
        hw: Robot configuration: the camera profile (model, native intrinsics, ``register_to``,
            depth unit, supported librealsense versions), the model resolution
            ``hw.resolution``, the frame rate ``hw.fps`` and ``hw.fov_tolerance``.
        width: Stream width in pixels (colour and depth; default the profile's native width).
        height: Stream height in pixels (default the profile's native height).
        fps: Stream frame rate (default ``hw.fps``).
        serial: Serial number of the camera to open (default: the first one found).
        playback: Replay this recording instead of a live camera (a ``.db3`` file as
            ``rs.recorder`` / the RealSense Viewer write them).
        real_time: For ``playback``: replay at the recorded pace (True) or hand out every
            recorded frame as fast as it is asked for (False, for offline processing).
        timeout_ms: Longest wait for a complete colour + depth frameset in milliseconds.
        quiet: Do not print the camera found on stderr.

    Raises:
        HardwareUnavailable: No camera is connected, the streams cannot be started, or the
            recording cannot be opened (exit 3).
        ConfigError: The librealsense version, the device or its streams disagree with the
            camera profile (exit 2).
    """

    def __init__(self, hw: HardwareConfig, width: int | None = None,
                 height: int | None = None, fps: float | None = None, serial: str | None = None,
                 playback: str | Path | None = None, real_time: bool = True,
                 timeout_ms: int = DEFAULT_TIMEOUT_MS, quiet: bool = False) -> None:
        rs = _import_rs()
        version = sdk_version(rs)
        config = rs.config()
        if playback is not None:
            path = Path(playback)
            if not path.is_file():
                raise HardwareUnavailable(f"cannot replay camera recording {path}: no such file")
            # No enable_stream: a recording replays the streams it holds.
            config.enable_device_from_file(str(path), repeat_playback=False)
            what = f"camera recording {path}"
        else:
            check_sdk(hw, version)  # before looking: an unsupported camera is never listed
            context = rs.context()
            if len(context.query_devices()) == 0:
                raise HardwareUnavailable(
                    "no RealSense camera connected (check the USB cable; rs-enumerate-devices "
                    f"lists cameras; librealsense {version})")
            if serial:
                config.enable_device(serial)
            width = width or hw.native.width
            height = height or hw.native.height
            rate = round(fps if fps is not None else hw.fps)
            config.enable_stream(rs.stream.depth, width, height, rs.format.z16, rate)
            config.enable_stream(rs.stream.color, width, height, rs.format.rgb8, rate)
            what = f"RealSense {width}x{height} depth+colour streams at {rate} fps"
        pipeline = rs.pipeline()
        try:
            if playback is not None and not real_time:
                # Switch the playback device off real time *before* streaming starts: resolving
                # creates the device that start() then reuses. Switched after start(), the
                # frames read meanwhile are lost (a short recording loses most of them).
                resolved = config.resolve(rs.pipeline_wrapper(pipeline))
                resolved.get_device().as_playback().set_real_time(False)
            profile = pipeline.start(config)
        except RuntimeError as e:
            raise HardwareUnavailable(f"cannot start {what}: {_one_line(e)}") from e
        device = profile.get_device()
        self._playback = device.as_playback() if playback is not None else None
        try:
            depth_sensor = device.first_depth_sensor()
            colour = _to_intrinsics(profile.get_stream(rs.stream.color).as_video_stream_profile()
                                    .get_intrinsics())
            depth = _to_intrinsics(profile.get_stream(rs.stream.depth).as_video_stream_profile()
                                   .get_intrinsics())
            name = _info(rs, device, rs.camera_info.name)
            self.device_info = {"name": name, "serial": _info(rs, device, rs.camera_info.serial_number),
                                "firmware": _info(rs, device, rs.camera_info.firmware_version),
                                "sdk": version, "profile": hw.camera_profile}
            if hw.camera_model and hw.camera_model.lower() not in name.lower():
                raise ConfigError(
                    f"camera profile '{hw.camera_profile}' ({hw.source}) expects a "
                    f"{hw.camera_model}, the {'recording holds' if playback else 'device is'} "
                    f"'{name}' (set camera.profile to this camera's)")
            depth_scale = _match_depth_unit(rs, depth_sensor, hw, writable=playback is None)
            self._check_geometry(hw, colour, depth)
        except RuntimeError as e:
            pipeline.stop()
            raise HardwareUnavailable(f"{what} has no depth and colour stream: {_one_line(e)}") from e
        except ConfigError:
            pipeline.stop()
            raise
        registered = depth if hw.register_to == "depth" else colour
        self._setup(rs, hw, pipeline, registered, depth_scale, timeout_ms, owns_source=True,
                    name=str(playback) if playback is not None else "RealSense camera")
        if not quiet:
            print(f"camera: {self.describe()}", file=sys.stderr)

    @classmethod
    def from_source(cls, source: FrameSource, hw: HardwareConfig, native: Intrinsics | None = None,
                    depth_scale: float | None = None, timeout_ms: int = DEFAULT_TIMEOUT_MS,
                    owns_source: bool = False) -> RealSenseCamera:
        """A camera reading an already started frame source (e.g. an ``rs.syncer``).

        The geometry checks of the constructor run on the first frameset instead (its streams'
        intrinsics are not known before).

        Args:
            source: Yields composite framesets through ``wait_for_frames(timeout_ms)``.
            hw: Robot configuration (camera profile, model resolution).
            native: Intrinsics of the registered stream, for :attr:`native_intrinsics` before
                the first frame (default ``hw.native``); each frame's own profile is used once
                frames arrive.
            depth_scale: Metres per depth unit when a frame does not report its units
                (default ``hw.depth_unit``).
            timeout_ms: Longest wait for a complete colour + depth frameset (ms).
            owns_source: Call ``source.stop()`` on :meth:`close`.
        """
        camera = cls.__new__(cls)
        camera._playback = None
        rs = _import_rs()
        camera.device_info = {"name": "frame source", "serial": "", "firmware": "",
                              "sdk": sdk_version(rs), "profile": hw.camera_profile}
        camera._setup(rs, hw, source, native or hw.native,
                      depth_scale if depth_scale is not None else hw.depth_unit, timeout_ms,
                      owns_source=owns_source, name="RealSense frame source")
        camera._checked = False
        return camera

    def _setup(self, rs: Any, hw: HardwareConfig, source: Any, native: Intrinsics,
               depth_scale: float, timeout_ms: int, owns_source: bool, name: str) -> None:
        """State shared by both constructors."""
        self._rs = rs
        self.hw = hw
        self._source = source
        self._owns_source = owns_source
        self._depth_scale = depth_scale
        self.timeout_ms = int(timeout_ms)
        self._name = name
        self._register_depth = hw.register_to == "depth"
        self._align = rs.align(rs.stream.depth if self._register_depth else rs.stream.color)
        self._target = hw.intrinsics
        self._native = native
        self._crop: tuple[slice, slice, Intrinsics] | None = None
        self._checked = True
        self._closed = False
        self.frames = 0  # frames returned so far

    def _check_geometry(self, hw: HardwareConfig, colour: Intrinsics, depth: Intrinsics) -> None:
        """Refuse streams whose geometry cannot give the trained frames (see :func:`fit_crop`).

        The registered stream must crop to the trained field of view; the other stream must see
        all of it (colour outside its view would be black; depth outside, missing).

        Raises:
            ConfigError: One line naming the stream, its intrinsics and the trained ones.
        """
        target = hw.intrinsics
        registered, other = (depth, colour) if hw.register_to == "depth" else (colour, depth)
        names = ("depth", "colour") if hw.register_to == "depth" else ("colour", "depth")
        k = fit_crop(registered, target, hw.fov_tolerance,
                     f"camera profile '{hw.camera_profile}': the {names[0]} stream")[2]
        seen = coverage(other, k)
        if seen < 1.0 - hw.fov_tolerance:
            raise ConfigError(
                f"camera profile '{hw.camera_profile}': the {names[1]} stream {other.width}x"
                f"{other.height} (fx {other.fx:.1f}, fy {other.fy:.1f}; {other.fov_deg()[0]:.1f} x "
                f"{other.fov_deg()[1]:.1f} deg) sees only {seen:.0%} of the trained "
                f"{target.fov_deg()[0]:.1f} deg square registered to {names[0]} (tolerance "
                f"{hw.fov_tolerance:.1%}): train for this camera with a profile registered to "
                f"{names[1]} (e.g. sr300_color), or use a camera whose {names[1]} sees the whole view")

    def describe(self) -> str:
        """One line: the device, its serial and firmware, the SDK, the profile and the geometry."""
        i = self.device_info
        k = self._native
        return (f"{i['name']} (serial {i['serial'] or '-'}, firmware {i['firmware'] or '-'}), "
                f"librealsense {i['sdk']}, profile '{i['profile']}': frames registered to "
                f"{self.hw.register_to} {k.width}x{k.height} fx {k.fx:.1f}, cropped to the trained "
                f"{self._target.fov_deg()[0]:.1f} deg and resized to {self._target.width} px, "
                f"depth unit {self._depth_scale:g} m")

    @property
    def intrinsics(self) -> Intrinsics:
        """Intrinsics of the square model-resolution frames (pixels)."""
        return self._crop[2] if self._crop is not None else self._target

    @property
    def native_intrinsics(self) -> Intrinsics:
        """Intrinsics of the full registered stream (pixels) that the last frame came from."""
        return self._native

    @property
    def depth_scale(self) -> float:
        """Metres per raw depth unit of the device (SR300: 0.000125)."""
        return self._depth_scale

    def get_frame(self) -> Frame:
        """Wait for the next colour + depth frameset and convert it.

        Returns:
            A frame of ``hw.resolution`` squared pixels: RGB uint8, depth float32 in metres
            along the optical axis, both registered to the profile's ``register_to`` stream
            (0 = no reading; with ``register_to: depth`` also black colour where depth has no
            reading), the intrinsics, the device timestamp in seconds and the frame number.

        Raises:
            HardwareError: No complete frameset within ``timeout_ms``, the recording ended,
                or the colour format is not RGB/BGR.
            ConfigError: The first frameset of a :meth:`from_source` camera has streams that
                cannot give the trained geometry.
        """
        if self._closed:
            raise HardwareError(f"{self._name} is closed")
        colour, depth, raw = self._wait_for_pair()
        if not self._checked:
            self._check_geometry(self.hw, *raw)
            self._checked = True
        return self._convert(colour, depth)

    def _wait_for_pair(self) -> tuple[Any, Any, tuple[Intrinsics, Intrinsics]]:
        """The next aligned (colour, depth) frame pair, waiting at most ``timeout_ms``, and the
        (colour, depth) intrinsics of the streams before alignment.

        A frameset may hold one stream only (the first one after start does), so framesets are
        read until one has both or the time is up.
        """
        deadline = time.monotonic() + self.timeout_ms / 1000.0
        missing = "any frame"
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                raise HardwareError(
                    f"{self._name}: no colour+depth frameset within {self.timeout_ms} ms "
                    f"(got {missing})")
            try:
                frames = self._source.wait_for_frames(left_ms)
            except RuntimeError as e:
                if self._playback is not None and \
                        self._playback.current_status() == self._rs.playback_status.stopped:
                    raise HardwareError(f"{self._name}: the recording ended after "
                                        f"{self.frames} frames") from e
                raise HardwareError(f"{self._name}: no colour+depth frameset within "
                                    f"{self.timeout_ms} ms ({_one_line(e)})") from e
            colour, depth = frames.get_color_frame(), frames.get_depth_frame()
            if colour and depth:
                raw = (_frame_intrinsics(colour), _frame_intrinsics(depth))
                aligned = self._align.process(frames)
                colour, depth = aligned.get_color_frame(), aligned.get_depth_frame()
                if colour and depth:
                    return colour, depth, raw
            missing = "colour only" if colour else "depth only" if depth else "an empty frameset"

    def _convert(self, colour: Any, depth: Any) -> Frame:
        """Crop, scale and resize one aligned pair into a :class:`Frame`."""
        native = _frame_intrinsics(depth if self._register_depth else colour)
        if self._crop is None or native != self._native:  # first frame, or the stream changed
            self._crop = fit_crop(native, self._target, self.hw.fov_tolerance,
                                  f"{self._name}: the {self.hw.register_to} stream")
            self._native = native
        rows, cols, k = self._crop
        rgb = np.asanyarray(colour.get_data())[rows, cols]
        fmt = colour.get_profile().format()
        if fmt not in (self._rs.format.rgb8, self._rs.format.bgr8):
            raise HardwareError(f"{self._name}: colour format {fmt} is not RGB8 or BGR8")
        units = float(depth.get_units()) or self._depth_scale
        raw = np.asanyarray(depth.get_data())[rows, cols]
        metres = raw.astype(np.float32) * np.float32(units)  # raw 0 (no reading) stays 0.0
        side, r = rgb.shape[0], k.width
        if side != r:
            # Area averaging when shrinking (no aliasing), bilinear when enlarging; both use the
            # pixel-centre model of Intrinsics.resize.
            rgb = cv2.resize(rgb, (r, r), interpolation=cv2.INTER_AREA if r < side else cv2.INTER_LINEAR)
            # Depth is never averaged: nearest keeps zeros zero and edges sharp. NEAREST_EXACT
            # samples pixel centres (floor((i + 0.5) * scale)), as Intrinsics.resize assumes;
            # plain INTER_NEAREST samples floor(i * scale), half a source pixel off.
            metres = cv2.resize(metres, (r, r), interpolation=cv2.INTER_NEAREST_EXACT)
        else:
            rgb = rgb.copy()  # own the pixels: a view would pin librealsense's frame buffer
        if fmt == self._rs.format.bgr8:
            rgb = np.ascontiguousarray(rgb[..., ::-1])
        self.frames += 1
        reference = depth if self._register_depth else colour
        return Frame(rgb=rgb, depth=metres, intrinsics=k,
                     timestamp=float(reference.get_timestamp()) / 1000.0,  # ms -> s
                     seq=int(reference.get_frame_number()))

    def close(self) -> None:
        """Stop the streams (an injected source only when the camera owns it). Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._owns_source:
            try:
                self._source.stop()
            except RuntimeError:  # already stopped
                pass

    def __enter__(self) -> RealSenseCamera:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
