"""Camera node: one Camera driver's frames as sensor_msgs/Image and CameraInfo, realsense-ros style.

Topics are those realsense2_camera publishes, so recordings and RViz configs made against a real
RealSense work unchanged: `/<name>/color/image_raw`, `/<name>/color/camera_info` and, when the
driver gives depth, `/<name>/aligned_depth_to_color/image_raw`. Frames go out with sensor-data QoS
(best effort, keep last): a late frame is worth less than a dropped one.

The node crops and resizes on the robot PC, in numpy, so a policy that sees 128x128 does not pull
full-size frames over the network. CameraInfo is rewritten to match what is published, so a
consumer that projects points keeps working after the crop.
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np

from drivers.camera import Camera, CameraError, CameraIntrinsics, Frame
from robot_rl.ros import messages
from robot_rl.ros.topics import camera_topics
from robot_rl.ros.transport import Transport

log = logging.getLogger(__name__)
Interpolation = Literal["nearest", "area"]


@dataclass(frozen=True)
class CameraNodeParams:
    """The node's declared parameters (what `ros2 param` would list on a ROS 2 node).

    crop: (x, y, width, height) in px of the driver's image, applied first; resize: (width,
    height) in px of the published image. interpolation applies to color; depth is always
    resized nearest, because averaging across an edge invents a surface that is not there.
    """

    name: str = "camera"
    rate_hz: float = 30.0  # how often the driver is polled; at least the camera's frame rate
    frame_id: str = ""  # "" -> "<name>_color_optical_frame", as realsense-ros names it
    crop: tuple[int, int, int, int] | None = None
    resize: tuple[int, int] | None = None
    interpolation: Interpolation = "area"
    color_topic: str = ""  # "" -> /<name>/color/image_raw
    info_topic: str = ""  # "" -> /<name>/color/camera_info
    depth_topic: str = ""  # "" -> /<name>/aligned_depth_to_color/image_raw

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"CameraNodeParams.name must be a non-empty ROS name part, got {self.name!r}")
        if not (isinstance(self.rate_hz, (int, float)) and 0 < self.rate_hz <= 1000):
            raise ValueError(f"CameraNodeParams.rate_hz must be in (0, 1000], got {self.rate_hz!r}")
        if self.crop is not None and (len(self.crop) != 4 or min(self.crop[2:]) <= 0 or min(self.crop) < 0):
            raise ValueError(f"CameraNodeParams.crop must be (x >= 0, y >= 0, w > 0, h > 0), got {self.crop}")
        if self.resize is not None and (len(self.resize) != 2 or min(self.resize) <= 0):
            raise ValueError(f"CameraNodeParams.resize must be (width > 0, height > 0), got {self.resize}")
        if self.interpolation not in ("nearest", "area"):
            raise ValueError(
                f"CameraNodeParams.interpolation must be nearest or area, got {self.interpolation!r}"
            )
        named = camera_topics(self.name)
        defaults = {
            "frame_id": f"{self.name}_color_optical_frame",
            "color_topic": named.color.name,
            "info_topic": named.info.name,
            "depth_topic": named.depth.name,
        }
        for field, default in defaults.items():
            if not getattr(self, field):
                object.__setattr__(self, field, default)


def _area_weights(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) matrix whose row i averages the input pixels under output pixel i, each
    weighted by how much of it lies there: exact area averaging for any ratio, not just integers."""
    edges = np.linspace(0.0, n_in, n_out + 1)
    lo, hi = edges[:-1, None], edges[1:, None]
    pixels = np.arange(n_in)[None, :]
    overlap = np.clip(np.minimum(hi, pixels + 1) - np.maximum(lo, pixels), 0.0, None)
    return overlap / overlap.sum(axis=1, keepdims=True)


def resize_image(image: np.ndarray, width: int, height: int, interpolation: Interpolation) -> np.ndarray:
    """image (H, W[, C]) resized to (height, width[, C]), same dtype. nearest picks the input pixel
    under each output pixel's centre; area averages (rounded) what each output pixel covers."""
    h, w = image.shape[:2]
    if (h, w) == (height, width):
        return image
    if interpolation == "nearest":
        rows = np.minimum(((np.arange(height) + 0.5) * h / height).astype(np.intp), h - 1)
        cols = np.minimum(((np.arange(width) + 0.5) * w / width).astype(np.intp), w - 1)
        return image[rows][:, cols]
    wy, wx = _area_weights(h, height), _area_weights(w, width)
    out = np.einsum("ij,jk...,lk->il...", wy, image.astype(np.float64), wx)
    info = np.iinfo(image.dtype)
    return np.clip(np.rint(out), info.min, info.max).astype(image.dtype)


def adjust_intrinsics(
    intr: CameraIntrinsics, crop: tuple[int, int, int, int] | None, resize: tuple[int, int] | None
) -> CameraIntrinsics:
    """Intrinsics of the published image: a crop moves the principal point; a resize scales about
    pixel centres (integer coordinates, as CameraInfo has them), hence the +-0.5."""
    fx, fy, cx, cy, w, h = intr.fx, intr.fy, intr.cx, intr.cy, intr.width, intr.height
    if crop is not None:
        x0, y0, w, h = crop
        cx, cy = cx - x0, cy - y0
    if resize is not None:
        sx, sy = resize[0] / w, resize[1] / h
        fx, fy = fx * sx, fy * sy
        cx, cy = (cx + 0.5) * sx - 0.5, (cy + 0.5) * sy - 0.5
        w, h = resize
    return CameraIntrinsics(w, h, fx, fy, cx, cy, intr.distortion_model, intr.distortion_coeffs)


class CameraNode:
    """Polls `camera` every 1/rate_hz s and publishes each new frame once, stamped with its capture
    time (not the publish time), so consumers can line frames up with joint states.

    Counters: published (frames sent), repeated (polls that found the same frame_number again),
    no_frame (polls before the first frame), errors (driver errors; the node keeps polling so a
    camera that comes back resumes without a restart).
    """

    def __init__(self, transport: Transport, camera: Camera, params: CameraNodeParams | None = None) -> None:
        self.params = p = params or CameraNodeParams()
        self.camera = camera
        intr = camera.intrinsics()
        if p.crop is not None and (p.crop[0] + p.crop[2] > intr.width or p.crop[1] + p.crop[3] > intr.height):
            raise ValueError(f"crop {p.crop} does not fit the {intr.width}x{intr.height} image of {p.name}")
        self.intrinsics = adjust_intrinsics(intr, p.crop, p.resize)
        named = camera_topics(p.name)
        self._color_pub = named.color.publisher(transport, p.color_topic)
        self._info_pub = named.info.publisher(transport, p.info_topic)
        self._depth_pub = named.depth.publisher(transport, p.depth_topic)
        self._timer = transport.create_timer(1.0 / p.rate_hz, self._on_timer)
        self._last_frame_number: int | None = None
        self.counters = {"published": 0, "repeated": 0, "no_frame": 0, "errors": 0}

    def _on_timer(self) -> None:
        try:
            frame = self.camera.latest()
        except CameraError as exc:
            self.counters["errors"] += 1
            log.warning("%s: %s", self.params.name, exc)
            return
        if frame is None:
            self.counters["no_frame"] += 1
        elif frame.frame_number == self._last_frame_number:
            self.counters["repeated"] += 1
        else:
            self._last_frame_number = frame.frame_number
            self.publish(frame)

    def publish(self, frame: Frame) -> None:
        """Send one frame: color, its CameraInfo and, when present, depth, all with its stamp."""
        p = self.params
        self._color_pub.publish(
            messages.image_msg(self._shape(frame.color, p.interpolation), frame.stamp, p.frame_id)
        )
        self._info_pub.publish(messages.camera_info_msg(self.intrinsics, frame.stamp, p.frame_id))
        if frame.depth is not None:
            depth = self._shape(frame.depth, "nearest")
            self._depth_pub.publish(messages.image_msg(depth, frame.stamp, p.frame_id))
        self.counters["published"] += 1

    def _shape(self, image: np.ndarray, interpolation: Interpolation) -> np.ndarray:
        p = self.params
        if p.crop is not None:
            x, y, w, h = p.crop
            image = image[y : y + h, x : x + w]
        if p.resize is not None:
            image = resize_image(image, p.resize[0], p.resize[1], interpolation)
        return np.ascontiguousarray(image)

    def destroy(self) -> None:
        """Stop polling; the transport is the caller's to shut down."""
        self._timer.cancel()


def main(argv: list[str] | None = None) -> None:
    """Publish the twin arm's wrist camera over zenoh (rmw_zenoh format) until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--name", default="wrist_cam")
    parser.add_argument("--rate-hz", type=float, default=30.0)
    parser.add_argument("--resize", type=int, nargs=2, metavar=("W", "H"))
    args = parser.parse_args(argv)
    from robot_rl.ros.zenoh_backend import ZenohConfig, ZenohTransport
    from sim.sim_arm import SimArm, SimArmConfig
    from sim.sim_camera import SimCamera

    arm = SimArm(SimArmConfig(realtime=True))
    camera: Any = SimCamera.for_arm(arm)
    camera.start()
    transport = ZenohTransport(ZenohConfig(node_name=f"{args.name}_node"))
    CameraNode(
        transport,
        camera,
        CameraNodeParams(args.name, args.rate_hz, resize=args.resize and tuple(args.resize)),
    )
    try:
        transport.spin()
    except KeyboardInterrupt:
        pass
    finally:
        transport.shutdown()
        camera.stop()
        arm.close()


if __name__ == "__main__":
    main()
