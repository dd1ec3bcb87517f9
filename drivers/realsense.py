"""Intel RealSense (D400 family) behind the Camera protocol, through pyrealsense2.

The driver works at the sensor level (open a profile on each sensor, frames into queues) rather
than through rs.pipeline, for two reasons: one code path then serves a live device, a recorded
file (context.load_device) and a software device (tests), and the driver pairs color with depth
itself by timestamp, which stays deterministic where the SDK's syncer splits pairs (it does when
a file plays back faster than real time). Depth is aligned to color with the SDK's rs.align.

Timestamps: Frame.stamp is the frame's own timestamp (ms from the SDK, converted to s) and
Frame.clock_domain names its clock as the SDK reports it: "hardware_clock" (the camera's clock,
not comparable to host time), "system_time" (host time of arrival) or "global_time" (camera time
mapped to host time; the D400 default when global time is enabled). Consumers that mix clocks
must look at clock_domain.

A device that stops sending frames (unplugged, USB stall) is reported by latest() as
CameraDisconnected once no frame has come for frame_timeout_s. A recording that has played to its
end is reported as CameraDisconnected at once: the SDK says so, no timeout needs to pass. A
recording played as fast as it is read (playback_real_time=False) has no timeouts at all: how fast
it is read depends on the machine's load, so a slow read there is not a stall.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.camera import (
    CameraDisconnected,
    CameraError,
    CameraIntrinsics,
    CameraNotStarted,
    Frame,
    FrameFormatError,
    check_frame,
)
from drivers.sdk import import_sdk

# RealSense distortion model names -> ours (drivers.camera.DISTORTION_MODELS).
_DISTORTION = {
    "none": "none",
    "brown_conrady": "plumb_bob",
    "modified_brown_conrady": "modified_brown_conrady",
    "inverse_brown_conrady": "inverse_brown_conrady",
    "kannala_brandt4": "equidistant",
}


@dataclass
class RealSenseConfig:
    serial_number: str = ""  # "" = the only RealSense connected
    width: int = 640
    height: int = 480
    fps: int = 30
    enable_depth: bool = True
    align_depth_to_color: bool = True
    playback_path: str | None = None  # a recording (.db3 rosbag2; .bag from older SDKs), not a device
    playback_real_time: bool = True  # False: a recording plays as fast as it is read (tests, offline)
    # Neither timeout applies to a playback with playback_real_time=False (module docstring).
    frame_timeout_s: float = 1.0  # no new frame for this long: CameraDisconnected
    start_timeout_s: float = 5.0  # the first frame may take this long after start()

    def __post_init__(self) -> None:
        for name in ("width", "height", "fps"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"RealSenseConfig.{name} must be a positive integer, got {value!r}")
        for name in ("frame_timeout_s", "start_timeout_s"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"RealSenseConfig.{name} must be > 0 s, got {value!r}")
        if self.align_depth_to_color and not self.enable_depth:
            raise ValueError("RealSenseConfig.align_depth_to_color needs enable_depth")


@dataclass
class _Stream:
    sensor: Any
    profile: Any
    frames: deque[Any]


class RealSenseCamera:
    """A RealSense color (+ depth) camera.

    device: an rs.device to use instead of finding one by serial number (tests pass a software
    device); clock: host time in s for the frame timeout (tests pass a fake one).
    """

    def __init__(
        self,
        config: RealSenseConfig | None = None,
        device: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = config or RealSenseConfig()
        self._given_device = device
        self._clock = clock
        self._rs: Any = None
        self._device: Any = None
        self._playback: Any = None  # the device's rs.playback when it plays a recording
        self._streams: dict[str, _Stream] = {}
        self._queues: list[Any] = []
        self._opened: list[Any] = []
        self._intrinsics: CameraIntrinsics | None = None
        self._depth_scale: float | None = None
        self._align: Any = None
        self._last: Frame | None = None
        self._last_arrival = 0.0
        self._started_at = 0.0
        self._playback_started = False  # a stopped playback has ended only once it has started

    @property
    def name(self) -> str:
        source = self.cfg.playback_path or self.cfg.serial_number or "(any)"
        return f"RealSense {source}"

    # ---- start / stop ---------------------------------------------------------------------
    def start(self) -> None:
        if self._device is not None:
            return
        rs = self._rs = import_sdk("pyrealsense2", "pyrealsense2", "RealSenseCamera")
        self._playback_started = False
        try:
            self._device = self._given_device or self._open_device(rs)
            self._playback = self._device.as_playback() if self._device.is_playback() else None
            self._streams["color"] = self._find_stream(rs.stream.color, [rs.format.rgb8, rs.format.bgr8])
            if self.cfg.enable_depth:
                self._streams["depth"] = self._find_stream(rs.stream.depth, [rs.format.z16])
                self._depth_scale = self._read_depth_scale(self._streams["depth"].sensor)
            if self.cfg.align_depth_to_color:
                self._align = rs.align(rs.stream.color)
            self._intrinsics = self._read_intrinsics(self._streams["color"].profile)
            self._open_sensors()
        except CameraError:
            self.stop()
            raise
        except RuntimeError as exc:  # the SDK's own errors (CameraError is one too: caught above)
            self.stop()
            raise CameraError(f"{self.name}: {exc}") from exc
        self._started_at = self._clock()

    def _open_device(self, rs: Any) -> Any:
        ctx = rs.context()
        if self.cfg.playback_path is not None:
            device = ctx.load_device(self.cfg.playback_path)
            device.as_playback().set_real_time(self.cfg.playback_real_time)
            return device
        found = {d.get_info(rs.camera_info.serial_number): d for d in ctx.query_devices()}
        if self.cfg.serial_number:
            if self.cfg.serial_number not in found:
                raise CameraDisconnected(f"{self.name}: not connected (connected: {sorted(found) or 'none'})")
            return found[self.cfg.serial_number]
        if len(found) != 1:
            raise CameraDisconnected(
                f"{self.name}: {len(found)} RealSense devices connected ({sorted(found)}); "
                "set serial_number to pick one"
            )
        return next(iter(found.values()))

    def _find_stream(self, stream: Any, formats: list[Any]) -> _Stream:
        """The sensor and profile streaming `stream` at the configured size and rate."""
        cfg, offered = self.cfg, []
        for fmt in formats:
            for sensor in self._device.query_sensors():
                for profile in sensor.get_stream_profiles():
                    if profile.stream_type() != stream or not profile.is_video_stream_profile():
                        continue
                    video = profile.as_video_stream_profile()
                    size = (video.width(), video.height(), profile.fps())
                    offered.append(f"{size[0]}x{size[1]}@{size[2]} {profile.format().name}")
                    if profile.format() == fmt and size == (cfg.width, cfg.height, cfg.fps):
                        return _Stream(sensor, video, deque(maxlen=8))
        raise FrameFormatError(
            f"{self.name}: no {stream.name} stream at {cfg.width}x{cfg.height}@{cfg.fps} in "
            f"{[f.name for f in formats]}; the device offers {sorted(set(offered))}"
        )

    def _read_depth_scale(self, sensor: Any) -> float:
        rs = self._rs
        if not sensor.supports(rs.option.depth_units):
            raise CameraError(f"{self.name}: the depth sensor reports no depth_units")
        return float(sensor.get_option(rs.option.depth_units))

    def _read_intrinsics(self, profile: Any) -> CameraIntrinsics:
        intr = profile.get_intrinsics()
        model = _DISTORTION.get(intr.model.name)
        if model is None:
            raise CameraError(f"{self.name}: unsupported distortion model {intr.model.name}")
        coeffs = () if model == "none" else tuple(intr.coeffs)[: 4 if model == "equidistant" else 5]
        return CameraIntrinsics(intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy, model, coeffs)

    def _open_sensors(self) -> None:
        """Open each sensor once with all its profiles, frames into one queue per sensor.

        A playback starts reading its file when its first sensor starts, and drops (or, past the
        end, never plays) the frames of a sensor that has not started yet: how many depends on how
        soon this thread gets the CPU back. So it stays paused until every sensor listens; resume()
        then plays it from its first frame."""
        if self._playback is not None:
            self._playback.pause()
        by_sensor: dict[int, list[_Stream]] = {}
        for stream in self._streams.values():
            by_sensor.setdefault(id(stream.sensor), []).append(stream)
        for streams in by_sensor.values():
            sensor = streams[0].sensor
            queue = self._rs.frame_queue(16, True)  # keep_frames: frames outlive the callback
            sensor.open([s.profile for s in streams])
            self._opened.append(sensor)
            sensor.start(queue)
            self._queues.append(queue)
        if self._playback is not None:
            self._playback.resume()

    def stop(self) -> None:
        for sensor in self._opened:
            try:
                sensor.stop()
                sensor.close()
            except RuntimeError:
                pass  # an unplugged device cannot be stopped; releasing it is all that is left
        self._opened, self._queues, self._streams = [], [], {}
        self._device = self._playback = self._align = self._last = None

    # ---- frames -------------------------------------------------------------------------------
    def intrinsics(self) -> CameraIntrinsics:
        if self._intrinsics is None or self._device is None:
            raise CameraNotStarted(f"{self.name}: intrinsics() before start()")
        return self._intrinsics

    def latest(self) -> Frame | None:
        if self._device is None:
            raise CameraNotStarted(f"{self.name}: latest() before start()")
        # The time, and a playback's status, are read before the queues: a frame that comes while
        # this thread is paused (a loaded machine, GC, another thread holding the GIL) is then news,
        # never a stall; and the SDK stops a playback only after it has handed out the last frame,
        # so "stopped" here and nothing new from the drain means the recording is over.
        now = self._clock()
        try:
            ended = self._playback_stopped()
            self._drain()
            pair = self._newest_pair()
            if pair is not None:
                self._last = self._to_frame(*pair)
                self._last_arrival = now
        except CameraError:
            raise
        except RuntimeError as exc:  # the SDK's own errors
            raise CameraError(f"{self.name}: {exc}") from exc
        if pair is None:
            self._check_alive(now, ended)
        return self._last

    def _drain(self) -> None:
        streams = {s.profile.stream_type(): s for s in self._streams.values()}
        for queue in self._queues:
            while True:
                frame = queue.poll_for_frame()
                if not frame:
                    break
                self._playback_started = True  # frames come only once a playback has started
                stream = streams.get(frame.get_profile().stream_type())
                if stream is not None:
                    stream.frames.append(frame)

    def _newest_pair(self) -> tuple[Any, Any] | None:
        """Newest color frame not yet handed out, with the depth frame nearest it in time (within
        half a frame period); None while no such pair has arrived."""
        colors = self._streams["color"].frames
        last_number = self._last.frame_number if self._last is not None else -1
        depths = self._streams["depth"].frames if "depth" in self._streams else None
        half_period_ms = 500.0 / self.cfg.fps
        for color in reversed(colors):
            if color.get_frame_number() <= last_number:
                return None
            if depths is None:
                return color, None
            stamp = color.get_timestamp()
            nearest = min(depths, key=lambda d: abs(d.get_timestamp() - stamp), default=None)
            if nearest is not None and abs(nearest.get_timestamp() - stamp) <= half_period_ms:
                return color, nearest
        return None

    def _to_frame(self, color: Any, depth: Any) -> Frame:
        if depth is not None and self._align is not None:
            depth = self._align.process(self._composite(color, depth)).get_depth_frame()
        rgb = np.asanyarray(color.get_data()).copy()
        if color.get_profile().format() == self._rs.format.bgr8:
            rgb = np.ascontiguousarray(rgb[..., ::-1])
        depth_image = np.asanyarray(depth.get_data()).copy() if depth is not None else None
        frame = Frame(
            rgb,
            depth_image,
            color.get_timestamp() / 1000.0,
            int(color.get_frame_number()),
            color.get_frame_timestamp_domain().name,
            self._depth_scale if depth is not None else None,
        )
        assert self._intrinsics is not None
        return check_frame(frame, self._intrinsics, self.name)

    def _composite(self, color: Any, depth: Any) -> Any:
        """A frameset of (depth, color), which rs.align needs; a processing block is the SDK's
        way to allocate one from frames that did not come out of a syncer together."""
        rs, out = self._rs, self._rs.frame_queue(1, True)
        block = rs.processing_block(
            lambda _frame, source: source.frame_ready(source.allocate_composite_frame([depth, color]))
        )
        block.start(out)
        block.invoke(color)
        ok, frameset = out.try_wait_for_frame(1000)
        if not ok:
            raise CameraError(f"{self.name}: could not pair a depth frame with color for alignment")
        return frameset.as_frameset()

    def _check_alive(self, now: float, playback_ended: bool) -> None:
        """Raise CameraDisconnected if, as of `now` (read before the queues were), frames have stopped."""
        if playback_ended:
            raise CameraDisconnected(f"{self.name}: the recording has ended")
        playback = self._playback
        if playback is not None and not playback.is_real_time():
            return  # it plays as fast as it is read; a loaded machine reads slowly, it does not stall
        if self._last is None and now - self._started_at > self.cfg.start_timeout_s:
            raise CameraDisconnected(f"{self.name}: no frame within {self.cfg.start_timeout_s} s of start")
        if self._last is not None and now - self._last_arrival > self.cfg.frame_timeout_s:
            why = "the recording stalled" if playback is not None else "unplugged, or the USB link stalled"
            raise CameraDisconnected(f"{self.name}: no frame for {self.cfg.frame_timeout_s} s ({why})")

    def _playback_stopped(self) -> bool:
        """Whether a playback that has started is now stopped, as the SDK leaves it at the file's end.
        The SDK starts a playback on its own thread (resume() waits for that, but only so long), and
        a playback still stopped before that is not one that has ended."""
        playback = self._playback
        if playback is None:
            return False
        if playback.current_status() != self._rs.playback_status.stopped:
            self._playback_started = True
            return False
        return self._playback_started

    def depth_intrinsics(self) -> CameraIntrinsics | None:
        """Intrinsics of the depth image: the color ones when aligned, else the depth sensor's."""
        if "depth" not in self._streams:
            return None
        if self._align is not None:
            return self.intrinsics()
        return self._read_intrinsics(self._streams["depth"].profile)
