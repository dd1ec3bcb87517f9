"""One PushChunks call: an actor's chunks on their way on a stream, acknowledged in order.

The learner takes a stream's chunks in the order they were sent and answers each with an Ack,
in that order. So several chunks can be in flight (the link never idles waiting for one
acknowledgement), and each Ack belongs to the oldest chunk still unacknowledged. At most
`window` are in flight; every one has a deadline (overdue()), which the caller enforces.
"""

from __future__ import annotations

import queue
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

import grpc

from robot_rl.runtime.net import protocol_pb2 as pb


class ChunkStream:
    """Sends serialised chunks on one PushChunks stream; a reader thread matches the Acks."""

    def __init__(
        self,
        method: grpc.StreamStreamMultiCallable,
        metadata: Any,
        window: int,
        on_ack: Callable[[pb.Ack, Any], None],
        on_error: Callable[[BaseException], None],
    ) -> None:
        """on_ack(ack, tag): on the reader thread, per Ack, with the tag its chunk was sent with.
        on_error(err): once, when the stream ends other than by close()."""
        if window < 1:
            raise ValueError(f"window must be >= 1, got {window}")
        self._on_ack = on_ack
        self._on_error = on_error
        self._slots = threading.Semaphore(window)
        self._in_flight: deque[tuple[float, Any]] = deque()  # (time sent, tag), oldest first
        self._requests: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._closed = threading.Event()
        self._responses = method(iter(self._requests.get, None), metadata=metadata)
        self._reader = threading.Thread(target=self._read, name="grpc-chunk-acks", daemon=True)
        self._reader.start()

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    def send(self, message: bytes, tag: Any, timeout_s: float) -> bool:
        """Send once the window has room, waiting at most timeout_s; False if it had none."""
        if not self._slots.acquire(timeout=timeout_s):
            return False
        if self._closed.is_set():
            self._slots.release()
            return False
        self._in_flight.append((time.monotonic(), tag))  # before sending: its Ack may come at once
        self._requests.put(message)
        return True

    def in_flight(self) -> int:
        return len(self._in_flight)

    def overdue(self, deadline_s: float) -> bool:
        """Whether the oldest chunk in flight has waited longer than deadline_s for its Ack."""
        try:
            sent, _ = self._in_flight[0]
        except IndexError:
            return False
        return time.monotonic() - sent > deadline_s

    def close(self) -> None:
        """End the stream; chunks in flight are given up (the actor's store still holds them)."""
        self._closed.set()
        self._requests.put(None)
        self._responses.cancel()

    def join(self, timeout_s: float) -> None:
        self._reader.join(timeout_s)

    def _read(self) -> None:
        try:
            for ack in self._responses:
                _, tag = self._in_flight.popleft()
                self._slots.release()
                self._on_ack(ack, tag)
            raise ConnectionError("the learner ended the chunk stream")
        except BaseException as err:  # the stream broke, or on_ack refused: the caller decides
            if not self._closed.is_set():
                self._closed.set()
                self._on_error(err)
        finally:
            self._closed.set()
