"""The env a DSRL agent acts in (robot_rl/agents/dsrl.py): its action is the initial noise of a
frozen chunked policy (flow_bc, diffusion_bc), which the env turns into control ticks.

NoiseChunkEnv(env, base, noise_bound): action u in [-1, 1]^(T_act * A), noise = noise_bound * u
(clipped first, so no noise entry exceeds noise_bound). At a decision (the episode's first tick,
then every act_horizon ticks) the base samples its chunk [T_act, A] for its observation history and
that noise, deterministically (flow: Euler; diffusion: DDIM, eta = 0), and the env executes the
chunk's first act_horizon actions, one per step, an episode's end cutting it short; the action
given between decisions is ignored. Every step reports the noise in effect as the executed action
(info["executed_action"], what the actor stores), so a stored decision is a run of equal actions
and the learner backs each up as one chunk (robot_rl/data/windows.gather_chunks). The base sees
every observation (its history), is reset with the env and is never trained.

The base is loaded and checked by robot_rl/runtime/residual_base.with_base, which builds this env
for a DSRL agent wherever an env is made for it.
"""

from __future__ import annotations

from collections import deque
from typing import Any

import gymnasium as gym
import numpy as np

from robot_rl.agents.chunking import ChunkedBCAgent
from robot_rl.envs.gym_adapter import reports_success
from robot_rl.transition import Obs


class NoiseChunkEnv(gym.Wrapper):
    """The env's observations, with the noise box [-1, 1]^(T_act * A) as the action space."""

    def __init__(self, env: gym.Env, base: ChunkedBCAgent, noise_bound: float) -> None:
        super().__init__(env)
        if not noise_bound > 0.0:
            raise ValueError(f"noise_bound must be > 0, got {noise_bound}")
        self.base = base
        self.noise_bound = float(noise_bound)
        self.act_horizon = base.cfg.act_horizon
        self.action_space = gym.spaces.Box(-1.0, 1.0, (base.denoiser.out_dim,), np.float32)
        self._queue: deque[np.ndarray] = deque()
        self._held = np.zeros(self.action_space.shape, np.float32)  # u of the decision in effect

    @property
    def reports_success(self) -> bool:
        return reports_success(self.env)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.base.reset()
        self.base.observe(obs)
        self._queue.clear()
        return obs, info

    def decode(self, action: np.ndarray) -> np.ndarray:
        """u [T_act * A] -> the base's chunk float32[act_horizon, A] for the history so far, from
        noise_bound * clip(u, -1, 1)."""
        u = np.asarray(action, np.float32).reshape(self.action_space.shape)
        if not np.all(np.isfinite(u)):
            raise ValueError(f"the DSRL agent's action (the base's noise) is not finite: {u.tolist()}")
        return self.base.sample_chunk(self.noise_bound * np.clip(u, -1.0, 1.0))[: self.act_horizon]

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool, dict]:
        if not self._queue:  # a decision: this action's noise chooses the next act_horizon ticks
            self._queue.extend(self.decode(action))
            self._held = np.clip(np.asarray(action, np.float32).reshape(self.action_space.shape), -1.0, 1.0)
        obs, reward, terminated, truncated, info = self.env.step(self._queue.popleft())
        self.base.observe(obs)
        if terminated or truncated:
            self._queue.clear()
        return obs, reward, terminated, truncated, {**info, "executed_action": self._held.copy()}
