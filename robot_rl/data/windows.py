"""Windows of consecutive steps within one episode, for policies that see an observation history
and predict a chunk of future actions (flow / diffusion BC).

A window anchored at step t of an episode holds the observations of steps t - T_obs + 1 .. t
(oldest first) and the actions of steps t .. t + T_act - 1. Where the window runs past the
episode's start or end it is padded as diffusion_policy pads: with the episode's first
observation and its last action; the masks say which entries are real.

Chunk transitions (Q-chunking, Li et al. 2025), for an agent that acts in decisions of several
control ticks each (DSRL: robot_rl/agents/dsrl.py): a decision is a run of consecutive steps of
one episode that stored the same action, at most max_ticks long. A drawn step stands for the
decision it belongs to; the transition goes from the decision's first observation, with its
action, to the observation after its last tick, with the chunk's discounted return and a
bootstrap discount of gamma^ticks (chunk_return), so the critic backs up the whole chunk at once.

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
    from robot_rl.transition import Batch


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
        prev, linked = _previous_step(buffer, cur)
        real &= linked
        cur = np.where(real, prev, cur)  # past the start: repeat the first frame
        obs_slots[:, k], obs_mask[:, k] = cur, real

    action_slots = np.empty((b, chunk), np.int64)
    action_mask = np.ones((b, chunk), bool)
    cur, real = anchors.copy(), np.ones(b, bool)
    action_slots[:, 0] = cur
    for k in range(1, chunk):  # step on while the episode goes on and the next step is stored
        nxt, goes_on = _next_step(buffer, cur)
        real &= goes_on
        cur = np.where(real, nxt, cur)  # past the end: repeat the last action
        action_slots[:, k], action_mask[:, k] = cur, real
    return obs_slots, obs_mask, action_slots, action_mask


def _previous_step(buffer: ReplayBuffer, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the slots of the steps before these, bool: that step is stored and leads here)."""
    prev = buffer.prev_slot[slots]
    linked = prev >= 0
    linked[linked] &= buffer.has_trans[prev[linked]] & (buffer.next_slot[prev[linked]] == slots[linked])
    return prev, linked


def _next_step(buffer: ReplayBuffer, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(the slots of the steps after these, bool: the episode goes on and that step is stored)."""
    nxt = buffer.next_slot[slots]
    return nxt, ~(buffer.terminated[slots] | buffer.truncated[slots]) & buffer.has_trans[nxt]


def gather_windows(buffer: ReplayBuffer, anchors: np.ndarray, obs_horizon: int, chunk: int) -> WindowBatch:
    """The WindowBatch anchored at these transition slots (see window_slots)."""
    if obs_horizon < 1 or chunk < 1:
        raise ValueError(f"obs_horizon and chunk must be >= 1, got {obs_horizon} and {chunk}")
    obs_slots, obs_mask, action_slots, action_mask = window_slots(buffer, anchors, obs_horizon, chunk)
    frames = {k: v[obs_slots] for k, v in buffer.frames.items()}
    return WindowBatch(flat_to_obs(frames), buffer.action[action_slots], obs_mask, action_mask)


# ---- chunk transitions ---------------------------------------------------------------------------


def chunk_return(
    rewards: np.ndarray, mask: np.ndarray, terminated: np.ndarray, gamma: float
) -> tuple[np.ndarray, np.ndarray]:
    """The chunk TD target's parts: rewards float[B, h] of a chunk's ticks, mask bool[B, h] (True
    for the ticks it ran, a prefix), terminated bool[B] (its last tick ended the episode by
    termination) -> (return float32[B] = sum_k gamma^k r_k over the ticks run, discount float32[B]
    = gamma^(ticks run), 0 where terminated). The target is return + discount * V(observation
    after the chunk), as agents/sac.td_target computes it: no bootstrap inside the chunk."""
    weights = np.where(mask, gamma ** np.arange(rewards.shape[1]), 0.0)
    ret = (weights * rewards).sum(1)
    discount = np.where(terminated, 0.0, gamma ** mask.sum(1))
    return ret.astype(np.float32), discount.astype(np.float32)


def decision_slots(
    buffer: ReplayBuffer, anchors: np.ndarray, max_ticks: int
) -> tuple[np.ndarray, np.ndarray]:
    """The ticks of the decision each anchor step belongs to: (slots int64[B, max_ticks] from its
    first tick on, padded with the last; mask bool[B, max_ticks], True for its ticks). A decision
    whose first tick was overwritten in the ring starts at its oldest stored tick."""
    same = np.ones(len(anchors), bool)
    start = anchors.copy()
    for _ in range(max_ticks - 1):  # back while the previous step is the episode's, same action
        prev, linked = _previous_step(buffer, start)
        same &= linked
        same[same] &= np.all(buffer.action[prev[same]] == buffer.action[start[same]], axis=1)
        start = np.where(same, prev, start)
    slots = np.empty((len(anchors), max_ticks), np.int64)
    mask = np.ones((len(anchors), max_ticks), bool)
    cur, real = start.copy(), np.ones(len(anchors), bool)
    slots[:, 0] = cur
    for k in range(1, max_ticks):  # on while the episode goes on with the same action
        nxt, goes_on = _next_step(buffer, cur)
        real &= goes_on
        real[real] &= np.all(buffer.action[nxt[real]] == buffer.action[start[real]], axis=1)
        cur = np.where(real, nxt, cur)
        slots[:, k], mask[:, k] = cur, real
    return slots, mask


def gather_chunks(buffer: ReplayBuffer, anchors: np.ndarray, max_ticks: int) -> Batch:
    """The chunk transitions of the decisions these transition slots belong to, as a Batch: obs
    at each decision's first tick, its action, reward and discount from chunk_return (at the
    buffer's gamma), next_obs after its last tick."""
    if max_ticks < 1:
        raise ValueError(f"max_ticks must be >= 1, got {max_ticks}")
    slots, mask = decision_slots(buffer, anchors, max_ticks)
    last = slots[np.arange(len(slots)), mask.sum(1) - 1]
    reward, discount = chunk_return(buffer.reward[slots], mask, buffer.terminated[last], buffer.gamma)
    return buffer.batch_at(slots[:, 0], buffer.next_slot[last], reward, discount)
