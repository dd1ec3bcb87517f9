"""The camera seam: what every camera driver (RealSense, MuJoCo twin, later others) gives the rest.

A driver is started, polled for its newest frame, and stopped. latest() never blocks: the ROS
camera node calls it from a timer and publishes only frames with a new frame_number, so a slow
or stalled camera shows up as missing frames, not as a blocked executor.

Images follow the project's observation format (docs/architecture.md): color uint8 (H, W, 3) RGB; depth
uint16 (H, W) in units of Frame.depth_scale_m metres (0 = no reading). Intrinsics use the pinhole
model with pixel centres at integer coordinates (OpenCV / ROS CameraInfo convention).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np


class CameraError(RuntimeError):
    """Any camera failure; the subclasses say which, the message says which camera and why."""


class CameraNotStarted(CameraError):
    """latest() or intrinsics() before start() or after stop()."""


class CameraDisconnected(CameraError):
    """The device went away or stopped sending frames."""


class FrameFormatError(CameraError):
    """A frame whose size, channels or dtype differ from what the driver was configured for."""


# Distortion models by name (ROS CameraInfo names where one exists) and their coefficient counts.
DISTORTION_MODELS: dict[str, int] = {
    "none": 0,
    "plumb_bob": 5,  # k1 k2 p1 p2 k3 (OpenCV / Brown-Conrady)
    "rational_polynomial": 8,
    "equidistant": 4,  # fisheye (Kannala-Brandt)
    "modified_brown_conrady": 5,  # RealSense variants with no ROS name
    "inverse_brown_conrady": 5,
}


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics of the color image: size (px), focal lengths and principal point (px)."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = "none"
    distortion_coeffs: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"CameraIntrinsics.{name} must be a positive integer, got {value!r}")
        for name in ("fx", "fy", "cx", "cy"):
            value = float(getattr(self, name))
            if not math.isfinite(value) or (name in ("fx", "fy") and value <= 0):
                raise ValueError(f"CameraIntrinsics.{name} must be finite (> 0 for fx, fy), got {value!r}")
            object.__setattr__(self, name, value)
        count = DISTORTION_MODELS.get(self.distortion_model)
        if count is None:
            raise ValueError(
                f"unknown distortion model {self.distortion_model!r}; known: {sorted(DISTORTION_MODELS)}"
            )
        coeffs = tuple(float(c) for c in self.distortion_coeffs)
        if len(coeffs) not in (0, count) or not all(math.isfinite(c) for c in coeffs):
            raise ValueError(
                f"distortion model {self.distortion_model!r} takes {count} finite coefficients, got {coeffs}"
            )
        object.__setattr__(self, "width", int(self.width))
        object.__setattr__(self, "height", int(self.height))
        object.__setattr__(self, "distortion_coeffs", coeffs)

    @property
    def matrix(self) -> np.ndarray:
        """The 3x3 camera matrix K (ROS CameraInfo.k)."""
        return np.array([[self.fx, 0.0, self.cx], [0.0, self.fy, self.cy], [0.0, 0.0, 1.0]])

    def project(self, point_cam: np.ndarray) -> np.ndarray:
        """Pixel (u, v) of a point (x right, y down, z forward, m) in the optical frame, ignoring
        distortion."""
        x, y, z = (float(v) for v in point_cam)
        return np.array([self.fx * x / z + self.cx, self.fy * y / z + self.cy])


@dataclass(frozen=True, eq=False)
class Frame:
    """One capture: images plus when (stamp, s, on the clock named by clock_domain) and which."""

    color: np.ndarray  # uint8 (H, W, 3) RGB
    depth: np.ndarray | None  # uint16 (H, W), registered to color when the driver aligns
    stamp: float  # capture time, s
    frame_number: int
    clock_domain: str  # e.g. "hardware_clock", "system_time", "global_time", "sim_time"
    depth_scale_m: float | None = None  # metres per depth unit; None without depth


def check_frame(frame: Frame, intrinsics: CameraIntrinsics, camera: str) -> Frame:
    """frame, or FrameFormatError naming the camera and what differs from its intrinsics.

    Drivers call this before handing a frame out, so a resolution mix-up (a recorded file or a
    device profile that differs from the config) fails at the driver, not in a network layer.
    """
    want = (intrinsics.height, intrinsics.width)
    color = frame.color
    if not isinstance(color, np.ndarray) or color.dtype != np.uint8 or color.shape != (*want, 3):
        got = (color.shape, color.dtype) if isinstance(color, np.ndarray) else type(color).__name__
        raise FrameFormatError(f"{camera}: color frame {got}, expected uint8 {(*want, 3)}")
    depth = frame.depth
    if depth is not None and (
        not isinstance(depth, np.ndarray) or depth.dtype != np.uint16 or depth.shape != want
    ):
        got = (depth.shape, depth.dtype) if isinstance(depth, np.ndarray) else type(depth).__name__
        raise FrameFormatError(f"{camera}: depth frame {got}, expected uint16 {want}")
    if depth is not None and not (frame.depth_scale_m and frame.depth_scale_m > 0):
        raise FrameFormatError(f"{camera}: depth frame without a positive depth_scale_m")
    if not math.isfinite(frame.stamp):
        raise FrameFormatError(f"{camera}: frame stamp {frame.stamp!r} is not finite")
    return frame


@runtime_checkable
class Camera(Protocol):
    """A camera driver. start() may block until the device streams; the rest never blocks."""

    def start(self) -> None:
        """Open the device and start streaming. CameraError when it cannot."""

    def stop(self) -> None:
        """Stop streaming and release the device; safe to call twice."""

    def latest(self) -> Frame | None:
        """The newest frame so far (None before the first). The same frame is returned until a
        new one arrives: compare frame_number. CameraNotStarted / CameraDisconnected /
        FrameFormatError as their names say."""

    def intrinsics(self) -> CameraIntrinsics:
        """Intrinsics of the color image as streamed (after start())."""
