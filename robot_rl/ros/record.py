"""Record ROS 2 topics into a rosbag2 bag with MCAP storage, as `ros2 bag record -s mcap` does.

The bag is a directory holding `metadata.yaml` and `<name>.mcap`, written by rosbags' rosbag2
writer (metadata version 8: its QoS field is the YAML string Humble's rosbag2 parses, and Jazzy
reads v8 too), so `ros2 bag info`, `ros2 bag play` and Foxglove open it.

Each message is stored as its CDR bytes, with log time = publish time = receive time (ns since the
epoch, taken when the recorder's callback runs), as rosbag2 stores them; a header stamp stays
inside the message. Transports hand callbacks decoded messages, so the recorder re-encodes them
with the codec: CDR is deterministic, so the bytes decode to the same message that was sent.
Payloads that do not decode never reach the recorder; the transport counts them
(`dropped_garbled`), and the summary reports those of the recorded topics.

What a crash costs: every `flush_every_s` (default 1 s) the open MCAP chunk is closed and handed to
the OS. A recorder killed with SIGKILL (or a power cut after the OS wrote its cache) therefore
loses at most the messages of the last `flush_every_s` and those still queued in the transport,
and leaves a bag without `metadata.yaml` and without the MCAP summary: `recover_bag` (the CLI's
`robot-rl record --recover BAG`) rewrites it as a complete bag holding every message of every
chunk that reached the file. SIGINT/SIGTERM in the CLI, and `close()`, lose nothing received.
"""

from __future__ import annotations

import io
import logging
import os
import shutil
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from rosbags.rosbag2 import StoragePlugin, Writer
from rosbags.typesys import Stores, get_typestore
from rosbags.typesys.store import Typestore

from robot_rl.ros import codec, topics
from robot_rl.ros.codec import DEFAULT_DISTRO, Distro, get_codec
from robot_rl.ros.rmw_zenoh_keys import fully_qualified_name
from robot_rl.ros.transport import Handle, QoS, Transport

log = logging.getLogger(__name__)

BAG_VERSION = 8
# Best effort matches every publisher (a reliable subscription misses best-effort camera and joint
# state publishers on DDS), and a deep queue rides out a slow disk without dropping messages.
RECORD_QOS = QoS("best_effort", 1000)
DRAIN_ROUNDS = 10  # spins on close() to write what is already queued, bounded: publishers go on
_STORES = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}

# The robot stack's topics (RobotEnv, arm and task nodes; robot_rl/ros/topics.py) and the types
# their names imply, also under a namespace; camera topics by their realsense-ros endings.
DEFAULT_TOPICS = tuple(t.name for t in topics.ROBOT_TOPICS.values())
_TYPE_BY_SUFFIX = {
    **{t.name: t.msg_type for t in (*topics.ROBOT_TOPICS.values(), topics.TARGET_TWIST)},
    "image_raw": codec.IMAGE,
    "camera_info": codec.CAMERA_INFO,
}


def camera_topics(camera: str) -> tuple[str, str]:
    """Image and CameraInfo topics of a camera node (realsense-ros names)."""
    named = topics.camera_topics(camera)
    return named.color.name, named.info.name


def normalize_type(msg_type: str) -> str:
    """sensor_msgs/JointState -> sensor_msgs/msg/JointState (ROS 2 names carry /msg/)."""
    parts = msg_type.split("/")
    return f"{parts[0]}/msg/{parts[1]}" if len(parts) == 2 else msg_type


def parse_topic(spec: str) -> tuple[str, str]:
    """'NAME:TYPE', or 'NAME' for a topic of the robot stack whose type its name says."""
    name, _, msg_type = spec.partition(":")
    topic = fully_qualified_name(name)
    if msg_type:
        return topic, normalize_type(msg_type)
    for suffix, known in sorted(_TYPE_BY_SUFFIX.items(), key=lambda kv: -len(kv[0])):
        if topic == f"/{suffix}" or topic.endswith(f"/{suffix}"):
            return topic, known
    raise ValueError(f"cannot tell the message type of {topic}; give it as {topic}:pkg/msg/Type")


def _typestore(distro: Distro) -> Typestore:
    if distro not in _STORES:
        raise ValueError(f"unknown ROS 2 distro {distro!r}; known: {sorted(_STORES)}")
    return get_typestore(_STORES[distro])


def check_topics(topics: Sequence[tuple[str, str]], typestore: Typestore) -> list[tuple[str, str]]:
    """Fully qualified (topic, type) pairs; ValueError for no topics, a repeated topic, or a type
    the bag could not describe (its definition goes into the MCAP schema)."""
    if not topics:
        raise ValueError("nothing to record: no topics given")
    checked: list[tuple[str, str]] = []
    for topic, msg_type in topics:
        name = fully_qualified_name(topic)
        if name in (t for t, _ in checked):
            raise ValueError(f"topic {name} is listed twice")
        if normalize_type(msg_type) not in typestore.types:
            raise ValueError(
                f"cannot record {name}: message type {msg_type!r} is unknown to the bag's type store "
                f"(standard ROS 2 messages only, e.g. {codec.JOINT_STATE})"
            )
        checked.append((name, normalize_type(msg_type)))
    return checked


@dataclass
class RecordSummary:
    """What a recording holds: messages per topic, payload bytes, and garbled payloads dropped."""

    path: Path
    messages: dict[str, int]
    payload_bytes: int
    duration_s: float
    dropped_garbled: dict[str, int] = field(default_factory=dict)

    def line(self) -> str:
        per_topic = ", ".join(f"{t} {n}" for t, n in self.messages.items())
        garbled = f"; dropped garbled: {self.dropped_garbled}" if self.dropped_garbled else ""
        return (
            f"bag {self.path}: {sum(self.messages.values())} messages, "
            f"{self.payload_bytes / 1e6:.1f} MB in {self.duration_s:.1f} s ({per_topic}){garbled}"
        )


class Recorder:
    """Records topics from a transport into a new bag. A node in the ROS 2 demo style: `__init__`
    opens the bag, subscribes and starts the flush timer; callbacks run when the transport spins;
    `close()` (from the spinning thread) writes what is queued, the MCAP summary and metadata.yaml.

    Args:
        transport: where the messages come from; the recorder does not shut it down.
        bag_path: bag directory to create; an existing path is refused, never overwritten.
        topics: (topic, type) pairs; relative names are taken from the root namespace.
        flush_every_s: how often the open chunk goes to the OS (what a SIGKILL can lose).
        clock: receive time in ns since the epoch (tests give a fake one).
    """

    def __init__(
        self,
        transport: Transport,
        bag_path: str | Path,
        topics: Sequence[tuple[str, str]],
        *,
        distro: Distro = DEFAULT_DISTRO,
        qos: QoS = RECORD_QOS,
        flush_every_s: float = 1.0,
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        if not flush_every_s > 0:
            raise ValueError(f"flush_every_s must be > 0, got {flush_every_s!r}")
        typestore = _typestore(distro)
        self.topics = check_topics(topics, typestore)  # refused before anything is created
        self.path = Path(bag_path)
        if self.path.exists():
            raise FileExistsError(f"{self.path} exists; a recording never overwrites one")
        self._transport, self._codec, self._clock = transport, get_codec(distro), clock
        self.received: Counter[str] = Counter()  # written to the bag (in memory or on disk)
        self.on_disk: Counter[str] = Counter()  # of those, in chunks handed to the OS
        self._pending: Counter[str] = Counter()
        self.payload_bytes = 0
        self._started = time.monotonic()
        self._closed = False
        self._writer = Writer(self.path, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
        self._writer.set_custom_data("robot_rl.distro", distro)
        self._writer.open()
        self._handles: list[Handle] = []
        try:
            if not all(hasattr(self._writer.storage, a) for a in ("close_chunk", "bio")):
                raise RuntimeError("rosbags' MCAP writer has no close_chunk()/bio to flush; use rosbags 0.11")
            for topic, msg_type in self.topics:
                connection = self._writer.add_connection(topic, msg_type, typestore=typestore)
                callback = self._writes_to(connection, topic, msg_type)
                self._handles.append(transport.subscribe(topic, msg_type, callback, qos))
            self._handles.append(transport.create_timer(flush_every_s, self.flush))
        except BaseException:
            self._abort()
            raise

    def _writes_to(self, connection: Any, topic: str, msg_type: str) -> Callable[[Any], None]:
        def write(msg: Any) -> None:
            payload = self._codec.encode(msg, msg_type)
            self._writer.write(connection, self._clock(), payload)
            self.received[topic] += 1
            self._pending[topic] += 1
            self.payload_bytes += len(payload)

        return write

    def flush(self) -> None:
        """Close the open MCAP chunk and hand the file's buffer to the OS, so a killed recorder
        leaves it in the file (rosbags' MCAP writer otherwise holds up to 1 MiB in memory)."""
        storage = self._writer.storage
        if not self._pending or storage is None:
            return
        storage.close_chunk()  # type: ignore[attr-defined]
        storage.bio.flush()  # type: ignore[attr-defined]
        self.on_disk.update(self._pending)
        self._pending.clear()

    def status_line(self) -> str:
        """One progress line: time, payload MB, messages per topic, and how many of them are
        flushed (what a SIGKILL now would keep)."""
        per_topic = " | ".join(f"{t} {self.received[t]}" for t, _ in self.topics)
        elapsed = time.monotonic() - self._started
        flushed = sum(self.on_disk.values())
        return f"rec {elapsed:.0f} s | {self.payload_bytes / 1e6:.1f} MB | {per_topic} | flushed {flushed}"

    def summary(self) -> RecordSummary:
        dropped = self._transport.dropped_garbled
        return RecordSummary(
            self.path,
            {t: self.received[t] for t, _ in self.topics},
            self.payload_bytes,
            time.monotonic() - self._started,
            {t: dropped[t] for t, _ in self.topics if dropped.get(t)},
        )

    def close(self) -> RecordSummary:
        """Write what the transport already queued, then the MCAP summary and metadata.yaml.
        Idempotent; call it from the thread that spins the transport."""
        if self._closed:
            return self.summary()
        try:
            for _ in range(DRAIN_ROUNDS):
                if self._transport.spin_once(0.0) == 0:
                    break
        finally:
            self._closed = True
            for handle in self._handles:
                handle.cancel()
            self._writer.close()
            self.on_disk.update(self._pending)
            self._pending.clear()
        return self.summary()

    def _abort(self) -> None:
        self._closed = True
        for handle in self._handles:
            handle.cancel()
        self._writer.abort()
        shutil.rmtree(self.path, ignore_errors=True)  # ours: it did not exist before

    def __enter__(self) -> Recorder:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.close()  # on an error too: what was recorded is kept


def run_recorder(
    recorder: Recorder,
    transport: Transport,
    stop: threading.Event,
    *,
    duration_s: float | None = None,
    progress_every_s: float = 5.0,
    print_line: Callable[[str], None] = print,
) -> RecordSummary:
    """Spin transport until stop is set (the CLI's SIGINT/SIGTERM) or duration_s passed, a
    progress line every progress_every_s; then close the bag and print its summary."""
    start = time.monotonic()
    next_line = start + progress_every_s
    try:
        while not stop.is_set() and (duration_s is None or time.monotonic() - start < duration_s):
            transport.spin_once(0.1)
            if time.monotonic() >= next_line:
                print_line(recorder.status_line())
                next_line += progress_every_s
    finally:
        summary = recorder.close()
    print_line(summary.line())
    return summary


# --- recovery of a killed recording -----------------------------------------------------------

_MAGIC = b"\x89MCAP0\r\n"
_SCHEMA, _CHANNEL, _MESSAGE, _CHUNK, _DATA_END = 0x03, 0x04, 0x05, 0x06, 0x0F


@dataclass
class RecoverSummary:
    """Messages per topic in the recovered bag, and the bytes of the torn tail left out."""

    path: Path
    messages: dict[str, int]
    dropped_tail_bytes: int

    def line(self) -> str:
        per_topic = ", ".join(f"{t} {n}" for t, n in self.messages.items())
        return (
            f"recovered {self.path}: {sum(self.messages.values())} messages ({per_topic}); "
            f"{self.dropped_tail_bytes} bytes of an unfinished chunk left out"
        )


def _records(f: BinaryIO, end: int) -> Iterator[tuple[int, bytes]]:
    """(opcode, body) of each whole MCAP record from f's position up to end; a record cut off by
    the end (the chunk a killed writer was writing) ends the iteration."""
    while f.tell() + 9 <= end:
        head = f.read(9)
        length = int.from_bytes(head[1:], "little")
        if f.tell() + length > end:
            f.seek(-9, os.SEEK_CUR)
            return
        yield head[0], f.read(length)


def _string(body: bytes, at: int) -> tuple[str, int]:
    n = int.from_bytes(body[at : at + 4], "little")
    return body[at + 4 : at + 4 + n].decode(), at + 4 + n


def _chunk_records(body: bytes) -> Iterator[tuple[int, bytes]]:
    """The records inside an uncompressed chunk (the recorder writes no compressed ones)."""
    size = int.from_bytes(body[16:24], "little")
    compression, at = _string(body, 28)
    if compression:
        raise ValueError(f"chunk compressed with {compression!r}; recover reads uncompressed chunks")
    records = body[at + 8 : at + 8 + int.from_bytes(body[at : at + 8], "little")]
    if len(records) != size:
        raise ValueError(f"chunk holds {len(records)} bytes, its header says {size}")
    yield from _records(io.BytesIO(records), len(records))


class _Rebuild:
    """Writes the schemas, channels and messages a scan finds into a new bag."""

    def __init__(self, writer: Writer, typestore: Typestore) -> None:
        self.writer, self.typestore = writer, typestore
        self.schemas: dict[int, tuple[str, str]] = {}
        self.connections: dict[int, Any] = {}
        self.messages: Counter[str] = Counter()

    def record(self, op: int, body: bytes) -> None:
        if op == _SCHEMA:
            name, at = _string(body, 2)
            _encoding, at = _string(body, at)
            n = int.from_bytes(body[at : at + 4], "little")
            self.schemas[int.from_bytes(body[:2], "little")] = (name, body[at + 4 : at + 4 + n].decode())
        elif op == _CHANNEL:
            channel_id, schema_id = struct.unpack_from("<HH", body)
            topic, _ = _string(body, 4)
            msg_type, msgdef = self.schemas[schema_id]
            self.connections[channel_id] = self.writer.add_connection(
                topic, msg_type, msgdef=msgdef, rihs01=self.typestore.hash_rihs01(msg_type)
            )
            self.messages[topic] += 0
        elif op == _MESSAGE:
            channel_id, _seq, log_time = struct.unpack_from("<HIQ", body)
            connection = self.connections[channel_id]
            self.writer.write(connection, log_time, body[22:])
            self.messages[connection.topic] += 1
        elif op == _CHUNK:
            for inner in _chunk_records(body):
                self.record(*inner)


def recover_bag(bag_path: str | Path, distro: Distro = DEFAULT_DISTRO) -> RecoverSummary:
    """Make a bag whose recorder was killed readable again: every message of every whole chunk in
    its .mcap is rewritten, with index and metadata.yaml, into a complete bag at the same path.
    The unfinished chunk at the end (at most flush_every_s of messages) is left out."""
    path = Path(bag_path)
    if (path / "metadata.yaml").exists():
        raise ValueError(f"{path} has its metadata.yaml: it was closed properly, nothing to recover")
    mcaps = sorted(path.glob("*.mcap"))
    if len(mcaps) != 1:
        raise ValueError(f"{path} must hold exactly one .mcap file to recover, found {len(mcaps)}")
    work = path.parent / f".{path.name}.recovering"
    shutil.rmtree(work, ignore_errors=True)
    writer = Writer(work / path.name, version=BAG_VERSION, storage_plugin=StoragePlugin.MCAP)
    writer.set_custom_data("robot_rl.recovered_from", mcaps[0].name)
    writer.open()
    rebuild = _Rebuild(writer, _typestore(distro))
    try:
        with mcaps[0].open("rb") as f:
            end = f.seek(0, os.SEEK_END)
            f.seek(0)
            if f.read(8) != _MAGIC:
                raise ValueError(f"{mcaps[0]} is not an MCAP file (bad magic)")
            tail = 0
            for op, body in _records(f, end):
                if op == _DATA_END:
                    break
                rebuild.record(op, body)
            else:
                tail = end - f.tell()
        if not rebuild.connections:
            raise ValueError(f"{mcaps[0]} holds no whole chunk: the recorder died before its first flush")
        writer.close()
    except BaseException:
        writer.abort()
        shutil.rmtree(work, ignore_errors=True)
        raise
    # The .mcap first (a crash here leaves a complete .mcap, which recovers again), metadata last.
    recovered = work / path.name / f"{path.name}.mcap"
    os.replace(recovered, path / recovered.name)
    if mcaps[0].name != recovered.name:
        mcaps[0].unlink()
    os.replace(work / path.name / "metadata.yaml", path / "metadata.yaml")
    shutil.rmtree(work, ignore_errors=True)
    return RecoverSummary(path, dict(rebuild.messages), tail)
