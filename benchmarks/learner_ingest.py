"""What one received step costs the learner, measured on the real steps of an actor's spool.

Two parts, as a learner pays them:
- receiving (gRPC): the real GrpcLearnerTransport in this process, an actor's real sending
  (GrpcActorTransport + TransitionSender) in a process of its own, paced like a sim worker so
  chunks are as small as they are live; the CPU this process spends per step received (the
  PushChunk handler's decode and bookkeeping, heartbeats, the queue), on gRPC's threads;
- ingest (Ingest.add, on the learner's intake thread): the replay buffers, and the episode
  appended to replay.zarr when it ends; wall and CPU time (the whole process: zarr writes on a
  thread of its own), the store's share split out.
benchmarks/fleet_scaling.py turns them into the workers one learner absorbs.
"""

from __future__ import annotations

import multiprocessing as mp
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.config import TrainConfig, TransportConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.replay import ReplayBuffer
from robot_rl.runtime.ingest import Ingest
from robot_rl.runtime.net.client import GrpcActorTransport
from robot_rl.runtime.net.server import GrpcLearnerTransport
from robot_rl.runtime.sender import TransitionSender
from robot_rl.runtime.transport import TransitionChunk

TOKEN = "learner-ingest-benchmark"
SPACES = "benchmark"  # both ends send the same string, so the connect check passes


def chunks_of(store: EpisodeStore, chunk_steps: int) -> list[TransitionChunk]:
    """A store's episodes cut into chunks of at most chunk_steps, as a sender cuts them."""
    chunks, start = [], 0
    for episode, end in enumerate(store.episode_ends):
        end = int(end)
        for seq in range(start, end, chunk_steps):
            stop = min(seq + chunk_steps, end)
            final = store.final_obs(episode) if stop == end else None
            chunks.append(TransitionChunk(0, seq, start, store.steps(seq, stop), final))
        start = end
    return chunks


def send_spool(address: str, spool: str, folder: str, steps_per_s: float) -> None:
    """An actor's sending, in a process of its own: the spool's steps one by one through a
    TransitionSender at steps_per_s, until the learner has acknowledged every one."""
    cfg = TransportConfig(kind="grpc", learner=address, token=TOKEN)
    transport = GrpcActorTransport(cfg, 0, SPACES, TOKEN)
    sender = TransitionSender(
        transport, EpisodeStore(Path(folder) / "episodes.zarr"), 0, 0, cfg.chunk_steps, cfg.live_steps
    )
    while not transport.connected():
        time.sleep(0.01)
    t0, sent = time.perf_counter(), 0
    for steps, final in EpisodeStore(spool, mode="r").episodes():
        n = len(steps["reward"])
        for i in range(n):
            time.sleep(max(0.0, t0 + sent / steps_per_s - time.perf_counter()))
            sender.add_step({k: v[i] for k, v in steps.items()}, final if i == n - 1 else None)
            sent += 1
    while sender.backlog or transport.pending():
        sender.flush()
        time.sleep(0.01)
    transport.close()


def receive_cost(spool: Path, steps_per_s: float) -> dict[str, float]:
    """CPU microseconds this process spends per step on the gRPC receiving side, and the mean
    chunk size the sender's pace gave."""
    steps = EpisodeStore(spool, mode="r").n_steps
    with tempfile.TemporaryDirectory() as tmp:
        cfg = TransportConfig(kind="grpc", listen="127.0.0.1:0", token=TOKEN, queue_chunks=100_000)
        server = GrpcLearnerTransport(cfg, Path(tmp), SPACES, TOKEN)
        server.start({})
        received, done = [0], threading.Event()

        def drain() -> None:  # the learner's receive loop, without the ingest
            while received[0] < steps:
                received[0] += sum(len(c) for c in server.receive(max_chunks=256, timeout_s=0.05))
            done.set()

        drainer = threading.Thread(target=drain, daemon=True)
        sender = mp.get_context("spawn").Process(
            target=send_spool, args=(f"127.0.0.1:{server.port}", str(spool), tmp, steps_per_s)
        )
        sender.start()
        while not server.actors():  # timed from the connect on: the sender's start is its own
            time.sleep(0.01)
        cpu0 = time.process_time()
        drainer.start()
        if not done.wait(60 + 3 * steps / steps_per_s):
            raise TimeoutError(f"received {received[0]} of {steps} steps")
        cpu = time.process_time() - cpu0
        chunks = server.actors()[0]["chunks"]
        sender.join(timeout=60)
        server.close()
    return {"receive_cpu_us": 1e6 * cpu / steps, "receive_chunk_steps": steps / max(chunks, 1)}


class Clock:
    """Wall and CPU seconds (the whole process: zarr writes on its own thread) spent per part."""

    PARTS = ("buffers", "store")

    def __init__(self) -> None:
        self.wall = dict.fromkeys(self.PARTS, 0.0)
        self.cpu = dict.fromkeys(self.PARTS, 0.0)

    def charge(self, part: str, wall0: float, cpu0: float) -> tuple[float, float]:
        """Add the time since (wall0, cpu0) to a part; returns it."""
        wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
        self.wall[part] += wall
        self.cpu[part] += cpu
        return wall, cpu


def ingest_once(
    chunks: list[TransitionChunk], steps: int, cfg: TrainConfig, spec: dict, act_dim: int
) -> Clock:
    """Ingest.add on every chunk, into a fresh replay store and buffers, the store's share apart."""
    clock = Clock()
    with tempfile.TemporaryDirectory() as tmp:
        online, demo = (
            ReplayBuffer(2 * steps + 2, spec, act_dim, cfg.replay.gamma, cfg.replay.n_step) for _ in range(2)
        )
        store = EpisodeStore(Path(tmp) / "replay.zarr", mode="a")
        ingest = Ingest(online, demo, store)
        append = store.append_episode

        def timed_append(*args: Any, **kwargs: Any) -> None:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            append(*args, **kwargs)
            wall, cpu = clock.charge("store", wall0, cpu0)
            clock.wall["buffers"] -= wall  # it ran inside Ingest.add, which is charged to buffers
            clock.cpu["buffers"] -= cpu

        store.append_episode = timed_append  # type: ignore[method-assign]
        for chunk in chunks:
            wall0, cpu0 = time.perf_counter(), time.process_time()
            ingest.add(chunk)
            clock.charge("buffers", wall0, cpu0)
    return clock


def learner_cost(spool: Path, cfg: TrainConfig, steps_per_s: float, repeats: int = 3) -> dict[str, float]:
    """Microseconds per received step: receive_cpu_us, {buffers,store}_{wall,cpu}_us, and totals:
    total_cpu_us (all of it) and total_wall_us (the ingest's wall time on the intake thread plus
    the receiving side's CPU, which holds the same interpreter)."""
    source = EpisodeStore(spool, mode="r")
    steps = source.n_steps
    first = source.steps(0, 1)
    spec, act_dim = {"state": (first["state"].shape[1:], np.dtype(np.float32))}, first["action"].shape[1]
    out: dict[str, float] = {"steps": steps, **receive_cost(spool, steps_per_s)}
    chunks = chunks_of(source, max(1, round(out["receive_chunk_steps"])))  # as they arrived
    clocks = [ingest_once(chunks, steps, cfg, spec, act_dim) for _ in range(repeats)]
    for kind in ("wall", "cpu"):
        for part in Clock.PARTS:
            out[f"{part}_{kind}_us"] = (
                1e6 * float(np.median([getattr(c, kind)[part] for c in clocks])) / steps
            )
        out[f"total_{kind}_us"] = out["receive_cpu_us"] + sum(out[f"{p}_{kind}_us"] for p in Clock.PARTS)
    return out
