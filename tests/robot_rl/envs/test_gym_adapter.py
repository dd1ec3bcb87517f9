import gymnasium as gym
import numpy as np
import pytest
from gymnasium import spaces

from robot_rl.envs.gym_adapter import StandardObsWrapper


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
