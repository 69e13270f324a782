"""The wrist RealSense camera (SR300) as a :class:`~app.robot.interfaces.Camera`.

This is the only module that imports ``pyrealsense2``, and it does so lazily (inside functions),
so the simulator and the tests that do not touch the camera need nothing of it.

One :meth:`RealSenseCamera.get_frame` waits for a colour + depth frameset, aligns depth to the
colour stream (``rs.align``), converts depth to float32 metres with the frame's depth units
(0 = no reading), centre-crops both images to a square and resizes them to the model
resolution (``HardwareConfig.resolution``), updating the intrinsics the same way
(:meth:`Intrinsics.crop_square`, :meth:`Intrinsics.resize`).

Frames come from one of three sources:

* a live camera (the default): an ``rs.pipeline`` started with an ``rs.config``;
* a recorded session: ``playback=PATH`` replays a librealsense recording (``.db3``);
* any started frame source (:meth:`RealSenseCamera.from_source`): an object whose
  ``wait_for_frames(timeout_ms)`` yields composite framesets, e.g. an ``rs.syncer`` fed by an
  ``rs.software_device`` (how the tests drive this class without a camera).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Protocol

import cv2
import numpy as np

from app.errors import HardwareError, HardwareUnavailable
from app.hardware_config import HardwareConfig
from app.robot.interfaces import Frame, Intrinsics

DEFAULT_WIDTH, DEFAULT_HEIGHT = 640, 480  # px, the SR300's native depth (and a colour) mode
DEFAULT_TIMEOUT_MS = 1000  # ms to wait for a complete frameset (30 frame periods at 30 fps)


class FrameSource(Protocol):
    """Anything that hands out librealsense composite framesets (``rs.pipeline``, ``rs.syncer``)."""

    def wait_for_frames(self, timeout_ms: int) -> Any:
        """The next frameset; raises ``RuntimeError`` when none arrives within ``timeout_ms``."""


def _import_rs() -> Any:
    """Import ``pyrealsense2`` or say in one line why it cannot be used."""
    try:
        import pyrealsense2 as rs
    except ImportError as e:  # the wheel is missing, or libusb-1.0 is (FACTS.md)
        raise HardwareUnavailable(
            f"pyrealsense2 cannot be imported ({_one_line(e)}): install the 'hardware' extra "
            "and libusb-1.0") from e
    return rs


def _one_line(error: BaseException) -> str:
    """An exception's message folded onto one line (librealsense messages may span several)."""
    return " ".join(str(error).split()) or type(error).__name__


def _to_intrinsics(rs_intrinsics: Any) -> Intrinsics:
    """Our pinhole :class:`Intrinsics` from an ``rs.intrinsics``; distortion coefficients are
    dropped (the simulator and the servoing use the pinhole model)."""
    k = rs_intrinsics
    return Intrinsics(float(k.fx), float(k.fy), float(k.ppx), float(k.ppy), int(k.width),
                      int(k.height))


def square_crop(native: Intrinsics) -> tuple[slice, slice, Intrinsics]:
    """Rows, columns and intrinsics of the centred square crop of a ``native`` image.

    An odd size difference cannot be split evenly, so the last column (or row) is dropped
    first: that changes neither the focal length nor the principal point, and keeps the pixel
    crop and :meth:`Intrinsics.crop_square` exactly consistent.

    Args:
        native: Intrinsics of the full image (pixels).

    Returns:
        (row slice, column slice, intrinsics of the cropped square image).
    """
    w, h = native.width, native.height
    side = min(w, h)
    w -= (w - side) % 2
    h -= (h - side) % 2
    even = Intrinsics(native.fx, native.fy, native.cx, native.cy, w, h)
    x0, y0 = (w - side) // 2, (h - side) // 2
    return slice(y0, y0 + side), slice(x0, x0 + side), even.crop_square()


class RealSenseCamera:
    """RealSense colour + depth camera giving square, model-resolution :class:`Frame` s.

    Args:
        hw: Robot configuration (model resolution ``hw.resolution``, frame rate ``hw.fps``).
        width: Stream width in pixels (colour and depth).
        height: Stream height in pixels.
        fps: Stream frame rate (default ``hw.fps``).
        serial: Serial number of the camera to open (default: the first one found).
        playback: Replay this recording instead of a live camera (a ``.db3`` file as
            ``rs.recorder`` / the RealSense Viewer write them).
        real_time: For ``playback``: replay at the recorded pace (True) or hand out every
            recorded frame as fast as it is asked for (False, for offline processing).
        timeout_ms: Longest wait for a complete colour + depth frameset in milliseconds.

    Raises:
        HardwareUnavailable: No camera is connected, the streams cannot be started, or the
            recording cannot be opened.
    """

    def __init__(self, hw: HardwareConfig, width: int = DEFAULT_WIDTH,
                 height: int = DEFAULT_HEIGHT, fps: float | None = None, serial: str | None = None,
                 playback: str | Path | None = None, real_time: bool = True,
                 timeout_ms: int = DEFAULT_TIMEOUT_MS) -> None:
        rs = _import_rs()
        config = rs.config()
        if playback is not None:
            path = Path(playback)
            if not path.is_file():
                raise HardwareUnavailable(f"cannot replay camera recording {path}: no such file")
            # No enable_stream: a recording replays the streams it holds.
            config.enable_device_from_file(str(path), repeat_playback=False)
            what = f"camera recording {path}"
        else:
            context = rs.context()
            if len(context.query_devices()) == 0:
                raise HardwareUnavailable(
                    "no RealSense camera connected (check the USB cable; rs-enumerate-devices "
                    "lists cameras)")
            if serial:
                config.enable_device(serial)
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
            depth_scale = float(device.first_depth_sensor().get_depth_scale())
            colour = profile.get_stream(rs.stream.color).as_video_stream_profile()
            native = _to_intrinsics(colour.get_intrinsics())
        except RuntimeError as e:
            pipeline.stop()
            raise HardwareUnavailable(f"{what} has no depth and colour stream: {_one_line(e)}") from e
        self._setup(rs, hw, pipeline, native, depth_scale, timeout_ms, owns_source=True,
                    name=str(playback) if playback is not None else "RealSense camera")

    @classmethod
    def from_source(cls, source: FrameSource, hw: HardwareConfig, native: Intrinsics | None = None,
                    depth_scale: float | None = None, timeout_ms: int = DEFAULT_TIMEOUT_MS,
                    owns_source: bool = False) -> RealSenseCamera:
        """A camera reading an already started frame source (e.g. an ``rs.syncer``).

        Args:
            source: Yields composite framesets through ``wait_for_frames(timeout_ms)``.
            hw: Robot configuration (model resolution).
            native: Intrinsics of the colour stream, for :attr:`intrinsics` before the first
                frame (default ``hw.native``); each frame's own colour profile is used once
                frames arrive.
            depth_scale: Metres per depth unit when a frame does not report its units
                (default ``hw.depth_unit``).
            timeout_ms: Longest wait for a complete colour + depth frameset (ms).
            owns_source: Call ``source.stop()`` on :meth:`close`.
        """
        camera = cls.__new__(cls)
        camera._playback = None
        camera._setup(_import_rs(), hw, source, native or hw.native,
                      depth_scale if depth_scale is not None else hw.depth_unit, timeout_ms,
                      owns_source=owns_source, name="RealSense frame source")
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
        self._align = rs.align(rs.stream.color)
        self._native = native
        self._crop = square_crop(native)
        self._k = self._crop[2].resize(hw.resolution, hw.resolution)
        self._closed = False
        self.frames = 0  # frames returned so far

    @property
    def intrinsics(self) -> Intrinsics:
        """Intrinsics of the square model-resolution frames (pixels)."""
        return self._k

    @property
    def native_intrinsics(self) -> Intrinsics:
        """Intrinsics of the full colour stream (pixels) that the last frame came from."""
        return self._native

    @property
    def depth_scale(self) -> float:
        """Metres per raw depth unit of the device (SR300: 0.000125)."""
        return self._depth_scale

    def get_frame(self) -> Frame:
        """Wait for the next colour + depth frameset and convert it.

        Returns:
            A frame of ``hw.resolution`` squared pixels: RGB uint8, depth float32 in metres
            along the optical axis registered to colour (0 = no reading), the updated
            intrinsics, the device timestamp in seconds and the colour frame number.

        Raises:
            HardwareError: No complete frameset within ``timeout_ms``, the recording ended,
                or the colour format is not RGB/BGR.
        """
        if self._closed:
            raise HardwareError(f"{self._name} is closed")
        colour, depth = self._wait_for_pair()
        return self._convert(colour, depth)

    def _wait_for_pair(self) -> tuple[Any, Any]:
        """The next aligned (colour, depth) frame pair, waiting at most ``timeout_ms``.

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
                aligned = self._align.process(frames)
                colour, depth = aligned.get_color_frame(), aligned.get_depth_frame()
                if colour and depth:
                    return colour, depth
            missing = "colour only" if colour else "depth only" if depth else "an empty frameset"

    def _convert(self, colour: Any, depth: Any) -> Frame:
        """Crop, scale and resize one aligned pair into a :class:`Frame`."""
        native = _to_intrinsics(colour.get_profile().as_video_stream_profile().get_intrinsics())
        if native != self._native:  # the stream changed (first frame of an injected source)
            self._native, self._crop = native, square_crop(native)
            self._k = self._crop[2].resize(self.hw.resolution, self.hw.resolution)
        rows, cols, _ = self._crop
        rgb = np.asanyarray(colour.get_data())[rows, cols]
        fmt = colour.get_profile().format()
        if fmt not in (self._rs.format.rgb8, self._rs.format.bgr8):
            raise HardwareError(f"{self._name}: colour format {fmt} is not RGB8 or BGR8")
        units = float(depth.get_units()) or self._depth_scale
        raw = np.asanyarray(depth.get_data())[rows, cols]
        metres = raw.astype(np.float32) * np.float32(units)  # raw 0 (no reading) stays 0.0
        side, r = rgb.shape[0], self.hw.resolution
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
        return Frame(rgb=rgb, depth=metres, intrinsics=self._k,
                     timestamp=float(colour.get_timestamp()) / 1000.0,  # ms -> s
                     seq=int(colour.get_frame_number()))

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
