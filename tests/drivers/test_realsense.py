"""The RealSense driver against pyrealsense2's software device (frames made here, pushed through the
real SDK) and against a recording the test makes from that software device and plays back through
the driver. Skips when pyrealsense2 (or its libusb-1.0-0) is missing.

No test here depends on how fast the machine is. A software sensor hands each frame to its
consumers in the thread that pushes it (software_sensor::on_video_frame calls the frame callback
directly), so a frame is in the driver's queue when push returns: the tests read it at once, no
polling. The stall checks run on a fake clock. Playback crosses the SDK's threads, so the test
polls it, and a deadline there only bounds a hang."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from drivers.camera import Camera, CameraDisconnected, CameraError, CameraNotStarted, FrameFormatError
from drivers.realsense import RealSenseCamera, RealSenseConfig
from drivers.sdk import MissingSDKError

pytestmark = pytest.mark.timeout(60)  # a hung SDK call must fail the test, not stall CI
HANG_S = 30.0  # bounds a wait that should end at once; never reached unless something hangs

W, H, FPS = 32, 24, 30
PERIOD_MS = 1000.0 / FPS


@pytest.fixture(scope="module")
def rs() -> Any:
    try:
        import pyrealsense2
    except ImportError as exc:
        if "libusb" in str(exc):
            pytest.skip(f"pyrealsense2 needs the system library libusb-1.0 (apt install libusb-1.0-0): {exc}")
        pytest.skip(f"pyrealsense2 is not installed (pip install pyrealsense2, in the dev extra): {exc}")
    return pyrealsense2


class SoftCamera:
    """A D400-like software device: 'Stereo Module' (z16 depth) and 'RGB Camera' (color)."""

    def __init__(self, rs: Any, color_format: str = "rgb8", depth_ppx: float = 15.5, k1: float = 0.1) -> None:
        self.rs, self.k1 = rs, k1
        self.device = rs.software_device()
        self.device.register_info(rs.camera_info.serial_number, "SOFT0001")
        self.depth_sensor = self.device.add_sensor("Stereo Module")
        self.color_sensor = self.device.add_sensor("RGB Camera")
        fmt = getattr(rs.format, color_format)
        self.color_profile = self._stream(self.color_sensor, rs.stream.color, fmt, 3, 1, 15.5)
        self.depth_profile = self._stream(self.depth_sensor, rs.stream.depth, rs.format.z16, 2, 0, depth_ppx)
        self.depth_sensor.add_read_only_option(rs.option.depth_units, 0.001)
        same_place = rs.extrinsics()
        same_place.rotation, same_place.translation = [1, 0, 0, 0, 1, 0, 0, 0, 1], [0, 0, 0]
        self.depth_profile.register_extrinsics_to(self.color_profile, same_place)
        self._keep: list[np.ndarray] = []  # the SDK reads pixel buffers after on_video_frame returns

    def _stream(self, sensor: Any, kind: Any, fmt: Any, bpp: int, uid: int, ppx: float) -> Any:
        rs = self.rs
        intr = rs.intrinsics()
        intr.width, intr.height, intr.fx, intr.fy, intr.ppx, intr.ppy = W, H, 30.0, 31.0, ppx, 11.5
        intr.model, intr.coeffs = rs.distortion.inverse_brown_conrady, [self.k1, 0, 0, 0, 0]
        vs = rs.video_stream()
        vs.type, vs.index, vs.uid, vs.fmt, vs.bpp, vs.intrinsics = kind, 0, uid, fmt, bpp, intr
        vs.width, vs.height, vs.fps = W, H, FPS
        return sensor.add_video_stream(vs, True).as_video_stream_profile()

    def push_color(self, n: int, image: np.ndarray | None = None, stamp_ms: float | None = None) -> None:
        image = np.full((H, W, 3), n, np.uint8) if image is None else image
        self._push(self.color_sensor, self.color_profile, image, 3, n, stamp_ms)

    def push_depth(self, n: int, image: np.ndarray | None = None, stamp_ms: float | None = None) -> None:
        image = np.full((H, W), 1000 + n, np.uint16) if image is None else image
        self._push(self.depth_sensor, self.depth_profile, image, 2, n, stamp_ms)

    def push(self, n: int) -> None:
        self.push_color(n)
        self.push_depth(n)

    def _push(
        self, sensor: Any, profile: Any, image: np.ndarray, bpp: int, n: int, stamp_ms: float | None
    ) -> None:
        image = np.ascontiguousarray(image)
        self._keep.append(image)
        frame = self.rs.software_video_frame()
        frame.pixels, frame.bpp, frame.stride = image, bpp, W * bpp
        frame.timestamp = 1000.0 + PERIOD_MS * n if stamp_ms is None else stamp_ms
        frame.domain, frame.frame_number, frame.profile = self.rs.timestamp_domain.hardware_clock, n, profile
        sensor.on_video_frame(frame)


def config(**kw: Any) -> RealSenseConfig:
    return RealSenseConfig(**{"width": W, "height": H, "fps": FPS, **kw})


def latest(camera: RealSenseCamera, frame_number: int) -> Any:
    """The frame just pushed to the software device: it is already in the driver's queues."""
    frame = camera.latest()
    got = None if frame is None else frame.frame_number
    assert got == frame_number, f"expected frame {frame_number} in the driver at once, got {got}"
    return frame


def test_frames_carry_pixels_stamps_numbers_and_intrinsics(rs: Any) -> None:
    soft = SoftCamera(rs)
    cam = RealSenseCamera(config(align_depth_to_color=False), device=soft.device)
    assert isinstance(cam, Camera)
    cam.start()
    try:
        k = cam.intrinsics()
        assert (k.width, k.height, k.fx, k.fy, k.cx, k.cy) == (W, H, 30.0, 31.0, 15.5, 11.5)
        assert k.distortion_model == "inverse_brown_conrady" and k.distortion_coeffs[0] == pytest.approx(0.1)
        for n in range(3):
            soft.push(n)
            frame = latest(cam, n)
            assert frame.frame_number == n and np.all(frame.color == n) and np.all(frame.depth == 1000 + n)
            assert frame.stamp == pytest.approx((1000.0 + PERIOD_MS * n) / 1000.0)  # ms -> s
            assert frame.clock_domain == "hardware_clock" and frame.depth_scale_m == pytest.approx(0.001)
        assert cam.latest() is frame  # nothing new: the same frame again
    finally:
        cam.stop()


def test_alignment_maps_depth_pixels_into_the_color_image(rs: Any) -> None:
    # Pinhole cameras in one place, depth's principal point 2 px left of color's: after alignment
    # a depth feature sits 2 px further right.
    soft = SoftCamera(rs, depth_ppx=13.5, k1=0.0)
    depth = np.full((H, W), 1000, np.uint16)
    depth[8, 10] = 1500
    for align, expected_col in ((False, 10), (True, 12)):
        cam = RealSenseCamera(config(align_depth_to_color=align), device=soft.device)
        cam.start()
        try:
            n = 10 if align else 0
            soft.push_color(n)
            soft.push_depth(n, depth)
            frame = latest(cam, n)
            rows, cols = np.nonzero(frame.depth == 1500)
            assert list(rows) == [8] and list(cols) == [expected_col]
        finally:
            cam.stop()


def test_color_waits_for_its_depth_and_is_not_paired_with_a_distant_one(rs: Any) -> None:
    soft = SoftCamera(rs)
    cam = RealSenseCamera(config(align_depth_to_color=False), device=soft.device)
    cam.start()
    try:
        soft.push_color(0)
        soft.push_depth(0, stamp_ms=1000.0 + PERIOD_MS)  # a whole frame period away: not its pair
        assert cam.latest() is None  # both frames have reached the driver (synchronous push)
        soft.push_depth(1, stamp_ms=1000.0 + 2.0)  # within half a period of color 0
        frame = latest(cam, 0)
        assert frame.frame_number == 0 and np.all(frame.depth == 1001)
    finally:
        cam.stop()


def test_bgr_devices_give_rgb(rs: Any) -> None:
    soft = SoftCamera(rs, color_format="bgr8")
    cam = RealSenseCamera(config(enable_depth=False, align_depth_to_color=False), device=soft.device)
    cam.start()
    try:
        bgr = np.zeros((H, W, 3), np.uint8)
        bgr[..., 0] = 200  # blue in BGR order
        soft.push_color(0, bgr)
        frame = latest(cam, 0)
        assert np.all(frame.color[..., 2] == 200) and np.all(frame.color[..., 0] == 0)
        assert frame.depth is None and frame.depth_scale_m is None
    finally:
        cam.stop()


def test_a_size_the_device_does_not_offer_fails_at_start(rs: Any) -> None:
    soft = SoftCamera(rs)
    cam = RealSenseCamera(RealSenseConfig(width=64, height=48, fps=FPS), device=soft.device)
    with pytest.raises(FrameFormatError, match=r"no color stream at 64x48@30.*offers \['32x24@30 rgb8'\]"):
        cam.start()
    with pytest.raises(CameraNotStarted):
        cam.latest()


def test_not_started_and_stalled_cameras_raise(rs: Any) -> None:
    soft = SoftCamera(rs)
    now = [0.0]
    timeouts = config(frame_timeout_s=1.0, start_timeout_s=3.0)
    cam = RealSenseCamera(timeouts, device=soft.device, clock=lambda: now[0])
    with pytest.raises(CameraNotStarted, match="before start"):
        cam.intrinsics()
    cam.start()
    try:
        now[0] = 2.0
        assert cam.latest() is None  # still within start_timeout_s
        now[0] = 3.5
        with pytest.raises(CameraDisconnected, match=r"no frame within 3\.0 s of start"):
            cam.latest()
        soft.push(0)
        latest(cam, 0)  # arrives at t = 3.5, after the start timeout: a late first frame still counts
        now[0] = 4.4
        assert cam.latest().frame_number == 0  # no new frame, but within frame_timeout_s
        now[0] = 4.6
        with pytest.raises(CameraDisconnected, match="unplugged"):
            cam.latest()
    finally:
        cam.stop()


class PausingClock:
    """A fake host clock whose next reading can pause the reading thread: `during` runs (a frame
    arrives) and `seconds` pass before the reading returns, as when a loaded machine, a GC pass or
    another thread holding the GIL stops the consumer for a while."""

    def __init__(self) -> None:
        self.now = 0.0
        self._pause: tuple[float, Callable[[], None]] | None = None

    def pause_next_reading(self, seconds: float, during: Callable[[], None]) -> None:
        self._pause = (seconds, during)

    def __call__(self) -> float:
        if self._pause is not None:
            (seconds, during), self._pause = self._pause, None
            during()
            self.now += seconds
        return self.now


def test_a_frame_that_comes_while_the_consumer_is_paused_is_not_a_stall(rs: Any) -> None:
    soft = SoftCamera(rs)
    clock = PausingClock()
    cam = RealSenseCamera(config(frame_timeout_s=1.0, start_timeout_s=1.0), device=soft.device, clock=clock)
    cam.start()
    try:
        # Paused longer than each timeout, while the camera kept sending: the first frame, then the next.
        clock.pause_next_reading(2.0, during=lambda: soft.push(0))
        assert latest(cam, 0).frame_number == 0
        clock.pause_next_reading(2.0, during=lambda: soft.push(1))
        assert latest(cam, 1).frame_number == 1
        clock.now += 1.5  # and a real stall is still one
        with pytest.raises(CameraDisconnected, match="unplugged"):
            cam.latest()
    finally:
        cam.stop()


def test_no_connected_device_is_a_clear_error(rs: Any) -> None:
    if len(rs.context().query_devices()):
        pytest.skip("a RealSense is connected to this machine")
    cam = RealSenseCamera(RealSenseConfig(serial_number="123456"))
    with pytest.raises(CameraDisconnected, match="RealSense 123456: not connected"):
        cam.start()


def record(rs: Any, soft: SoftCamera, path: Path, frames: int) -> None:
    """Record the software device to a file, as `rs-record` would record a real camera."""
    recorder = rs.recorder(str(path), soft.device)
    sensors = recorder.query_sensors()
    sink = rs.frame_queue(64, True)
    for sensor in sensors:
        sensor.open(sensor.get_stream_profiles())
        sensor.start(sink)
    for n in range(frames):
        soft.push(n)
    for _ in range(2 * frames):  # color and depth: every frame went through the recorder
        ok, _frame = sink.try_wait_for_frame(int(HANG_S * 1000))
        assert ok, "a pushed frame did not reach the recorder"
    for sensor in sensors:
        sensor.stop()
        sensor.close()
    recorder.pause()
    del recorder, sensors  # the file is finalised when the recorder is destroyed


class LeapingClock:
    """A host clock that leaps 10 s on every reading: any timeout the driver checks has passed."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 10.0
        return self.now


@pytest.mark.parametrize("real_time", [False, True], ids=["as_fast_as_read", "real_time"])
def test_a_recording_of_the_software_device_plays_back_through_the_driver(
    rs: Any, tmp_path: Path, real_time: bool
) -> None:
    path = tmp_path / "soft_camera.db3"  # pyrealsense2 >= 2.56 records rosbag2 (.db3), not ROS1 .bag
    record(rs, SoftCamera(rs, k1=0.0), path, frames=6)  # pinhole: aligned depth equals raw depth
    assert path.stat().st_size > 0
    # As fast as read: however slowly a loaded machine reads the file, that is no stall, so even a
    # clock on which every timeout has passed reports nothing but the end. Real time: a stopped
    # clock shows the end is reported without waiting for a timeout.
    clock = LeapingClock() if not real_time else (lambda: 0.0)
    cam = RealSenseCamera(config(playback_path=str(path), playback_real_time=real_time), clock=clock)
    cam.start()
    try:
        assert cam.intrinsics().fx == 30.0
        seen, deadline = [], time.monotonic() + HANG_S
        with pytest.raises(CameraDisconnected, match="the recording has ended"):
            while time.monotonic() < deadline:
                frame = cam.latest()
                if frame is not None and (not seen or frame.frame_number != seen[-1]):
                    seen.append(frame.frame_number)
                    n = frame.frame_number
                    assert np.all(frame.color == n) and np.all(frame.depth == 1000 + n)
                    assert frame.stamp == pytest.approx((1000.0 + PERIOD_MS * n) / 1000.0)
                    assert frame.clock_domain == "hardware_clock"
                time.sleep(0.001)  # the SDK's threads play the file; leave them the CPU
        # As fast as read, the SDK hands out every frame; in real time it drops late frames (this
        # recording's came in a burst) but keeps the newest, so the last pair always arrives.
        assert seen and seen == sorted(seen) and seen[-1] == 5
    finally:
        cam.stop()


def test_missing_sdk_names_the_pip_package(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pyrealsense2", None)  # makes `import pyrealsense2` fail
    with pytest.raises(MissingSDKError, match="pip install pyrealsense2"):
        RealSenseCamera(config()).start()


def test_config_errors() -> None:
    with pytest.raises(ValueError, match="fps"):
        RealSenseConfig(fps=0)
    with pytest.raises(ValueError, match="align_depth_to_color needs enable_depth"):
        RealSenseConfig(enable_depth=False)
    assert issubclass(CameraDisconnected, CameraError)
