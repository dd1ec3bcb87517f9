"""The actor <-> learner transport seam, and its local (one machine) implementation.

Transitions travel as chunks of consecutive steps of one episode, numbered by `seq`, the step's
index in the actor's episode store, so the learner can drop anything it already has. Weights
travel the other way with a version and the identity of the learner that made them (its run and
incarnation): the newest version wins, and weights of a new incarnation win at once (the learner
restarted; its versions continue from the run's newest, so `policy_version` never goes back).

LocalTransport: a bounded multiprocessing queue for chunks (the actor never blocks: a full queue
makes send() return False and the steps wait in the actor's store) and an atomically replaced
weights file, which also survives restarts of either side.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch


@dataclass
class TransitionChunk:
    """Consecutive steps [seq, seq + n) of one episode of one actor.

    rows: per-step arrays in the store's form ("state", "image_<cam>", STEP_KEYS), each [n, ...].
    episode_start: seq of the episode's first step (rows[0] starts the episode iff equal to seq).
    final_obs: the observation after the last row when that row ends the episode, else None.
    rerecorded: on the chunk that ends the episode, whether a person re-recorded it (the learner
        stores it, flagged, and keeps it out of the replay buffers).
    """

    actor_id: int
    seq: int
    episode_start: int
    rows: dict[str, np.ndarray]
    final_obs: dict[str, np.ndarray] | None = None
    rerecorded: bool = False

    def __len__(self) -> int:
        return len(self.rows["reward"])

    @property
    def ends_episode(self) -> bool:
        return self.final_obs is not None


@dataclass(frozen=True)
class WeightsId:
    """Who published weights: the run (fixed for the run folder) and the learner process in it."""

    run: str = ""
    incarnation: str = ""


def run_id(run_dir: Path) -> str:
    """The run's identity, made once and kept in run_dir/run_id (a new folder: a new run)."""
    path = Path(run_dir) / "run_id"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".tmp{os.getpid()}")
        tmp.write_text(secrets.token_hex(8))
        os.replace(tmp, path)
    return path.read_text().strip()


def newer(version: int, source: WeightsId, have_version: int, have_source: WeightsId | None) -> bool:
    """Whether weights (version, source) replace those held: a newer version or a new learner."""
    return have_source is None or version > have_version or source != have_source


@dataclass
class ActorRestarted:
    """In the chunk stream: the actor restarted and holds only `seq` steps; forget any after."""

    actor_id: int
    seq: int


class ActorTransport(Protocol):
    def send(self, chunk: TransitionChunk) -> bool:
        """Hand a chunk over without blocking; False when the channel is full."""
        ...

    def poll_weights(self) -> tuple[int, dict[str, torch.Tensor]] | None:
        """The newest weights if they changed since the last call, else None. Never blocks."""
        ...

    def depth(self) -> int:
        """Chunks waiting in the channel (for the progress display)."""
        ...

    def take_rewind(self) -> int | None:
        """After a reconnect or a refusal: the step the learner needs next (send again from it)."""
        ...

    def pending(self) -> int:
        """Steps handed over whose arrival the learner has not confirmed yet."""
        ...

    def wait_for_weights(self, timeout_s: float) -> bool:
        """Block (at start only) until the learner's weights are there; False on timeout."""
        ...

    def connected(self) -> bool: ...

    def report(self, stats: dict[str, Any]) -> None:
        """The actor's episode statistics, for the learner's display."""
        ...

    def stats(self) -> dict[str, float]:
        """Link counters for the actor's metrics."""
        ...

    def raise_if_failed(self) -> None:
        """Raise the reason the learner refused this actor, if it did (retrying cannot help)."""
        ...

    def close(self) -> None: ...


class LearnerTransport(Protocol):
    def start(self, cursors: dict[int, int]) -> None:
        """Open for actors. cursors: per actor id, the steps the learner's replay store holds."""
        ...

    def receive(self, max_chunks: int, timeout_s: float) -> list[TransitionChunk | ActorRestarted]:
        """Up to max_chunks chunks, waiting at most timeout_s for the first."""
        ...

    def publish_weights(
        self, version: int, policy_state: dict[str, torch.Tensor], source: WeightsId | None = None
    ) -> None: ...


def take_from_queue(q: Any, max_items: int, timeout_s: float) -> list[Any]:
    """Up to max_items items, waiting at most timeout_s for the first (either kind of queue)."""
    items: list[Any] = []
    try:
        items.append(q.get(timeout=timeout_s) if timeout_s > 0 else q.get_nowait())
        while len(items) < max_items:
            items.append(q.get_nowait())
    except queue.Empty:
        pass
    return items


def save_weights(
    path: Path, version: int, policy_state: dict[str, torch.Tensor], source: WeightsId | None = None
) -> None:
    """Write weights so a reader never sees a half-written file (write, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    state = {k: v.detach().cpu() for k, v in policy_state.items()}
    source = source or WeightsId()
    blob = {
        "version": torch.tensor(version),
        "policy": state,
        "run": source.run,
        "incarnation": source.incarnation,
    }
    with open(tmp, "wb") as f:
        torch.save(blob, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_weights(path: Path) -> tuple[int, dict[str, torch.Tensor]]:
    """Read a weights file; weights_only, so no code can ride along."""
    version, state, _ = load_weights_with_source(path)
    return version, state


def load_weights_with_source(path: Path) -> tuple[int, dict[str, torch.Tensor], WeightsId]:
    """(version, policy state, who published it); files written before identities: WeightsId()."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    source = WeightsId(str(blob.get("run", "")), str(blob.get("incarnation", "")))
    return int(blob["version"]), blob["policy"], source


class LocalTransport:
    """Both ends of the local transport; each process uses its own half."""

    def __init__(self, weights_path: Path, queue_chunks: int, ctx: Any = None) -> None:
        ctx = ctx or mp.get_context("spawn")
        self.weights_path = Path(weights_path)
        self._queue = ctx.Queue(maxsize=queue_chunks)
        self._seen_mtime: int | None = None
        self._seen_version = -1
        self._seen_source: WeightsId | None = None

    # actor side
    def send(self, chunk: TransitionChunk) -> bool:
        try:
            self._queue.put_nowait(chunk)
        except queue.Full:
            return False
        return True

    def poll_weights(self) -> tuple[int, dict[str, torch.Tensor]] | None:
        try:
            mtime = os.stat(self.weights_path).st_mtime_ns
        except FileNotFoundError:
            return None
        if mtime == self._seen_mtime:
            return None
        self._seen_mtime = mtime
        version, state, source = load_weights_with_source(self.weights_path)
        if not newer(version, source, self._seen_version, self._seen_source):
            return None
        self._seen_version, self._seen_source = version, source
        return version, state

    def depth(self) -> int:
        try:
            return self._queue.qsize()
        except NotImplementedError:  # macOS has no qsize
            return -1

    def take_rewind(self) -> int | None:
        return None  # a queue on one machine loses nothing while both sides live

    def pending(self) -> int:
        return 0

    def wait_for_weights(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while not self.weights_path.exists():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.05)
        return True

    def connected(self) -> bool:
        return True

    def report(self, stats: dict[str, Any]) -> None:
        pass  # the supervisor gets the actor's statistics through its status queue

    def stats(self) -> dict[str, float]:
        return {}

    def raise_if_failed(self) -> None:
        pass

    def close(self) -> None:
        pass

    # learner side
    def start(self, cursors: dict[int, int]) -> None:
        pass  # the supervisor told the actor where to resume

    def receive(self, max_chunks: int, timeout_s: float) -> list[TransitionChunk | ActorRestarted]:
        return take_from_queue(self._queue, max_chunks, timeout_s)

    def publish_weights(
        self, version: int, policy_state: dict[str, torch.Tensor], source: WeightsId | None = None
    ) -> None:
        save_weights(self.weights_path, version, policy_state, source)
