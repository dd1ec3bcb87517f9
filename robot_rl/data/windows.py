"""Windows of consecutive steps within one episode, for policies that see an observation history
and predict a chunk of future actions (flow / diffusion BC).

A window anchored at step t of an episode holds the observations of steps t - T_obs + 1 .. t
(oldest first) and the actions of steps t .. t + T_act - 1. Where the window runs past the
episode's start or end it is padded as diffusion_policy pads: with the episode's first
observation and its last action; the masks say which entries are real.

The episode links come from the ReplayBuffer (robot_rl/data/replay.py): a frame's previous frame
is its transition's `prev_slot` while that transition still points at it, and a step's next step
is `next_slot` while the step neither terminated nor truncated the episode.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from robot_rl.transition import Obs, flat_to_obs, tensors_on

if TYPE_CHECKING:
    from robot_rl.data.replay import ReplayBuffer


@dataclass
class WindowBatch:
    """A batch of B windows (numpy, or torch after to_torch).

    obs: {"state": float32[B, T_obs, D], "images": {cam: uint8[B, T_obs, H, W, 3]}}, oldest first
    action: float32[B, T_act, A], the actions from the anchor step on
    obs_mask: bool[B, T_obs], False where the first observation stands in before the episode
    action_mask: bool[B, T_act], False where the last action stands in after the episode ended
    """

    obs: Obs
    action: Any
    obs_mask: Any
    action_mask: Any

    def to_torch(self, device: torch.device | str = "cpu") -> WindowBatch:
        fields = (self.obs, self.action, self.obs_mask, self.action_mask)
        return WindowBatch(*(tensors_on(x, device) for x in fields))

    def __len__(self) -> int:
        return int(self.action.shape[0])


def window_slots(
    buffer: ReplayBuffer, anchors: np.ndarray, obs_horizon: int, chunk: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Frame slots of each window, padded, with their masks.

    anchors: int64[B] slots holding a transition. Returns (obs_slots int64[B, T_obs] oldest first,
    obs_mask bool[B, T_obs], action_slots int64[B, T_act], action_mask bool[B, T_act]).
    """
    b = len(anchors)
    obs_slots = np.empty((b, obs_horizon), np.int64)
    obs_mask = np.ones((b, obs_horizon), bool)
    cur, real = anchors.copy(), np.ones(b, bool)
    obs_slots[:, -1] = cur
    for k in range(obs_horizon - 2, -1, -1):  # step back while the previous frame is the episode's
        prev = buffer.prev_slot[cur]
        linked = prev >= 0
        linked[linked] &= buffer.has_trans[prev[linked]] & (buffer.next_slot[prev[linked]] == cur[linked])
        real &= linked
        cur = np.where(real, prev, cur)  # past the start: repeat the first frame
        obs_slots[:, k], obs_mask[:, k] = cur, real

    action_slots = np.empty((b, chunk), np.int64)
    action_mask = np.ones((b, chunk), bool)
    cur, real = anchors.copy(), np.ones(b, bool)
    action_slots[:, 0] = cur
    for k in range(1, chunk):  # step on while the episode goes on and the next step is stored
        nxt = buffer.next_slot[cur]
        real &= ~(buffer.terminated[cur] | buffer.truncated[cur]) & buffer.has_trans[nxt]
        cur = np.where(real, nxt, cur)  # past the end: repeat the last action
        action_slots[:, k], action_mask[:, k] = cur, real
    return obs_slots, obs_mask, action_slots, action_mask


def gather_windows(buffer: ReplayBuffer, anchors: np.ndarray, obs_horizon: int, chunk: int) -> WindowBatch:
    """The WindowBatch anchored at these transition slots (see window_slots)."""
    if obs_horizon < 1 or chunk < 1:
        raise ValueError(f"obs_horizon and chunk must be >= 1, got {obs_horizon} and {chunk}")
    obs_slots, obs_mask, action_slots, action_mask = window_slots(buffer, anchors, obs_horizon, chunk)
    frames = {k: v[obs_slots] for k, v in buffer.frames.items()}
    return WindowBatch(flat_to_obs(frames), buffer.action[action_slots], obs_mask, action_mask)
