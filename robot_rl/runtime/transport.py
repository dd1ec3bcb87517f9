"""The actor <-> learner transport seam, and its local (one machine) implementation.

Transitions travel as chunks of consecutive steps of one episode, numbered by `seq`, the step's
index in the actor's episode store, so the learner can drop anything it already has. Weights
travel the other way with a version and the identity of the learner that made them (its run and
incarnation): the newest version wins, and weights of a new incarnation win at once (the learner
restarted; its versions continue from the run's newest, so `policy_version` never goes back).

LocalTransport: a bounded multiprocessing queue for chunks (the actor never blocks: a full queue
makes send() return False and the steps wait in the actor's store) and an atomically replaced
weights file, which also survives restarts of either side. Both learner ends publish through
WeightsPublisher: the training thread never waits for serialising, sending or the disk.
"""

from __future__ import annotations

import contextlib
import io
import multiprocessing as mp
import os
import queue
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch

from robot_rl.runtime.background import LatestWorker


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
    ) -> None:
        """Hand the policy over and return: the actors and the weights file get it in the
        background (the newest version wins); the caller may change its tensors afterwards."""
        ...

    def flush(self) -> None:
        """Block until every version published is delivered and in the weights file."""
        ...


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


def weights_bytes(
    version: int, policy_state: dict[str, torch.Tensor], source: WeightsId | None = None
) -> memoryview:
    """The weights file's content: torch.save of the version, the policy and who published it
    (loaded with weights_only=True).

    torch.save's non-zip format: the zip writer checksums every byte (three quarters of its time
    for a 5M-parameter policy) for a checksum torch.load never checks; torch.load reads both.
    """
    source = source or WeightsId()
    blob = {
        "version": torch.tensor(version),
        "policy": {k: v.detach().cpu().contiguous() for k, v in policy_state.items()},
        "run": source.run,
        "incarnation": source.incarnation,
    }
    buf = io.BytesIO()
    torch.save(blob, buf, _use_new_zipfile_serialization=False)
    return buf.getbuffer()  # a view, not a copy of the policy's bytes


def write_atomically(path: Path, data: bytes | memoryview) -> None:
    """Write a file so a reader never sees it half-written (temporary file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}-{threading.get_native_id()}")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def save_weights(
    path: Path, version: int, policy_state: dict[str, torch.Tensor], source: WeightsId | None = None
) -> None:
    """Write weights so a reader never sees a half-written file (write, fsync, rename)."""
    write_atomically(path, weights_bytes(version, policy_state, source))


def load_weights(path: Path) -> tuple[int, dict[str, torch.Tensor]]:
    """Read a weights file; weights_only, so no code can ride along."""
    version, state, _ = load_weights_with_source(path)
    return version, state


def load_weights_with_source(path: Path) -> tuple[int, dict[str, torch.Tensor], WeightsId]:
    """(version, policy state, who published it); files written before identities: WeightsId()."""
    blob = torch.load(path, map_location="cpu", weights_only=True)
    source = WeightsId(str(blob.get("run", "")), str(blob.get("incarnation", "")))
    return int(blob["version"]), blob["policy"], source


def version_marker(path: Path) -> Path:
    """Where a publisher notes a version it delivered before the weights file caught up."""
    return path.with_name(path.name + ".version")


def published_version(path: Path) -> int:
    """The newest version published through this weights file (0: none, or unreadable)."""
    versions = [0]
    with contextlib.suppress(OSError, ValueError):
        versions.append(int(version_marker(path).read_text()))
    with contextlib.suppress(Exception):  # missing or unreadable: the marker or the checkpoint stands
        versions.append(load_weights(path)[0])
    return max(versions)


Deliver = Callable[[int, WeightsId, dict[str, torch.Tensor]], None]


def policy_snapshot(policy_state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A private CPU copy of a policy's tensors, contiguous, that no caller can change later."""
    return {k: v.detach().to("cpu", copy=True).contiguous() for k, v in policy_state.items()}


class WeightsPublisher:
    """Publishes weights without ever making the training thread wait for the disk.

    publish() copies the tensors once (policy_snapshot; the caller may go on changing its own)
    and returns. A background thread hands the copy to `deliver` (the gRPC streams, which frame
    it once for all actors), then to a second one that serialises and writes the weights file
    (weights_bytes, write_atomically), so a slow disk never holds up the actors. On either
    thread the newest version wins: one published while another waits replaces it, and none is
    delivered or written after a newer one.

    A version is delivered before its file is written, except while there is no file yet (an
    actor never holds weights a run folder lacks). Before delivering, the version is noted in
    version_marker(path) (renamed into place, not fsynced: it survives the learner being killed),
    so a restarted learner continues past every version an actor may hold (published_version).
    Without `deliver` the file is the channel (LocalTransport).
    """

    def __init__(self, path: Path, deliver: Deliver | None = None) -> None:
        self.path = Path(path)
        self._deliver = deliver
        self._file = LatestWorker(self._write, f"writing weights {self.path}")
        self._sender = LatestWorker(self._send, f"publishing weights to {self.path}")

    def publish(self, version: int, policy_state: dict[str, torch.Tensor], source: WeightsId | None) -> None:
        source = source or WeightsId()
        self._sender.submit((version, source, policy_snapshot(policy_state)))

    def flush(self) -> None:
        """Block until every published version is delivered and on disk."""
        self._sender.flush()
        self._file.flush()

    def close(self) -> None:
        self._sender.close()
        self._file.close()

    def _send(self, item: tuple[int, WeightsId, dict[str, torch.Tensor]]) -> None:
        version, source, policy = item
        if self._deliver is None:
            self._file.submit(item)
        elif self.path.exists():
            marker = version_marker(self.path)
            tmp = marker.with_suffix(f".tmp{os.getpid()}")
            tmp.write_text(str(version))
            os.replace(tmp, marker)
            self._deliver(version, source, policy)
            self._file.submit(item)
        else:
            self._file.submit(item)
            self._file.flush()
            self._deliver(version, source, policy)

    def _write(self, item: tuple[int, WeightsId, dict[str, torch.Tensor]]) -> None:
        version, source, policy = item
        write_atomically(self.path, weights_bytes(version, policy, source))


class LocalTransport:
    """Both ends of the local transport; each process uses its own half."""

    def __init__(self, weights_path: Path, queue_chunks: int, ctx: Any = None) -> None:
        ctx = ctx or mp.get_context("spawn")
        self.weights_path = Path(weights_path)
        self._queue = ctx.Queue(maxsize=queue_chunks)
        self._seen_mtime: int | None = None
        self._seen_version = -1
        self._seen_source: WeightsId | None = None
        self._publisher: WeightsPublisher | None = None  # the learner's, made at its first publish

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "_publisher": None}  # each process gets its half, without threads

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
        if self._publisher is not None:
            self._publisher.close()

    # learner side
    def start(self, cursors: dict[int, int]) -> None:
        pass  # the supervisor told the actor where to resume

    def receive(self, max_chunks: int, timeout_s: float) -> list[TransitionChunk | ActorRestarted]:
        return take_from_queue(self._queue, max_chunks, timeout_s)

    def publish_weights(
        self, version: int, policy_state: dict[str, torch.Tensor], source: WeightsId | None = None
    ) -> None:
        """Returns at once; the weights file is written in the background, the newest version first."""
        if self._publisher is None:
            self._publisher = WeightsPublisher(self.weights_path)
        self._publisher.publish(version, policy_state, source)

    def flush(self) -> None:
        if self._publisher is not None:
            self._publisher.flush()
