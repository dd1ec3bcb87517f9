"""The learner's intake: a restarted learner knows where each actor resumes from its store's seq
column alone, opens its port and takes the actors' steps while it re-reads the store, and trains
only once it has; transitions reach the buffers on the intake's thread."""

from __future__ import annotations

import queue
import threading
import time
from types import SimpleNamespace
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from robot_rl.agents.sac import SACConfig
from robot_rl.config import DemoConfig, SimEnvConfig, TrainConfig, TransportConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.replay import ReplayBuffer
from robot_rl.runtime.ingest import Ingest
from robot_rl.runtime.intake import Intake
from robot_rl.runtime.learner import Learner, LearnerShared
from robot_rl.runtime.net.client import GrpcActorTransport
from robot_rl.runtime.net.codec import spaces_json
from robot_rl.runtime.net.server import GrpcLearnerTransport
from robot_rl.runtime.transport import TransitionChunk, take_from_queue

pytestmark = pytest.mark.timeout(120)

STATE_DIM, ACT_DIM, EPISODE = 3, 2, 5
SPEC = {"state": ((STATE_DIM,), np.dtype(np.float32))}
OBS_SPACE = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)})
ACT_SPACE = gym.spaces.Box(-1, 1, (ACT_DIM,), np.float32)
TOKEN = "intake-token"


def _episode(actor_id: int, seq: int, n: int = EPISODE) -> TransitionChunk:
    """One whole episode of n steps from step `seq`, its state marking the seq."""
    rows = {
        "state": np.repeat(np.arange(seq, seq + n, dtype=np.float32)[:, None], STATE_DIM, 1),
        "action": np.zeros((n, ACT_DIM), np.float32),
        "policy_action": np.zeros((n, ACT_DIM), np.float32),
        "reward": np.zeros(n, np.float32),
        "terminated": np.zeros(n, bool),
        "truncated": np.arange(n) == n - 1,
        "intervened": np.zeros(n, bool),
        "policy_version": np.zeros(n, np.int64),
        "t_obs": np.zeros(n, np.float64),
    }
    return TransitionChunk(actor_id, seq, seq, rows, {"state": np.full(STATE_DIM, seq + n, np.float32)})


def _buffers() -> tuple[ReplayBuffer, ReplayBuffer]:
    return ReplayBuffer(1000, SPEC, ACT_DIM), ReplayBuffer(1000, SPEC, ACT_DIM)


def _stored(path, episodes: dict[int, int]) -> None:
    """A replay store holding `episodes[actor]` whole episodes of each actor, interleaved."""
    ingest = Ingest(*_buffers(), EpisodeStore(path, mode="a"))
    for k in range(max(episodes.values())):
        for actor_id, n in episodes.items():
            if k < n:
                ingest.add(_episode(actor_id, k * EPISODE))


def test_cursors_come_from_the_seq_column_before_any_refill(tmp_path):
    _stored(tmp_path / "replay.zarr", {0: 3, 7: 2})
    online, demo = _buffers()
    lazy = Ingest(online, demo, EpisodeStore(tmp_path / "replay.zarr", mode="a"), refill=False)
    assert {a: lazy.committed_seq(a) for a in lazy.streams} == {0: 3 * EPISODE, 7: 2 * EPISODE}
    assert lazy.env_steps == 5 * EPISODE and len(online) == 0  # nothing read into the buffers yet
    lazy.refill()
    eager = Ingest(*_buffers(), EpisodeStore(tmp_path / "replay.zarr", mode="a"))
    assert len(online) == len(eager.online) == 5 * EPISODE
    assert {a: lazy.next_seq(a) for a in (0, 7)} == {a: eager.next_seq(a) for a in (0, 7)}


class _Queue:
    """The learner end of a transport: a queue the test puts chunks in."""

    def __init__(self) -> None:
        self.q: queue.Queue = queue.Queue()

    def receive(self, max_chunks: int, timeout_s: float) -> list[Any]:
        return take_from_queue(self.q, max_chunks, timeout_s)


def _wait_for(pred: Any, what: str, timeout_s: float = 30.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_the_intake_refills_first_then_ingests_what_arrived_meanwhile(tmp_path):
    _stored(tmp_path / "replay.zarr", {0: 2})
    store = EpisodeStore(tmp_path / "replay.zarr", mode="a")
    ingest = Ingest(*_buffers(), store, refill=False)
    gate, transport = threading.Event(), _Queue()

    def slow_refill() -> None:
        assert gate.wait(10), "the test never opened the gate"
        ingest.refill()

    intake = Intake(ingest, transport, refill=slow_refill)
    intake.start()
    for k in (2, 3):  # the actor sends on from where the store ends
        transport.q.put(_episode(0, k * EPISODE))
    assert not intake.wait_for_steps(0.2) and not intake.loaded.is_set()
    assert store.n_steps == 2 * EPISODE and len(ingest.online) == 0  # nothing taken before the refill
    gate.set()
    _wait_for(lambda: store.n_steps == 4 * EPISODE, "the chunks that waited to be ingested")
    assert intake.loaded.is_set() and len(ingest.online) == 4 * EPISODE
    np.testing.assert_array_equal(store.steps(0, store.n_steps)["seq"], np.arange(4 * EPISODE))
    intake.stop()
    intake.raise_if_failed()


def test_an_intake_failure_is_raised_on_the_training_thread_as_it_was(tmp_path):
    ingest = Ingest(*_buffers(), EpisodeStore(tmp_path / "replay.zarr", mode="a"))
    transport = _Queue()
    intake = Intake(ingest, transport, refill=lambda: None)
    intake.start()
    transport.q.put(_episode(0, 10))  # steps 0..9 never came: a gap
    _wait_for(lambda: intake.error is not None, "the gap to stop the intake")
    with pytest.raises(RuntimeError, match="steps missing"):
        intake.raise_if_failed()
    intake.stop()


def test_a_restarted_learner_takes_steps_while_it_re_reads_its_store_and_trains_after(tmp_path, monkeypatch):
    run_dir = tmp_path / "learner"
    _stored(run_dir / "replay.zarr", {0: 3})
    gate = threading.Event()
    refill = Ingest.refill

    def held_refill(self: Ingest) -> None:
        assert gate.wait(60), "the test never opened the gate"
        refill(self)

    monkeypatch.setattr(Ingest, "refill", held_refill)
    transport_cfg = TransportConfig(kind="grpc", listen="127.0.0.1:0", token=TOKEN, heartbeat_s=0.2)
    cfg = TrainConfig(
        env=SimEnvConfig(task="pick_cube"),
        agent=SACConfig(hidden_dims=[32], batch_size=8, utd=1),
        demos=DemoConfig(source="none", num_episodes=0),
        transport=transport_cfg,
        learning_starts=1,
        device="cpu",
    )
    spaces = spaces_json(OBS_SPACE, ACT_SPACE)
    server = GrpcLearnerTransport(transport_cfg, run_dir, spaces, TOKEN)
    shared = LearnerShared(
        threading.Event(), SimpleNamespace(value=0), SimpleNamespace(value=-1), queue.Queue(maxsize=1000)
    )
    learner = Learner(cfg, run_dir, server, shared, OBS_SPACE, ACT_SPACE)
    assert server.port > 0  # the port is open before the store is re-read
    worker = threading.Thread(target=learner.run, daemon=True)
    worker.start()
    actor_cfg = TransportConfig(kind="grpc", learner=f"127.0.0.1:{server.port}", token=TOKEN, heartbeat_s=0.2)
    actor = GrpcActorTransport(actor_cfg, 0, spaces, TOKEN, recorded_steps=3 * EPISODE)
    try:
        _wait_for(actor.connected, "the actor to connect")
        assert actor.take_rewind() == 3 * EPISODE  # from the store's seq column
        assert actor.send(_episode(0, 3 * EPISODE))
        _wait_for(lambda: actor.pending() == 0, "the learner to accept the episode")
        assert [a["steps"] for a in server.actors()] == [EPISODE]
        assert learner.calls == 0 and len(learner.online) == 0  # no training on a store not yet read
        gate.set()
        _wait_for(lambda: learner.calls > 0, "training once the store is read")
        assert learner.intake.loaded.is_set() and learner.ingest.env_steps == 4 * EPISODE
    finally:
        gate.set()
        shared.stop.set()
        worker.join(timeout=60)
        actor.close(final_beat=False)
        server.close(grace_s=0.1)
    assert not worker.is_alive()
    assert EpisodeStore(run_dir / "replay.zarr", mode="r").n_steps == 4 * EPISODE
