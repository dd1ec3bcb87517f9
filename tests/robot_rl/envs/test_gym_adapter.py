import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from robot_rl.envs.gym_adapter import StandardObsWrapper, reports_success


class _DictEnv(gym.Env):
    """Dict observations with a camera and two state entries; action in [0, 10]."""

    def __init__(self) -> None:
        self.observation_space = spaces.Dict(
            {
                "cam": spaces.Box(0, 255, (8, 8, 3), np.uint8),
                "joint_pos": spaces.Box(-1, 1, (3,), np.float64),
                "gripper": spaces.Box(0, 1, (1,), np.float32),
            }
        )
        self.action_space = spaces.Box(0.0, 10.0, (2,), np.float32)
        self.last_action: np.ndarray | None = None

    def _obs(self) -> dict:
        return {
            "cam": np.full((8, 8, 3), 7, np.uint8),
            "joint_pos": np.arange(3.0),
            "gripper": np.ones(1, np.float32),
        }

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        self.last_action = action
        return self._obs(), 1.0, False, False, {"is_success": True}


def test_box_observation_becomes_state():
    env = StandardObsWrapper(gym.make("Pendulum-v1"))
    obs, info = env.reset(seed=0)
    assert set(obs) == {"state"}
    assert obs["state"].dtype == np.float32 and obs["state"].shape == (3,)
    assert env.observation_space.contains(obs)
    assert "t_obs" in info and info["success"] is False


def test_dict_observation_splits_images_and_state():
    env = StandardObsWrapper(_DictEnv())
    obs, _ = env.reset()
    # gymnasium orders Dict keys: gripper, then joint_pos
    assert obs["state"].tolist() == [1.0, 0.0, 1.0, 2.0]
    assert obs["images"]["cam"].dtype == np.uint8
    assert env.observation_space.contains(obs)


def test_actions_rescaled_from_unit_box():
    inner = _DictEnv()
    env = StandardObsWrapper(inner)
    assert env.action_space.low.tolist() == [-1, -1] and env.action_space.high.tolist() == [1, 1]
    _, _, _, _, info = env.step(np.array([-1.0, 1.0], np.float32))
    np.testing.assert_allclose(inner.last_action, [0.0, 10.0])
    assert info["success"] is True
    env.step(np.array([5.0, -5.0], np.float32))  # out of range is clipped, never passed on
    np.testing.assert_allclose(inner.last_action, [10.0, 0.0])


def test_discrete_action_space_rejected():
    with pytest.raises(TypeError, match="Box action"):
        StandardObsWrapper(gym.make("CartPole-v1"))


class _LeRobotStyleEnv(gym.Env):
    """gym-hil's layout: pixels as a nested Dict of cameras, agent_pos and environment_state."""

    def __init__(self) -> None:
        self.observation_space = spaces.Dict(
            {
                "pixels": spaces.Dict(
                    {
                        "front": spaces.Box(0, 255, (6, 8, 3), np.uint8),
                        "wrist": spaces.Box(0, 255, (4, 4, 3), np.uint8),
                    }
                ),
                "agent_pos": spaces.Box(-1, 1, (2,), np.float32),
                "environment_state": spaces.Box(-1, 1, (3,), np.float32),
            }
        )
        self.action_space = spaces.Box(-1.0, 1.0, (2,), np.float32)

    def _obs(self) -> dict:
        return {
            "pixels": {"front": np.full((6, 8, 3), 1, np.uint8), "wrist": np.full((4, 4, 3), 2, np.uint8)},
            "agent_pos": np.array([0.1, 0.2], np.float32),
            "environment_state": np.array([0.3, 0.4, 0.5], np.float32),
        }

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        return self._obs(), {}

    def step(self, action):
        return self._obs(), 0.0, False, False, {}


def test_nested_dict_cameras_by_last_name_and_state_in_key_order():
    env = StandardObsWrapper(_LeRobotStyleEnv())
    obs, _ = env.reset()
    assert set(obs["images"]) == {"front", "wrist"}
    assert obs["images"]["front"].shape == (6, 8, 3) and (obs["images"]["wrist"] == 2).all()
    # agent_pos, then environment_state: the Dict's key order, depth first
    np.testing.assert_allclose(obs["state"], [0.1, 0.2, 0.3, 0.4, 0.5])
    assert env.observation_space.contains(obs)
    assert env.observation_space["images"]["wrist"].shape == (4, 4, 3)


def test_cameras_with_the_same_last_name_are_named_by_their_path():
    inner = _DictEnv()
    inner.observation_space = spaces.Dict(
        {
            "left": spaces.Dict({"cam": spaces.Box(0, 255, (8, 8, 3), np.uint8)}),
            "right": spaces.Dict({"cam": spaces.Box(0, 255, (8, 8, 3), np.uint8)}),
            "joint_pos": spaces.Box(-1, 1, (3,), np.float64),
        }
    )
    env = StandardObsWrapper(inner)
    assert set(env.observation_space["images"].spaces) == {"left_cam", "right_cam"}


def test_a_nested_entry_that_is_not_a_box_is_named_by_its_path():
    inner = _DictEnv()
    inner.observation_space = spaces.Dict({"robot": spaces.Dict({"mode": spaces.Discrete(3)})})
    with pytest.raises(TypeError, match=r"'robot\.mode' is Discrete"):
        StandardObsWrapper(inner)


def test_success_is_reported_only_by_envs_whose_info_carries_it():
    hopper_like = StandardObsWrapper(gym.make("Pendulum-v1"))
    hopper_like.reset(seed=0)
    hopper_like.step(hopper_like.action_space.sample())
    assert not reports_success(hopper_like)
    with_success = StandardObsWrapper(_DictEnv())
    with_success.reset()
    with_success.step(np.zeros(2, np.float32))
    assert reports_success(with_success)
