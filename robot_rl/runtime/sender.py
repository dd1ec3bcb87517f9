"""The actor's outbox: every step goes to the learner exactly once, in order, without blocking.

Finished episodes are appended to the actor's own episode store first; that store is the source
of truth. Steps are sent live while the channel has room, `live_steps` at a time (the learner
trains on whole episodes only, so holding a few back delays nothing, and one message per step
cost the learner more than the step itself; an episode's last steps go at once). When the
channel is full, the actor keeps acting and the sender catches up later from the store, so
waiting steps never pile up in memory (only the episode in progress is held, as it must be until
it ends).

A re-recorded episode (a person pressed re-record) is sent like any other, its steps numbered by
seq, and the chunk that ends it carries the flag: the learner stores it flagged and trains on
none of it. Its steps cannot be skipped instead: most of them went out live before the person
pressed the button, and the exactly-once accounting must never skip a number.
"""

from __future__ import annotations

import numpy as np

from robot_rl.data.episode_store import EpisodeStore
from robot_rl.runtime.transport import ActorTransport, TransitionChunk


class TransitionSender:
    def __init__(
        self,
        transport: ActorTransport,
        store: EpisodeStore,
        actor_id: int,
        next_seq: int,
        chunk_steps: int,
        live_steps: int = 1,
    ) -> None:
        if chunk_steps < 1 or live_steps < 1:
            raise ValueError(f"chunk_steps and live_steps must be >= 1, got {chunk_steps} and {live_steps}")
        if next_seq > store.n_steps:
            raise ValueError(
                f"the learner expects step {next_seq} but the actor store holds only {store.n_steps} steps"
            )
        self.transport = transport
        self.store = store
        self.actor_id = actor_id
        self.next_seq = next_seq  # first step the learner has not received
        self.chunk_steps = chunk_steps
        self.live_steps = live_steps
        self._rows: list[dict[str, np.ndarray]] = []  # the episode in progress
        self.full_events = 0  # how often the channel pushed back

    @property
    def episode_start(self) -> int:
        return self.store.n_steps

    @property
    def backlog(self) -> int:
        """Steps recorded but not yet handed to the transport."""
        return self.store.n_steps + len(self._rows) - self.next_seq

    def add_step(
        self, row: dict[str, np.ndarray], final_obs: dict[str, np.ndarray] | None, rerecorded: bool = False
    ) -> None:
        """Record one step; final_obs given when the step ends the episode (rerecorded: a person
        asked for it again, so it is stored flagged and trained on by nobody)."""
        self._rows.append(row)
        if final_obs is not None:
            steps = {k: np.stack([r[k] for r in self._rows]) for k in self._rows[0]}
            self.store.append_episode(steps, final_obs, rerecorded)
            self._rows = []
        self.flush(final_obs)

    def rewind(self, seq: int) -> None:
        """Send again from `seq`: the learner lost what came after it (a restart or a cut link)."""
        recorded = self.store.n_steps + len(self._rows)
        if not 0 <= seq <= recorded:
            raise RuntimeError(
                f"the learner holds {seq} steps of actor {self.actor_id} but this actor recorded "
                f"{recorded}: a wrong actor_id, or an actor store from another run"
            )
        self.next_seq = seq

    def flush(self, final_obs: dict[str, np.ndarray] | None = None, whole: bool = False) -> None:
        """Send the store's backlog, then the live steps, until the channel is full (whole: the
        live steps however few, as before exiting with an episode in progress)."""
        rewind = self.transport.take_rewind()
        if rewind is not None:
            self.rewind(rewind)
        while self.next_seq < self.store.n_steps:
            if not self._send_from_store():
                return
        live_from = self.next_seq - self.episode_start
        if 0 <= live_from < len(self._rows) and (whole or len(self._rows) - live_from >= self.live_steps):
            rows = self._rows[live_from:]
            chunk = TransitionChunk(
                self.actor_id,
                self.next_seq,
                self.episode_start,
                {k: np.stack([r[k] for r in rows]) for k in rows[0]},
            )
            self._try_send(chunk)

    def _send_from_store(self) -> bool:
        ends = self.store.episode_ends
        episode = int(np.searchsorted(ends, self.next_seq, side="right"))
        start = int(ends[episode - 1]) if episode > 0 else 0
        stop = min(int(ends[episode]), self.next_seq + self.chunk_steps)
        ends_episode = stop == int(ends[episode])
        final = self.store.final_obs(episode) if ends_episode else None
        if ends_episode and final is None:
            final = {}  # an episode stored without its last observation still ends here
        chunk = TransitionChunk(
            self.actor_id, self.next_seq, start, self.store.steps(self.next_seq, stop), final,
            rerecorded=ends_episode and self.store.rerecorded(episode),
        )  # fmt: skip
        return self._try_send(chunk)

    def _try_send(self, chunk: TransitionChunk) -> bool:
        if self.transport.send(chunk):
            self.next_seq += len(chunk)
            return True
        self.full_events += 1
        return False
