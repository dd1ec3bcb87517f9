"""A simulated person for sim and CI: a scripted expert (sim/experts.py) that corrects the policy.

It takes over when the policy's proposed action drifts from the expert's by more than
action_threshold (RLIF's action-distance gate: L2 distance over the whole action), or when the
task stops progressing (the ee moved less than stall_m over stall_steps steps), each gate firing
with probability takeover_prob, halved every decay_steps env steps (a person who trusts a
better policy more). Once in control it keeps it for hold_steps steps. Everything it draws comes
from one seeded generator, so a seed gives the same takeovers for the same policy.

It is a teleop device (drivers/teleop/base.py) that also sees the policy's action and the env:
the intervention wrapper calls episode_start() after each reset and observe(obs, policy_action)
before each poll(). Its twist is the expert's action's delta part, so the wrapper executes the
expert's action as is.
"""

from __future__ import annotations

import math
import time
from collections import deque
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np

from drivers.teleop.base import Buttons, TeleopReading
from sim.experts import expert_for
from sim.tasks import TASKS


@dataclass
class SimHumanConfig:
    """teleop=sim_human."""

    action_threshold: float = 1.0  # take over when |policy action - expert action| exceeds this
    stall_steps: int = 20  # take over when no progress for this many steps (0: never for this)
    stall_m: float = 0.01  # progress: the ee moved at least this far (m) over stall_steps steps
    hold_steps: int = 10  # k: steps the person keeps control once they took it
    takeover_prob: float = 1.0  # chance that a firing gate makes the person take over
    decay_steps: int = 0  # takeover_prob halves every decay_steps env steps (0: no decay)
    noise: float = 0.0  # std of the expert's action noise

    def __post_init__(self) -> None:
        if not (math.isfinite(self.action_threshold) and self.action_threshold > 0):
            raise ValueError(f"sim_human.action_threshold must be > 0, got {self.action_threshold!r}")
        if self.stall_steps < 0 or self.decay_steps < 0:
            raise ValueError("sim_human.stall_steps and sim_human.decay_steps must be >= 0")
        if self.hold_steps < 1:
            raise ValueError(f"sim_human.hold_steps must be >= 1, got {self.hold_steps}")
        if not 0.0 <= self.takeover_prob <= 1.0:
            raise ValueError(f"sim_human.takeover_prob must be in [0, 1], got {self.takeover_prob}")
        if not (math.isfinite(self.stall_m) and self.stall_m >= 0 and self.noise >= 0):
            raise ValueError("sim_human.stall_m and sim_human.noise must be >= 0")


def task_of(env: gym.Env) -> str:
    """The sim task env runs; ValueError when it is not one (a robot has no privileged poses)."""
    for name, cls in TASKS.items():
        if isinstance(env.unwrapped, cls):
            return name
    raise ValueError(
        f"teleop=sim_human needs a sim task (env=sim, or env=gym env.id=robot_rl/<Task>-v0) whose "
        f"expert reads the true poses; got {type(env.unwrapped).__name__}"
    )


class SimHuman:
    def __init__(self, cfg: SimHumanConfig, env: gym.Env, seed: int = 0) -> None:
        self.cfg = cfg
        self.task: Any = env.unwrapped
        self.rng = np.random.default_rng(seed)
        self.expert = expert_for(task_of(env))(env, noise=cfg.noise, seed=seed)
        self.steps = 0  # observed env steps, for the decay
        self.takeovers = 0
        self._left = 0  # steps of control left
        self._trail: deque[np.ndarray] = deque(maxlen=cfg.stall_steps + 1)
        self._expert_action: np.ndarray | None = None

    # --- the teleop protocol ---
    def start(self) -> None:
        """Nothing to open."""

    def stop(self) -> None:
        """Nothing to close."""

    def poll(self) -> TeleopReading:
        stamp = time.monotonic()
        action = self._expert_action
        if action is None or self._left <= 0:
            return TeleopReading.idle(stamp)
        twist = np.zeros(6)
        deltas = action[:-1]
        twist[: deltas.shape[0]] = deltas
        return TeleopReading(twist, float(action[-1]), Buttons(), True, stamp)

    # --- what the wrapper tells it ---
    def episode_start(self) -> None:
        self.expert.reset()
        self._left = 0
        self._trail.clear()
        self._expert_action = None

    def observe(self, obs: Any, policy_action: np.ndarray) -> None:
        """Decide whether to act this step, from the policy's proposal and the task's state."""
        self.steps += 1
        self._expert_action = np.asarray(self.expert(obs), dtype=np.float64)
        self._trail.append(np.asarray(self.task.ee_position(), dtype=np.float64).copy())
        if self._left > 0:
            self._left -= 1
            return
        if self._gate_fires(policy_action) and self.rng.random() < self.takeover_probability():
            self._left = self.cfg.hold_steps
            self.takeovers += 1
            self._trail.clear()

    def takeover_probability(self) -> float:
        if self.cfg.decay_steps == 0:
            return self.cfg.takeover_prob
        return self.cfg.takeover_prob * 0.5 ** (self.steps / self.cfg.decay_steps)

    def _gate_fires(self, policy_action: np.ndarray) -> bool:
        drift = float(np.linalg.norm(np.asarray(policy_action, np.float64) - self._expert_action))
        if drift > self.cfg.action_threshold:
            return True
        stalled = (
            self.cfg.stall_steps > 0
            and len(self._trail) == self._trail.maxlen
            and float(np.linalg.norm(self._trail[-1] - self._trail[0])) < self.cfg.stall_m
        )
        return stalled
