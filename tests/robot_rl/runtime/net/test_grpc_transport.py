"""The gRPC transport on loopback: every step an actor records reaches the learner's replay store
exactly once, whatever the network, the learner or a misbehaving peer does, and the learner keeps
serving. Each test drives a real server and real clients; a learner thread drains the server into
an Ingest as the learner does, and the test's thread acts through a TransitionSender.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import grpc
import gymnasium as gym
import numpy as np
import pytest
import torch
from net_proxy import CUT_MODES, TcpProxy, find_free_port

from robot_rl.config import TransportConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.replay import ReplayBuffer
from robot_rl.runtime.ingest import Ingest
from robot_rl.runtime.net import protocol_pb2 as pb
from robot_rl.runtime.net.client import GrpcActorTransport, TransportFailed, split_to_fit
from robot_rl.runtime.net.codec import PROTOCOL_VERSION, SERVICE, decode_chunk, encode_chunk, spaces_json
from robot_rl.runtime.net.security import call_metadata
from robot_rl.runtime.net.server import GrpcLearnerTransport
from robot_rl.runtime.sender import TransitionSender
from robot_rl.runtime.transport import TransitionChunk, WeightsId

pytestmark = pytest.mark.timeout(90)  # a hang fails the test instead of the whole run

TOKEN = "test-token"
STATE_DIM, ACT_DIM, IMG = 3, 2, (16, 16, 3)
OBS_SPACE = gym.spaces.Dict(
    {
        "state": gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32),
        "images": gym.spaces.Dict({"wrist": gym.spaces.Box(0, 255, IMG, np.uint8)}),
    }
)
ACT_SPACE = gym.spaces.Box(-1, 1, (ACT_DIM,), np.float32)
SPACES = spaces_json(OBS_SPACE, ACT_SPACE)
OBS_SPEC = {"state": ((STATE_DIM,), np.dtype(np.float32)), "image_wrist": (IMG, np.dtype(np.uint8))}
BOUND_S = 20.0  # generous: only there so a broken transport fails instead of hanging


def _cfg(**overrides) -> TransportConfig:
    base = {
        "kind": "grpc",
        "listen": "127.0.0.1:0",
        "token": TOKEN,
        "heartbeat_s": 0.2,
        "lost_after_s": 0.8,
        "reconnect_max_s": 0.5,
        "call_timeout_s": 1.0,
        "max_message_mb": 1,
        "chunk_steps": 8,
    }
    return TransportConfig(**(base | overrides))


def _wait_until(pred: Callable[[], bool], what: str, timeout_s: float = BOUND_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not pred():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.01)


def _row(actor_id: int, seq: int, done: bool, salt: float = 0.0) -> dict[str, np.ndarray]:
    image = ((np.arange(np.prod(IMG)) + 7 * seq + 100 * actor_id) % 256).astype(np.uint8).reshape(IMG)
    return {
        "state": np.full(STATE_DIM, seq, np.float32),
        "image_wrist": image,
        "action": np.full(ACT_DIM, (seq % 7) / 7, np.float32),
        "policy_action": np.zeros(ACT_DIM, np.float32),
        "reward": np.float32(seq),
        "terminated": np.bool_(done and seq % 2 == 0),
        "truncated": np.bool_(done and seq % 2 == 1),
        "intervened": np.bool_(seq % 5 == 0),
        "policy_version": np.int64(actor_id),
        "t_obs": np.float64(seq + salt),
    }


def _final(seq: int) -> dict[str, np.ndarray]:
    return {"state": np.full(STATE_DIM, seq + 0.5, np.float32), "image_wrist": np.zeros(IMG, np.uint8)}


class Learner:
    """The learner's side: a server, and a thread that drains it into an Ingest and replay store."""

    def __init__(self, cfg: TransportConfig, run_dir: Path, delay_s: float = 0.0) -> None:
        self.store = EpisodeStore(run_dir / "replay.zarr", mode="a")
        online = ReplayBuffer(20_000, OBS_SPEC, ACT_DIM)
        demo = ReplayBuffer(20_000, OBS_SPEC, ACT_DIM)
        self.ingest = Ingest(online, demo, self.store)  # restored from the store, as on a restart
        self.server = GrpcLearnerTransport(cfg, run_dir, SPACES, TOKEN)
        self.server.start({a: self.ingest.committed_seq(a) for a in self.ingest.streams})
        self.delay_s = delay_s
        self.paused = threading.Event()  # set: the learner loop drains nothing
        self.errors: list[BaseException] = []
        self.lock = threading.Lock()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="learner-loop", daemon=True)
        self._thread.start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.server.port}"

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self.paused.is_set():
                time.sleep(0.01)
                continue
            for chunk in self.server.receive(max_chunks=8, timeout_s=0.05):
                try:
                    with self.lock:
                        self.ingest.add(chunk)
                except Exception as err:  # the test reports it
                    self.errors.append(err)
                if self.delay_s:
                    time.sleep(self.delay_s)

    def holds(self, actor_id: int) -> int:
        with self.lock:
            stream = self.ingest.streams.get(actor_id)
            return 0 if stream is None else stream.next_seq

    def rows_of(self, actor_id: int) -> tuple[dict[str, np.ndarray], list[tuple[int, int]]]:
        """The actor's steps the learner holds (replay store, then the episode in progress),
        and its committed episodes as (first seq, length)."""
        with self.lock:
            n = self.store.n_steps
            stored = self.store.steps(0, n) if n else {}
            ends = self.store.episode_ends
            stream = self.ingest.streams.get(actor_id)
            live = list(stream.rows) if stream is not None else []
        parts = []
        if n:
            mine = stored["actor_id"] == actor_id
            parts.append({k: v[mine] for k, v in stored.items()})
        if live:
            parts.append({k: np.stack([r[k] for r in live]) for k in live[0]})
        if not parts:
            return {"seq": np.zeros(0, np.int64)}, []
        rows = {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}
        episodes = [
            (int(stored["seq"][s]), e - s)
            for s, e in zip([0, *ends[:-1].tolist()], ends.tolist(), strict=True)
            if int(stored["actor_id"][s]) == actor_id
        ]
        return rows, episodes

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5.0)
        self.server.close(grace_s=0.2)


class Actor:
    """The actor's side: records synthetic steps, in episodes of random length, through a sender."""

    def __init__(
        self,
        cfg: TransportConfig,
        actor_id: int,
        store: EpisodeStore,
        seed: int = 0,
        token: str = TOKEN,
        spaces: str = SPACES,
        salt: float = 0.0,
    ) -> None:
        self.actor_id = actor_id
        self.salt = salt  # tells this actor process's steps from another's at the same seq
        self.transport = GrpcActorTransport(cfg, actor_id, spaces, token, recorded_steps=store.n_steps)
        self.store = store
        self.sender = TransitionSender(self.transport, store, actor_id, 0, cfg.chunk_steps)
        self.rng = np.random.default_rng(seed)
        self.recorded = store.n_steps
        self.in_episode = False
        self._closed = False

    def act(self, n_steps: int, pace_s: float = 0.002) -> None:
        for _ in range(n_steps):
            self.transport.raise_if_failed()
            seq = self.recorded
            done = self.rng.random() < 0.06
            self.sender.add_step(_row(self.actor_id, seq, done, self.salt), _final(seq) if done else None)
            self.recorded += 1
            self.in_episode = not done
            time.sleep(pace_s)

    def end_episode(self) -> None:
        if self.in_episode:
            seq = self.recorded
            self.sender.add_step(_row(self.actor_id, seq, True, self.salt), _final(seq))
            self.recorded += 1
            self.in_episode = False

    def finish(self, learner: Learner, timeout_s: float = BOUND_S) -> None:
        """End the episode in progress, then send until the learner holds every step."""
        self.end_episode()
        deadline = time.monotonic() + timeout_s
        while learner.holds(self.actor_id) < self.recorded or self.sender.backlog:
            self.transport.raise_if_failed()
            assert not learner.errors, learner.errors
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"actor {self.actor_id}: learner holds {learner.holds(self.actor_id)} of "
                    f"{self.recorded} steps after {timeout_s} s; backlog {self.sender.backlog}, "
                    f"{self.transport.stats()}"
                )
            self.sender.flush()
            time.sleep(0.01)

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self.transport.close()


def assert_exactly_once(learner: Learner, actor: Actor) -> None:
    """Every step the actor recorded is held by the learner once, with its content, in its episode."""
    assert not learner.errors, learner.errors
    rows, episodes = learner.rows_of(actor.actor_id)
    np.testing.assert_array_equal(rows["seq"], np.arange(actor.recorded))  # none lost, none twice
    sent = actor.store.steps(0, actor.store.n_steps)
    assert actor.store.n_steps == actor.recorded
    for key, value in sent.items():
        np.testing.assert_array_equal(rows[key], value, err_msg=key)
    ends = actor.store.episode_ends.tolist()
    assert episodes == [(s, e - s) for s, e in zip([0, *ends[:-1]], ends, strict=True)]


def assert_serves_fresh_actor(learner: Learner, tmp_path: Path, actor_id: int = 9) -> None:
    """The learner still takes a new actor's steps, exactly once."""
    store = EpisodeStore(tmp_path / f"fresh_{actor_id}_{time.monotonic_ns()}.zarr", mode="a")
    actor = Actor(_cfg(learner=learner.address), actor_id, store, seed=99)
    try:
        actor.act(12, pace_s=0.0)
        actor.finish(learner)
        assert_exactly_once(learner, actor)
    finally:
        actor.close()


@pytest.fixture
def closing() -> Iterator[list]:
    """Things to close at the end of a test, closed last-in first-out (actors before learners)."""
    things: list = []
    yield things
    for thing in reversed(things):
        thing.close()


@pytest.fixture
def make_proxy() -> Iterator[Callable[[int], TcpProxy]]:
    proxies: list[TcpProxy] = []

    def make(target_port: int) -> TcpProxy:
        proxies.append(TcpProxy(target_port))
        return proxies[-1]

    yield make
    for proxy in proxies:
        proxy.close()


def _learner(closing: list, tmp_path: Path, delay_s: float = 0.0, **overrides) -> Learner:
    learner = Learner(_cfg(**overrides), tmp_path / "learner", delay_s=delay_s)
    closing.append(learner)
    return learner


def _actor(closing: list, tmp_path: Path, learner: str, actor_id: int = 0, **kw) -> Actor:
    cfg_overrides = kw.pop("cfg", {})
    store = EpisodeStore(tmp_path / f"actor_{actor_id}.zarr", mode="a")
    actor = Actor(_cfg(learner=learner, **cfg_overrides), actor_id, store, **kw)
    closing.append(actor)
    return actor


def _raw_channel(closing: list, address: str) -> grpc.Channel:
    channel = grpc.insecure_channel(address)
    closing.append(channel)
    return channel


def _raw_connect(channel: grpc.Channel, actor_id: int, version: int = PROTOCOL_VERSION) -> pb.Welcome:
    connect = channel.unary_unary(f"/{SERVICE}/Connect", pb.Hello.SerializeToString, pb.Welcome.FromString)
    hello = pb.Hello(protocol_version=version, actor_id=actor_id, spaces=SPACES, host="raw")
    return connect(hello, timeout=5.0, metadata=call_metadata(TOKEN))


def _raw_push(channel: grpc.Channel, payload: bytes) -> pb.Ack:
    push = channel.unary_unary(f"/{SERVICE}/PushChunk", None, pb.Ack.FromString)  # bytes as they are
    return push(payload, timeout=5.0, metadata=call_metadata(TOKEN))


# ---------------------------------------------------------------- the happy path
def test_round_trip_with_images_and_newest_weights(tmp_path, closing):
    learner = _learner(closing, tmp_path)
    actor = _actor(closing, tmp_path, learner.address)
    _wait_until(actor.transport.connected, "the actor to connect")
    actor.act(80)
    actor.finish(learner)
    assert_exactly_once(learner, actor)
    assert actor.transport.pending() == 0

    learner.server.publish_weights(1, {"w": torch.full((3,), 1.0)})
    assert actor.transport.wait_for_weights(BOUND_S)
    got: list[int] = []

    def newest() -> int:
        update = actor.transport.poll_weights()
        if update is not None:
            got.append(update[0])
            assert torch.equal(update[1]["w"], torch.full((3,), float(update[0])))
        return got[-1] if got else 0

    _wait_until(lambda: newest() == 1, "weights v1")
    for version in (2, 3):
        learner.server.publish_weights(version, {"w": torch.full((3,), float(version))})
    _wait_until(lambda: newest() == 3, "weights v3")
    assert got in ([1, 3], [1, 2, 3])  # newer each time, never twice, v2 only if it came in time
    assert actor.transport.poll_weights() is None  # unchanged since
    assert (tmp_path / "learner" / "weights" / "policy.pt").exists()  # for eval and resume

    actor.transport.report({"env_steps": actor.recorded, "done": True})
    _wait_until(lambda: learner.server.finished_total() == actor.recorded, "the actor's final report")
    (link,) = learner.server.actors()
    assert link["steps"] == actor.recorded
    assert_serves_fresh_actor(learner, tmp_path)


# ---------------------------------------------------------------- the shared copy on the learner's host
def _newest(transport: GrpcActorTransport, version: int) -> dict[str, torch.Tensor]:
    """Poll until the transport holds `version`; its state dict."""
    got: dict[str, torch.Tensor] = {}

    def holds() -> bool:
        update = transport.poll_weights()
        if update is not None and update[0] == version:
            got.update(update[1])
        return bool(got)

    _wait_until(holds, f"weights v{version}")
    return got


def test_actors_on_the_learners_host_read_its_shared_copy_others_get_the_stream(tmp_path, closing):
    learner = _learner(closing, tmp_path)
    shared = _actor(closing, tmp_path, learner.address)
    streamed = _actor(closing, tmp_path, learner.address, actor_id=1, cfg={"shared_weights": False})
    for actor in (shared, streamed):
        _wait_until(actor.transport.connected, "the actors to connect")
    for version in (1, 2, 3):
        learner.server.publish_weights(version, {"w": torch.full((300,), float(version))})
        for actor in (shared, streamed):
            assert torch.equal(_newest(actor.transport, version)["w"], torch.full((300,), float(version)))
    assert shared.transport.counters["weights_shared"] >= 1
    assert shared.transport.counters["weights_streamed"] == 0
    assert streamed.transport.counters["weights_shared"] == 0
    assert streamed.transport.counters["weights_streamed"] >= 1
    folder = learner.server._shared.path
    learner.close()
    assert not folder.exists()  # the learner cleans up its copy


def test_a_shared_copy_that_goes_missing_falls_back_to_the_stream(tmp_path, closing):
    learner = _learner(closing, tmp_path)
    actor = _actor(closing, tmp_path, learner.address)
    _wait_until(actor.transport.connected, "the actor to connect")
    learner.server.publish_weights(1, {"w": torch.ones(4)})
    _newest(actor.transport, 1)
    assert actor.transport.counters["weights_shared"] == 1
    shutil.rmtree(learner.server._shared.path)  # e.g. someone cleaned /dev/shm
    for version in (2, 3):  # the learner goes on publishing; the actor gets every newer one
        learner.server.publish_weights(version, {"w": torch.full((4,), float(version))})
        assert torch.equal(_newest(actor.transport, version)["w"], torch.full((4,), float(version)))
    assert actor.transport.counters["weights_streamed"] >= 1
    assert actor.transport.failure is None
    assert_serves_fresh_actor(learner, tmp_path)


# ---------------------------------------------------------------- refusals
def test_wrong_token_refused_and_the_learner_serves_others(tmp_path, closing):
    learner = _learner(closing, tmp_path)
    intruder = _actor(closing, tmp_path, learner.address, actor_id=3, token="guess")
    _wait_until(lambda: intruder.transport.failure is not None, "the wrong token to be refused")
    assert "UNAUTHENTICATED" in intruder.transport.failure
    assert "wrong or missing transport token" in intruder.transport.failure
    assert not intruder.transport.connected()
    with pytest.raises(TransportFailed, match="UNAUTHENTICATED"):
        intruder.act(1)
    assert learner.server.refused_tokens >= 1
    assert learner.server.actors() == []  # the intruder never became an actor
    # the learner shows who it refused, from where and why, once per connection attempt
    (line, *_) = learner.server.take_refusals()
    assert line.startswith("refused actor 3 from ") and "127.0.0.1" in line
    assert "wrong or missing transport token" in line
    assert learner.server.refused_connections >= 1

    actor = _actor(closing, tmp_path, learner.address)
    actor.act(60)
    actor.finish(learner)
    assert_exactly_once(learner, actor)
    assert_serves_fresh_actor(learner, tmp_path)


def test_wrong_protocol_version_refused_naming_both(tmp_path, closing):
    learner = _learner(closing, tmp_path)
    channel = _raw_channel(closing, learner.address)
    with pytest.raises(grpc.RpcError) as info:
        _raw_connect(channel, actor_id=0, version=99)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert f"learner speaks {PROTOCOL_VERSION}, the actor 99" in info.value.details()
    assert learner.server.actors() == []
    assert_serves_fresh_actor(learner, tmp_path)


def test_other_env_spaces_refused(tmp_path, closing):
    learner = _learner(closing, tmp_path)
    other = spaces_json(OBS_SPACE, gym.spaces.Box(-1, 1, (7,), np.float32))
    actor = _actor(closing, tmp_path, learner.address, actor_id=1, spaces=other)
    _wait_until(lambda: actor.transport.failure is not None, "the other env to be refused")
    assert "FAILED_PRECONDITION" in actor.transport.failure
    assert "the actor's env differs from the learner's" in actor.transport.failure
    assert '"shape": [7]' in actor.transport.failure  # it shows what differs
    with pytest.raises(TransportFailed, match="env differs"):
        actor.transport.wait_for_weights(0.1)
    assert_serves_fresh_actor(learner, tmp_path)


# ---------------------------------------------------------------- hostile bytes
H2_PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"


def _h2_frame(kind: int, flags: int, stream: int, payload: bytes, announce: int | None = None) -> bytes:
    length = len(payload) if announce is None else announce
    return length.to_bytes(3, "big") + bytes([kind, flags]) + stream.to_bytes(4, "big") + payload


def _write_raw(port: int, data: bytes, keep_open: list[socket.socket] | None = None) -> None:
    sock = socket.create_connection(("127.0.0.1", port), timeout=2.0)
    with contextlib.suppress(OSError):  # the server may hang up first
        sock.sendall(data)
    if keep_open is not None:
        keep_open.append(sock)
    else:
        sock.close()


def test_garbage_on_the_port_does_not_stop_the_learner(tmp_path, closing):
    learner = _learner(closing, tmp_path)
    actor = _actor(closing, tmp_path, learner.address)
    actor.act(40)
    rng = np.random.default_rng(0)
    port = learner.server.port
    half_open: list[socket.socket] = []
    _write_raw(port, rng.bytes(65536))
    _write_raw(port, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
    _write_raw(port, H2_PREFACE[:10])
    _write_raw(port, H2_PREFACE + _h2_frame(4, 0, 0, b"\x00\x03", announce=18))  # SETTINGS cut short
    _write_raw(port, H2_PREFACE + _h2_frame(4, 0, 0, b"") + _h2_frame(1, 4, 1, b"\x82\x86", announce=400))
    _write_raw(port, H2_PREFACE + _h2_frame(4, 0, 0, b"") + rng.bytes(5000))
    _write_raw(port, H2_PREFACE + _h2_frame(4, 0, 0, b""), keep_open=half_open)  # never finishes
    try:
        # a truncated protobuf body, through a well-formed gRPC call
        channel = _raw_channel(closing, learner.address)
        welcome = _raw_connect(channel, actor_id=5)
        rows = {k: v[None] for k, v in _row(5, 0, False).items()}
        msg = encode_chunk(TransitionChunk(5, 0, 0, rows), welcome.session, "lz4")
        with pytest.raises(grpc.RpcError) as info:
            _raw_push(channel, msg.SerializeToString()[:-10])
        assert info.value.code() in (grpc.StatusCode.INTERNAL, grpc.StatusCode.INVALID_ARGUMENT)
        # a well-formed message that is not a valid chunk
        msg.rows[0].dtype = "|O"
        with pytest.raises(grpc.RpcError) as info:
            _raw_push(channel, msg.SerializeToString())
        assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "malformed chunk" in info.value.details() and "'|O' is not allowed" in info.value.details()
        assert learner.server.rejected == 1
        # a chunk from a session the learner never gave out
        msg = encode_chunk(TransitionChunk(6, 0, 0, rows), "forged", "lz4")
        with pytest.raises(grpc.RpcError) as info:
            _raw_push(channel, msg.SerializeToString())
        assert info.value.code() == grpc.StatusCode.NOT_FOUND

        actor.act(40)
        actor.finish(learner)
        assert_exactly_once(learner, actor)
        assert learner.holds(5) == 0  # nothing of the malformed chunks was ingested
        assert_serves_fresh_actor(learner, tmp_path)
    finally:
        for sock in half_open:
            sock.close()


# ---------------------------------------------------------------- message size
def test_oversized_message_refused_and_the_learner_serves_on(tmp_path, closing):
    learner = _learner(closing, tmp_path)
    channel = _raw_channel(closing, learner.address)
    welcome = _raw_connect(channel, actor_id=4)
    rows = {k: np.repeat(v[None], 2, axis=0) for k, v in _row(4, 0, False).items()}
    rows["image_wrist"] = np.random.default_rng(0).integers(0, 256, (2, 512, 512, 3), dtype=np.uint8)
    msg = encode_chunk(TransitionChunk(4, 0, 0, rows), welcome.session, "lz4")
    assert msg.ByteSize() > 2**20
    with pytest.raises(grpc.RpcError) as info:
        _raw_push(channel, msg.SerializeToString())
    assert info.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert learner.holds(4) == 0
    assert_serves_fresh_actor(learner, tmp_path)


def _big_chunk(n: int, final: bool, seq: int = 20, start: int = 17) -> TransitionChunk:
    rng = np.random.default_rng(n)
    rows = {k: np.stack([_row(0, seq + i, False)[k] for i in range(n)]) for k in _row(0, 0, False)}
    rows["image_wrist"] = rng.integers(0, 256, (n, 128, 128, 3), dtype=np.uint8)  # ~48 kB, incompressible
    final_obs = {"state": np.ones(STATE_DIM, np.float32), "image_wrist": np.ones((128, 128, 3), np.uint8)}
    return TransitionChunk(0, seq, start, rows, final_obs if final else None)


@pytest.mark.parametrize("final", [True, False])
def test_split_to_fit_keeps_seq_and_episode(final):
    chunk = _big_chunk(13, final)
    limit = 200_000  # four steps' worth
    msgs = split_to_fit(chunk, "s", "lz4", limit)
    assert len(msgs) > 1 and all(m.ByteSize() <= limit for m in msgs)
    pieces = [decode_chunk(m, 2**20) for m in msgs]
    assert [p.seq for p in pieces] == list(np.cumsum([chunk.seq] + [len(p) for p in pieces[:-1]]))
    assert sum(len(p) for p in pieces) == len(chunk)
    assert all(p.episode_start == chunk.episode_start for p in pieces)
    assert all(not p.ends_episode for p in pieces[:-1])  # only the last piece may end the episode
    assert pieces[-1].ends_episode == final
    if final:
        np.testing.assert_array_equal(pieces[-1].final_obs["image_wrist"], chunk.final_obs["image_wrist"])
    for key, value in chunk.rows.items():
        np.testing.assert_array_equal(np.concatenate([p.rows[key] for p in pieces]), value, err_msg=key)


def test_split_to_fit_leaves_a_small_chunk_whole():
    chunk = _big_chunk(2, final=True)
    (msg,) = split_to_fit(chunk, "s", "lz4", 2**20)
    assert decode_chunk(msg, 2**20).ends_episode


def _huge_step() -> TransitionChunk:
    """One step whose image alone is over 1 MB (incompressible)."""
    chunk = _big_chunk(1, final=False, seq=0, start=0)
    chunk.rows["image_wrist"] = np.random.default_rng(1).integers(0, 256, (1, 700, 700, 3), dtype=np.uint8)
    return chunk


def test_one_step_over_the_limit_names_max_message_mb():
    with pytest.raises(
        TransportFailed, match=r"one step is 1\.4 MB, over transport\.max_message_mb=1: raise it"
    ):
        split_to_fit(_huge_step(), "s", "lz4", 2**20)


def test_actor_with_a_step_over_the_limit_stops_with_the_reason(tmp_path, closing):
    learner = _learner(closing, tmp_path)
    actor = _actor(closing, tmp_path, learner.address)
    row = _row(0, 0, False)
    row["image_wrist"] = _huge_step().rows["image_wrist"][0]
    actor.sender.add_step(row, None)

    def failed() -> bool:
        actor.sender.flush()  # handed over once the link is up
        return actor.transport.failure is not None

    _wait_until(failed, "the actor to fail")
    assert "max_message_mb=1" in actor.transport.failure
    with pytest.raises(TransportFailed, match="raise it on both machines"):
        actor.transport.raise_if_failed()
    assert learner.holds(0) == 0
    assert_serves_fresh_actor(learner, tmp_path)


# ---------------------------------------------------------------- a cut link
@pytest.mark.parametrize("mode", CUT_MODES)
def test_cut_link_spools_reconnects_and_loses_nothing(tmp_path, closing, make_proxy, mode):
    learner = _learner(closing, tmp_path)
    proxy: TcpProxy = make_proxy(learner.server.port)
    actor = _actor(closing, tmp_path, proxy.address, seed=1)
    actor.act(40)
    _wait_until(lambda: learner.holds(0) > 0, "steps to arrive before the cut")

    proxy.cut(mode)
    cut_at = time.monotonic()
    lost_at = None
    # A hang bound, not a timing check: heartbeats must notice the cut long before the 10 s call
    # deadline or the 15 s keepalive would; the slack absorbs a busy CI machine.
    margin = 8.0
    bound = actor.transport.cfg.lost_after_s + margin
    while time.monotonic() - cut_at < (1.2 if lost_at else bound + 0.5):  # acting on through the cut
        actor.act(5)
        if lost_at is None and not actor.transport.connected():
            lost_at = time.monotonic()
    assert lost_at is not None, "the actor never noticed the cut"
    assert lost_at - cut_at < bound
    assert actor.transport.counters["losses"] >= 1
    assert learner.holds(0) < actor.recorded  # the steps of the cut wait in the actor's store
    recorded_in_cut = actor.recorded

    proxy.restore()
    _wait_until(actor.transport.connected, "the actor to reconnect by itself")
    assert actor.transport.counters["connects"] >= 2
    actor.act(25)
    actor.finish(learner)
    assert actor.recorded > recorded_in_cut
    assert_exactly_once(learner, actor)
    assert_serves_fresh_actor(learner, tmp_path)


@pytest.mark.parametrize("mode", ["refuse", "stall"])
def test_done_reaches_the_learner_when_the_link_drops_at_the_end(tmp_path, closing, make_proxy, mode):
    """A learner finishes once every actor said it is done: an actor whose link is down as it
    closes reconnects to say so, instead of leaving the learner waiting for ever."""
    learner = _learner(closing, tmp_path)
    proxy: TcpProxy = make_proxy(learner.server.port)
    actor = _actor(closing, tmp_path, proxy.address, seed=2)
    actor.act(30)
    actor.finish(learner)
    proxy.cut(mode)
    _wait_until(lambda: not actor.transport.connected(), "the actor to notice the cut")
    actor.transport.report({"env_steps": actor.recorded, "done": True})
    threading.Timer(0.5, proxy.restore).start()
    actor.close()  # the final beat waits for the link
    assert learner.server.finished_total() == actor.recorded
    assert_exactly_once(learner, actor)


# ---------------------------------------------------------------- human-in-the-loop flags
def test_intervention_flags_and_rerecords_cross_the_wire(tmp_path, closing):
    """intervened, the executed and the proposed action reach the replay store over gRPC, the
    intervened steps (and only they) the demo buffer; a re-recorded episode is stored flagged and
    enters no buffer; every step still arrives exactly once."""
    learner = _learner(closing, tmp_path)
    actor = _actor(closing, tmp_path, learner.address)
    flags = []
    for seq in range(60):  # six episodes of ten steps, the second and fifth re-recorded
        done = seq % 10 == 9
        row = _row(0, seq, done) | {"policy_action": np.full(ACT_DIM, -0.5, np.float32)}
        rerecord = done and seq // 10 in (1, 4)
        actor.sender.add_step(row, _final(seq) if done else None, rerecorded=rerecord)
        actor.recorded += 1
        flags += [rerecord] if done else []
    actor.finish(learner)
    assert_exactly_once(learner, actor)  # every key, intervened and policy_action included
    store = learner.store
    assert [store.rerecorded(i) for i in range(store.n_episodes)] == flags
    trained = [store.episode(i) for i in range(store.n_episodes) if not flags[i]]
    intervened_actions = np.concatenate([ep["action"][ep["intervened"]] for ep in trained])
    demo, online = learner.ingest.demo, learner.ingest.online
    assert len(online) == 40 and len(demo) == len(intervened_actions) > 0
    np.testing.assert_array_equal(demo.action[demo.has_trans], intervened_actions)  # executed, not proposed
    assert (learner.ingest.rerecorded_episodes, learner.ingest.rerecorded_steps) == (2, 20)


def test_split_to_fit_puts_the_rerecord_flag_on_the_last_piece():
    chunk = _big_chunk(13, final=True)
    chunk.rerecorded = True
    pieces = [decode_chunk(m, 2**20) for m in split_to_fit(chunk, "s", "lz4", 200_000)]
    assert [p.rerecorded for p in pieces] == [False] * (len(pieces) - 1) + [True]


# ---------------------------------------------------------------- a learner restart
def test_learner_restart_on_the_same_port(tmp_path, closing):
    port = find_free_port()
    learner = Learner(_cfg(listen=f"127.0.0.1:{port}"), tmp_path / "learner")
    actor = _actor(closing, tmp_path, f"127.0.0.1:{port}", seed=2)
    try:
        actor.act(50)
        deadline = time.monotonic() + BOUND_S
        # die holding part of an episode, so the actor must send some steps again
        while not (actor.in_episode and learner.holds(0) > learner.store.n_steps > 0):
            assert time.monotonic() < deadline, "no episode in progress reached the learner"
            actor.act(1)
        held = learner.holds(0)
    finally:
        learner.close()  # the learner dies: whatever it held only in memory is gone
    actor.act(20)  # and the actor acts on meanwhile
    _wait_until(lambda: not actor.transport.connected(), "the actor to notice")

    learner = _learner(closing, tmp_path, listen=f"127.0.0.1:{port}")  # restored from replay.zarr
    committed = learner.ingest.committed_seq(0)
    assert 0 < committed == learner.store.n_steps < held
    _wait_until(actor.transport.connected, "the actor to reconnect by itself")
    actor.act(60)
    actor.finish(learner)
    assert actor.transport.counters["connects"] >= 2
    (link,) = learner.server.actors()
    assert link["steps"] == actor.recorded - committed  # resent from the committed step, once
    assert_exactly_once(learner, actor)
    assert_serves_fresh_actor(learner, tmp_path)


def test_learner_restarted_while_four_actors_stream(tmp_path, closing):
    """Every actor reconnects by itself and each one's steps are held exactly once."""
    port = find_free_port()
    learner = Learner(_cfg(listen=f"127.0.0.1:{port}"), tmp_path / "learner")
    actors = [_actor(closing, tmp_path, f"127.0.0.1:{port}", actor_id=i, seed=10 + i) for i in range(4)]
    try:
        for _ in range(10):  # all four stream at once, interleaved
            for actor in actors:
                actor.act(4, pace_s=0.0)
        _wait_until(lambda: all(learner.holds(a.actor_id) > 0 for a in actors), "steps from every actor")
    finally:
        learner.close()
    for actor in actors:  # acting on through the outage, into their stores
        actor.act(10, pace_s=0.0)
    learner = _learner(closing, tmp_path, listen=f"127.0.0.1:{port}")
    _wait_until(lambda: all(a.transport.connected() for a in actors), "every actor to reconnect")
    for _ in range(5):
        for actor in actors:
            actor.act(4, pace_s=0.0)
    for actor in actors:
        actor.finish(learner)
        assert actor.transport.counters["connects"] >= 2
        assert_exactly_once(learner, actor)
    assert len(learner.server.actors()) == 4


def test_restarted_learner_weights_are_adopted_at_once(tmp_path, closing):
    """A new learner incarnation's weights replace the held ones even at a lower version number."""
    port = find_free_port()
    learner = Learner(_cfg(listen=f"127.0.0.1:{port}"), tmp_path / "learner")
    actor = _actor(closing, tmp_path, f"127.0.0.1:{port}")
    try:
        learner.server.publish_weights(15, {"w": torch.full((3,), 15.0)}, WeightsId("run", "first"))
        _wait_until(lambda: actor.transport.poll_weights() is not None, "weights v15")
    finally:
        learner.close()
    learner = _learner(closing, tmp_path, listen=f"127.0.0.1:{port}")
    learner.server.publish_weights(3, {"w": torch.full((3,), 3.0)}, WeightsId("run", "second"))
    got: list = []
    _wait_until(lambda: got.append(actor.transport.poll_weights()) or got[-1] is not None, "the new weights")
    version, state = got[-1]
    assert version == 3 and torch.equal(state["w"], torch.full((3,), 3.0))
    # within one incarnation the newest version still wins: an older one is never taken
    learner.server.publish_weights(2, {"w": torch.full((3,), 2.0)}, WeightsId("run", "second"))
    learner.server.publish_weights(4, {"w": torch.full((3,), 4.0)}, WeightsId("run", "second"))
    _wait_until(lambda: got.append(actor.transport.poll_weights()) or got[-1] is not None, "v4")
    assert got[-1][0] == 4


def test_second_learner_on_a_taken_port_refused(tmp_path, closing):
    learner = _learner(closing, tmp_path, listen=f"127.0.0.1:{find_free_port()}")
    other = GrpcLearnerTransport(learner.server.cfg, tmp_path / "other", SPACES, TOKEN)
    try:
        with pytest.raises(OSError, match=r"cannot listen on 127\.0\.0\.1"):
            other.start({})
    finally:
        other.close(grace_s=0.1)
    assert_serves_fresh_actor(learner, tmp_path)


# ---------------------------------------------------------------- several actors
def test_two_actors_at_once_and_a_third_refused(tmp_path, closing):
    learner = _learner(closing, tmp_path, max_actors=2)
    actors = [_actor(closing, tmp_path, learner.address, actor_id=i, seed=10 + i) for i in (0, 1)]
    errors: list[BaseException] = []

    def run(actor: Actor) -> None:
        try:
            actor.act(80)
            actor.finish(learner)
        except BaseException as err:
            errors.append(err)

    threads = [threading.Thread(target=run, args=(a,)) for a in actors]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=2 * BOUND_S)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads)
    for actor in actors:
        assert_exactly_once(learner, actor)

    third = _actor(closing, tmp_path, learner.address, actor_id=2)
    _wait_until(lambda: third.transport.failure is not None, "the third actor to be refused")
    assert "RESOURCE_EXHAUSTED" in third.transport.failure
    assert "max_actors" in third.transport.failure
    assert sorted(a["actor_id"] for a in learner.server.actors()) == [0, 1]

    # a restarted actor 0 (same id, same store) is still served and continues where it was
    actors[0].close()
    again = Actor(_cfg(learner=learner.address), 0, actors[0].store, seed=20)
    closing.append(again)
    again.act(30)
    again.finish(learner)
    assert_exactly_once(learner, again)
    assert_exactly_once(learner, actors[1])


def test_same_actor_id_again_supersedes_the_first(tmp_path, closing):
    learner = _learner(closing, tmp_path)
    first = _actor(closing, tmp_path, learner.address, seed=3)
    first.act(50)
    first.end_episode()  # in the store now, whether the learner has it yet or not
    _wait_until(lambda: learner.holds(0) > 0, "steps from the first")
    # a second process with the same id and the same store (e.g. restarted while the first hung)
    second = Actor(_cfg(learner=learner.address), 0, EpisodeStore(first.store.path, mode="a"), seed=4)
    closing.append(second)
    _wait_until(lambda: first.transport.failure is not None, "the first to be told")
    assert "ABORTED" in first.transport.failure
    assert "actor id 0 connected again" in first.transport.failure
    with pytest.raises(TransportFailed, match="connected again"):
        first.act(1)
    first.close()  # closing a refused actor does not raise
    assert second.transport.failure is None
    assert second.recorded == first.recorded  # the second carries on from the store
    second.act(50)
    second.finish(learner)
    assert_exactly_once(learner, second)
    (link,) = learner.server.actors()
    assert link["connects"] >= 2
    assert_serves_fresh_actor(learner, tmp_path)


def test_actor_killed_mid_episode_is_forgotten_from_there(tmp_path, closing):
    """Its episode in progress died with it: the learner drops the steps of it that it had."""
    learner = _learner(closing, tmp_path)
    first = _actor(closing, tmp_path, learner.address, seed=6)
    first.act(30)
    deadline = time.monotonic() + BOUND_S
    while not (first.in_episode and learner.holds(0) > first.store.n_steps + 1):
        assert time.monotonic() < deadline, "no episode in progress reached the learner"
        first.act(1)
    first.transport.close(final_beat=False)  # killed: its episode in progress is gone
    first._closed = True
    lost = learner.holds(0) - first.store.n_steps

    again = Actor(_cfg(learner=learner.address), 0, first.store, seed=7, salt=0.5)
    closing.append(again)
    again.act(40)
    again.finish(learner)
    assert learner.ingest.forgotten >= lost > 0
    assert_exactly_once(learner, again)  # the steps of the dead episode are nowhere
    assert_serves_fresh_actor(learner, tmp_path)


def test_same_actor_id_with_a_fresh_store_refused_and_the_learner_serves_on(tmp_path, closing):
    """A second robot left at actor_id=0: it cannot hold the steps the learner already has of 0."""
    learner = _learner(closing, tmp_path)
    first = _actor(closing, tmp_path, learner.address, seed=8)
    first.act(40)
    first.finish(learner)
    stranger = Actor(_cfg(learner=learner.address), 0, EpisodeStore(tmp_path / "other.zarr", mode="a"))
    closing.append(stranger)
    _wait_until(lambda: stranger.transport.failure is not None, "the stranger to be refused")
    assert "FAILED_PRECONDITION" in stranger.transport.failure
    assert "every robot needs its own actor_id" in stranger.transport.failure
    assert not learner.errors, learner.errors  # the learner did not choke on it
    first.act(30)  # the first is still served
    first.finish(learner)
    assert_exactly_once(learner, first)
    assert_serves_fresh_actor(learner, tmp_path)


def test_closing_a_superseded_actor_stops_it_without_raising(tmp_path, closing):
    learner = _learner(closing, tmp_path)
    slow = {"heartbeat_s": 30.0, "lost_after_s": 60.0}  # its final beat is the first to hear of it
    first = _actor(closing, tmp_path, learner.address, cfg=slow)
    _wait_until(first.transport.connected, "the first to connect")
    second = Actor(_cfg(learner=learner.address), 0, first.store, seed=4)
    closing.append(second)
    _wait_until(second.transport.connected, "the second to connect")
    first.close()
    assert "connected again" in first.transport.failure
    assert not any(t.is_alive() for t in first.transport._threads)
    second.act(20)
    second.finish(learner)
    assert_exactly_once(learner, second)


def test_close_right_after_connecting_stops_every_thread(tmp_path, closing):
    learner = _learner(closing, tmp_path)
    cfg = _cfg(learner=learner.address)
    for actor_id in range(15):  # close() races the weights stream opening; try it a few times
        transport = GrpcActorTransport(cfg, actor_id % 3, SPACES, TOKEN)
        _wait_until(transport.connected, "the actor to connect")
        transport.close(final_beat=False)
        assert [t.name for t in transport._threads if t.is_alive()] == []
    assert_serves_fresh_actor(learner, tmp_path)


# ---------------------------------------------------------------- back-pressure
def test_backpressure_from_a_slow_learner_loses_nothing(tmp_path, closing):
    learner = _learner(closing, tmp_path, queue_chunks=1, delay_s=0.01)
    learner.paused.set()  # the learner is busy: its one-chunk queue fills at once
    actor = _actor(closing, tmp_path, learner.address, cfg={"queue_chunks": 1}, seed=5)
    actor.act(30, pace_s=0.005)
    _wait_until(lambda: learner.server.depth() == 1, "the learner's queue to fill")
    learner.paused.clear()  # then drains it slowly while the actor goes on
    actor.act(40, pace_s=0.001)
    actor.finish(learner, timeout_s=2 * BOUND_S)
    (link,) = learner.server.actors()
    assert link["backpressure"] > 0
    assert actor.transport.counters["backpressure"] > 0
    assert actor.sender.full_events > 0
    assert_exactly_once(learner, actor)
    assert_serves_fresh_actor(learner, tmp_path)


# ---------------------------------------------------------------- chunks in flight
def test_chunks_go_on_one_stream_several_in_flight_exactly_once(tmp_path, closing):
    learner = _learner(closing, tmp_path, delay_s=0.002)
    actor = _actor(closing, tmp_path, learner.address, cfg={"chunks_in_flight": 3, "chunk_steps": 2})
    _wait_until(actor.transport.connected, "the actor to connect")
    assert actor.transport._chunks is not None  # the learner offered its PushChunks stream
    actor.act(120, pace_s=0.0)
    actor.finish(learner)
    assert_exactly_once(learner, actor)
    (link,) = learner.server.actors()
    assert link["steps"] == actor.recorded and actor.transport.pending() == 0


def test_an_older_learner_without_the_stream_gets_one_call_per_chunk(tmp_path, closing, monkeypatch):
    connect = GrpcLearnerTransport._connect

    def older(self, hello, context):  # a learner from before PushChunks: Welcome lacks the field
        welcome = connect(self, hello, context)
        welcome.ClearField("chunk_stream")
        return welcome

    monkeypatch.setattr(GrpcLearnerTransport, "_connect", older)
    learner = _learner(closing, tmp_path)
    actor = _actor(closing, tmp_path, learner.address)
    _wait_until(actor.transport.connected, "the actor to connect")
    assert actor.transport._chunks is None
    actor.act(60)
    actor.finish(learner)
    assert_exactly_once(learner, actor)


def test_a_learner_that_closes_tells_its_streaming_actor_without_waiting_for_heartbeats(tmp_path, closing):
    learner = Learner(_cfg(), tmp_path / "learner")
    slow_beats = {"heartbeat_s": 10.0, "lost_after_s": 60.0}  # no heartbeat could notice in time
    actor = _actor(closing, tmp_path, learner.address, cfg=slow_beats)
    _wait_until(actor.transport.connected, "the actor to connect")
    actor.act(10)
    learner.close()  # cancels the chunk stream: the actor learns the learner is gone from it
    _wait_until(lambda: not actor.transport.connected(), "the actor to count the learner lost")
    assert actor.transport.counters["losses"] == 1 and actor.transport.failure is None
