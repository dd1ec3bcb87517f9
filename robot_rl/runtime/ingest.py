"""Learner-side ingest: chunks -> replay buffers and the learner's replay store, exactly once.

Each actor's steps arrive in seq order and are held until their episode ends; the whole episode
then enters the replay buffers and the learner's replay store together, so after a crash the
learner knows, from the store alone, the seq up to which it holds everything. A chunk that
starts below the next expected seq is trimmed (already ingested); one that starts above it is an
error (a gap would lose data).

Steps a person acted on (intervened) also go to the demo buffer, as in HIL-SERL. An episode a
person re-recorded (its last chunk says so) is stored flagged, its steps counted like any other
(the seq accounting and the learner's UTD see every env step), but enters neither buffer, now or
when a restarted learner refills them from the store.
"""

from __future__ import annotations

import contextlib
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.replay import ReplayBuffer
from robot_rl.runtime.transport import ActorRestarted, TransitionChunk
from robot_rl.transition import IMAGE_PREFIX


def _is_obs_key(key: str) -> bool:
    return key == "state" or key.startswith(IMAGE_PREFIX)


@dataclass
class _ActorStream:
    next_seq: int
    rows: list[dict[str, np.ndarray]] = field(default_factory=list)  # the episode in progress


class Ingest:
    def __init__(
        self,
        online: ReplayBuffer,
        demo: ReplayBuffer | None,
        store: EpisodeStore,
        refill: bool = True,
        lock: AbstractContextManager[Any] | None = None,
    ) -> None:
        """Where each actor resumes comes from the replay store's actor_id and seq columns alone;
        refill=False leaves refilling the buffers from the whole store to a later refill() (a
        restarted learner opens its port first). lock: held while an episode enters the buffers
        (the training thread samples under the same lock)."""
        self.online = online
        self.demo = demo
        self.store = store
        self.lock = lock or contextlib.nullcontext()
        self.streams: dict[int, _ActorStream] = {}
        self.received = 0  # env steps ingested in this process's life, all actors
        self.duplicates_dropped = 0
        self.forgotten = 0  # steps of episodes an actor lost when it restarted mid-episode
        self.rerecorded_episodes = 0  # in the replay store, flagged, kept out of the buffers
        self.rerecorded_steps = 0
        self._read_cursors()
        if refill:
            self.refill()

    def _read_cursors(self) -> None:
        """Each actor's next seq from the store's small columns, not its images."""
        n = self.store.n_steps
        columns = self.store.steps(0, n, keys=("actor_id", "seq")) if n else {}
        if "actor_id" not in columns:
            return
        actors, seqs = columns["actor_id"], columns.get("seq")
        for actor_id in np.unique(actors):
            mine = np.flatnonzero(actors == actor_id)
            # by seq, not by count: episodes set aside as damaged leave a gap, not a renumbering
            next_seq = int(seqs[mine[-1]]) + 1 if seqs is not None else len(mine)
            self.streams[int(actor_id)] = _ActorStream(next_seq=next_seq)

    def refill(self) -> None:
        """Refill the buffers from the replay store (a resumed learner) without re-committing."""
        for episode, (steps, final_obs) in enumerate(self.store.episodes()):
            n = len(steps["reward"])
            if self.store.rerecorded(episode):
                self._count_rerecorded(n)
            else:
                self._add_to_buffers([{k: v[i] for k, v in steps.items()} for i in range(n)], final_obs)

    @property
    def env_steps(self) -> int:
        """Steps held, all actors: committed episodes plus the episodes in progress."""
        return sum(s.next_seq for s in list(self.streams.values()))  # list(): another thread may add one

    def next_seq(self, actor_id: int) -> int:
        """The first step of this actor the learner does not hold."""
        return self.streams.setdefault(actor_id, _ActorStream(next_seq=0)).next_seq

    def committed_seq(self, actor_id: int) -> int:
        """The first step of this actor that is not in the replay store (where a restart resumes)."""
        stream = self.streams.get(actor_id)
        return 0 if stream is None else stream.next_seq - len(stream.rows)

    def add(self, item: TransitionChunk | ActorRestarted) -> int:
        """Ingest one chunk; returns the number of new steps."""
        if isinstance(item, ActorRestarted):
            self.forget_from(item.actor_id, item.seq)
            return 0
        chunk = item
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
        self.duplicates_dropped += skip
        n = len(chunk)
        for i in range(skip, n):
            if chunk.seq + i == chunk.episode_start and stream.rows:
                raise RuntimeError("a new episode started before the previous one ended")
            row = {k: v[i] for k, v in chunk.rows.items()}
            row["actor_id"] = np.int64(chunk.actor_id)
            row["seq"] = np.int64(chunk.seq + i)
            stream.rows.append(row)
        stream.next_seq = chunk.seq + n
        if chunk.ends_episode:
            if chunk.rerecorded:
                self._count_rerecorded(len(stream.rows))
            else:
                self._add_to_buffers(stream.rows, chunk.final_obs or None)
            steps = {k: np.stack([r[k] for r in stream.rows]) for k in stream.rows[0]}
            self.store.append_episode(steps, chunk.final_obs or None, chunk.rerecorded)
            stream.rows = []
        self.received += n - skip
        return n - skip

    def forget_from(self, actor_id: int, seq: int) -> None:
        """The actor restarted and no longer has its steps from `seq` on: drop them here too.

        Only steps of the episode in progress can go: the actor stores an episode before it
        sends its end, so anything committed here is in the actor's store.
        """
        stream = self.streams.setdefault(actor_id, _ActorStream(next_seq=0))
        committed = stream.next_seq - len(stream.rows)
        if seq < committed:
            raise RuntimeError(
                f"actor {actor_id} says it holds {seq} steps but the replay store has {committed} of it"
            )
        if seq < stream.next_seq:
            self.forgotten += stream.next_seq - seq
            stream.rows = stream.rows[: seq - committed]
            stream.next_seq = seq

    def _count_rerecorded(self, steps: int) -> None:
        self.rerecorded_episodes += 1
        self.rerecorded_steps += steps

    def _add_to_buffers(
        self, rows: list[dict[str, np.ndarray]], final_obs: dict[str, np.ndarray] | None
    ) -> None:
        """One whole episode into the online buffer, and its intervened segments into the demo buffer.

        Episodes enter the buffers only once complete, so a partial one that an actor lost (a
        restart mid-episode) never has to be taken back out.
        """
        with self.lock:
            self._add_steps(rows, final_obs)

    def _add_steps(self, rows: list[dict[str, np.ndarray]], final_obs: dict[str, np.ndarray] | None) -> None:
        self.online.start_episode(_obs(rows[0]))
        in_demo_segment = False
        for i, prev in enumerate(rows):
            if i + 1 < len(rows):
                next_obs = _obs(rows[i + 1])
            elif final_obs:
                next_obs = final_obs
            elif bool(prev["terminated"]):
                next_obs = _obs(prev)  # no next observation needed: no bootstrap past a terminal
            else:
                break  # an episode stored without its last observation: its last step has no target
            args = (
                prev["action"],
                float(prev["reward"]),
                next_obs,
                bool(prev["terminated"]),
                bool(prev["truncated"]),
            )
            self.online.add(*args)
            if self.demo is None:
                continue
            if bool(prev["intervened"]):
                if not in_demo_segment:
                    self.demo.start_episode(_obs(prev))
                    in_demo_segment = True
                self.demo.add(*args)
            else:
                in_demo_segment = False


def _obs(row: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {k: v for k, v in row.items() if _is_obs_key(k)}
