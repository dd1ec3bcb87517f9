"""What crosses the wire, and the checks on what arrives.

Chunks travel as typed protobuf arrays (dtype, shape, bytes); images are compressed losslessly
with blosc. Weights travel as raw tensor bytes behind a JSON table of names, dtypes and shapes
(weights_message), each tensor aligned so that the actor reads it where it arrived, without a
copy (weights_from_message); no pickle and no code ever crosses the wire. Everything decoded here
is validated: a malformed message raises WireError naming what is wrong, and the learner answers
INVALID_ARGUMENT.
"""

from __future__ import annotations

import json
import mmap
import struct
import warnings
from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from numcodecs import Blosc

from robot_rl.runtime.net import protocol_pb2 as pb
from robot_rl.runtime.transport import TransitionChunk, WeightsId
from robot_rl.transition import IMAGE_PREFIX, STEP_KEYS

PROTOCOL_VERSION = 2  # 2: weights as raw aligned tensors (1: torch.save bytes)
SERVICE = "robot_rl.v1.Learner"
# dtypes a chunk may carry (the episode store's own); anything else is refused
ALLOWED_DTYPES = {"|u1", "|b1", "<f4", "<f8", "<i8", "<i4"}
MAX_ARRAY_DIMS = 5
PAYLOAD_TAG = 2 << 3 | 2  # pb.Weights.payload: field 2, length-delimited
BLOSC_HEADER = 16  # version, flags, typesize (1 byte each), then uint32 nbytes, blocksize, cbytes
WEIGHTS_MAGIC = b"RRLW"
WEIGHTS_ALIGN = 64  # bytes: every tensor starts at a multiple of this from the message's start
_WEIGHTS_HEAD = struct.Struct("<4sII")  # magic, table length, padding after the table
# dtypes a policy may carry on the wire; anything else is refused
_CARRIED = ("float32", "float64", "float16", "bfloat16", "int64", "int32", "int16", "int8", "uint8", "bool")
WEIGHT_DTYPES = {name: getattr(torch, name) for name in _CARRIED}


class WireError(ValueError):
    """A message that does not decode into what the protocol promises."""


def _codec(name: str) -> Blosc | None:
    if name in ("", "none"):
        return None
    if name not in ("lz4", "zstd"):
        raise WireError(f"unknown array codec '{name}'")
    # images are uint8: byte shuffling buys nothing; zstd's low levels are its fast ones
    return Blosc(cname=name, clevel=5 if name == "lz4" else 1, shuffle=Blosc.NOSHUFFLE)


def _wire_value(value: np.ndarray) -> np.ndarray:
    """The array as the wire carries it: C-contiguous, little-endian."""
    value = np.ascontiguousarray(value)
    if value.dtype.byteorder == ">":
        value = value.astype(value.dtype.newbyteorder("<"))
    return value


def _is_image(value: np.ndarray) -> bool:
    return value.dtype == np.uint8 and value.ndim >= 3


def encode_array(key: str, value: np.ndarray, compression: str) -> pb.Array:
    value = _wire_value(value)
    codec = _codec(compression) if _is_image(value) else None
    data = codec.encode(value) if codec is not None else value.tobytes()
    return pb.Array(
        key=key,
        dtype=value.dtype.str,
        shape=list(value.shape),
        data=bytes(data),
        codec=compression if codec is not None else "",
    )


def decode_array(arr: pb.Array | WireArray, max_bytes: int) -> np.ndarray:
    if arr.dtype not in ALLOWED_DTYPES:
        raise WireError(f"array '{arr.key}': dtype '{arr.dtype}' is not allowed")
    shape = tuple(int(s) for s in arr.shape)
    if len(shape) > MAX_ARRAY_DIMS or any(s < 0 for s in shape):
        raise WireError(f"array '{arr.key}': bad shape {shape}")
    dtype = np.dtype(arr.dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    if nbytes > max_bytes:
        raise WireError(f"array '{arr.key}': {nbytes} bytes decoded is over the {max_bytes} limit")
    codec = _codec(arr.codec)
    if codec is None:
        if len(arr.data) != nbytes:
            raise WireError(f"array '{arr.key}': {len(arr.data)} bytes for shape {shape} {arr.dtype}")
        return np.frombuffer(arr.data, dtype=dtype).reshape(shape)  # read-only, on the message's bytes
    _check_blosc_header(arr, nbytes, f"shape {shape} {arr.dtype}")
    if nbytes == 0:
        return np.empty(shape, dtype)
    out = np.empty(nbytes, np.uint8)
    try:  # decoding into a buffer of the announced size: a bomb cannot grow past it
        codec.decode(arr.data, out=out)
    except (RuntimeError, ValueError) as err:
        raise WireError(f"array '{arr.key}': {arr.codec} data does not decode ({err})") from err
    return out.view(dtype).reshape(shape)


def _check_blosc_header(arr: pb.Array | WireArray, nbytes: int, what: str) -> None:
    """Blosc trusts its header: a payload announcing fewer bytes than the shape would leave part of
    the array uninitialised, and one shorter than it announces would be read past its end."""
    data = arr.data
    if len(data) < BLOSC_HEADER:
        raise WireError(f"array '{arr.key}': {len(data)} bytes of {arr.codec} data, shorter than its header")
    announced = int.from_bytes(data[4:8], "little")
    cbytes = int.from_bytes(data[12:16], "little")
    if announced != nbytes or cbytes != len(data):
        raise WireError(
            f"array '{arr.key}': {arr.codec} data announces {announced} bytes in {cbytes}, but {what} "
            f"needs {nbytes} and {len(data)} arrived"
        )


def encode_chunk(chunk: TransitionChunk, session: str, compression: str) -> pb.Chunk:
    return pb.Chunk(
        actor_id=chunk.actor_id,
        session=session,
        seq=chunk.seq,
        episode_start=chunk.episode_start,
        rows=[encode_array(k, v, compression) for k, v in chunk.rows.items()],
        ends_episode=chunk.ends_episode,
        final_obs=[encode_array(k, v, compression) for k, v in (chunk.final_obs or {}).items()],
        rerecorded=chunk.rerecorded,
    )


class KeyCompression:
    """Compression chosen per image key by the ratio it achieves.

    A key is compressed while that saves at least `min_saving` of its bytes. A camera whose
    frames do not compress (sensor noise: lz4 saves a few percent of a real camera's frame, at
    more than the cost of sending it raw) is sent raw for the next `retry_every` chunks, then
    tried again in case the scene changed. The decision is the sender's: each array names its codec.
    """

    def __init__(self, compression: str, min_saving: float = 0.1, retry_every: int = 64) -> None:
        if not 0.0 <= min_saving < 1.0 or retry_every < 1:
            raise ValueError(f"need 0 <= min_saving < 1, retry_every >= 1; got {min_saving}, {retry_every}")
        self.compression = compression
        self.min_saving = min_saving
        self.retry_every = retry_every
        self._codec = _codec(compression)
        self._chunks = 0
        self._raw_until: dict[str, int] = {}  # key -> the chunk from which to try compressing again

    def next_chunk(self) -> None:
        """A new chunk is being encoded (the unit of retry_every)."""
        self._chunks += 1

    def compresses(self, key: str) -> bool:
        """Whether the next chunk will try compressing an image under `key`."""
        return self._tries(key, self._chunks + 1)

    def encode(self, key: str, value: np.ndarray) -> tuple[bytes | memoryview, str]:
        """(the bytes to send, their codec: "" for raw) of a C-contiguous little-endian array."""
        raw = memoryview(value).cast("B") if value.ndim else memoryview(value.tobytes())
        if not _is_image(value) or not self._tries(key, self._chunks):
            return raw, ""
        assert self._codec is not None
        data = self._codec.encode(value)
        if len(data) > (1.0 - self.min_saving) * value.nbytes:  # not worth it: raw for a while
            self._raw_until[key] = self._chunks + self.retry_every + 1
            return (raw, "") if len(data) >= value.nbytes else (data, self.compression)
        return data, self.compression

    def _tries(self, key: str, chunk: int) -> bool:
        return self._codec is not None and self._raw_until.get(key, 0) <= chunk


ROWS_FIELD, FINAL_OBS_FIELD, DATA_FIELD = 5, 7, 4  # pb.Chunk.rows, pb.Chunk.final_obs, pb.Array.data


def frame_chunk(chunk: TransitionChunk, session: str, compression: KeyCompression) -> bytes:
    """A serialised pb.Chunk, built around the arrays' bytes with one copy of them (encode_chunk
    and SerializeToString would make three)."""
    compression.next_chunk()
    head = pb.Chunk(
        actor_id=chunk.actor_id,
        session=session,
        seq=chunk.seq,
        episode_start=chunk.episode_start,
        ends_episode=chunk.ends_episode,
        rerecorded=chunk.rerecorded,
    ).SerializeToString()
    parts: list[bytes | memoryview] = [head]
    for field, arrays in ((ROWS_FIELD, chunk.rows), (FINAL_OBS_FIELD, chunk.final_obs or {})):
        for key, value in arrays.items():
            value = _wire_value(value)
            data, codec = compression.encode(key, value)
            array_head = pb.Array(key=key, dtype=value.dtype.str, shape=list(value.shape), codec=codec)
            head_bytes = array_head.SerializeToString()
            data_prefix = _varint_bytes(DATA_FIELD << 3 | 2) + _varint_bytes(len(data))
            size = len(head_bytes) + len(data_prefix) + len(data)
            parts += [_varint_bytes(field << 3 | 2), _varint_bytes(size), head_bytes, data_prefix, data]
    return b"".join(parts)


def decode_chunk(msg: pb.Chunk | WireChunk, max_bytes: int) -> TransitionChunk:
    """A protobuf chunk -> TransitionChunk, refusing anything the learner could choke on."""
    rows = {a.key: decode_array(a, max_bytes) for a in msg.rows}
    if len(rows) != len(msg.rows):
        raise WireError("a chunk names a row key twice")
    missing = [k for k in (*STEP_KEYS, "state") if k not in rows]
    if missing:
        raise WireError(f"chunk rows lack {missing}")
    unknown = [k for k in rows if k not in STEP_KEYS and k != "state" and not k.startswith(IMAGE_PREFIX)]
    if unknown:
        raise WireError(f"chunk rows carry unknown keys {unknown}")
    lengths = {v.shape[0] if v.ndim else -1 for v in rows.values()}
    if len(lengths) != 1 or min(lengths) < 1:
        raise WireError(f"chunk rows must share one length >= 1, got {sorted(lengths)}")
    if msg.seq < 0 or not msg.episode_start <= msg.seq:
        raise WireError(f"chunk seq {msg.seq} / episode_start {msg.episode_start} are inconsistent")
    final = None
    if msg.ends_episode:
        final = {a.key: decode_array(a, max_bytes) for a in msg.final_obs}
        if final and set(final) != {k for k in rows if k == "state" or k.startswith(IMAGE_PREFIX)}:
            raise WireError(f"final observation keys {sorted(final)} do not match the rows'")
        if final and any(final[k].shape != rows[k].shape[1:] for k in final):
            raise WireError("final observation shapes do not match the rows'")
    if msg.rerecorded and not msg.ends_episode:
        raise WireError("a chunk flags its episode re-recorded but does not end it")
    return TransitionChunk(
        int(msg.actor_id), int(msg.seq), int(msg.episode_start), rows, final, bool(msg.rerecorded)
    )


def weights_message(version: int, source: WeightsId, policy_state: dict[str, torch.Tensor]) -> bytes:
    """A serialised pb.Weights whose payload is the policy's tensors as raw bytes, with one copy
    of them (protobuf's constructor and SerializeToString would make two besides a serialiser's).

    Payload: WEIGHTS_MAGIC, the table's length and the padding after it (uint32 each), a JSON
    table [[name, dtype, shape, offset, nbytes], ...] (offsets from the end of the padding), the
    padding, then each tensor's bytes, each at a multiple of WEIGHTS_ALIGN from the message's
    start. Received in one buffer, every tensor is aligned for its dtype where it lies.
    """
    tensors, table, size = [], [], 0
    for name, value in policy_state.items():
        t = value.detach().cpu().contiguous()
        dtype = str(t.dtype).removeprefix("torch.")
        if dtype not in WEIGHT_DTYPES:
            raise ValueError(f"weights entry {name!r} has dtype {dtype}, which the wire does not carry")
        size += -size % WEIGHTS_ALIGN
        nbytes = t.numel() * t.element_size()
        table.append([name, dtype, list(t.shape), size, nbytes])
        tensors.append((size, t))
        size += nbytes
    table_bytes = json.dumps(table, separators=(",", ":")).encode()
    head = pb.Weights(version=version, run=source.run, incarnation=source.incarnation).SerializeToString()
    pad = 0
    for _ in range(3):  # the payload's length prefix may grow by a byte with the padding
        payload_len = _WEIGHTS_HEAD.size + len(table_bytes) + pad + size
        before_data = len(head) + 1 + len(_varint_bytes(payload_len)) + _WEIGHTS_HEAD.size + len(table_bytes)
        want = -before_data % WEIGHTS_ALIGN
        if want == pad:
            break
        pad = want
    parts: list[bytes | memoryview] = [
        head,
        _varint_bytes(PAYLOAD_TAG),
        _varint_bytes(payload_len),
        _WEIGHTS_HEAD.pack(WEIGHTS_MAGIC, len(table_bytes), pad),
        table_bytes,
        bytes(pad),
    ]
    at = 0
    for offset, t in tensors:
        parts.append(bytes(offset - at))
        if t.numel():
            parts.append(memoryview(t.reshape(-1).view(torch.uint8).numpy()))  # bytes as they lie
        at = offset + t.numel() * t.element_size()
    return b"".join(parts)


def weights_from_message(payload: memoryview) -> dict[str, torch.Tensor]:
    """A weights payload (split_weights_message) -> the policy, each tensor a read-only view of
    the bytes it arrived in (loading it into a module copies it; nothing writes into it). A tensor
    the message left unaligned is copied. WireError names what is malformed."""
    view = memoryview(payload).cast("B")
    if len(view) < _WEIGHTS_HEAD.size:
        raise WireError("weights payload is shorter than its header")
    magic, table_len, pad = _WEIGHTS_HEAD.unpack_from(view)
    if magic != WEIGHTS_MAGIC:
        raise WireError("weights payload is not robot-rl weights (an older learner? run the same version)")
    data_at = _WEIGHTS_HEAD.size + table_len + pad
    if data_at > len(view):
        raise WireError("weights payload's table runs past its end")
    try:
        table = json.loads(bytes(view[_WEIGHTS_HEAD.size : _WEIGHTS_HEAD.size + table_len]))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WireError(f"weights payload's table does not parse ({err})") from err
    if not isinstance(table, list):
        raise WireError("weights payload's table is not a list")
    policy: dict[str, torch.Tensor] = {}
    for entry in table:
        name, dtype, shape, offset, nbytes = _weights_entry(entry)
        if name in policy:
            raise WireError(f"weights entry {name!r} appears twice")
        start = data_at + offset
        if start + nbytes > len(view):
            raise WireError(f"weights entry {name!r} runs past the payload's end")
        if not nbytes:
            policy[name] = torch.zeros(shape, dtype=dtype)
            continue
        with warnings.catch_warnings():  # that the bytes are read-only: the tensor is only read
            warnings.filterwarnings("ignore", message="The given buffer is not writable")
            t = torch.frombuffer(view, dtype=dtype, count=nbytes // dtype.itemsize, offset=start)
        t = t.reshape(shape)
        policy[name] = t if t.data_ptr() % t.element_size() == 0 else t.clone()
    return policy


def _weights_entry(entry: Any) -> tuple[str, torch.dtype, list[int], int, int]:
    """One row of the weights table, checked: its shape and dtype account for its bytes."""
    ok = isinstance(entry, list) and len(entry) == 5
    name, dtype, shape, offset, nbytes = entry if ok else ("?", None, None, None, None)
    if not (ok and isinstance(name, str) and dtype in WEIGHT_DTYPES and isinstance(shape, list)):
        raise WireError(f"weights table entry {str(entry)[:80]} is not [name, dtype, shape, offset, nbytes]")
    ints = [*shape, offset, nbytes]
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 0 for v in ints) or len(shape) > 8:
        raise WireError(f"weights entry {name!r} has a malformed shape, offset or size")
    torch_dtype = WEIGHT_DTYPES[dtype]
    if int(np.prod(shape, dtype=np.int64)) * torch_dtype.itemsize != nbytes:
        raise WireError(
            f"weights entry {name!r}: {nbytes} bytes do not hold a {dtype} tensor of shape {shape}"
        )
    return name, torch_dtype, shape, offset, nbytes


def split_weights_message(data: bytes | mmap.mmap) -> tuple[pb.Weights, memoryview]:
    """A serialised pb.Weights (bytes, or the shared copy's mapping) -> (its fields but the
    payload, the payload as a view into data).

    protobuf's parser copies the payload twice (into the message, then out as bytes), 20 MB for
    a 5M-parameter policy: this reads the few top-level fields itself and copies only the rest.
    """
    view = memoryview(data)
    rest, found = _split_fields(view, {PAYLOAD_TAG >> 3}, "weights message")
    payloads = found[PAYLOAD_TAG >> 3]
    return _parse(pb.Weights, rest, "weights message"), payloads[-1] if payloads else view[:0]


@dataclass
class WireArray:
    """pb.Array's fields, its data a view into the message it arrived in."""

    key: str
    dtype: str
    shape: list[int]
    data: memoryview
    codec: str


@dataclass
class WireChunk:
    """pb.Chunk's fields, its arrays' data left in the bytes that arrived (decode_chunk reads it
    as it reads a pb.Chunk), and the message's size on the wire."""

    actor_id: int
    session: str
    seq: int
    episode_start: int
    ends_episode: bool
    rerecorded: bool
    rows: list[WireArray]
    final_obs: list[WireArray]
    size: int


def parse_chunk(data: bytes) -> WireChunk:
    """A serialised pb.Chunk, its arrays' bytes not copied (protobuf's parser copies each twice)."""
    view = memoryview(data)
    rest, arrays = _split_fields(view, {ROWS_FIELD, FINAL_OBS_FIELD}, "chunk")
    head = _parse(pb.Chunk, rest, "chunk")
    return WireChunk(
        actor_id=head.actor_id,
        session=head.session,
        seq=head.seq,
        episode_start=head.episode_start,
        ends_episode=head.ends_episode,
        rerecorded=head.rerecorded,
        rows=[_parse_array(a) for a in arrays[ROWS_FIELD]],
        final_obs=[_parse_array(a) for a in arrays[FINAL_OBS_FIELD]],
        size=len(view),
    )


def _parse_array(view: memoryview) -> WireArray:
    rest, found = _split_fields(view, {DATA_FIELD}, "chunk array")
    head = _parse(pb.Array, rest, "chunk array")
    data = found[DATA_FIELD]
    return WireArray(head.key, head.dtype, list(head.shape), data[-1] if data else view[:0], head.codec)


def _parse(message: Any, data: bytes, what: str) -> Any:
    try:
        return message.FromString(data)
    except Exception as err:  # protobuf's DecodeError
        raise WireError(f"{what} does not parse ({err})") from err


def _split_fields(view: memoryview, fields: set[int], what: str) -> tuple[bytes, dict[int, list[memoryview]]]:
    """A serialised message's length-delimited `fields` as views into it (in order, repeats kept),
    and the bytes of all its other fields (small: for protobuf to parse)."""
    rest: list[memoryview] = []
    found: dict[int, list[memoryview]] = {f: [] for f in fields}
    pos = 0
    while pos < len(view):
        start = pos
        tag, pos = _read_varint(view, pos, what)
        wire_type = tag & 7
        length = 0
        if wire_type == 0:
            _, pos = _read_varint(view, pos, what)
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        elif wire_type == 2:
            length, pos = _read_varint(view, pos, what)
            pos += length
        else:
            raise WireError(f"{what}: wire type {wire_type} at byte {start} is not supported")
        if pos > len(view):
            raise WireError(f"{what}: a field at byte {start} runs past the end ({len(view)} bytes)")
        if wire_type == 2 and tag >> 3 in found:
            found[tag >> 3].append(view[pos - length : pos])
        else:
            rest.append(view[start:pos])
    return b"".join(rest), found


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(view: memoryview, pos: int, what: str) -> tuple[int, int]:
    value = shift = 0
    while pos < len(view) and shift < 64:
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise WireError(f"{what}: a varint at byte {pos} is cut off or too long")


def _space_spec(space: gym.Space) -> Any:
    if isinstance(space, gym.spaces.Dict):
        return {k: _space_spec(v) for k, v in space.spaces.items()}
    if isinstance(space, gym.spaces.Box):
        return {"shape": list(space.shape), "dtype": str(space.dtype)}
    return repr(space)


def spaces_json(obs_space: gym.Space, action_space: gym.Space) -> str:
    """What an actor's env looks like, so a learner can refuse an actor of another task."""
    return json.dumps({"obs": _space_spec(obs_space), "action": _space_spec(action_space)}, sort_keys=True)
