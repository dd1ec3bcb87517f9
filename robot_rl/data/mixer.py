"""Online/demo batch mixing, RLPD style: a fixed share of every batch comes from demonstrations."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import replace
from typing import Any

import numpy as np

from robot_rl.data.replay import ReplayBuffer
from robot_rl.data.windows import WindowBatch
from robot_rl.transition import Batch


def _concat(a: Any, b: Any) -> Any:
    """Concatenate two batch fields along the batch axis (recursing into the obs dicts)."""
    if isinstance(a, dict):
        return {k: _concat(a[k], b[k]) for k in a}
    return np.concatenate([a, b])


class DemoMixer:
    """Symmetric sampling (RLPD): round(B * demo_ratio) transitions from demo, the rest online.

    Human interventions go into the demo buffer as well as online (as in HIL-SERL), so they are
    oversampled the same way demos are. When one buffer is empty the whole batch comes from the
    other, so learning can start from demos alone or without any demos.
    """

    def __init__(
        self,
        online: ReplayBuffer,
        demo: ReplayBuffer | None,
        demo_ratio: float = 0.5,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        """lock: held while iterate(), iterate_windows() and iterate_chunks() draw a batch, when
        another thread adds episodes to the buffers under it (the learner's ingest)."""
        if not 0.0 <= demo_ratio <= 1.0:
            raise ValueError(f"demo_ratio must be in [0, 1], got {demo_ratio}")
        self.online = online
        self.demo = demo
        self.demo_ratio = demo_ratio
        self.lock = lock or contextlib.nullcontext()

    def split(self, batch_size: int) -> tuple[int, int]:
        """(n_online, n_demo) for one batch given what the buffers hold now."""
        n_online_avail = len(self.online)
        n_demo_avail = len(self.demo) if self.demo is not None else 0
        if n_online_avail == 0 and n_demo_avail == 0:
            raise ValueError("cannot sample: the online and demo buffers are both empty")
        if n_demo_avail == 0:
            return batch_size, 0
        if n_online_avail == 0:
            return 0, batch_size
        n_demo = round(batch_size * self.demo_ratio)
        return batch_size - n_demo, n_demo

    def sample(self, batch_size: int) -> Batch:
        """One batch of B transitions, demo rows after online rows (see ReplayBuffer.sample)."""
        return self._mixed(batch_size, ReplayBuffer.sample)

    def sample_chunks(self, batch_size: int, max_ticks: int) -> Batch:
        """One batch of B chunk transitions split as sample() splits transitions (see
        ReplayBuffer.sample_chunks)."""
        return self._mixed(batch_size, lambda buffer, n: buffer.sample_chunks(n, max_ticks))

    def iterate_chunks(self, batch_size: int, max_ticks: int) -> Iterator[Batch]:
        """Endless chunk-transition batches, for agents whose critic backs up whole decisions."""
        while True:
            with self.lock:
                batch = self.sample_chunks(batch_size, max_ticks)
            yield batch

    def _mixed(self, batch_size: int, draw: Callable[[ReplayBuffer, int], Batch]) -> Batch:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n_online, n_demo = self.split(batch_size)
        if n_demo == 0:
            return replace(draw(self.online, n_online), demo=np.zeros(n_online, dtype=bool))
        assert self.demo is not None
        if n_online == 0:
            return replace(draw(self.demo, n_demo), demo=np.ones(n_demo, dtype=bool))
        a, b = draw(self.online, n_online), draw(self.demo, n_demo)
        return Batch(
            obs=_concat(a.obs, b.obs),
            action=_concat(a.action, b.action),
            reward=_concat(a.reward, b.reward),
            next_obs=_concat(a.next_obs, b.next_obs),
            discount=_concat(a.discount, b.discount),
            demo=np.arange(n_online + n_demo) >= n_online,
        )

    def iterate(self, batch_size: int) -> Iterator[Batch]:
        """Endless batches, sampled lazily (what agent.update() consumes)."""
        while True:
            with self.lock:
                batch = self.sample(batch_size)
            yield batch

    def sample_windows(self, batch_size: int, obs_horizon: int, chunk: int) -> WindowBatch:
        """One batch of B windows split as sample() splits transitions, demo rows after online rows
        (see ReplayBuffer.sample_windows)."""
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        n_online, n_demo = self.split(batch_size)
        if n_demo == 0:
            return self.online.sample_windows(n_online, obs_horizon, chunk)
        assert self.demo is not None
        demo = self.demo.sample_windows(n_demo, obs_horizon, chunk)
        if n_online == 0:
            return demo
        online = self.online.sample_windows(n_online, obs_horizon, chunk)
        return WindowBatch(
            obs=_concat(online.obs, demo.obs),
            action=_concat(online.action, demo.action),
            obs_mask=_concat(online.obs_mask, demo.obs_mask),
            action_mask=_concat(online.action_mask, demo.action_mask),
        )

    def iterate_windows(self, batch_size: int, obs_horizon: int, chunk: int) -> Iterator[WindowBatch]:
        """Endless window batches, for agents that act on an observation history in action chunks."""
        while True:
            with self.lock:
                batch = self.sample_windows(batch_size, obs_horizon, chunk)
            yield batch
