"""Chunks cut to fit the learner's message size limit (transport.max_message_mb).

frame_to_fit gives the serialised messages the transport sends (codec.frame_chunk);
split_to_fit the same cut as protobuf messages (codec.encode_chunk), for tools and tests.
"""

from __future__ import annotations

from robot_rl.runtime.net import protocol_pb2 as pb
from robot_rl.runtime.net.codec import KeyCompression, encode_chunk, frame_chunk
from robot_rl.runtime.transport import TransitionChunk


class TransportFailed(RuntimeError):
    """The learner refused this actor for a reason retrying cannot fix."""


def split_to_fit(chunk: TransitionChunk, session: str, compression: str, limit: int) -> list[pb.Chunk]:
    """Encode a chunk as protobuf messages, halving it until each fits under the size limit."""
    msg = encode_chunk(chunk, session, compression)
    if msg.ByteSize() <= limit:
        return [msg]
    head, tail = _halves(chunk, msg.ByteSize(), limit)
    return split_to_fit(head, session, compression, limit) + split_to_fit(tail, session, compression, limit)


def frame_to_fit(
    chunk: TransitionChunk, session: str, compression: KeyCompression, limit: int
) -> list[bytes]:
    """What the transport sends: serialised chunks (frame_chunk), halved until each fits."""
    data = frame_chunk(chunk, session, compression)
    if len(data) <= limit:
        return [data]
    head, tail = _halves(chunk, len(data), limit)
    return frame_to_fit(head, session, compression, limit) + frame_to_fit(tail, session, compression, limit)


def _halves(chunk: TransitionChunk, size: int, limit: int) -> tuple[TransitionChunk, TransitionChunk]:
    """A chunk too big for one message, in two (the second keeps its end of episode)."""
    n = len(chunk)
    if n == 1:
        raise TransportFailed(
            f"one step is {size / 2**20:.1f} MB, over transport.max_message_mb="
            f"{limit // 2**20}: raise it on both machines"
        )
    half = n // 2
    head = TransitionChunk(
        chunk.actor_id, chunk.seq, chunk.episode_start, {k: v[:half] for k, v in chunk.rows.items()}
    )
    tail = TransitionChunk(
        chunk.actor_id,
        chunk.seq + half,
        chunk.episode_start,
        {k: v[half:] for k, v in chunk.rows.items()},
        chunk.final_obs,
        chunk.rerecorded,
    )
    return head, tail
