"""In-memory replay buffer for the learner: each frame stored once, images kept uint8.

Frames (observations) live in one ring of `capacity` slots, written in order. A transition is
stored at the slot of its observation frame and points at its next frame, so an episode of T
steps with a final observation costs T + 1 frames, not 2T. Writing a frame invalidates the
transition stored at that slot and the one whose next frame it was, so a transition whose frames
were overwritten is never sampled.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from typing import Any

import numpy as np

from robot_rl.data.windows import WindowBatch, gather_chunks, gather_windows
from robot_rl.transition import IMAGE_PREFIX, Batch, flat_to_obs

ObsSpec = Mapping[str, tuple[tuple[int, ...], np.dtype]]
_MAX_REJECTION_ROUNDS = 32


def _check_fits_in_memory(
    capacity: int, spec: dict[str, tuple[tuple[int, ...], np.dtype]], action_dim: int
) -> None:
    """Refuse a buffer larger than the machine's memory up front, not with an OOM kill hours in."""
    per_slot = (
        sum(int(np.prod(shape)) * dtype.itemsize for shape, dtype in spec.values()) + 4 * action_dim + 32
    )
    need = capacity * per_slot
    try:
        total = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not every platform reports it
        return
    if need > total:
        raise ValueError(
            f"a replay buffer of {capacity:,} frames needs {need / 2**30:.1f} GiB but this machine has "
            f"{total / 2**30:.1f} GiB; lower replay.capacity"
        )


class ReplayBuffer:
    """Ring buffer of frames plus (obs_frame, next_frame) transitions with n-step returns.

    Args:
        capacity: frame slots (an episode of T steps takes T + 1 of them).
        obs_spec: {"state": ((D,), float32), "image_<cam>": ((H, W, 3), uint8)}.
        action_dim: A.
        gamma: discount per step.
        n_step: steps summed per sampled transition (stopping early at an episode's end).
        seed: sampling RNG seed.
    """

    def __init__(
        self,
        capacity: int,
        obs_spec: ObsSpec,
        action_dim: int,
        gamma: float = 0.99,
        n_step: int = 1,
        seed: int | None = None,
    ) -> None:
        if capacity < 2:
            raise ValueError(f"capacity must be >= 2 frames, got {capacity}")
        if n_step < 1:
            raise ValueError(f"n_step must be >= 1, got {n_step}")
        if not 0.0 <= gamma <= 1.0:
            raise ValueError(f"gamma must be in [0, 1], got {gamma}")
        if "state" not in obs_spec:
            raise ValueError(f"obs_spec needs a 'state' key, got {sorted(obs_spec)}")
        for key in obs_spec:
            if key != "state" and not key.startswith(IMAGE_PREFIX):
                raise ValueError(f"obs_spec key {key!r} is neither 'state' nor '{IMAGE_PREFIX}<camera>'")
        self.capacity = capacity
        self.spec = {k: (tuple(shape), np.dtype(dtype)) for k, (shape, dtype) in obs_spec.items()}
        self.action_dim = action_dim
        self.gamma = gamma
        self.n_step = n_step
        self.rng = np.random.default_rng(seed)

        _check_fits_in_memory(capacity, self.spec, action_dim)
        self.frames = {k: np.zeros((capacity, *shape), dtype) for k, (shape, dtype) in self.spec.items()}
        # transition stored at the slot of its observation frame
        self.has_trans = np.zeros(capacity, bool)
        self.next_slot = np.zeros(capacity, np.int64)
        self.prev_slot = np.full(capacity, -1, np.int64)  # transition whose next frame is this slot
        self.action = np.zeros((capacity, action_dim), np.float32)
        self.reward = np.zeros(capacity, np.float32)
        self.terminated = np.zeros(capacity, bool)
        self.truncated = np.zeros(capacity, bool)
        self._head = 0  # next slot to write
        self._frames_written = 0
        self._n_valid = 0
        self._last_slot = -1  # frame of the online episode's current observation; -1 between episodes

    @classmethod
    def obs_spec_from_space(cls, obs_space: Any) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
        """Spec from a gymnasium Dict {"state": Box, "images": Dict{cam: Box}} (images optional)."""
        spaces = obs_space.spaces
        spec = {"state": (tuple(spaces["state"].shape), np.dtype(spaces["state"].dtype))}
        if "images" in spaces:
            for cam, box in spaces["images"].spaces.items():
                spec[IMAGE_PREFIX + cam] = (tuple(box.shape), np.dtype(np.uint8))
        return spec

    def __len__(self) -> int:
        """Transitions that can be sampled now."""
        return self._n_valid

    @property
    def n_frames(self) -> int:
        """Frames currently held (at most capacity)."""
        return min(self._frames_written, self.capacity)

    # ------------------------------------------------------------------ writing
    def start_episode(self, obs_flat: Mapping[str, np.ndarray]) -> None:
        """Store the first observation of an online episode ({"state": [D], "image_<cam>": [H, W, 3]})."""
        frame = self._check_obs(obs_flat, batch=False, what="obs")
        self._last_slot = int(self._write_frames({k: v[None] for k, v in frame.items()})[0])

    def add(
        self,
        action: np.ndarray,
        reward: float,
        next_obs_flat: Mapping[str, np.ndarray],
        terminated: bool,
        truncated: bool,
    ) -> None:
        """Store the next frame and the transition from the current one; ends the episode if done."""
        if self._last_slot < 0:
            raise RuntimeError(
                "ReplayBuffer.add() without a current episode: call start_episode() first "
                "(an episode ends at terminated/truncated, or when its frame is overwritten)"
            )
        action = np.asarray(action, np.float32)
        if action.shape != (self.action_dim,):
            raise ValueError(f"action has shape {action.shape}, expected ({self.action_dim},)")
        frame = self._check_obs(next_obs_flat, batch=False, what="next_obs")
        obs_slot = np.array([self._last_slot])
        next_slot = self._write_frames({k: v[None] for k, v in frame.items()})
        self._set_transitions(
            obs_slot,
            next_slot,
            action[None],
            np.array([reward]),
            np.array([terminated]),
            np.array([truncated]),
        )
        self._last_slot = -1 if (terminated or truncated) else int(next_slot[0])

    def add_episode(self, steps: Mapping[str, np.ndarray], final_obs: Mapping[str, np.ndarray] | None) -> int:
        """Add a whole episode in the store's format; return the transitions added.

        steps: "state" [T, D], "image_<cam>" [T, H, W, 3], "action" [T, A], "reward" [T],
        "terminated" [T], "truncated" [T] (other keys ignored). final_obs: the observation after the
        last step, or None: then the last step is dropped unless it terminated (its next frame is
        then never used, so the last observation stands in for it).
        """
        obs = self._check_obs({k: v for k, v in steps.items() if k in self.spec}, batch=True, what="steps")
        t = len(obs["state"])
        action = np.asarray(steps["action"], np.float32)
        reward = np.asarray(steps["reward"], np.float32)
        terminated = np.asarray(steps["terminated"], bool)
        truncated = np.asarray(steps["truncated"], bool)
        for key, value, shape in [
            ("action", action, (t, self.action_dim)),
            ("reward", reward, (t,)),
            ("terminated", terminated, (t,)),
            ("truncated", truncated, (t,)),
        ]:
            if value.shape != shape:
                raise ValueError(f"steps[{key!r}] has shape {value.shape}, expected {shape}")
        if final_obs is not None:
            last = self._check_obs(final_obs, batch=False, what="final_obs")
        elif t and terminated[-1]:
            last = {k: v[-1] for k, v in obs.items()}
        else:
            t -= 1  # no next observation for the last step
            last = {k: v[-1] for k, v in obs.items()}
        if t <= 0:
            return 0
        if t + 1 > self.capacity:
            raise ValueError(f"episode of {t + 1} frames does not fit a buffer of {self.capacity} frames")
        frames = {k: np.concatenate([v[:t], last[k][None]]) for k, v in obs.items()}
        slots = self._write_frames(frames)
        self._set_transitions(slots[:-1], slots[1:], action[:t], reward[:t], terminated[:t], truncated[:t])
        return t

    def _check_obs(self, obs: Mapping[str, Any], batch: bool, what: str) -> dict[str, np.ndarray]:
        """Arrays cast to the spec's dtypes, or ValueError naming the bad key."""
        missing, extra = set(self.spec) - set(obs), set(obs) - set(self.spec)
        if missing or extra:
            raise ValueError(f"{what} keys: missing {sorted(missing)}, unexpected {sorted(extra)}")
        out = {}
        length = None
        for key, (shape, dtype) in self.spec.items():
            value = np.asarray(obs[key])
            got = value.shape[1:] if batch else value.shape
            if value.ndim < len(shape) + batch or got != shape:
                raise ValueError(
                    f"{what}[{key!r}] has shape {value.shape}, expected {'[T] + ' * batch}{shape}"
                )
            # images must already be uint8 (a float image is a bug upstream); other keys may change
            # precision (float64 state -> float32) but not kind
            ok = value.dtype == dtype if dtype == np.uint8 else np.can_cast(value.dtype, dtype, "same_kind")
            if not ok:
                raise ValueError(f"{what}[{key!r}] has dtype {value.dtype}, expected {dtype}")
            if batch and length is not None and len(value) != length:
                raise ValueError(f"{what}[{key!r}] has {len(value)} rows, other keys {length}")
            length = len(value) if batch else None
            out[key] = value.astype(dtype, copy=False)
        return out

    def _write_frames(self, frames: Mapping[str, np.ndarray]) -> np.ndarray:
        """Write N frames at the head of the ring; return their slots int64[N]."""
        n = len(frames["state"])
        slots = (self._head + np.arange(n)) % self.capacity
        # invalidate transitions that used these slots as their observation ...
        self._n_valid -= int(self.has_trans[slots].sum())
        self.has_trans[slots] = False
        # ... or as their next frame
        prev = self.prev_slot[slots]
        owner = prev >= 0
        prev, targets = prev[owner], slots[owner]
        lost = prev[self.has_trans[prev] & (self.next_slot[prev] == targets)]
        self._n_valid -= len(lost)
        self.has_trans[lost] = False
        self.prev_slot[slots] = -1
        if self._last_slot >= 0 and np.any(slots == self._last_slot):
            self._last_slot = -1  # the online episode's current frame is gone: its next add() fails loudly
        for key, value in frames.items():
            self.frames[key][slots] = value
        self._head = int((self._head + n) % self.capacity)
        self._frames_written += n
        return slots

    def _set_transitions(
        self,
        obs_slots: np.ndarray,
        next_slots: np.ndarray,
        action: np.ndarray,
        reward: np.ndarray,
        terminated: np.ndarray,
        truncated: np.ndarray,
    ) -> None:
        """Record transitions obs_slots[i] -> next_slots[i] (all arrays [N, ...])."""
        self.next_slot[obs_slots] = next_slots
        self.prev_slot[next_slots] = obs_slots
        self.action[obs_slots] = action
        self.reward[obs_slots] = reward
        self.terminated[obs_slots] = terminated
        self.truncated[obs_slots] = truncated
        self._n_valid += int((~self.has_trans[obs_slots]).sum())
        self.has_trans[obs_slots] = True

    # ------------------------------------------------------------------ sampling
    def sample(self, batch_size: int) -> Batch:
        """B uniformly drawn transitions with n-step returns (numpy Batch, see robot_rl.transition.Batch).

        obs / next_obs: {"state": float32[B, D], "images": {cam: uint8[B, H, W, 3]}};
        action float32[B, A]; reward float32[B] (sum of gamma^k r); discount float32[B].
        """
        slots = self._sample_slots(batch_size)
        reward, next_slots, discount = self._n_step(slots)
        return self.batch_at(slots, next_slots, reward, discount)

    def batch_at(
        self, slots: np.ndarray, next_slots: np.ndarray, reward: np.ndarray, discount: np.ndarray
    ) -> Batch:
        """The Batch from the transitions at these slots int64[B] to the frames at next_slots
        int64[B], with this reward and discount float32[B]."""
        return Batch(
            obs=flat_to_obs({k: v[slots] for k, v in self.frames.items()}),
            action=self.action[slots],
            reward=reward,
            next_obs=flat_to_obs({k: v[next_slots] for k, v in self.frames.items()}),
            discount=discount,
        )

    def sample_windows(self, batch_size: int, obs_horizon: int, chunk: int) -> WindowBatch:
        """B windows anchored at uniformly drawn transitions: the T_obs observations up to the
        anchor and the T_act = chunk actions from it, within its episode, padded with the first
        observation / last action and masked (robot_rl/data/windows.py)."""
        return gather_windows(self, self._sample_slots(batch_size), obs_horizon, chunk)

    def sample_chunks(self, batch_size: int, max_ticks: int) -> Batch:
        """B chunk transitions, each the decision (a run of steps with one stored action, at most
        max_ticks) a uniformly drawn step belongs to, backed up over its ticks at once: reward the
        chunk's discounted return, discount gamma^ticks (robot_rl/data/windows.py). n_step is not
        used: the chunk is the multi-step return."""
        return gather_chunks(self, self._sample_slots(batch_size), max_ticks)

    def _sample_slots(self, batch_size: int) -> np.ndarray:
        if self._n_valid == 0:
            raise ValueError("cannot sample from an empty ReplayBuffer")
        # Rejection sampling over the written slots is uniform over valid transitions and avoids
        # an O(capacity) scan per batch; almost every slot holds a transition (one frame per
        # episode does not).
        slots = self.rng.integers(0, self.n_frames, batch_size)
        for _ in range(_MAX_REJECTION_ROUNDS):
            bad = ~self.has_trans[slots]
            if not bad.any():
                return slots
            slots[bad] = self.rng.integers(0, self.n_frames, int(bad.sum()))
        bad = ~self.has_trans[slots]
        if bad.any():  # very sparse buffer (e.g. mostly one-step episodes): draw from the valid set
            slots[bad] = self.rng.choice(np.flatnonzero(self.has_trans), int(bad.sum()))
        return slots

    def _n_step(self, slots: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Vectorised n-step targets: (reward float32[B], next frame slots int64[B], discount float32[B])."""
        ret = np.zeros(len(slots), np.float64)
        active = np.ones(len(slots), bool)
        terminal = np.zeros(len(slots), bool)
        used = np.zeros(len(slots), np.int64)
        cur = slots.copy()
        next_slots = self.next_slot[slots]
        for k in range(self.n_step):
            if k:
                # follow the chain while the next transition exists (same episode, not overwritten)
                cur = np.where(active, self.next_slot[cur], cur)
                active &= self.has_trans[cur]
            ret += np.where(active, self.gamma**k * self.reward[cur], 0.0)
            next_slots = np.where(active, self.next_slot[cur], next_slots)
            used += active
            terminal |= active & self.terminated[cur]
            active &= ~(self.terminated[cur] | self.truncated[cur])
            if not active.any():
                break
        discount = np.where(terminal, 0.0, self.gamma**used)
        return ret.astype(np.float32), next_slots, discount.astype(np.float32)
