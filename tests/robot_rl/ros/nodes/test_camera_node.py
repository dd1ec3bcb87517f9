"""CameraNode over the in-process transport with a fake camera: what a subscriber receives."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np
import pytest

from drivers.camera import CameraDisconnected, CameraIntrinsics, Frame
from robot_rl.ros import codec, messages
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.nodes.camera_node import (
    CameraNode,
    CameraNodeParams,
    adjust_intrinsics,
    resize_image,
)
from robot_rl.ros.transport import SENSOR_DATA

W, H = 64, 48
INTR = CameraIntrinsics(W, H, 50.0, 52.0, 31.5, 23.5, "plumb_bob", (0.1, 0.0, 0.0, 0.0, 0.0))


class FakeCamera:
    """A camera whose next frame the test sets; latest() raises `error` when one is set."""

    def __init__(self) -> None:
        self.frame: Frame | None = None
        self.error: Exception | None = None

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def intrinsics(self) -> CameraIntrinsics:
        return INTR

    def latest(self) -> Frame | None:
        if self.error is not None:
            raise self.error
        return self.frame

    def push(self, number: int, stamp: float, depth: bool = False) -> Frame:
        rng = np.random.default_rng(number)
        color = rng.integers(0, 256, (H, W, 3), dtype=np.uint8)
        d = rng.integers(0, 4000, (H, W), dtype=np.uint16) if depth else None
        self.frame = Frame(color, d, stamp, number, "system_time", 0.001 if depth else None)
        return self.frame


class Received:
    """Subscriber side: every message on the node's topics, decoded."""

    def __init__(self, bus: InprocBus, name: str = "wrist_cam") -> None:
        self.transport = InprocTransport(bus)
        self.color: list[tuple[np.ndarray, float, str]] = []
        self.info: list[tuple[messages.CameraIntrinsics, float]] = []
        self.depth: list[tuple[np.ndarray, float]] = []
        sub = self.transport.subscribe
        sub(f"/{name}/color/image_raw", codec.IMAGE, self._color, SENSOR_DATA)
        sub(
            f"/{name}/color/camera_info",
            codec.CAMERA_INFO,
            lambda m: self.info.append(messages.intrinsics_from_msg(m)),
        )
        sub(
            f"/{name}/aligned_depth_to_color/image_raw",
            codec.IMAGE,
            lambda m: self.depth.append(messages.image_from_msg(m)),
        )

    def _color(self, msg: object) -> None:
        frame, stamp = messages.image_from_msg(msg)
        self.color.append((frame, stamp, msg.header.frame_id))  # type: ignore[attr-defined]

    def drain(self) -> None:
        while self.transport.spin_once(0.0):
            pass


def make(params: CameraNodeParams | None = None) -> tuple[FakeCamera, CameraNode, Received, InprocTransport]:
    bus, camera = InprocBus(), FakeCamera()
    node_transport = InprocTransport(bus)
    node = CameraNode(node_transport, camera, params or CameraNodeParams("wrist_cam"))
    return camera, node, Received(bus), node_transport


def test_frame_published_once_with_its_capture_stamp() -> None:
    camera, node, rx, _ = make()
    node._on_timer()  # before the first frame
    pushed = camera.push(7, stamp=1234.5678)
    node._on_timer()
    node._on_timer()  # same frame_number: not republished
    rx.drain()
    assert len(rx.color) == len(rx.info) == 1 and rx.depth == []
    frame, stamp, frame_id = rx.color[0]
    np.testing.assert_array_equal(frame, pushed.color)
    assert stamp == pytest.approx(1234.5678, abs=1e-9) and rx.info[0][1] == pytest.approx(1234.5678, abs=1e-9)
    assert frame_id == "wrist_cam_color_optical_frame"
    assert rx.info[0][0].fx == INTR.fx and rx.info[0][0].distortion_coeffs == INTR.distortion_coeffs
    assert node.counters == {"published": 1, "repeated": 1, "no_frame": 1, "errors": 0}


def test_crop_then_resize_and_matching_camera_info() -> None:
    params = CameraNodeParams("wrist_cam", crop=(8, 4, 48, 40), resize=(24, 20), interpolation="nearest")
    camera, node, rx, _ = make(params)
    pushed = camera.push(1, 10.0, depth=True)
    node._on_timer()
    rx.drain()
    frame, _, _ = rx.color[0]
    assert frame.shape == (20, 24, 3)
    # nearest with a 2x factor picks the odd pixel of each 2x2 block of the crop
    np.testing.assert_array_equal(frame, pushed.color[4:44, 8:56][1::2, 1::2])
    assert rx.depth[0][0].shape == (20, 24) and rx.depth[0][0].dtype == np.uint16
    info = rx.info[0][0]
    assert (info.width, info.height) == (24, 20)
    assert info.fx == pytest.approx(25.0) and info.fy == pytest.approx(26.0)
    assert info.cx == pytest.approx(11.5) and info.cy == pytest.approx(9.5)


def test_area_resize_averages_blocks_and_keeps_dtype() -> None:
    image = np.arange(16, dtype=np.uint8).reshape(4, 4)
    out = resize_image(image, 2, 2, "area")
    np.testing.assert_array_equal(out, [[2, 4], [10, 12]])  # means 2.5, 4.5, 10.5, 12.5 rounded to even
    rgb = np.full((6, 9, 3), 200, np.uint8)
    assert resize_image(rgb, 4, 5, "area").tolist() == np.full((5, 4, 3), 200).tolist()  # non-integer ratio


def test_intrinsics_of_a_resize_map_the_same_ray_to_the_same_pixel() -> None:
    out = adjust_intrinsics(INTR, (8, 4, 48, 40), (24, 20))
    point = np.array([0.05, -0.02, 0.6])
    u, v = INTR.project(point)
    u2, v2 = out.project(point)
    assert u2 == pytest.approx((u - 8 + 0.5) * 0.5 - 0.5) and v2 == pytest.approx((v - 4 + 0.5) * 0.5 - 0.5)


def test_driver_errors_are_counted_and_polling_goes_on() -> None:
    camera, node, rx, _ = make()
    camera.error = CameraDisconnected("wrist_cam: usb gone")
    node._on_timer()
    camera.error = None
    camera.push(2, 5.0)
    node._on_timer()
    rx.drain()
    assert node.counters["errors"] == 1 and len(rx.color) == 1


def test_bad_parameters_are_refused_with_the_field_named() -> None:
    with pytest.raises(ValueError, match="crop"):
        make(CameraNodeParams("wrist_cam", crop=(40, 0, 48, 10)))
    with pytest.raises(ValueError, match="rate_hz"):
        CameraNodeParams("wrist_cam", rate_hz=0)
    with pytest.raises(ValueError, match="interpolation"):
        CameraNodeParams("wrist_cam", interpolation="cubic")  # type: ignore[arg-type]


def spin_until(done: Callable[[], bool], *transports: InprocTransport, timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        for t in transports:
            t.spin_once(0.005)


def test_timer_publishes_new_frames_as_they_come() -> None:
    camera, node, rx, node_transport = make(CameraNodeParams("wrist_cam", rate_hz=200.0))
    for number in range(3):
        camera.push(number, 100.0 + number)
        spin_until(lambda n=number: len(rx.color) > n, node_transport, rx.transport)
    assert [stamp for _, stamp, _ in rx.color] == pytest.approx([100.0, 101.0, 102.0])
    node.destroy()
