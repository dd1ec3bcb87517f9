"""What crosses the wire, and the checks on what arrives.

Chunks travel as typed protobuf arrays (dtype, shape, bytes); images are compressed losslessly
with blosc. Weights travel as torch.save bytes that the actor loads with weights_only=True, so
no pickle and no code ever crosses the wire. Everything decoded here is validated: a malformed
message raises WireError naming what is wrong, and the learner answers INVALID_ARGUMENT.
"""

from __future__ import annotations

import io
import json
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from numcodecs import Blosc

from robot_rl.runtime.net import protocol_pb2 as pb
from robot_rl.runtime.transport import TransitionChunk, WeightsId, weights_bytes
from robot_rl.transition import IMAGE_PREFIX, STEP_KEYS

PROTOCOL_VERSION = 1
SERVICE = "robot_rl.v1.Learner"
# dtypes a chunk may carry (the episode store's own); anything else is refused
ALLOWED_DTYPES = {"|u1", "|b1", "<f4", "<f8", "<i8", "<i4"}
MAX_ARRAY_DIMS = 5
PAYLOAD_TAG = 2 << 3 | 2  # pb.Weights.payload: field 2, length-delimited
BLOSC_HEADER = 16  # version, flags, typesize (1 byte each), then uint32 nbytes, blocksize, cbytes


class WireError(ValueError):
    """A message that does not decode into what the protocol promises."""


def _codec(name: str) -> Blosc | None:
    if name in ("", "none"):
        return None
    if name not in ("lz4", "zstd"):
        raise WireError(f"unknown array codec '{name}'")
    # images are uint8: byte shuffling buys nothing; zstd's low levels are its fast ones
    return Blosc(cname=name, clevel=5 if name == "lz4" else 1, shuffle=Blosc.NOSHUFFLE)


def encode_array(key: str, value: np.ndarray, compression: str) -> pb.Array:
    value = np.ascontiguousarray(value)
    if value.dtype.byteorder == ">":
        value = value.astype(value.dtype.newbyteorder("<"))
    is_image = value.dtype == np.uint8 and value.ndim >= 3
    codec = _codec(compression) if is_image else None
    data = codec.encode(value) if codec is not None else value.tobytes()
    return pb.Array(
        key=key,
        dtype=value.dtype.str,
        shape=list(value.shape),
        data=bytes(data),
        codec=compression if codec is not None else "",
    )


def decode_array(arr: pb.Array, max_bytes: int) -> np.ndarray:
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
        return np.frombuffer(arr.data, dtype=dtype).reshape(shape).copy()
    _check_blosc_header(arr, nbytes, f"shape {shape} {arr.dtype}")
    if nbytes == 0:
        return np.empty(shape, dtype)
    out = np.empty(nbytes, np.uint8)
    try:  # decoding into a buffer of the announced size: a bomb cannot grow past it
        codec.decode(arr.data, out=out)
    except (RuntimeError, ValueError) as err:
        raise WireError(f"array '{arr.key}': {arr.codec} data does not decode ({err})") from err
    return out.view(dtype).reshape(shape)


def _check_blosc_header(arr: pb.Array, nbytes: int, what: str) -> None:
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


def decode_chunk(msg: pb.Chunk, max_bytes: int) -> TransitionChunk:
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


def weights_to_bytes(version: int, policy_state: dict[str, torch.Tensor]) -> bytes:
    return bytes(weights_bytes(version, policy_state))


def weights_message(version: int, source: WeightsId, payload: bytes | memoryview) -> bytes:
    """A serialised pb.Weights, built around the payload with one copy of it (protobuf's
    constructor and SerializeToString would make two); fields may come in any order on the wire."""
    head = pb.Weights(version=version, run=source.run, incarnation=source.incarnation).SerializeToString()
    return b"".join((head, _varint_bytes(PAYLOAD_TAG), _varint_bytes(len(payload)), payload))


def split_weights_message(data: bytes) -> tuple[pb.Weights, memoryview]:
    """A serialised pb.Weights -> (its fields but the payload, the payload as a view into data).

    protobuf's parser copies the payload twice (into the message, then out as bytes), 20 MB for
    a 5M-parameter policy: this reads the few top-level fields itself and copies only the rest.
    """
    view = memoryview(data)
    rest: list[memoryview] = []
    payload, pos = view[:0], 0
    while pos < len(view):
        start = pos
        tag, pos = _read_varint(view, pos)
        wire_type = tag & 7
        if wire_type == 0:
            _, pos = _read_varint(view, pos)
        elif wire_type in (1, 5):
            pos += 8 if wire_type == 1 else 4
        elif wire_type == 2:
            length, pos = _read_varint(view, pos)
            if tag == PAYLOAD_TAG and pos + length <= len(view):
                payload = view[pos : pos + length]  # a repeated field: the last one wins, as in protobuf
            pos += length
        else:
            raise WireError(f"weights message: wire type {wire_type} at byte {start} is not supported")
        if pos > len(view):
            raise WireError(f"weights message: a field at byte {start} runs past the end ({len(view)} bytes)")
        if tag != PAYLOAD_TAG:
            rest.append(view[start:pos])
    try:
        head = pb.Weights.FromString(b"".join(rest))
    except Exception as err:  # protobuf's DecodeError
        raise WireError(f"weights message does not parse ({err})") from err
    return head, payload


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


def _read_varint(view: memoryview, pos: int) -> tuple[int, int]:
    value = shift = 0
    while pos < len(view) and shift < 64:
        byte = view[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7
    raise WireError(f"weights message: a varint at byte {pos} is cut off or too long")


def weights_from_bytes(payload: bytes | memoryview) -> tuple[int, dict[str, torch.Tensor]]:
    """weights_only=True: tensors and plain containers load, anything executable is refused."""
    try:
        blob = torch.load(io.BytesIO(payload), map_location="cpu", weights_only=True)
        version, policy = int(blob["version"]), blob["policy"]
    except Exception as err:  # torch raises many kinds for a bad payload
        raise WireError(f"weights payload does not load as weights ({type(err).__name__}: {err})") from err
    if not isinstance(policy, dict) or not all(isinstance(v, torch.Tensor) for v in policy.values()):
        raise WireError("weights payload is not a dict of tensors")
    return version, policy


def _space_spec(space: gym.Space) -> Any:
    if isinstance(space, gym.spaces.Dict):
        return {k: _space_spec(v) for k, v in space.spaces.items()}
    if isinstance(space, gym.spaces.Box):
        return {"shape": list(space.shape), "dtype": str(space.dtype)}
    return repr(space)


def spaces_json(obs_space: gym.Space, action_space: gym.Space) -> str:
    """What an actor's env looks like, so a learner can refuse an actor of another task."""
    return json.dumps({"obs": _space_spec(obs_space), "action": _space_spec(action_space)}, sort_keys=True)
