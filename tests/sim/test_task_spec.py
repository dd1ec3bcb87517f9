"""The task contract (sim/task_spec.py): the action mapping against the formulas the sim tasks and
RobotEnv each used before it, the sim env commanding exactly what it maps, the state layout, and
config validation."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from drivers.rotations import quat_mul, rotvec_to_quat
from sim.controller import clip_to_workspace
from sim.task_spec import (
    EE_DOWN_QUAT,
    OBJECT_STATE_DIM,
    TaskSpec,
    object_state,
    proprio_dim,
    robot_state,
    start_position,
    state_dim,
    state_vector,
    step_target,
)
from sim.tasks import TASKS, SimConfig, make_sim_env


def _random_actions(rng: np.random.Generator, n: int) -> np.ndarray:
    """Actions of 7 values, some beyond [-1, 1] (the envs clip them)."""
    return rng.uniform(-1.5, 1.5, (n, 7))


def test_position_is_the_old_formula_bit_for_bit() -> None:
    spec, rng = TaskSpec(), np.random.default_rng(0)
    low, high = np.array(spec.workspace_low), np.array(spec.workspace_high)
    for a in _random_actions(rng, 200):
        position = rng.uniform(low - 0.02, high + 0.02)  # also from outside the box
        new_position, quat, gripper = step_target(position, np.array(EE_DOWN_QUAT), a, False, spec)
        clipped = np.clip(a, -1.0, 1.0)
        expected = clip_to_workspace(position + clipped[:3] * spec.pos_scale, low, high)
        assert new_position.tobytes() == expected.tobytes()
        assert np.array_equal(quat, EE_DOWN_QUAT) and gripper == clipped[-1]


def test_rotation_turns_about_the_world_axes() -> None:
    spec, rng = TaskSpec(), np.random.default_rng(1)
    quat = np.array(EE_DOWN_QUAT)
    for a in _random_actions(rng, 50):
        position = np.array(spec.ee_start)
        _, turned, _ = step_target(position, quat, a, True, spec)
        # RobotEnv's formula before the contract: a world-frame turn, pre-multiplied, renormalised
        expected = quat_mul(rotvec_to_quat(np.clip(a[3:6], -1, 1) * spec.rot_scale), quat)
        np.testing.assert_allclose(turned, expected / np.linalg.norm(expected), atol=1e-12)
        quat = turned
    assert np.linalg.norm(quat) == pytest.approx(1.0, abs=1e-12)


def test_sim_env_commands_what_the_contract_maps() -> None:
    env = make_sim_env("pick_cube", rotation=True, seed=3)
    task = env.unwrapped
    rng = np.random.default_rng(2)
    for a in _random_actions(rng, 10).astype(np.float32):
        before = task.ctrl.target_pos.copy(), task.ctrl.target_quat.copy()
        expected = step_target(*before, a, True, task.task_spec)
        env.step(a)
        assert np.array_equal(task.ctrl.target_pos, expected[0])
        assert np.array_equal(task.ctrl.target_quat, expected[1])
        assert task.data.ctrl[task._gripper_act] == task._gripper_ctrl(expected[2])
    env.close()


def test_sim_config_defaults_are_the_contracts() -> None:
    assert TaskSpec.of(SimConfig()) == TaskSpec()
    spec_fields = {f.name for f in dataclasses.fields(TaskSpec)}
    assert spec_fields <= {f.name for f in dataclasses.fields(SimConfig)}


@pytest.mark.parametrize(
    ("change", "name"),
    [
        ({"pos_scale": 0.0}, "pos_scale"),
        ({"rot_scale": float("nan")}, "rot_scale"),
        ({"ee_start_noise": -0.01}, "ee_start_noise"),
        ({"ee_start": (0.4, 0.0)}, "ee_start"),
        ({"workspace_low": (0.8, -0.3, 0.0)}, "workspace_low"),
    ],
)
def test_a_bad_spec_is_refused_with_its_name(change: dict, name: str) -> None:
    with pytest.raises(ValueError, match=name):
        TaskSpec(**change)
    with pytest.raises(ValueError, match=name):  # through a sim env's config too
        TASKS["reach"](SimConfig(**change))


def test_the_start_draws_the_same_numbers_with_or_without_noise() -> None:
    spec = TaskSpec()
    fixed, noisy = np.random.default_rng(5), np.random.default_rng(5)
    assert np.array_equal(start_position(spec, fixed, False), spec.ee_start)
    start = start_position(spec, noisy, True)
    assert np.all(np.abs(start - spec.ee_start) <= spec.ee_start_noise)
    assert fixed.random() == noisy.random()


def test_sim_state_is_the_documented_layout() -> None:
    env = make_sim_env("push", privileged=True, seed=4)
    task = env.unwrapped
    obs, _ = env.step(env.action_space.sample())[:2]
    ee_pos, ee_quat = task.ctrl.ee_pose(task.data)
    expected = state_vector(
        ee_pos,
        ee_quat,
        task.gripper_width(),
        task.data.qpos[task.ctrl.qpos_idx],
        task.data.qvel[task.ctrl.dof_idx],
        goal=task.goal[: task.goal_dim],
        object_part=object_state(*task.object_pose(), ee_pos),
    )
    assert obs["state"].tobytes() == expected.tobytes()
    assert obs["state"].shape == (state_dim(7, task.object_state_dim, task.goal_dim),)
    env.close()


def test_robot_state_normalises_and_signs_the_object_quaternion() -> None:
    q, dq = np.arange(7.0), np.zeros(7)
    ee_pos, obj_pos = np.array([0.4, 0.0, 0.2]), np.array([0.5, 0.1, 0.025])
    state = robot_state(ee_pos, EE_DOWN_QUAT, 0.08, q, dq, (obj_pos, np.array([-1.0005, 0.0, 0.0, 0.0])))
    assert state.shape == (state_dim(7, OBJECT_STATE_DIM),) == (proprio_dim(7) + OBJECT_STATE_DIM,)
    np.testing.assert_allclose(state[-10:], [0.5, 0.1, 0.025, 1, 0, 0, 0, 0.1, 0.1, -0.175], atol=1e-6)
    with pytest.raises(ValueError, match="ee quaternion"):
        robot_state(ee_pos, [0.0, 0.0, 0.0, 0.0], 0.08, q, dq)
    with pytest.raises(ValueError, match="non-finite"):
        robot_state(ee_pos, EE_DOWN_QUAT, float("nan"), q, dq)
