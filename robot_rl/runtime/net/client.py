"""The actor's end of the gRPC transport. The control loop never waits on the network.

Background threads:
- link: connects (waiting for the channel, whose own backoff paces the attempts), then encodes
  the chunks the actor hands over (frame_chunk, compression chosen per camera by the ratio it
  achieves) and sends them on one PushChunks stream, up to `chunks_in_flight` unacknowledged
  (chunk_stream.py; one call per chunk to a learner without the stream); every chunk and call
  has a deadline;
- chunk acks: matches the learner's in-order acknowledgements to the chunks in flight;
- heartbeat: beats every `heartbeat_s`; no answer for `lost_after_s` means the learner is lost;
- weights: holds a stream of weights open and keeps the newest.
When the link is lost, send() returns False, so steps stay in the actor's episode store (the
spool); on reconnect the learner says which step it needs next and the actor's sender rewinds
to it (take_rewind), so nothing is lost and nothing is ingested twice.
"""

from __future__ import annotations

import queue
import secrets
import socket
import threading
import time
from pathlib import Path
from typing import Any

import grpc
import torch

from robot_rl.config import TransportConfig
from robot_rl.runtime.net import protocol_pb2 as pb
from robot_rl.runtime.net.chunk_stream import ChunkStream
from robot_rl.runtime.net.codec import (
    PROTOCOL_VERSION,
    SERVICE,
    KeyCompression,
    WireError,
    split_weights_message,
    weights_from_message,
)
from robot_rl.runtime.net.fit import TransportFailed, frame_to_fit, split_to_fit
from robot_rl.runtime.net.security import call_metadata, channel_credentials
from robot_rl.runtime.net.server import grpc_options
from robot_rl.runtime.net.shared_weights import read_copy, same_host_copy
from robot_rl.runtime.transport import TransitionChunk, WeightsId, newer

__all__ = ["GrpcActorTransport", "TransportFailed", "reconnect_options", "split_to_fit"]

# A refused Connect answered at once is retried after this pause, not in a spin.
RETRY_PAUSE_S = 0.1
# After the learner refuses a chunk (its queue is full), sending waits this long for it to drain.
REFUSED_PAUSE_S = 0.05

# Codes that retrying cannot fix: the actor stops with the learner's message.
FATAL = {
    grpc.StatusCode.UNAUTHENTICATED,
    grpc.StatusCode.PERMISSION_DENIED,
    grpc.StatusCode.FAILED_PRECONDITION,
    grpc.StatusCode.INVALID_ARGUMENT,
    grpc.StatusCode.RESOURCE_EXHAUSTED,
    grpc.StatusCode.ABORTED,
    grpc.StatusCode.UNIMPLEMENTED,
}


def reconnect_options(cfg: TransportConfig) -> list[tuple[str, int]]:
    """gRPC's reconnect backoff, the only one between the actor's connection attempts.

    From 0.1 s up to transport.reconnect_max_s; each attempt may take at least 1 s (a TLS
    handshake across a WAN fits, and a connection attempt lost with a pulled cable is retried
    within a second of it coming back).
    """
    return [
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", int(cfg.reconnect_max_s * 1000)),
        ("grpc.min_reconnect_backoff_ms", 1000),
    ]


class GrpcActorTransport:
    """ActorTransport over gRPC (see the module docstring)."""

    def __init__(
        self, cfg: TransportConfig, actor_id: int, spaces: str, token: str, recorded_steps: int = 0
    ) -> None:
        """recorded_steps: what the actor's store holds as it starts (the learner drops any more)."""
        self.cfg = cfg
        self.incarnation = secrets.token_hex(8)
        self.recorded_steps = recorded_steps
        self.actor_id = actor_id
        self.spaces = spaces
        self.limit = cfg.max_message_mb * 2**20
        self._meta = call_metadata(token)
        creds = channel_credentials(cfg)
        options = [*grpc_options(cfg), *reconnect_options(cfg)]
        if creds is None:
            self._channel = grpc.insecure_channel(cfg.learner, options=options)
        else:
            self._channel = grpc.secure_channel(cfg.learner, creds, options=options)
        method = f"/{SERVICE}/"
        self._connect = self._channel.unary_unary(
            method + "Connect", pb.Hello.SerializeToString, pb.Welcome.FromString
        )
        # chunks go out already serialised (frame_chunk): bytes as they are
        self._push = self._channel.unary_unary(method + "PushChunk", None, pb.Ack.FromString)
        self._push_stream = self._channel.stream_stream(method + "PushChunks", None, pb.Ack.FromString)
        self._compression = KeyCompression(cfg.compression)
        self._chunks: ChunkStream | None = None  # the session's PushChunks stream, if the learner has one
        self._refused_at = 0.0  # when the learner last refused a chunk (back-pressure or a gap)
        self._beat = self._channel.unary_unary(
            method + "Beat", pb.Heartbeat.SerializeToString, pb.HeartbeatReply.FromString
        )
        self._watch = self._channel.unary_stream(
            method + "WatchWeights", pb.WeightsRequest.SerializeToString, split_weights_message
        )
        self._out: queue.Queue[tuple[int, TransitionChunk]] = queue.Queue(maxsize=cfg.queue_chunks)
        self._lock = threading.Lock()
        self._session: str | None = None  # None: not connected
        self._generation = 0  # bumped on every (re)connect and loss: older queued chunks are void
        self._rewind: int | None = None
        self._handed_end = 0  # end seq of the last chunk handed over
        self._acked = 0  # first step the learner does not hold, as it last said
        self._last_ok = time.monotonic()
        self._weights: tuple[int, dict[str, torch.Tensor]] | None = None
        self._weights_source: WeightsId | None = None  # the learner incarnation that sent them
        self._weights_count = 0  # weights taken; poll_weights returns each new one once
        self._returned = 0
        self._weights_arrived = threading.Event()
        self._stream: Any = None
        self._shared: Path | None = None  # the learner's shared weights folder, on its host
        self._report: dict[str, Any] = {}
        self.trained_through = 0
        self.learner_done = False
        self.failure: str | None = None
        self.counters = {"connects": 0, "losses": 0, "backpressure": 0, "chunks_sent": 0, "bytes_sent": 0}
        self.counters |= {"weights_streamed": 0, "weights_shared": 0}  # versions taken, by how
        self._stop = threading.Event()
        self._threads = [
            threading.Thread(target=self._guard(fn), name=f"grpc-{fn.__name__}", daemon=True)
            for fn in (self._link_loop, self._heartbeat_loop, self._weights_loop)
        ]
        for t in self._threads:
            t.start()

    # ---- ActorTransport (called by the control loop; none of these block) ----
    def send(self, chunk: TransitionChunk) -> bool:
        with self._lock:
            if self._session is None or self._rewind is not None or self.failure:
                return False
            try:
                self._out.put_nowait((self._generation, chunk))
            except queue.Full:
                return False
            self._handed_end = chunk.seq + len(chunk)
            return True

    def take_rewind(self) -> int | None:
        """Once after each (re)connect or refusal: the step the learner needs next."""
        with self._lock:
            seq, self._rewind = self._rewind, None
            if seq is not None:
                self._handed_end = seq
            return seq

    def poll_weights(self) -> tuple[int, dict[str, torch.Tensor]] | None:
        with self._lock:
            if self._weights is None or self._weights_count == self._returned:
                return None
            self._returned = self._weights_count
            return self._weights

    def wait_for_weights(self, timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and not self.failure:
            if self._weights_arrived.wait(0.1):
                return True
        self.raise_if_failed()
        return False

    def connected(self) -> bool:
        return self._session is not None

    def depth(self) -> int:
        return self._out.qsize()

    def pending(self) -> int:
        """Steps handed over that the learner has not acknowledged yet."""
        with self._lock:
            return max(0, self._handed_end - self._acked)

    def report(self, stats: dict[str, Any]) -> None:
        """The actor's episode statistics, carried by the next heartbeat."""
        self._report = dict(stats)

    def stats(self) -> dict[str, float]:
        return {
            "link_up": float(self.connected()),
            "queue_depth": float(self.depth()),
            "unacked_steps": float(self.pending()),
            **{k: float(v) for k, v in self.counters.items()},
        }

    def raise_if_failed(self) -> None:
        if self.failure:
            raise TransportFailed(self.failure)

    def close(self, final_beat: bool = True) -> None:
        """Stop the link. final_beat: send the last report first. A report that says the actor is
        done is retried, across a reconnect, for up to call_timeout_s: the learner finishes only
        once every actor has said so, and a link lost just before the end must not leave it waiting.
        """
        if final_beat and not self.failure:
            try:
                self._final_beat()
            except TransportFailed as err:  # closing must still stop the threads and the channel
                self.failure = str(err)
        self._stop.set()
        self._cancel_stream()
        self._close_chunks()
        for t in self._threads:
            t.join(timeout=2.0)
        self._channel.close()

    # ---- background ----
    def _guard(self, fn: Any) -> Any:
        def run() -> None:
            try:
                fn()
            except TransportFailed as err:
                self.failure = str(err)
            except Exception as err:  # a bug here must stop the actor with a message, not hang it
                self.failure = f"transport thread {fn.__name__} failed: {err!r}"

        return run

    def _fail_on(self, err: grpc.RpcError) -> None:
        if err.code() in FATAL:
            raise TransportFailed(
                f"learner at {self.cfg.learner} refused: {err.code().name}: {err.details()}"
            )

    def _lose(self, session: str | None) -> None:
        """The link is gone: void what is queued; the spool keeps the steps."""
        with self._lock:
            if session is None or self._session != session:
                return  # already handled
            self._session = None
            self._generation += 1
            self.counters["losses"] += 1
        self._cancel_stream()
        self._close_chunks()
        while True:
            try:
                self._out.get_nowait()
            except queue.Empty:
                break

    def _cancel_stream(self) -> None:
        stream = self._stream
        if stream is not None:
            stream.cancel()

    def _close_chunks(self) -> None:
        chunks, self._chunks = self._chunks, None
        if chunks is not None:
            chunks.close()

    def _link_loop(self) -> None:
        while not self._stop.is_set():
            session = self._session
            if session is None:
                self._try_connect()
                continue
            try:
                generation, chunk = self._out.get(timeout=0.05)
            except queue.Empty:
                chunks = self._chunks  # every chunk in flight has a deadline
                if chunks is not None and chunks.overdue(self.cfg.call_timeout_s):
                    self._lose(session)
                continue
            if generation == self._generation:
                self._upload(chunk, generation)

    def _try_connect(self) -> bool:
        hello = pb.Hello(
            protocol_version=PROTOCOL_VERSION,
            actor_id=self.actor_id,
            spaces=self.spaces,
            host=socket.gethostname(),
            incarnation=self.incarnation,
            recorded=self.recorded_steps,
        )
        started = time.monotonic()
        # waits for the channel to be ready: when to try connecting again is gRPC's backoff alone
        future = self._connect.future(
            hello, timeout=self.cfg.call_timeout_s, metadata=self._meta, wait_for_ready=True
        )
        try:
            welcome = self._wait(future)
        except grpc.RpcError as err:
            self._fail_on(err)
            # an answer that came at once (e.g. the learner's queue is full: retry) is not
            # retried in a spin; a call that waited out its deadline is retried at once
            self._stop.wait(RETRY_PAUSE_S - (time.monotonic() - started))
            return False
        if welcome is None:  # close() came
            return False
        if welcome.chunk_stream:  # several chunks in flight; an older learner takes one per call
            session = welcome.session
            self._chunks = ChunkStream(
                self._push_stream,
                self._meta,
                self.cfg.chunks_in_flight,
                on_ack=self._take_ack,
                on_error=lambda err: self._chunks_failed(session, err),
            )
        shared = (
            same_host_copy(welcome.shared_weights, welcome.shared_key) if self.cfg.shared_weights else None
        )
        with self._lock:
            self._shared = shared  # on the learner's host: read its copy of the weights
            self._session = welcome.session
            self._generation += 1
            self._rewind = welcome.next_seq
            self._acked = welcome.next_seq
            self._last_ok = time.monotonic()
            self.counters["connects"] += 1
        return True

    def _wait(self, future: Any) -> Any:
        """A call's result, or None once close() is called (the call is cancelled)."""
        while True:
            try:
                return future.result(timeout=0.05)
            except grpc.FutureTimeoutError:
                if self._stop.is_set():
                    future.cancel()
                    return None

    def _upload(self, chunk: TransitionChunk, generation: int) -> None:
        """Encode a chunk (here, off the control thread) and send it; gives up when it is void."""
        session = self._session
        if session is None:
            return
        self._stop.wait(self._refused_at + REFUSED_PAUSE_S - time.monotonic())  # let the learner drain
        for msg in frame_to_fit(chunk, session, self._compression, self.limit):
            if generation != self._generation:
                return
            chunks = self._chunks
            sent = (
                self._push_one(msg, generation, session)
                if chunks is None
                else self._stream_one(chunks, msg, generation, session)
            )
            if not sent:
                return

    def _stream_one(self, chunks: ChunkStream, msg: bytes, generation: int, session: str) -> bool:
        """Put a chunk on the stream once the window has room; False when the link is void."""
        while not chunks.send(msg, (generation, len(msg)), timeout_s=0.05):
            if generation != self._generation or chunks.closed:
                return False
            if chunks.overdue(self.cfg.call_timeout_s):  # the oldest chunk's deadline passed
                self._lose(session)
                return False
        return True

    def _push_one(self, msg: bytes, generation: int, session: str) -> bool:
        """One call per chunk, waiting for its Ack (a learner without PushChunks)."""
        future = self._push.future(msg, timeout=self.cfg.call_timeout_s, metadata=self._meta)
        while True:  # wait, but give up at once if the heartbeat declares the link lost
            try:
                ack = future.result(timeout=0.05)
                break
            except grpc.FutureTimeoutError:
                if generation != self._generation:
                    future.cancel()
                    return False
            except grpc.RpcError as err:
                if err.code() == grpc.StatusCode.CANCELLED:
                    return False
                if self._session == session:
                    self._fail_on(err)
                self._lose(session)
                return False
        self._take_ack(ack, (generation, len(msg)))
        return ack.accepted

    def _take_ack(self, ack: pb.Ack, tag: tuple[int, int]) -> None:
        """The learner's answer to one chunk (on the stream's reader thread, or the link's)."""
        generation, size = tag
        with self._lock:
            self._last_ok = time.monotonic()
            self._acked = ack.next_seq
            self.counters["chunks_sent"] += 1
            self.counters["bytes_sent"] += size
            if not ack.accepted and generation == self._generation:
                # queue full (back-pressure) or a gap: send again from where the learner is
                self.counters["backpressure"] += 1
                self._generation += 1
                self._rewind = ack.next_seq
                self._refused_at = time.monotonic()

    def _chunks_failed(self, session: str, err: BaseException) -> None:
        """The chunk stream ended (not by close(): a learner shutting down cancels it): a refusal
        retrying cannot fix stops the actor, anything else means reconnecting."""
        try:
            if isinstance(err, grpc.RpcError):
                if self._session == session:
                    self._fail_on(err)
            elif not isinstance(err, ConnectionError):
                raise err
        except TransportFailed as fatal:
            self.failure = str(fatal)
        except Exception as bug:  # a bug here must stop the actor with a message, not hang it
            self.failure = f"transport chunk stream failed: {bug!r}"
        self._lose(session)

    def _heartbeat_loop(self) -> None:
        while not self._stop.wait(self.cfg.heartbeat_s):
            session = self._session
            if session is None:
                continue
            self._send_beat(timeout_s=min(self.cfg.call_timeout_s, self.cfg.lost_after_s))
            if time.monotonic() - self._last_ok > self.cfg.lost_after_s:
                self._lose(session)

    def _final_beat(self) -> None:
        must_arrive = bool(self._report.get("done")) and not self.learner_done  # done: it heard
        deadline = time.monotonic() + self.cfg.call_timeout_s
        while not self.failure:
            left = deadline - time.monotonic()
            if self._session is not None and self._send_beat(timeout_s=max(left, 0.1)):
                return
            if not must_arrive or left <= 0:
                if must_arrive:
                    print(
                        f"warning: the learner at {self.cfg.learner} did not hear that actor "
                        f"{self.actor_id} is done (the link is down); it goes on waiting for it",
                        flush=True,
                    )
                return
            time.sleep(0.05)  # the link loop reconnects meanwhile

    def _send_beat(self, timeout_s: float) -> bool:
        """One heartbeat with the latest report; True if the learner answered."""
        session = self._session
        if session is None:
            return False
        r = self._report
        stats = pb.ActorStats(
            env_steps=int(r.get("env_steps", 0)),
            episodes=int(r.get("episodes", 0)),
            success_last20=float(r.get("success_last20", 0.0)),
            last_return=float(r.get("last_return", 0.0)),
            policy_version=int(r.get("policy_version", -1)),
            backlog=int(r.get("backlog", 0)),
            queue_depth=self.depth(),
            reconnects=max(0, self.counters["connects"] - 1),
            backpressure_events=self.counters["backpressure"],
            done=bool(r.get("done", False)),
        )
        try:
            reply = self._beat(
                pb.Heartbeat(actor_id=self.actor_id, session=session, stats=stats),
                timeout=timeout_s,
                metadata=self._meta,
            )
        except grpc.RpcError as err:
            if self._session == session:
                self._fail_on(err)
                if err.code() == grpc.StatusCode.NOT_FOUND:  # the learner restarted
                    self._lose(session)
            return False
        self._last_ok = time.monotonic()
        self.trained_through = reply.trained_through
        self.learner_done = reply.learner_done
        return True

    def _read_shared(self, head: pb.Weights) -> tuple[pb.Weights, memoryview] | None:
        """The message a head names, from the learner's shared copy (which may already hold a
        newer one). A copy that is missing, unreadable or older stops the sharing: the stream is
        reopened to carry whole messages (None)."""
        folder = self._shared
        try:
            if folder is None:
                raise OSError("no shared copy")
            msg, payload = split_weights_message(read_copy(folder))
            if msg.incarnation != head.incarnation or msg.version < head.version:
                raise OSError(f"the copy holds v{msg.version}, not v{head.version}")
        except (OSError, WireError):
            self._shared = None
            self._cancel_stream()
            return None
        return msg, payload

    def _weights_loop(self) -> None:
        while not self._stop.is_set():
            session = self._session
            if session is None:
                self._stop.wait(0.05)
                continue
            have = self._weights[0] if self._weights else 0
            incarnation = self._weights_source.incarnation if self._weights_source else ""
            request = pb.WeightsRequest(
                actor_id=self.actor_id,
                session=session,
                have_version=have,
                have_incarnation=incarnation,
                shared=self._shared is not None,
            )
            # the stream's deadline bounds it; it is simply reopened
            self._stream = self._watch(request, timeout=60.0, metadata=self._meta)
            if self._stop.is_set() or self._session != session:  # close() or a loss came meanwhile
                self._stream.cancel()
            try:
                for head, payload in self._stream:
                    self._take_weights(head, payload)
            except grpc.RpcError as err:
                if err.code() not in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
                    if self._session == session and err.code() in FATAL:
                        self._fail_on(err)
                    self._stop.wait(0.1)
            finally:
                self._stream = None

    def _take_weights(self, msg: pb.Weights, payload: memoryview) -> None:
        kind = "weights_streamed"
        if msg.shared:
            found = self._read_shared(msg)
            if found is None:
                return
            msg, payload, kind = *found, "weights_shared"
        try:
            version, state = int(msg.version), weights_from_message(payload)
        except WireError as err:
            raise TransportFailed(f"the learner sent weights that do not load: {err}") from err
        with self._lock:
            source = WeightsId(msg.run, msg.incarnation)
            have = self._weights[0] if self._weights else -1
            if newer(version, source, have, self._weights_source):  # a restarted learner: at once
                self._weights, self._weights_source = (version, state), source
                self._weights_count += 1
                self.counters[kind] += 1
        self._weights_arrived.set()
