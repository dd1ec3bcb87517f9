"""The MuJoCo twin arm behind the Arm protocol: each command moves the sim arm as it says, bad
commands are refused before they touch the sim, and the twin needs no GL."""

from __future__ import annotations

import os
import subprocess
import sys
import time

import mujoco
import numpy as np
import pytest

from drivers.arm import Arm, ArmLimitViolation
from drivers.safety import PoseCommand, TwistCommand
from sim.sim_arm import SimArm, SimArmConfig

NO_TURN = np.zeros(3)


@pytest.fixture
def arm() -> SimArm:
    return SimArm()


def test_is_an_arm_and_starts_still_at_home(arm: SimArm) -> None:
    assert isinstance(arm, Arm)
    before = arm.state()
    arm.advance(0.5)
    after = arm.state()
    assert np.linalg.norm(after.ee_position - before.ee_position) < 1e-6
    assert after.stamp == pytest.approx(0.5) and after.gripper == pytest.approx(-1.0)
    assert after.joint_positions.shape == (7,) and after.ee.wrench_force is None


def test_move_to_pose_reaches_the_target_and_closes_the_gripper(arm: SimArm) -> None:
    start = arm.state()
    target = start.ee_position + np.array([0.03, -0.02, -0.03])
    arm.move_to_pose(PoseCommand(target, start.ee_quat_wxyz, 1.0, 0.0))
    arm.advance(1.0)
    end = arm.state()
    assert np.linalg.norm(end.ee_position - target) < 2e-3
    assert abs(float(np.dot(end.ee_quat_wxyz, start.ee_quat_wxyz))) > 0.9999
    assert end.gripper > 0.9


def test_twist_moves_at_its_speed_then_stops_after_the_timeout() -> None:
    arm = SimArm(SimArmConfig(twist_timeout_s=0.2))
    p0 = arm.state().ee_position
    arm.move_twist(TwistCommand(np.array([0.0, 0.05, 0.0]), NO_TURN, -1.0, 0.0))
    arm.advance(1.0)  # the twist lasts 0.2 s of it: 0.05 m/s * 0.2 s = 1 cm
    p1 = arm.state().ee_position
    assert p1[1] - p0[1] == pytest.approx(0.01, abs=1e-3)
    arm.advance(0.5)
    assert np.linalg.norm(arm.state().ee_position - p1) < 1e-4


def test_joint_target_moves_the_joints(arm: SimArm) -> None:
    q0 = arm.state().joint_positions
    target = q0 + np.array([0.2, 0.0, -0.1, 0.0, 0.0, 0.0, 0.1])
    arm.joint_target(target)
    arm.advance(1.0)
    assert np.allclose(arm.state().joint_positions, target, atol=2e-3)


def test_hold_keeps_the_pose_after_a_twist(arm: SimArm) -> None:
    arm.move_twist(TwistCommand(np.array([0.05, 0.0, 0.0]), NO_TURN, -1.0, 0.0))
    arm.advance(0.05)
    arm.hold()
    held = arm.state().ee_position
    arm.advance(0.5)
    # The servos settle the little momentum left; the pose stays within a few mm.
    assert np.linalg.norm(arm.state().ee_position - held) < 3e-3


def test_bad_commands_are_refused_and_leave_the_sim_untouched(arm: SimArm) -> None:
    ctrl_before = arm.data.ctrl.copy()
    q = arm.state().joint_positions
    with pytest.raises(ArmLimitViolation, match="joint 4"):
        arm.joint_target(q + np.array([0, 0, 0, 5.0, 0, 0, 0]))
    with pytest.raises(ArmLimitViolation, match="from the current position"):
        arm.joint_target(q + np.array([0.6, 0, 0, 0, 0, 0, 0]))
    with pytest.raises(ValueError, match="quat"):
        arm.move_to_pose(PoseCommand(np.zeros(3), np.zeros(4), 0.0, 0.0))
    with pytest.raises(ArmLimitViolation, match="gripper"):
        arm.gripper(1.5)
    assert np.array_equal(arm.data.ctrl, ctrl_before)


def test_drives_a_task_envs_model_and_data() -> None:
    from sim.tasks import make_sim_env

    env = make_sim_env("reach", seed=0).unwrapped
    env.reset(seed=0)
    arm = SimArm(model=env.model, data=env.data)
    assert np.allclose(arm.state().ee_position, env.ee_position())
    arm.move_to_pose(PoseCommand(env.ee_position() + np.array([0.0, 0.0, 0.02]), env.ee_quat(), -1.0, 0.0))
    arm.advance(0.5)
    assert env.ee_position()[2] == pytest.approx(arm.state().ee_position[2])


def test_realtime_thread_steps_physics_and_stops_on_close() -> None:
    arm = SimArm(SimArmConfig(realtime=True))
    try:
        deadline = time.monotonic() + 10.0
        while arm.state().vendor_stamp < 0.05 and time.monotonic() < deadline:
            time.sleep(0.01)
        assert arm.state().vendor_stamp >= 0.05
        with pytest.raises(RuntimeError, match="realtime"):
            arm.advance(0.1)
    finally:
        arm.close()
    stopped_at = arm.data.time
    time.sleep(0.05)
    assert arm.data.time == stopped_at


def test_host_clock_stamps_when_given() -> None:
    arm = SimArm(clock=lambda: 123.0)
    assert arm.state().stamp == 123.0 and arm.state().vendor_stamp == 0.0


def test_needs_no_renderer(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_gl(*args: object, **kwargs: object) -> None:
        raise AssertionError("SimArm created a Renderer")

    monkeypatch.setattr(mujoco, "Renderer", no_gl)
    arm = SimArm()
    arm.move_to_pose(PoseCommand(arm.state().ee_position, arm.state().ee_quat_wxyz, 0.0, 0.0))
    arm.advance(0.1)
    assert arm.state().vendor_stamp == pytest.approx(0.1)


def test_runs_with_gl_disabled() -> None:
    code = (
        "from sim.sim_arm import SimArm; a = SimArm(); a.advance(0.1); "
        "print(round(a.state().vendor_stamp, 3))"
    )
    env = {**os.environ, "MUJOCO_GL": "disable", "PYOPENGL_PLATFORM": ""}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "0.1"
