"""Episodes that start part-way through the task: a training curriculum for sparse rewards.

With probability `share`, reset() lets a scripted policy (the task's expert) act for a random
1..max_steps ticks from the task's own reset and hands over from there. The policy being trained
then meets states near the success from its first episodes, and the sparse reward travels back
from them to the early stages as the critic learns: Nair et al. 2018's resets to demonstration
states, which solved block stacking from a sparse reward. A prefix that ends the episode (success
or time limit) is dropped and the task's own start is used.

Collection only: the actor evaluates on the env without this wrapper, so evaluated success is
always from the task's own start. The prefix ticks count towards the task's time limit, and they
are not recorded: the episode begins at the observation reset() returns.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import gymnasium
import numpy as np


class ExpertStarts(gymnasium.Wrapper):
    """env whose reset() starts `share` of the episodes after 1..max_steps ticks of `policy`."""

    def __init__(
        self,
        env: gymnasium.Env,
        policy: Callable[[Any], np.ndarray],
        share: float,
        max_steps: int,
        seed: int | None = None,
    ) -> None:
        super().__init__(env)
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"expert start share must be in [0, 1], got {share}")
        if max_steps < 1:
            raise ValueError(f"expert start max steps must be >= 1, got {max_steps}")
        self.policy, self.share, self.max_steps = policy, share, max_steps
        self.rng = np.random.default_rng(seed)
        self.prefix_steps = 0  # the ticks the policy took before the current episode's start

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Any, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.prefix_steps = 0
        if self.rng.random() >= self.share:
            return obs, info
        steps = int(self.rng.integers(1, self.max_steps + 1))
        if hasattr(self.policy, "reset"):
            self.policy.reset()
        for _ in range(steps):
            obs, _, terminated, truncated, info = self.env.step(np.asarray(self.policy(obs), np.float32))
            if terminated or truncated:  # the prefix finished the task: start as the task does
                return self.env.reset(options=options)
        self.prefix_steps = steps
        return obs, {**info, "expert_start_steps": steps}
