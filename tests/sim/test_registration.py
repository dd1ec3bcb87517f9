"""sim's tasks as gymnasium ids: robot_rl/<Task>-v0 for every task in TASKS, with make_sim_env's keywords."""

from __future__ import annotations

import os

os.environ.setdefault("MUJOCO_GL", "egl")  # before mujoco loads: the camera cases render offscreen

import gymnasium as gym
import numpy as np
import pytest

import sim  # noqa: F401  (registers the ids)
from sim.tasks import TASKS, SimConfig, gym_id, make_sim_env

CAMERAS = [(), ("wrist", "front")]


def run_until_done(env: gym.Env, seed: int) -> tuple[int, list[bool]]:
    """Open gripper, no motion (never a success): steps to the end and each step's truncated flag."""
    env.reset(seed=seed)
    action = np.zeros(env.action_space.shape, np.float32)
    action[-1] = -1.0
    flags = []
    while True:
        _, _, terminated, truncated, _ = env.step(action)
        assert not terminated
        flags.append(truncated)
        if truncated:
            return len(flags), flags


def test_every_task_is_registered_under_its_id():
    assert gym_id("pick_cube") == "robot_rl/PickCube-v0" and gym_id("reach") == "robot_rl/Reach-v0"
    registered = {name for name in gym.registry if name.startswith("robot_rl/")}
    assert registered == {gym_id(task) for task in TASKS}


@pytest.mark.parametrize("cameras", CAMERAS, ids=["state", "cameras"])
@pytest.mark.parametrize("task", sorted(TASKS))
def test_make_matches_make_sim_env(task, cameras, gl_problem):
    if cameras and gl_problem:
        pytest.skip(gl_problem)
    env = gym.make(gym_id(task), cameras=list(cameras), image_size=(32, 32))
    direct = make_sim_env(task, cameras=cameras, image_size=(32, 32))
    assert type(env.unwrapped) is TASKS[task]
    assert env.observation_space == direct.observation_space
    assert env.action_space == direct.action_space
    obs, _ = env.reset(seed=0)
    assert env.observation_space.contains(obs)
    obs, reward, *_, info = env.step(env.action_space.sample())
    assert env.observation_space.contains(obs) and isinstance(reward, float) and "success" in info
    assert set(obs.get("images", {})) == set(cameras)
    env.close()
    direct.close()


def test_keywords_reach_the_env():
    env = gym.make("robot_rl/Push-v0", privileged=True, rotation=True, control_hz=20.0, randomize=False)
    cfg = env.unwrapped.cfg
    assert cfg.privileged and cfg.rotation and cfg.control_hz == 20.0 and not cfg.randomize
    assert env.action_space.shape == (7,)
    blind = gym.make("robot_rl/Push-v0")
    assert env.observation_space["state"].shape[0] > blind.observation_space["state"].shape[0]
    with pytest.raises(TypeError, match="camera"):
        gym.make("robot_rl/Push-v0", camera=["front"])  # a typo is named, not ignored


def test_the_same_seed_gives_the_same_episode_as_make_sim_env():
    env = gym.make("robot_rl/PickCube-v0", privileged=True)
    direct = make_sim_env("pick_cube", privileged=True)
    np.testing.assert_array_equal(env.reset(seed=3)[0]["state"], direct.reset(seed=3)[0]["state"])
    action = np.array([0.5, -0.2, -0.4, 1.0], np.float32)
    np.testing.assert_array_equal(env.step(action)[0]["state"], direct.step(action)[0]["state"])


def test_episodes_truncate_at_the_tasks_limit_exactly_once():
    env = gym.make("robot_rl/PickCube-v0")
    limit = TASKS["pick_cube"].default_max_steps
    for seed in range(2):  # the second episode starts a fresh count
        steps, flags = run_until_done(env, seed)
        assert steps == limit == env.unwrapped.max_episode_steps and flags.count(True) == 1


def test_gymnasiums_max_episode_steps_shortens_and_config_sets_the_envs_own_limit():
    shorter = gym.make("robot_rl/PickCube-v0", max_episode_steps=5)  # gymnasium's TimeLimit
    assert run_until_done(shorter, 0)[0] == 5
    longer = gym.make("robot_rl/PickCube-v0", config=SimConfig(max_episode_steps=70))
    steps, flags = run_until_done(longer, 0)
    assert steps == 70 and flags.count(True) == 1


def test_module_prefixed_id_imports_sim():
    env = gym.make("sim:robot_rl/Reach-v0")
    assert type(env.unwrapped) is TASKS["reach"]
