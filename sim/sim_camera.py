"""A MuJoCo camera behind the Camera protocol: renders a named camera ("wrist", "front") of a sim scene.

It renders the model and data it is given: a task env's (env.unwrapped.model / .data) or the
twin arm's (SimCamera.for_arm), so the wrist_cam image follows the twin exactly as a real wrist
camera follows the real arm. Frames are stamped with sim time and a new frame is rendered only
when sim time has moved, so polling latest() faster than physics costs nothing.

Rendering needs an offscreen GL context: MUJOCO_GL=egl on headless machines (Mesa's libegl1 and
libgl1-mesa-dri render on the CPU, slowly: keep images small). Use one SimCamera from one thread.
"""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from drivers.camera import (
    CameraError,
    CameraIntrinsics,
    CameraNotStarted,
    Frame,
    check_frame,
)

if TYPE_CHECKING:
    from sim.sim_arm import SimArm


@dataclass
class SimCameraConfig:
    camera: str = "wrist"
    width: int = 64
    height: int = 64
    enable_depth: bool = False
    depth_scale_m: float = 0.001  # metres per depth unit, as a RealSense D400 by default

    def __post_init__(self) -> None:
        for name in ("width", "height"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise ValueError(f"SimCameraConfig.{name} must be a positive integer, got {value!r}")
        if not (isinstance(self.depth_scale_m, (int, float)) and self.depth_scale_m > 0):
            raise ValueError(f"SimCameraConfig.depth_scale_m must be > 0, got {self.depth_scale_m!r}")


class SimCamera:
    """Renders `config.camera` of (model, data). lock: held while rendering, so a physics thread
    (SimArm with realtime=True) never steps the data halfway through a frame."""

    def __init__(
        self,
        model: mujoco.MjModel,
        data: mujoco.MjData,
        config: SimCameraConfig | None = None,
        lock: threading.RLock | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.cfg = config or SimCameraConfig()
        self.model, self.data = model, data
        self._lock = lock
        self._clock = clock
        self.camera_id = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_CAMERA, self.cfg.camera)
        if self.camera_id < 0:
            names = [model.camera(i).name for i in range(model.ncam)]
            raise ValueError(f"unknown camera {self.cfg.camera!r}; this model has {names}")
        self._intrinsics = self._compute_intrinsics()
        self._renderer: mujoco.Renderer | None = None
        self._frame: Frame | None = None
        self._frame_sim_time = -1.0  # sim time of self._frame: render again only when it moved
        self._frame_number = 0

    @classmethod
    def for_arm(
        cls, arm: SimArm, config: SimCameraConfig | None = None, clock: Callable[[], float] | None = None
    ) -> SimCamera:
        """A camera of the twin arm's scene, rendering under the arm's lock. clock: what frames are
        stamped with (the arm's clock, e.g. time.time, so frames and joint states line up);
        None stamps with sim time."""
        return cls(arm.model, arm.data, config, lock=arm.lock, clock=clock)

    @property
    def name(self) -> str:
        return f"sim camera {self.cfg.camera!r}"

    def _compute_intrinsics(self) -> CameraIntrinsics:
        """Pinhole intrinsics from the camera's vertical field of view (MuJoCo pixels are square
        and the optical axis hits the image centre)."""
        if np.any(self.model.cam_sensorsize[self.camera_id] > 0):
            raise ValueError(f"{self.name}: cameras defined by sensorsize/focal are not supported, use fovy")
        w, h = self.cfg.width, self.cfg.height
        fovy = math.radians(float(self.model.cam_fovy[self.camera_id]))
        f = 0.5 * h / math.tan(0.5 * fovy)
        # Pixel i covers [i, i + 1) in MuJoCo's image, so the centre sits at (n - 1) / 2 in the
        # integer-centred convention of OpenCV and ROS.
        return CameraIntrinsics(w, h, f, f, (w - 1) / 2, (h - 1) / 2, "none", ())

    def start(self) -> None:
        if self._renderer is not None:
            return
        try:
            self._renderer = mujoco.Renderer(self.model, self.cfg.height, self.cfg.width)
        except ValueError as exc:  # bigger than the model's offscreen buffer
            raise CameraError(f"{self.name}: {exc}") from exc
        except Exception as exc:  # no GL backend at all
            raise CameraError(
                f"{self.name}: cannot create an offscreen GL context (headless: MUJOCO_GL=egl with "
                f"libegl1 + libgl1-mesa-dri): {exc}"
            ) from exc

    def stop(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self._frame = None

    def intrinsics(self) -> CameraIntrinsics:
        return self._intrinsics

    def latest(self) -> Frame | None:
        renderer = self._renderer
        if renderer is None:
            raise CameraNotStarted(f"{self.name}: latest() before start()")
        with self._lock or nullcontext():
            sim_time = float(self.data.time)
            if self._frame is not None and self._frame_sim_time == sim_time:
                return self._frame
            renderer.update_scene(self.data, camera=self.camera_id)
            color = renderer.render().copy()
            depth = self._render_depth(renderer) if self.cfg.enable_depth else None
        self._frame_number += 1
        frame = Frame(
            color,
            depth,
            sim_time if self._clock is None else self._clock(),
            self._frame_number,
            "sim_time" if self._clock is None else "system_time",
            self.cfg.depth_scale_m if depth is not None else None,
        )
        self._frame = check_frame(frame, self._intrinsics, self.name)
        self._frame_sim_time = sim_time
        return self._frame

    def _render_depth(self, renderer: mujoco.Renderer) -> np.ndarray:
        """Depth along the optical axis as uint16 in depth_scale_m units; 0 where out of range."""
        renderer.enable_depth_rendering()
        try:
            metres = renderer.render()
        finally:
            renderer.disable_depth_rendering()
        units = np.round(metres / self.cfg.depth_scale_m)
        return np.where((units > 0) & (units < 65536), units, 0).astype(np.uint16)
