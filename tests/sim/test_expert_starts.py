"""Tests of sim/expert_starts.py: episodes that start part-way through the task."""

from __future__ import annotations

import gymnasium
import numpy as np
import pytest

from robot_rl.agents.sac import SACConfig
from robot_rl.config import DemoConfig, TrainConfig
from robot_rl.envs.config import SimEnvConfig
from robot_rl.runtime.actor import with_expert_starts
from sim.expert_starts import ExpertStarts
from sim.experts import expert_for
from sim.tasks import make_sim_env


def test_no_share_starts_where_the_task_starts() -> None:
    plain, inner = make_sim_env("pick_cube", privileged=True), make_sim_env("pick_cube", privileged=True)
    wrapped = ExpertStarts(inner, expert_for("pick_cube")(inner), share=0.0, max_steps=10, seed=0)
    for seed in (3, 4):
        obs, _ = wrapped.reset(seed=seed)
        np.testing.assert_array_equal(obs["state"], plain.reset(seed=seed)[0]["state"])
        assert wrapped.prefix_steps == 0


def test_full_share_hands_over_after_the_experts_ticks() -> None:
    env = make_sim_env("stack_cube", privileged=True)
    wrapped = ExpertStarts(env, expert_for("stack_cube")(env), share=1.0, max_steps=30, seed=1)
    steps = set()
    for seed in range(6):
        obs, info = wrapped.reset(seed=seed)
        start = make_sim_env("stack_cube", privileged=True).reset(seed=seed)[0]["state"]
        if wrapped.prefix_steps:  # the expert moved the arm from where the task put it
            assert info["expert_start_steps"] == wrapped.prefix_steps
            assert 1 <= wrapped.prefix_steps <= 30
            assert not np.allclose(obs["state"][:3], start[:3])
        steps.add(wrapped.prefix_steps)
        # the episode goes on from there under the caller's actions
        obs, *_ = wrapped.step(np.zeros(4, np.float32))
        assert obs["state"].shape == start.shape
    assert len(steps) > 2  # a random cut each episode


class _EndsAtOnce(gymnasium.Env):
    """A 1-tick task: any step terminates it."""

    observation_space = gymnasium.spaces.Box(-1, 1, (1,))
    action_space = gymnasium.spaces.Box(-1, 1, (1,))

    def __init__(self) -> None:
        self.resets = 0

    def reset(self, *, seed=None, options=None):
        self.resets += 1
        return np.zeros(1, np.float32), {}

    def step(self, action):
        return np.ones(1, np.float32), 1.0, True, False, {}


def test_a_prefix_that_ends_the_task_falls_back_to_the_tasks_start() -> None:
    env = _EndsAtOnce()
    wrapped = ExpertStarts(env, lambda obs: np.zeros(1, np.float32), share=1.0, max_steps=5, seed=0)
    obs, _ = wrapped.reset()
    assert env.resets == 2 and wrapped.prefix_steps == 0 and obs[0] == 0.0


@pytest.mark.parametrize(("share", "max_steps"), [(-0.1, 10), (1.5, 10), (0.5, 0)])
def test_bad_values_are_refused(share: float, max_steps: int) -> None:
    with pytest.raises(ValueError, match="expert_start"):
        SimEnvConfig(expert_starts=share, expert_start_max_steps=max_steps)
    with pytest.raises(ValueError, match="expert start"):
        ExpertStarts(_EndsAtOnce(), lambda obs: obs, share, max_steps)


def test_the_actor_wraps_collection_only_when_asked() -> None:
    env = make_sim_env("pick_cube", privileged=True)
    def cfg(share: float) -> TrainConfig:
        return TrainConfig(env=SimEnvConfig(expert_starts=share), agent=SACConfig(), demos=DemoConfig())

    assert with_expert_starts(env, cfg(0.0), seed=0) is env
    wrapped = with_expert_starts(env, cfg(0.5), seed=0)
    assert isinstance(wrapped, ExpertStarts) and wrapped.unwrapped is env.unwrapped
