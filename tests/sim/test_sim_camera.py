"""The MuJoCo camera behind the Camera protocol. The intrinsics are checked the way a calibration
would: a ball placed at known points must show up where the pinhole model projects it. Images are
tiny because CPU EGL rendering is slow; tests skip where no offscreen GL exists."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from drivers.camera import Camera, CameraError, CameraNotStarted
from drivers.safety import PoseCommand
from sim.sim_arm import SimArm
from sim.sim_camera import SimCamera, SimCameraConfig

BALL_SCENE = """
<mujoco>
  <visual><global offwidth="64" offheight="64"/><quality shadowsize="0"/></visual>
  <worldbody>
    <light pos="0 0 3" dir="0 0 -1"/>
    <camera name="top" pos="0 0 1" fovy="45"/>
    <body name="ball"><freejoint/><geom type="sphere" size="0.04" rgba="1 0 0 1"/></body>
  </worldbody>
</mujoco>"""


pytestmark = pytest.mark.usefixtures("needs_gl")  # tests/sim/conftest.py


def test_intrinsics_project_a_ball_where_it_is_rendered() -> None:
    model = mujoco.MjModel.from_xml_string(BALL_SCENE)
    data = mujoco.MjData(model)
    for width, height in ((64, 48), (32, 32)):
        cam = SimCamera(model, data, SimCameraConfig("top", width, height, enable_depth=True))
        cam.start()
        k = cam.intrinsics()
        for ball in ((0.1, 0.05, 0.0), (-0.12, 0.03, 0.2)):
            data.qpos[:3] = ball
            data.time += 0.01
            mujoco.mj_forward(model, data)
            frame = cam.latest()
            red = (frame.color[..., 0] > 100) & (frame.color[..., 1] < 80)
            rows, cols = np.nonzero(red)
            # The camera looks down world -z from z = 1 with image x along world x, y along -y.
            u, v = k.project(np.array([ball[0], -ball[1], 1.0 - ball[2]]))
            assert cols.mean() == pytest.approx(u, abs=0.35) and rows.mean() == pytest.approx(v, abs=0.35)
            top_of_ball_mm = (1.0 - ball[2] - 0.04) * 1000
            # The nearest ball pixel sees the ball's top, or a little below it between pixel centres.
            assert 0 <= int(frame.depth[red].min()) - top_of_ball_mm <= 5
            assert frame.depth_scale_m == 0.001 and frame.clock_domain == "sim_time"
        cam.stop()


def test_wrist_cam_follows_the_twin_arm_and_renders_only_when_time_moves() -> None:
    arm = SimArm()
    cam = SimCamera.for_arm(arm, SimCameraConfig("wrist", 32, 32))
    assert isinstance(cam, Camera)
    cam.start()
    try:
        first = cam.latest()
        assert cam.latest() is first  # sim time has not moved: the same frame, no new render
        assert first.color.shape == (32, 32, 3) and first.color.std() > 3  # a picture, not a blank
        state = arm.state()
        up = state.ee_position + np.array([0.0, 0.0, 0.08])
        arm.move_to_pose(PoseCommand(up, state.ee_quat_wxyz, -1.0, 0.0))
        arm.advance(1.0)
        moved = cam.latest()
        assert moved.frame_number == first.frame_number + 1 and moved.stamp == pytest.approx(1.0)
        assert np.abs(moved.color.astype(int) - first.color.astype(int)).mean() > 2
    finally:
        cam.stop()


def test_clear_errors() -> None:
    arm = SimArm()
    with pytest.raises(ValueError, match="unknown camera 'elbow'"):
        SimCamera.for_arm(arm, SimCameraConfig("elbow"))
    cam = SimCamera.for_arm(arm, SimCameraConfig("front", 16, 16))
    with pytest.raises(CameraNotStarted):
        cam.latest()
    too_big = SimCamera.for_arm(arm, SimCameraConfig("front", 4096, 16))
    with pytest.raises(CameraError, match="sim camera 'front'"):
        too_big.start()
    with pytest.raises(ValueError, match="width"):
        SimCameraConfig("front", 0, 16)
