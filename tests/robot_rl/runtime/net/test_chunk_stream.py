"""ChunkStream: chunks go out in order, at most `window` unacknowledged, and each Ack is matched
to the oldest chunk in flight; a stream that breaks is reported once, one closed is not."""

from __future__ import annotations

import queue
import threading
import time
from typing import Any

import pytest

from robot_rl.runtime.net import protocol_pb2 as pb
from robot_rl.runtime.net.chunk_stream import ChunkStream

pytestmark = pytest.mark.timeout(60)


class _Call:
    """What grpc's stream_stream call gives: the Acks as the test hands them out, and cancel()."""

    def __init__(self, requests: Any) -> None:
        self.requests = requests  # the chunks the stream sends, in order
        self.acks: queue.Queue = queue.Queue()
        self.cancelled = threading.Event()

    def __iter__(self) -> _Call:
        return self

    def __next__(self) -> pb.Ack:
        item = self.acks.get(timeout=20)
        if isinstance(item, BaseException):
            raise item
        return item

    def cancel(self) -> None:
        self.cancelled.set()
        self.acks.put(ConnectionAbortedError("cancelled"))


def _stream(window: int) -> tuple[ChunkStream, list[_Call], list[tuple[pb.Ack, Any]], list[BaseException]]:
    calls: list[_Call] = []
    acked: list[tuple[pb.Ack, Any]] = []
    errors: list[BaseException] = []

    def method(requests: Any, metadata: Any) -> _Call:
        calls.append(_Call(requests))
        return calls[-1]

    stream = ChunkStream(method, (), window, on_ack=lambda a, t: acked.append((a, t)), on_error=errors.append)
    return stream, calls, acked, errors


def _wait_for(pred: Any) -> None:
    deadline = time.monotonic() + 20
    while not pred():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def test_acks_match_the_oldest_chunk_and_the_window_bounds_what_is_in_flight():
    stream, (call,), acked, errors = _stream(window=2)
    assert stream.send(b"first", "tag-1", timeout_s=1) and stream.send(b"second", "tag-2", timeout_s=1)
    assert not stream.send(b"third", "tag-3", timeout_s=0.05)  # two unacknowledged: no room
    assert [next(call.requests), next(call.requests)] == [b"first", b"second"]  # in order
    time.sleep(0.01)
    assert stream.in_flight() == 2 and stream.overdue(0.0) and not stream.overdue(3600)
    call.acks.put(pb.Ack(accepted=True, next_seq=32))
    _wait_for(lambda: acked)
    assert acked == [(pb.Ack(accepted=True, next_seq=32), "tag-1")]
    assert stream.send(b"third", "tag-3", timeout_s=1)  # the Ack made room
    assert next(call.requests) == b"third"
    call.acks.put(pb.Ack(accepted=False, next_seq=32))
    _wait_for(lambda: len(acked) == 2)
    assert acked[1][1] == "tag-2" and stream.in_flight() == 1
    stream.close()
    stream.join(5)
    assert call.cancelled.is_set() and errors == []  # closing is not an error
    assert not stream.send(b"late", "tag-4", timeout_s=0.05)


def test_a_broken_stream_is_reported_once_and_takes_no_more():
    stream, (call,), _, errors = _stream(window=4)
    assert stream.send(b"chunk", "tag", timeout_s=1)
    broken = ConnectionResetError("the learner went away")
    call.acks.put(broken)
    _wait_for(lambda: stream.closed)
    stream.join(5)
    assert errors == [broken]
    assert not stream.send(b"next", "tag", timeout_s=0.05)


def test_a_stream_the_learner_ends_is_an_error_too():
    stream, (call,), _, errors = _stream(window=1)
    call.acks.put(StopIteration())  # the response iterator simply ends
    _wait_for(lambda: stream.closed)
    stream.join(5)
    assert len(errors) == 1 and "ended the chunk stream" in str(errors[0])


def test_window_must_be_positive():
    with pytest.raises(ValueError, match="window"):
        _stream(window=0)
