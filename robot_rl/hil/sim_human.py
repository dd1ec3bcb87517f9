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

The expert reads the true poses of a MuJoCo task in this process: the sim env's own, or, through
the twin (env=robot_twin env.in_process_twin=true, robot_rl/ros/local_twin.py), the twin's
scene behind the real nodes, read with its physics paused (SimTaskHost). A robot, or a twin in a
bringup process, has no true poses here, and is refused.
"""

from __future__ import annotations

import math
import time
from collections import deque
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

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


@runtime_checkable
class SimTaskHost(Protocol):
    """An env with a MuJoCo task behind it that its type does not show (RobotEnv over the twin in
    this process)."""

    def sim_task_name(self) -> str | None:
        """The task's name; None when there is no task here (a robot, a twin in another process)."""

    def sim_task(self) -> AbstractContextManager[Any]:
        """The task (a sim/tasks SimTaskEnv), its physics paused while inside; after a reset."""


def task_of(env: gym.Env) -> str:
    """The sim task env runs in this process; ValueError naming the fix when there is none."""
    inner = env.unwrapped
    for name, cls in TASKS.items():
        if isinstance(inner, cls):
            return name
    hosted = inner.sim_task_name() if isinstance(inner, SimTaskHost) else None
    if hosted is not None:
        return hosted
    if isinstance(inner, SimTaskHost):
        raise ValueError(
            "teleop=sim_human needs a sim task, on a robot env the twin's in this process: "
            "env=robot_twin env.in_process_twin=true (its expert reads the twin's true poses; a "
            "robot, or a twin in a bringup process, has none here)"
        )
    raise ValueError(
        f"teleop=sim_human needs a sim task (env=sim, or env=gym env.id=robot_rl/<Task>-v0) or the "
        f"twin in this process (env=robot_twin env.in_process_twin=true), whose expert reads the "
        f"true poses; got {type(inner).__name__}"
    )


@dataclass
class _ExpertView:
    """What a scripted expert reads (sim/experts.py): the task, and the env's action layout."""

    unwrapped: Any
    action_space: gym.Space


class SimHuman:
    def __init__(self, cfg: SimHumanConfig, env: gym.Env, seed: int = 0) -> None:
        self.cfg = cfg
        self.env = env
        self.task_name = task_of(env)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.expert: Any = None  # made at the first episode: a twin's task exists from its reset on
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
    def _task(self) -> AbstractContextManager[Any]:
        """The task whose true state the person reads, paused while inside (a sim env is paused
        between steps anyway)."""
        inner = self.env.unwrapped
        return inner.sim_task() if isinstance(inner, SimTaskHost) else nullcontext(inner)

    def episode_start(self) -> None:
        if self.expert is None:
            with self._task() as task:
                view = _ExpertView(task, self.env.action_space)
                self.expert = expert_for(self.task_name)(view, noise=self.cfg.noise, seed=self.seed)
        self.expert.reset()
        self._left = 0
        self._trail.clear()
        self._expert_action = None

    def observe(self, obs: Any, policy_action: np.ndarray) -> None:
        """Decide whether to act this step, from the policy's proposal and the task's state."""
        self.steps += 1
        if self.expert is None:
            raise RuntimeError("SimHuman.observe() before episode_start(): reset the env first")
        with self._task() as task:
            self._expert_action = np.asarray(self.expert(obs), dtype=np.float64)
            self._trail.append(np.asarray(task.ee_position(), dtype=np.float64).copy())
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
