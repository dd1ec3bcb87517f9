"""The generated arm model and the end-effector controller."""

from __future__ import annotations

import mujoco
import numpy as np
import pytest

from sim.assets import ARM_JOINTS, FINGER_JOINTS, HOME_QPOS, JOINT_LIMITS, build_model
from sim.controller import DiffIKController, clip_to_workspace


def test_model_has_seven_arm_hinges_and_a_two_finger_gripper() -> None:
    model = build_model()
    for name, (lo, hi) in zip(ARM_JOINTS, JOINT_LIMITS, strict=True):
        joint = model.joint(name)
        assert joint.type[0] == mujoco.mjtJoint.mjJNT_HINGE
        np.testing.assert_allclose(model.jnt_range[joint.id], (lo, hi))
    for name in FINGER_JOINTS:
        assert model.joint(name).type[0] == mujoco.mjtJoint.mjJNT_SLIDE
    assert model.nu == 8  # 7 arm servos + one gripper actuator
    assert model.actuator("gripper").trntype[0] == mujoco.mjtTrn.mjTRN_TENDON


def test_home_pose_matches_panda_forward_kinematics() -> None:
    # Franka's published home pose puts the flange at (0.307, 0, 0.590), tool pointing down.
    model = build_model()
    data = mujoco.MjData(model)
    data.qpos[:7] = HOME_QPOS
    mujoco.mj_forward(model, data)
    np.testing.assert_allclose(data.xpos[model.body("hand").id], [0.307, 0.0, 0.590], atol=2e-3)
    z_axis = data.site_xmat[model.site("ee_site").id].reshape(3, 3)[:, 2]
    np.testing.assert_allclose(z_axis, [0, 0, -1], atol=1e-2)


def test_clip_to_workspace_clamps_each_axis() -> None:
    low, high = np.array([0.3, -0.2, 0.0]), np.array([0.7, 0.2, 0.4])
    np.testing.assert_allclose(clip_to_workspace(np.array([0.5, 0.0, 0.1]), low, high), [0.5, 0.0, 0.1])
    np.testing.assert_allclose(clip_to_workspace(np.array([1.0, -1.0, -0.5]), low, high), [0.7, -0.2, 0.0])
    np.testing.assert_allclose(clip_to_workspace(np.array([0.0, 0.5, 0.9]), low, high), [0.3, 0.2, 0.4])


def test_clip_to_workspace_rejects_a_bad_box() -> None:
    with pytest.raises(ValueError, match="exceeds"):
        clip_to_workspace(np.zeros(3), np.ones(3), np.zeros(3))
    with pytest.raises(ValueError, match="do not match"):
        clip_to_workspace(np.zeros(3), np.zeros(2), np.ones(2))


def test_static_ik_reaches_a_target_pose() -> None:
    model = build_model()
    data = mujoco.MjData(model)
    data.qpos[:7] = HOME_QPOS
    ctrl = DiffIKController(model)
    ctrl.target_pos = np.array([0.5, 0.1, 0.15])
    ctrl.target_quat = np.array([0.0, 1.0, 0.0, 0.0])
    assert ctrl.solve_static(model, data)
    mujoco.mj_forward(model, data)
    pos, quat = ctrl.ee_pose(data)
    np.testing.assert_allclose(pos, ctrl.target_pos, atol=1e-3)
    assert abs(abs(quat @ ctrl.target_quat) - 1.0) < 1e-4
