"""Deterministic evaluation episodes: success rate with a confidence interval, length, return.

An env with no success signal (envs/gym_adapter.reports_success) gets no success keys, so no
report shows a success rate of 0.00 that says nothing.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robot_rl.agents.base import Agent
from robot_rl.envs.gym_adapter import reports_success
from robot_rl.eval.stats import success_rate_ci


def run_episodes(
    env: gym.Env, agent: Agent, episodes: int, seed: int | None = None, deterministic: bool = True
) -> dict[str, Any]:
    """Run `episodes` episodes with the agent's deterministic action and summarise them."""
    if episodes < 1:
        raise ValueError(f"episodes must be >= 1, got {episodes}")
    successes, lengths, returns = [], [], []
    for i in range(episodes):
        obs, _ = env.reset(seed=None if seed is None else seed + i)
        agent.reset()
        done, ret, length, success = False, 0.0, 0, False
        while not done:
            obs, reward, terminated, truncated, info = env.step(agent.act(obs, deterministic=deterministic))
            ret += float(reward)
            length += 1
            success = success or bool(info.get("success", False))
            done = terminated or truncated
        successes.append(success)
        lengths.append(length)
        returns.append(ret)
    summary: dict[str, Any] = {"episodes": episodes}
    if reports_success(env):  # an env with no success signal is summarised by its return alone
        rate, low, high = success_rate_ci(int(np.sum(successes)), episodes)
        summary |= {"success_rate": rate, "success_ci_low": low, "success_ci_high": high}
    return summary | {
        "episode_length": float(np.mean(lengths)),
        "return": float(np.mean(returns)),
        "return_std": float(np.std(returns)),
    }
