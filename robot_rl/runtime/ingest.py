"""Learner-side ingest: chunks -> replay buffers and the learner's replay store, exactly once.

Each actor's steps arrive in seq order. A chunk that starts below the next expected seq is
trimmed (already ingested); one that starts above it is an error (a gap would lose data). Whole
episodes are committed to the learner's replay store, so after a crash the learner knows, from
the store alone, the seq up to which it holds everything.

Steps a person acted on (intervened) also go to the demo buffer, as in HIL-SERL.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.replay import ReplayBuffer
from robot_rl.runtime.transport import TransitionChunk
from robot_rl.types import IMAGE_PREFIX


def _is_obs_key(key: str) -> bool:
    return key == "state" or key.startswith(IMAGE_PREFIX)


@dataclass
class _ActorStream:
    next_seq: int
    rows: list[dict[str, np.ndarray]] = field(default_factory=list)  # the episode in progress
    in_demo_segment: bool = False


class Ingest:
    def __init__(self, online: ReplayBuffer, demo: ReplayBuffer | None, store: EpisodeStore) -> None:
        self.online = online
        self.demo = demo
        self.store = store
        self.streams: dict[int, _ActorStream] = {}
        self.received = 0  # env steps ingested in this process's life, all actors
        self.duplicates_dropped = 0
        self._restore()

    def _restore(self) -> None:
        """Refill the buffers from the replay store (a resumed learner) without re-committing."""
        for steps, final_obs in self.store.episodes():
            n = len(steps["reward"])
            actor_id = int(steps["actor_id"][0])
            stream = self.streams.setdefault(actor_id, _ActorStream(next_seq=0))
            for i in range(n):
                self._add_row(stream, {k: v[i] for k, v in steps.items()}, first=i == 0)
            self._end_episode(stream, final_obs, commit=False)
            stream.next_seq += n

    @property
    def env_steps(self) -> int:
        """Steps held, all actors: committed episodes plus the episodes in progress."""
        return sum(s.next_seq for s in self.streams.values())

    def next_seq(self, actor_id: int) -> int:
        """The first step of this actor the learner does not hold."""
        return self.streams.setdefault(actor_id, _ActorStream(next_seq=0)).next_seq

    def committed_seq(self, actor_id: int) -> int:
        """The first step of this actor that is not in the replay store (where a restart resumes)."""
        stream = self.streams.get(actor_id)
        return 0 if stream is None else stream.next_seq - len(stream.rows)

    def add(self, chunk: TransitionChunk) -> int:
        """Ingest one chunk; returns the number of new steps."""
        expected = self.next_seq(chunk.actor_id)
        stream = self.streams[chunk.actor_id]
        skip = expected - chunk.seq
        if skip >= len(chunk):
            self.duplicates_dropped += len(chunk)
            return 0
        if skip < 0:
            raise RuntimeError(
                f"actor {chunk.actor_id}: expected step {expected}, got {chunk.seq}: steps missing"
            )
        if skip > 0:
            self.duplicates_dropped += skip
        n = len(chunk)
        for i in range(skip, n):
            row = {k: v[i] for k, v in chunk.rows.items()}
            row["actor_id"] = np.int64(chunk.actor_id)
            row["seq"] = np.int64(chunk.seq + i)
            first = chunk.seq + i == chunk.episode_start
            self._add_row(stream, row, first)
        if chunk.ends_episode:
            self._end_episode(stream, chunk.final_obs or None)
        stream.next_seq = chunk.seq + n
        self.received += n - skip
        return n - skip

    def _add_row(self, stream: _ActorStream, row: dict[str, np.ndarray], first: bool) -> None:
        obs = {k: v for k, v in row.items() if _is_obs_key(k)}
        if first:
            if stream.rows:
                raise RuntimeError("a new episode started before the previous one ended")
            self.online.start_episode(obs)
        else:
            self._link(stream, stream.rows[-1], obs)
        stream.rows.append(row)

    def _link(
        self, stream: _ActorStream, prev: dict[str, np.ndarray], next_obs: dict[str, np.ndarray]
    ) -> None:
        """The transition of `prev` is complete once the next observation is known."""
        args = (
            prev["action"],
            float(prev["reward"]),
            next_obs,
            bool(prev["terminated"]),
            bool(prev["truncated"]),
        )
        self.online.add(*args)
        if self.demo is None:
            return
        if bool(prev["intervened"]):
            if not stream.in_demo_segment:
                self.demo.start_episode({k: v for k, v in prev.items() if _is_obs_key(k)})
                stream.in_demo_segment = True
            self.demo.add(*args)
        else:
            stream.in_demo_segment = False

    def _end_episode(
        self, stream: _ActorStream, final_obs: dict[str, np.ndarray] | None, commit: bool = True
    ) -> None:
        last = stream.rows[-1]
        if final_obs:
            self._link(stream, last, final_obs)
        elif bool(last["terminated"]):
            # no next observation needed: the target does not bootstrap past a terminal
            self._link(stream, last, {k: v for k, v in last.items() if _is_obs_key(k)})
        if commit:
            steps = {k: np.stack([r[k] for r in stream.rows]) for k in stream.rows[0]}
            self.store.append_episode(steps, final_obs or None)
        stream.rows = []
        stream.in_demo_segment = False
