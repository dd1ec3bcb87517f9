"""transport_recovery's rig: the learner incarnations, the synthetic actor process, the link
between them through a CutProxy, and the faults done to them (benchmarks/transport_recovery.py
runs the faults and measures the recoveries).

Each step's state[0] is its seq, so count_steps can tell a lost, duplicated or wrong step apart
in the learner's replay store.
"""

from __future__ import annotations

import argparse
import contextlib
import multiprocessing as mp
import queue
import threading
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

import numpy as np
import torch
import zarr

from benchmarks.cut_proxy import CutProxy
from robot_rl.config import TransportConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.replay import ReplayBuffer
from robot_rl.runtime.ingest import Ingest
from robot_rl.runtime.intake import Intake
from robot_rl.runtime.net.client import GrpcActorTransport
from robot_rl.runtime.net.server import GrpcLearnerTransport
from robot_rl.runtime.sender import TransitionSender

TOKEN = "bench-token"
SPACES = '{"bench": "transport_recovery"}'
ACTOR_ID = 0
HW = 64
CAMERAS = ("wrist", "front")
STATE_DIM = 22
ACTION_DIM = 7


# ---------------------------------------------------------------- the learner
class _TimedIngest(Ingest):
    """Ingest that notes (time, end seq) of every chunk that brought new steps."""

    def __init__(self, ingested: list[tuple[float, int]], *args: Any, **kwargs: Any) -> None:
        self.ingested = ingested
        super().__init__(*args, **kwargs)

    def add(self, item: Any) -> int:
        new = super().add(item)
        if new:
            self.ingested.append((time.monotonic(), item.seq + len(item)))
        return new


class BenchLearner:
    """One learner incarnation, started as the learner starts: replay store cursors, port open,
    then an Intake that refills the buffers from the store and drains the transport into Ingest."""

    def __init__(self, cfg: TransportConfig, run_dir: Path, ingested: list[tuple[float, int]]) -> None:
        self.t_start = time.monotonic()
        self.store = EpisodeStore(run_dir / "replay.zarr", mode="a")
        spec = {"state": ((STATE_DIM,), np.dtype(np.float32))}
        spec |= {f"image_{c}": ((HW, HW, 3), np.dtype(np.uint8)) for c in CAMERAS}
        online = ReplayBuffer(4096, spec, ACTION_DIM, seed=0)  # a ring: old frames make room
        self.ingest = _TimedIngest(ingested, online, None, self.store, refill=False)
        self.transport = GrpcLearnerTransport(cfg, run_dir, SPACES, TOKEN)
        self.intake = Intake(self.ingest, self.transport, refill=self.ingest.refill, max_chunks=64)
        self.t_accepted = float("nan")  # when the transport first held a chunk from an actor
        self._stop = threading.Event()
        self._watch = threading.Thread(target=self._watch_accepts, name="accepts", daemon=True)

    @property
    def errors(self) -> list[str]:
        """A gap or a broken episode (what this benchmark looks for) stops the intake."""
        return [repr(self.intake.error)] if self.intake.error is not None else []

    @property
    def restore_s(self) -> float:
        """How long the intake took to re-read the replay store (after the port opened)."""
        return self.intake.refill_s

    def start(self, version: int, weights: dict[str, torch.Tensor]) -> float:
        """Open the port (the replay store's cursors), publish, start the intake; returns when the
        port opened."""
        self.transport.start({a: self.ingest.committed_seq(a) for a in self.ingest.streams})
        t_up = time.monotonic()
        self.transport.publish_weights(version, weights)
        self.intake.start()
        self._watch.start()
        return t_up

    def _watch_accepts(self) -> None:
        while not self._stop.is_set() and self.t_accepted != self.t_accepted:  # nan until seen
            if any(a["steps"] for a in self.transport.actors()):
                self.t_accepted = time.monotonic()
            time.sleep(0.005)

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self.intake.stop()
        self.transport.close()

    def duplicates_dropped(self) -> int:
        return self.ingest.duplicates_dropped + sum(a["duplicates"] for a in self.transport.actors())


# ---------------------------------------------------------------- the actor (its own process)
def make_frames(n: int) -> dict[str, np.ndarray]:
    """Smooth gradients with a moving blob and sensor noise, HW x HW."""
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:HW, 0:HW].astype(np.float32) / HW
    base = np.stack([180 * xx + 40, 120 * yy + 60, 90 * (xx + yy) + 30], -1)
    out = {}
    for k, cam in enumerate(CAMERAS):
        frames = np.empty((n, HW, HW, 3), np.uint8)
        for i in range(n):
            cx, cy = 0.5 + 0.3 * np.sin(k + i / 15), 0.5 + 0.3 * np.cos(k + i / 20)
            blob = 80 * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / 0.01)[..., None]
            frames[i] = np.clip(base + blob + rng.normal(0, 2, base.shape), 0, 255).astype(np.uint8)
        out[f"image_{cam}"] = frames
    return out


def actor_proc(
    cfg: TransportConfig, store_path: str, hz: float, episode_steps: int, stop: Any, out: Any
) -> None:
    """Record steps at hz until stopped, then hand over the backlog; events go to `out` as they happen."""
    torch.set_num_threads(1)
    frames = make_frames(64)
    transport = GrpcActorTransport(cfg, ACTOR_ID, SPACES, TOKEN)
    store = EpisodeStore(store_path, mode="w")
    sender = TransitionSender(transport, store, ACTOR_ID, 0, cfg.chunk_steps, cfg.live_steps)
    rng = np.random.default_rng(1)

    def obs(seq: int) -> dict[str, np.ndarray]:
        state = rng.normal(size=STATE_DIM).astype(np.float32)
        state[0] = seq  # what the learner checks the step's content by
        return {"state": state, **{k: v[seq % len(v)] for k, v in frames.items()}}

    link_up, seq, period = False, 0, 1.0 / hz
    t_next = time.monotonic()
    current = obs(0)
    try:
        while not stop.is_set():
            now = time.monotonic()
            if transport.connected() != link_up:
                link_up = not link_up
                out.put(("link", now, link_up))
            update = transport.poll_weights()
            if update is not None:
                out.put(("weights", now, update[0]))
            transport.raise_if_failed()
            if now >= t_next:
                ends = (seq + 1) % episode_steps == 0
                nxt = obs(seq + 1)
                row = current | {
                    "action": rng.uniform(-1, 1, ACTION_DIM).astype(np.float32),
                    "policy_action": rng.uniform(-1, 1, ACTION_DIM).astype(np.float32),
                    "reward": np.float32(0.0),
                    "terminated": np.bool_(False),
                    "truncated": np.bool_(ends),
                    "intervened": np.bool_(False),
                    "policy_version": np.int64(0),
                    "t_obs": np.float64(time.time()),
                }
                sender.add_step(row, nxt if ends else None)
                seq, current = seq + 1, nxt
                t_next = max(t_next + period, now)  # a late tick is not made up in a burst
            time.sleep(0.001)
        deadline = time.monotonic() + 60
        while (sender.backlog or transport.pending()) and time.monotonic() < deadline:
            transport.raise_if_failed()
            sender.flush(whole=True)  # it stopped mid-episode: the held live steps go too
            time.sleep(0.01)
        out.put(
            (
                "done",
                time.monotonic(),
                {
                    "produced": seq,
                    "actor_store_steps": store.n_steps,
                    "backlog": sender.backlog,
                    "unacked": transport.pending(),
                    "counters": dict(transport.counters),
                },
            )
        )
    except Exception as err:
        out.put(("error", time.monotonic(), repr(err)))
        raise
    finally:
        transport.close(final_beat=False)


# ---------------------------------------------------------------- the rig
class Events:
    """The actor's events, collected by a thread as they arrive."""

    def __init__(self, out: Any) -> None:
        self.items: list[tuple[str, float, Any]] = []
        self._out = out
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._collect, daemon=True)
        self._thread.start()

    def _collect(self) -> None:
        while not self._stop.is_set():
            with contextlib.suppress(queue.Empty):
                self.items.append(self._out.get(timeout=0.1))

    def first(self, kind: str, after: float, value: Any = None) -> float | None:
        for k, t, v in list(self.items):
            if k == kind and t >= after and (value is None or v == value):
                return t
        return None

    def link_up_at(self, t: float) -> bool:
        up = False
        for k, tk, v in list(self.items):
            if k == "link" and tk <= t:
                up = v
        return up

    def done(self) -> dict | None:
        for k, _, v in list(self.items):
            if k == "error":
                raise RuntimeError(f"the actor failed: {v}")
            if k == "done":
                return v
        return None

    def close(self) -> None:
        self._stop.set()
        self._thread.join(timeout=2)


def wait_until(pred: Any, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.01)
    return False


class Rig:
    """The learner, the proxy and the actor process of one run, and the faults done to them."""

    def __init__(self, args: argparse.Namespace, tmp: Path) -> None:
        cfg = TransportConfig(
            kind="grpc",
            listen="127.0.0.1:0",
            token=TOKEN,
            heartbeat_s=args.heartbeat_s,
            lost_after_s=args.lost_after_s,
            reconnect_max_s=args.reconnect_max_s,
            call_timeout_s=args.call_timeout_s,
        )
        self.run_dir = tmp / "learner"
        self.weights = {"pi.weight": torch.randn(256, 64), "pi.bias": torch.zeros(256)}
        self.version = 1
        self.ingested: list[tuple[float, int]] = []  # (time, end seq) of chunks with new steps
        self.errors: list[str] = []
        self.dropped = 0  # re-sent steps that earlier learners dropped as already held
        self.learner = BenchLearner(cfg, self.run_dir, self.ingested)
        self.learner.start(self.version, self.weights)
        # restarts listen on the same port, as a learner restarted with the same config does
        self.cfg = TransportConfig(**{**asdict(cfg), "listen": f"127.0.0.1:{self.learner.transport.port}"})
        self.proxy = CutProxy(self.learner.transport.port)
        actor_cfg = TransportConfig(**{**asdict(self.cfg), "learner": f"127.0.0.1:{self.proxy.port}"})
        ctx = mp.get_context("spawn")
        self.stop, out = ctx.Event(), ctx.Queue()
        self.actor = ctx.Process(
            target=actor_proc,
            args=(actor_cfg, str(tmp / "actor.zarr"), args.hz, args.episode_steps, self.stop, out),
            daemon=True,
        )
        self.actor.start()
        self.events = Events(out)

    def restart(self, down_s: float) -> dict[str, Any]:
        """Close the learner; after the outage a new one starts (its start-up: from here to its
        port opening) and publishes the next version."""
        t_down = time.monotonic()
        self.dropped += self.learner.duplicates_dropped()
        self.learner.close()
        self.errors += self.learner.errors
        self.version += 1
        time.sleep(max(0.0, t_down + down_s - time.monotonic()))
        self.learner = BenchLearner(self.cfg, self.run_dir, self.ingested)
        t_up = self.learner.start(self.version, self.weights)
        return {
            "kind": "learner restart",
            "t_fault": t_down,
            "t_start": self.learner.t_start,
            "t_up": t_up,
            "version": self.version,
            "down_s": self.learner.t_start - t_down,
            "startup_s": t_up - self.learner.t_start,
        }

    def cut(self, mode: str, down_s: float) -> dict[str, Any]:
        t_fault = time.monotonic()
        self.proxy.cut(mode)
        time.sleep(down_s)
        t_up = time.monotonic()
        self.proxy.restore()
        return {"kind": f"cut ({mode})", "t_fault": t_fault, "t_up": t_up, "down_s": t_up - t_fault}

    def finish(self) -> dict[str, Any]:
        """Stop the actor, let it hand over its backlog, and count the learner's steps."""
        self.stop.set()
        if not wait_until(lambda: self.events.done() is not None, 90):
            raise TimeoutError("the actor did not hand over its backlog within 90 s")
        done = self.events.done()
        assert done is not None
        wait_until(lambda: self.learner.ingest.next_seq(ACTOR_ID) >= done["produced"], 30)
        time.sleep(0.5)
        stream = self.learner.ingest.streams.get(ACTOR_ID)
        in_progress = [(int(r["seq"]), float(r["state"][0])) for r in (stream.rows if stream else [])]
        self.errors += self.learner.errors
        dropped = self.dropped + self.learner.duplicates_dropped()
        self.close()
        counts = count_steps(self.run_dir / "replay.zarr", in_progress, done["produced"])
        return {"steps": counts | {"duplicates_dropped_by_learner": dropped}, "actor": done}

    def close(self) -> None:
        self.stop.set()
        self.actor.join(timeout=30)
        if self.actor.is_alive():
            self.actor.terminate()
        self.events.close()
        self.proxy.close()
        self.learner.close()


def count_steps(path: Path, in_progress: list[tuple[int, float]], produced: int) -> dict[str, int]:
    """Every seq the actor produced, looked for in the learner's replay store and episode in progress."""
    root = zarr.open_group(str(path), mode="r")
    ends = np.asarray(root["meta"]["episode_ends"][:], np.int64)
    n = int(ends[ends >= 0][-1]) if np.any(ends >= 0) else 0
    seqs = np.asarray(root["data"]["seq"][:n], np.int64) if n else np.zeros(0, np.int64)
    marks = np.asarray(root["data"]["state"][:n, 0], np.float64) if n else np.zeros(0)
    if in_progress:
        seqs = np.concatenate([seqs, [s for s, _ in in_progress]])
        marks = np.concatenate([marks, [m for _, m in in_progress]])
    unique = np.unique(seqs)
    return {
        "produced": produced,
        "in_replay_store": n,
        "in_progress": len(in_progress),
        "lost": produced - int(np.sum(unique < produced)),
        "duplicated": len(seqs) - len(unique),
        "unknown_seq": int(np.sum(unique >= produced)),
        "wrong_content": int(np.sum(marks != seqs)),
    }
