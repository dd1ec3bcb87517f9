"""Demonstrations as a person gives them: any scripted policy driven the way a SpaceMouse is.

NoisyOperator wraps a closed-loop policy (a scripted expert, or anything mapping obs to an action
in [-1, 1] whose last entry is the gripper) and changes how its motion commands (every entry but
the last) reach the robot. What it models, each from the operator's seed:
    slower, uneven episodes  every episode draws a speed factor uniform in `speed`; the
                             commanded motion is scaled by it, so demos run longer than the
                             expert's and differ in length from one another.
    correlated noise         an Ornstein-Uhlenbeck process per motion axis (mean reversion
                             `noise_theta` per tick, scale `noise_sigma`): the hand drifts for
                             several ticks rather than jittering. Its size grows with the command
                             (signal-dependent motor noise): noise_floor + |command| times the
                             process, axis by axis, so a fine approach stays fine and a fast
                             move wanders along its way.
    hesitations              with probability `hesitate_p` per tick the operator stops for a
                             number of ticks uniform in `hesitate_ticks`: only floor noise is
                             sent and the gripper holds its last command.
    overshoot, correction    when the expert's command drops sharply (it is arriving at a
                             target) the operator, with probability `overshoot_p`, keeps moving
                             for a number of ticks uniform in `overshoot_ticks` at a fraction
                             `overshoot_gain` of the last command, past the target; the expert's
                             closed loop then pulls back (that correction does not overshoot).
While the operator hesitates or overshoots, the wrapped policy is not called: its plan (phase,
tick counters) waits, as a person's does, and resumes from the state it then finds.

The gripper entry passes through unchanged. Same seed, same episodes and same observations:
same actions. Demos that fail are re-drawn by the recorder as scripted demos are.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np


@dataclass(frozen=True)
class OperatorStyle:
    """Parameters of NoisyOperator (see the module docstring); actions are in [-1, 1] units."""

    speed: tuple[float, float] = (0.5, 0.9)
    noise_sigma: float = 0.25
    noise_theta: float = 0.2
    noise_floor: float = 0.05
    hesitate_p: float = 0.04
    hesitate_ticks: tuple[int, int] = (2, 5)
    overshoot_p: float = 0.5
    overshoot_ticks: tuple[int, int] = (1, 2)
    overshoot_gain: tuple[float, float] = (0.4, 0.9)

    def __post_init__(self) -> None:
        lo, hi = self.speed
        if not 0.0 < lo <= hi <= 1.0:
            raise ValueError(f"speed must satisfy 0 < low <= high <= 1, got {self.speed}")
        if self.noise_sigma < 0 or self.noise_floor < 0 or not 0.0 < self.noise_theta <= 1.0:
            raise ValueError("need noise_sigma >= 0, noise_floor >= 0 and 0 < noise_theta <= 1")
        for name in ("hesitate_p", "overshoot_p"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a probability in [0, 1], got {getattr(self, name)}")
        for name in ("hesitate_ticks", "overshoot_ticks"):
            a, b = getattr(self, name)
            if not 1 <= a <= b:
                raise ValueError(f"{name} must be (low, high) with 1 <= low <= high, got {(a, b)}")


class NoisyOperator:
    """policy(obs) -> action, as a person with a SpaceMouse would send it (module docstring)."""

    def __init__(
        self,
        policy: Callable[[Any], np.ndarray],
        seed: int | np.random.Generator | None = None,
        style: OperatorStyle | None = None,
    ) -> None:
        self.policy = policy
        self.style = style or OperatorStyle()
        self.rng = np.random.default_rng(seed)
        self.reset()

    def reset(self) -> None:
        """Start an episode: the wrapped policy's reset, a new speed, calm hands."""
        if hasattr(self.policy, "reset"):
            self.policy.reset()
        self.speed = float(self.rng.uniform(*self.style.speed))
        self._ou: np.ndarray | None = None
        self._last: np.ndarray | None = None  # the last action sent
        self._last_motion_norm = 0.0  # of the expert's last motion command
        self._may_overshoot = False
        self._frozen = 0  # ticks left of a hesitation or an overshoot
        self._frozen_motion: np.ndarray | None = None

    def __call__(self, obs: Any) -> np.ndarray:
        if self._frozen > 0:
            self._frozen -= 1
            return self._send(self._frozen_motion, self._last[-1])
        expert = np.asarray(self.policy(obs), dtype=np.float64)
        if self._ou is None:
            self._ou = np.zeros(expert.shape[0] - 1)
        motion = expert[:-1] * self.speed
        norm = float(np.linalg.norm(motion))
        s = self.style
        arriving = norm < 0.5 * self._last_motion_norm and self._last_motion_norm > 0.2
        if np.linalg.norm(expert[:-1]) > 0.9:
            self._may_overshoot = True  # a transit at full speed; a correction is not one
        if arriving and self._may_overshoot and self.rng.random() < s.overshoot_p:
            # Keep going past the target for a tick or two; the expert corrects afterwards.
            self._frozen = int(self.rng.integers(s.overshoot_ticks[0], s.overshoot_ticks[1] + 1)) - 1
            self._frozen_motion = self._last[:-1] * self.rng.uniform(*s.overshoot_gain)
            self._last_motion_norm, self._may_overshoot = 0.0, False
            return self._send(self._frozen_motion, self._last[-1])
        self._last_motion_norm = norm
        if self._last is not None and self.rng.random() < s.hesitate_p:
            self._frozen = int(self.rng.integers(s.hesitate_ticks[0], s.hesitate_ticks[1] + 1)) - 1
            self._frozen_motion = np.zeros_like(motion)
            return self._send(self._frozen_motion, self._last[-1])
        return self._send(motion, expert[-1], scale=s.noise_floor + np.abs(motion))

    def _send(self, motion: np.ndarray, gripper: float, scale: np.ndarray | None = None) -> np.ndarray:
        """motion plus the OU noise (scaled by the command's size; floor noise when none given)."""
        s = self.style
        self._ou += -s.noise_theta * self._ou + s.noise_sigma * self.rng.normal(size=self._ou.shape)
        scale = s.noise_floor if scale is None else scale
        action = np.clip(np.append(motion + scale * self._ou, gripper), -1.0, 1.0).astype(np.float32)
        self._last = action
        return action
