"""Every step an actor records reaches the learner exactly once, whatever the channel does."""

import numpy as np
import pytest

from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.replay import ReplayBuffer
from robot_rl.runtime.ingest import Ingest
from robot_rl.runtime.sender import TransitionSender
from robot_rl.runtime.transport import TransitionChunk

STATE_DIM, ACT_DIM = 3, 2
SPEC = {"state": ((STATE_DIM,), np.dtype(np.float32))}


class FlakyChannel:
    """A channel that refuses messages while `open` is False, like a full queue."""

    def __init__(self) -> None:
        self.open = True
        self.sent: list[TransitionChunk] = []

    def send(self, chunk: TransitionChunk) -> bool:
        if self.open:
            self.sent.append(chunk)
        return self.open

    def take_rewind(self) -> int | None:
        return None

    def take(self) -> list[TransitionChunk]:
        out, self.sent = self.sent, []
        return out


def _row(seq: int, done: bool) -> dict[str, np.ndarray]:
    return {
        "state": np.full(STATE_DIM, seq, np.float32),
        "action": np.full(ACT_DIM, seq % 7 / 7, np.float32),
        "policy_action": np.zeros(ACT_DIM, np.float32),
        "reward": np.float32(seq),
        "terminated": np.bool_(done and seq % 2 == 0),
        "truncated": np.bool_(done and seq % 2 == 1),
        "intervened": np.bool_(seq % 5 == 0),
        "policy_version": np.int64(0),
        "t_obs": np.float64(seq),
    }


def _act(
    sender: TransitionSender, channel: FlakyChannel, ingest: Ingest, rng, n_steps: int, seq0: int
) -> None:
    """Record n_steps steps in episodes of random length while the channel opens and closes."""
    seq = seq0
    for _ in range(n_steps):
        channel.open = rng.random() > 0.4
        done = rng.random() < 0.15
        sender.add_step(
            _row(seq, done), {"state": np.full(STATE_DIM, seq + 0.5, np.float32)} if done else None
        )
        seq += 1
        if rng.random() < 0.5:
            for chunk in channel.take():
                ingest.add(chunk)


def _finish(sender: TransitionSender, channel: FlakyChannel, ingest: Ingest) -> None:
    channel.open = True
    sender.flush()
    for chunk in channel.take():
        ingest.add(chunk)


def _make(tmp_path, next_seq=None, live_steps=1):
    actor_store = EpisodeStore(tmp_path / "actor.zarr", mode="a")
    replay_store = EpisodeStore(tmp_path / "replay.zarr", mode="a")
    online = ReplayBuffer(10_000, SPEC, ACT_DIM)
    demo = ReplayBuffer(10_000, SPEC, ACT_DIM)
    ingest = Ingest(online, demo, replay_store)
    channel = FlakyChannel()
    seq = ingest.committed_seq(0) if next_seq is None else next_seq
    sender = TransitionSender(channel, actor_store, 0, seq, chunk_steps=4, live_steps=live_steps)
    return actor_store, replay_store, online, demo, ingest, channel, sender


def test_every_step_arrives_exactly_once(tmp_path):
    rng = np.random.default_rng(0)
    actor_store, replay_store, online, demo, ingest, channel, sender = _make(tmp_path)
    _act(sender, channel, ingest, rng, 400, 0)
    sender.add_step(_row(400, True), {"state": np.zeros(STATE_DIM, np.float32)})  # end the last episode
    _finish(sender, channel, ingest)
    assert sender.backlog == 0
    assert replay_store.n_steps == actor_store.n_steps == 401
    got = replay_store.steps(0, replay_store.n_steps)
    np.testing.assert_array_equal(got["seq"], np.arange(401))
    np.testing.assert_array_equal(got["reward"], actor_store.steps(0, 401)["reward"])
    np.testing.assert_array_equal(replay_store.episode_ends, actor_store.episode_ends)
    # each step is a transition once its next observation is known, all episodes are closed here
    assert len(online) == 401
    assert len(demo) == int(np.count_nonzero(got["intervened"]))


@pytest.mark.parametrize("live_steps", [3, 8])
def test_live_steps_go_several_at_a_time_and_every_step_arrives_once(tmp_path, live_steps):
    rng = np.random.default_rng(1)
    actor_store, replay_store, _, _, ingest, channel, sender = _make(tmp_path, live_steps=live_steps)
    for seq in range(live_steps - 1):  # fewer than live_steps of an episode: held
        sender.add_step(_row(seq, False), None)
    assert channel.take() == [] and sender.backlog == live_steps - 1
    sender.flush(whole=True)  # as before exiting mid-episode: however few
    (chunk,) = channel.take()
    assert (chunk.seq, len(chunk)) == (0, live_steps - 1) and sender.backlog == 0
    ingest.add(chunk)
    for seq in range(live_steps - 1, 2 * live_steps - 1):  # live_steps more: sent together
        sender.add_step(_row(seq, False), None)
    (chunk,) = channel.take()
    assert (chunk.seq, len(chunk)) == (live_steps - 1, live_steps) and not chunk.ends_episode
    ingest.add(chunk)
    end = 2 * live_steps - 1
    sender.add_step(_row(end, True), {"state": np.zeros(STATE_DIM, np.float32)})  # the end: at once
    (chunk,) = channel.take()
    assert (chunk.seq, len(chunk), chunk.ends_episode) == (end, 1, True)
    ingest.add(chunk)
    _act(sender, channel, ingest, rng, 300, end + 1)  # with outages, as in the test above
    sender.add_step(_row(end + 301, True), {"state": np.zeros(STATE_DIM, np.float32)})
    _finish(sender, channel, ingest)
    got = replay_store.steps(0, replay_store.n_steps)
    np.testing.assert_array_equal(got["seq"], np.arange(actor_store.n_steps))
    np.testing.assert_array_equal(replay_store.episode_ends, actor_store.episode_ends)


def test_sender_refuses_non_positive_chunk_sizes(tmp_path):
    store = EpisodeStore(tmp_path / "actor.zarr", mode="a")
    with pytest.raises(ValueError, match="live_steps must be >= 1"):
        TransitionSender(FlakyChannel(), store, 0, 0, chunk_steps=4, live_steps=0)


def test_resent_chunks_are_dropped_and_gaps_refused(tmp_path):
    _, replay_store, online, _, ingest, channel, sender = _make(tmp_path)
    for seq in range(6):
        sender.add_step(_row(seq, seq == 5), {"state": np.zeros(STATE_DIM, np.float32)} if seq == 5 else None)
    chunks = channel.take()
    for chunk in chunks:
        ingest.add(chunk)
    for chunk in chunks:  # the same messages again, as after a reconnect
        assert ingest.add(chunk) == 0
    assert ingest.duplicates_dropped == 6 and replay_store.n_steps == 6 and len(online) == 6
    gap = TransitionChunk(0, 9, 9, {k: v[None] for k, v in _row(9, False).items()})
    with pytest.raises(RuntimeError, match="missing"):
        ingest.add(gap)


def test_learner_restart_resumes_from_its_store(tmp_path):
    """A learner that lost its memory rebuilds from replay.zarr; the actor resends from there."""
    rng = np.random.default_rng(1)
    actor_store, _, _, _, ingest, channel, sender = _make(tmp_path)
    _act(sender, channel, ingest, rng, 150, 0)
    n_actor = actor_store.n_steps + len(sender._rows)
    del ingest  # the learner dies; whatever it held only in memory is gone

    _, replay_store2, online2, _, ingest2, channel2, _ = _make(tmp_path)
    restart = ingest2.committed_seq(0)
    assert restart == replay_store2.n_steps  # whole episodes only
    assert len(online2) == replay_store2.n_steps  # buffers refilled from the store
    sender.transport, sender.next_seq = channel2, restart  # the actor reconnects
    _act(sender, channel2, ingest2, rng, 100, n_actor)
    sender.add_step(_row(n_actor + 100, True), {"state": np.zeros(STATE_DIM, np.float32)})
    _finish(sender, channel2, ingest2)
    got = EpisodeStore(tmp_path / "replay.zarr", mode="r")
    np.testing.assert_array_equal(got.steps(0, got.n_steps)["seq"], np.arange(actor_store.n_steps))


def test_sender_refuses_a_cursor_past_its_store(tmp_path):
    with pytest.raises(ValueError, match="holds only"):
        _make(tmp_path, next_seq=5)


def _act_with_rerecords(sender, channel, ingest, rng, n_steps: int) -> list[bool]:
    """Like _act, with every third episode re-recorded; returns each episode's flag."""
    flags = []
    for seq in range(n_steps):
        channel.open = rng.random() > 0.4
        done = rng.random() < 0.15 or seq == n_steps - 1
        rerecord = done and len(flags) % 3 == 1
        final = {"state": np.full(STATE_DIM, seq + 0.5, np.float32)} if done else None
        sender.add_step(_row(seq, done), final, rerecorded=rerecord)
        if done:
            flags.append(rerecord)
        if rng.random() < 0.5:
            for chunk in channel.take():
                ingest.add(chunk)
    _finish(sender, channel, ingest)
    return flags


def _trained_counts(store: EpisodeStore) -> tuple[int, int]:
    """(steps, intervened steps) of the store's episodes that are not re-recorded."""
    steps = intervened = 0
    for i in range(store.n_episodes):
        if not store.rerecorded(i):
            ep = store.episode(i)
            steps += len(ep["reward"])
            intervened += int(np.count_nonzero(ep["intervened"]))
    return steps, intervened


def test_rerecorded_episodes_are_stored_flagged_and_never_trained_on(tmp_path):
    """Re-record keeps the episode in both stores, flagged, out of both buffers; every step still
    arrives exactly once (seq has no gap), and a restarted learner leaves it out too."""
    rng = np.random.default_rng(3)
    actor_store, replay_store, online, demo, ingest, channel, sender = _make(tmp_path)
    flags = _act_with_rerecords(sender, channel, ingest, rng, 300)
    assert sum(flags) >= 3 and sender.backlog == 0
    assert [actor_store.rerecorded(i) for i in range(actor_store.n_episodes)] == flags
    assert [replay_store.rerecorded(i) for i in range(replay_store.n_episodes)] == flags
    np.testing.assert_array_equal(replay_store.steps(0, replay_store.n_steps)["seq"], np.arange(300))
    trained, intervened = _trained_counts(replay_store)
    assert trained < 300 and intervened > 0
    assert (len(online), len(demo)) == (trained, intervened)
    assert ingest.rerecorded_episodes == sum(flags)
    assert ingest.rerecorded_steps == 300 - trained
    assert ingest.env_steps == 300  # the learner's step (and UTD) accounting sees every step

    restarted = Ingest(ReplayBuffer(10_000, SPEC, ACT_DIM), ReplayBuffer(10_000, SPEC, ACT_DIM), replay_store)
    assert (len(restarted.online), len(restarted.demo)) == (trained, intervened)
    assert (restarted.rerecorded_episodes, restarted.committed_seq(0)) == (sum(flags), 300)


def test_rerecord_flag_crosses_the_local_queue(tmp_path):
    """The local transport (a multiprocessing queue: the chunk is pickled) keeps the flag."""
    from robot_rl.runtime.transport import LocalTransport

    transport = LocalTransport(tmp_path / "w.pt", queue_chunks=64)
    actor_store, replay_store, online, _, ingest, _, _ = _make(tmp_path)
    sender = TransitionSender(transport, actor_store, 0, 0, chunk_steps=4)
    for episode, rerecord in enumerate((False, True, False)):
        for t in range(5):
            seq, done = 5 * episode + t, t == 4
            final = {"state": np.zeros(STATE_DIM, np.float32)} if done else None
            sender.add_step(_row(seq, done), final, rerecorded=rerecord and done)
    for _ in range(100):  # the queue's feeder thread hands chunks over a few at a time
        for item in transport.receive(max_chunks=64, timeout_s=0.1):
            ingest.add(item)
        if ingest.env_steps == 15:
            break
    assert replay_store.n_steps == 15 and sender.backlog == 0
    assert [replay_store.rerecorded(i) for i in range(3)] == [False, True, False]
    assert len(online) == 10 and ingest.rerecorded_episodes == 1
