"""The learner's end of the gRPC transport: one server, any number of actors (up to max_actors).

Each actor connects (protocol version and env spaces checked), then pushes chunks (on one
PushChunks stream, several in flight, taken and acknowledged in order; or one PushChunk call
each, as older actors do), beats every `heartbeat_s` and watches a stream of weights. Per
actor the server keeps `next_seq`, the first step it does not hold: a chunk that would leave a
gap is refused and the actor sends again from `next_seq`, one it already holds is acknowledged
and dropped, so every step is ingested once whatever the network did. A full queue refuses
chunks (back-pressure); they wait in the actor's store. A newer connection of the same actor id
supersedes the older one.

Every refused connection (wrong token, protocol, env, too many actors, a store from another run)
is counted and kept as one line with the reason, the peer address and the actor id, for the
learner's display and metrics.
"""

from __future__ import annotations

import queue
import secrets
import threading
import time
from collections import deque
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import grpc
import torch

from robot_rl.config import TransportConfig
from robot_rl.runtime.net import protocol_pb2 as pb
from robot_rl.runtime.net.codec import (
    PROTOCOL_VERSION,
    SERVICE,
    WireChunk,
    WireError,
    decode_chunk,
    parse_chunk,
    weights_message,
)
from robot_rl.runtime.net.security import TokenCheck, is_loopback, server_credentials
from robot_rl.runtime.net.shared_weights import SharedCopy, shared_memory_dir
from robot_rl.runtime.transport import (
    ActorRestarted,
    TransitionChunk,
    WeightsId,
    WeightsPublisher,
    take_from_queue,
)


def grpc_options(cfg: TransportConfig) -> list[tuple[str, int]]:
    limit = cfg.max_message_mb * 2**20
    return [
        ("grpc.max_receive_message_length", limit),
        ("grpc.max_send_message_length", limit),
        ("grpc.keepalive_time_ms", 10_000),  # find dead peers on idle connections
        ("grpc.keepalive_timeout_ms", 5_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.max_pings_without_data", 0),
        ("grpc.http2.min_ping_interval_without_data_ms", 5_000),
    ]


@dataclass
class ActorLink:
    """What the learner knows of one actor."""

    actor_id: int
    session: str
    incarnation: str
    host: str
    peer: str
    next_seq: int  # first step of this actor the learner does not hold
    complete: int = 0  # steps of its episodes taken whole: its replay store will hold them
    connected_at: float = field(default_factory=time.monotonic)
    last_seen: float = field(default_factory=time.monotonic)
    connects: int = 1
    chunks: int = 0
    steps: int = 0
    bytes: int = 0
    backpressure: int = 0  # chunks refused because the learner's queue was full
    duplicates: int = 0  # steps received again and dropped
    stats: dict[str, Any] = field(default_factory=dict)  # the actor's own, from heartbeats

    def summary(self, now: float) -> dict[str, Any]:
        return {
            "actor_id": self.actor_id,
            "host": self.host,
            "seen_s_ago": now - self.last_seen,
            "next_seq": self.next_seq,
            "connects": self.connects,
            "chunks": self.chunks,
            "steps": self.steps,
            "mbytes": self.bytes / 2**20,
            "backpressure": self.backpressure,
            "duplicates": self.duplicates,
            **self.stats,
        }


class GrpcLearnerTransport:
    """LearnerTransport over gRPC; start() opens the port once the replay store's cursors are read."""

    def __init__(self, cfg: TransportConfig, run_dir: Path, spaces: str, token: str) -> None:
        if not is_loopback(cfg.listen) and not cfg.tls_cert:
            print(f"warning: listening on {cfg.listen} without TLS; the token crosses the network in clear")
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.spaces = spaces
        self.max_bytes = cfg.max_message_mb * 2**20
        self._queue: queue.Queue[TransitionChunk | ActorRestarted] = queue.Queue(maxsize=cfg.queue_chunks)
        self._lock = threading.Lock()
        self._links: dict[int, ActorLink] = {}
        self._chunk_streams: set[grpc.ServicerContext] = set()  # open PushChunks calls
        self._cursors: dict[int, int] = {}
        # version, incarnation, serialised pb.Weights, and its head alone (for shared-copy readers)
        self._weights: tuple[int, str, bytes, bytes] | None = None
        self._weights_changed = threading.Condition()
        self._publisher = WeightsPublisher(self.run_dir / "weights" / "policy.pt", self._deliver)
        shm = shared_memory_dir() if cfg.shared_weights else None
        self._shared = SharedCopy(shm) if shm is not None else None  # for actors on this host
        self._shared_readers = 0  # open weight streams that read the shared copy
        self._closing = False
        self.trained_through = 0  # set by the learner; actors pace on it in sim
        self.learner_done = False
        self.rejected = 0  # malformed chunks
        self.refused_connections = 0
        self._refusals: deque[str] = deque(maxlen=100)  # not yet shown
        self._refusals_lock = threading.Lock()  # its own: refusals are noted while _lock is held
        self._token_check = TokenCheck(token, self._token_refused)
        self._server = grpc.server(
            ThreadPoolExecutor(max_workers=2 * cfg.max_actors + 8, thread_name_prefix="grpc-learner"),
            interceptors=[self._token_check],
            # no SO_REUSEPORT: a second learner on the port must fail, not share its actors
            options=[*grpc_options(cfg), ("grpc.so_reuseport", 0)],
            maximum_concurrent_rpcs=4 * cfg.max_actors + 16,
        )
        self._server.add_generic_rpc_handlers((self._handlers(),))
        self.port = 0

    def _handlers(self) -> grpc.GenericRpcHandler:
        unary = grpc.unary_unary_rpc_method_handler
        return grpc.method_handlers_generic_handler(
            SERVICE,
            {
                "Connect": unary(self._connect, pb.Hello.FromString, pb.Welcome.SerializeToString),
                # chunks are parsed without copying their arrays' bytes (codec.parse_chunk)
                "PushChunk": unary(self._push_chunk, parse_chunk, pb.Ack.SerializeToString),
                "PushChunks": grpc.stream_stream_rpc_method_handler(
                    self._push_chunks, parse_chunk, pb.Ack.SerializeToString
                ),
                "Beat": unary(self._beat, pb.Heartbeat.FromString, pb.HeartbeatReply.SerializeToString),
                "WatchWeights": grpc.unary_stream_rpc_method_handler(
                    # serialised once per version in _deliver, not once per actor stream
                    self._watch_weights,
                    pb.WeightsRequest.FromString,
                    bytes,
                ),
            },
        )

    # ---- LearnerTransport ----
    def start(self, cursors: dict[int, int]) -> None:
        """Open the port. cursors: per actor, the steps the replay store already holds."""
        self._cursors = dict(cursors)
        creds = server_credentials(self.cfg)
        try:
            if creds is None:
                self.port = self._server.add_insecure_port(self.cfg.listen)
            else:
                self.port = self._server.add_secure_port(self.cfg.listen, creds)
        except RuntimeError as err:
            raise OSError(f"cannot listen on {self.cfg.listen} ({err}): is another learner running?") from err
        if self.port == 0:
            raise OSError(f"cannot listen on {self.cfg.listen}: is the port in use?")
        self._server.start()

    def receive(self, max_chunks: int, timeout_s: float) -> list[TransitionChunk | ActorRestarted]:
        return take_from_queue(self._queue, max_chunks, timeout_s)

    def publish_weights(
        self, version: int, policy_state: dict[str, torch.Tensor], source: WeightsId | None = None
    ) -> None:
        """Returns at once: the streams get the version, then the weights file (eval, resume)."""
        self._publisher.publish(version, policy_state, source)

    def flush(self) -> None:
        self._publisher.flush()

    def _deliver(self, version: int, source: WeightsId, policy: dict[str, torch.Tensor]) -> None:
        """On the publisher's thread: serialised once for every actor stream."""
        message = weights_message(version, source, policy)
        head = pb.Weights(version=version, run=source.run, incarnation=source.incarnation, shared=True)
        with self._weights_changed:
            if self._shared_readers:
                self._share(version, message)  # before any reader hears of the version
            self._weights = (version, source.incarnation, message, head.SerializeToString())
            self._weights_changed.notify_all()

    def _share(self, version: int, message: bytes) -> None:
        """Update the shared copy; if it cannot be written (shared memory full, the folder
        removed), stop offering it: its readers find it stale and go back to the stream."""
        if self._shared is None:
            return
        try:
            self._shared.write(version, message)
        except OSError as err:
            print(f"warning: weights' shared copy {self._shared.path} failed ({err}); streaming", flush=True)
            self._shared.close()
            self._shared = None

    def close(self, grace_s: float = 1.0) -> None:
        try:
            self._publisher.close()
        except RuntimeError as err:  # closing must still stop the server
            print(f"warning: {err}", flush=True)
        with self._weights_changed:
            self._closing = True
            self._weights_changed.notify_all()
        with self._lock:  # a chunk stream never ends by itself: its actor is told now, not after grace_s
            streams = list(self._chunk_streams)
        for context in streams:
            context.cancel()
        self._server.stop(grace_s).wait(grace_s + 1.0)
        if self._shared is not None:
            self._shared.close()

    # ---- what the display and the learner app read ----
    def depth(self) -> int:
        return self._queue.qsize()

    def actors(self) -> list[dict[str, Any]]:
        now = time.monotonic()
        with self._lock:
            return [link.summary(now) for link in sorted(self._links.values(), key=lambda x: x.actor_id)]

    def finished_total(self) -> int:
        """All steps the actors produced, once every actor that connected has finished; else -1."""
        with self._lock:
            links = list(self._links.values())
        if not links or not all(link.stats.get("done") for link in links):
            return -1
        return sum(int(link.stats.get("env_steps", 0)) for link in links)

    @property
    def refused_tokens(self) -> int:
        return self._token_check.refused

    def take_refusals(self) -> list[str]:
        """Refused connections since the last call, one line each (reason, peer, actor id)."""
        with self._refusals_lock:
            lines = list(self._refusals)
            self._refusals.clear()
        return lines

    def _note_refusal(self, reason: str, peer: str, actor_id: int | None) -> None:
        who = f"actor {actor_id}" if actor_id is not None else "a caller"
        with self._refusals_lock:
            self.refused_connections += 1
            self._refusals.append(f"refused {who} from {peer}: {reason}")

    def _refuse(
        self, context: grpc.ServicerContext, code: grpc.StatusCode, reason: str, actor_id: int
    ) -> None:
        self._note_refusal(reason, context.peer(), actor_id)
        context.abort(code, reason)

    def _token_refused(self, method: str, request: bytes, peer: str) -> None:
        if not method.endswith("/Connect"):
            return  # a refused actor is counted once, at its Connect, not at every call after
        try:
            actor_id: int | None = pb.Hello.FromString(request).actor_id
        except Exception:  # not even a Hello: still refused and shown
            actor_id = None
        self._note_refusal("wrong or missing transport token", peer, actor_id)

    # ---- handlers (gRPC worker threads) ----
    def _connect(self, hello: pb.Hello, context: grpc.ServicerContext) -> pb.Welcome:
        if hello.protocol_version != PROTOCOL_VERSION:
            self._refuse(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"protocol version mismatch: the learner speaks {PROTOCOL_VERSION}, the actor "
                f"{hello.protocol_version}; run the same robot-rl version on both machines",
                hello.actor_id,
            )
        if hello.spaces != self.spaces:
            self._refuse(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"the actor's env differs from the learner's: actor {hello.spaces} vs learner "
                f"{self.spaces}; use the same env config on both",
                hello.actor_id,
            )
        with self._lock:
            old = self._links.get(hello.actor_id)
            if old is None and len(self._links) >= self.cfg.max_actors:
                self._refuse(
                    context,
                    grpc.StatusCode.RESOURCE_EXHAUSTED,
                    f"the learner serves at most {self.cfg.max_actors} actors (transport.max_actors)",
                    hello.actor_id,
                )
            next_seq = old.next_seq if old else self._cursors.get(hello.actor_id, 0)
            complete = old.complete if old else next_seq
            restarted = old is not None and old.incarnation != hello.incarnation
            if restarted and hello.recorded < complete:  # the learner cannot forget whole episodes
                self._refuse(
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"actor {hello.actor_id} ({hello.host}) holds {hello.recorded} steps but the learner has "
                    f"{complete} steps of whole episodes from actor {hello.actor_id}: every robot needs its "
                    "own actor_id, and an actor resumes with its own run_dir",
                    hello.actor_id,
                )
            if restarted and hello.recorded < next_seq:
                # the actor died mid-episode: the steps it sent of that episode died with it
                try:
                    self._queue.put_nowait(ActorRestarted(hello.actor_id, hello.recorded))
                except queue.Full:
                    context.abort(grpc.StatusCode.UNAVAILABLE, "the learner's queue is full: retry")
                next_seq = hello.recorded
            link = ActorLink(
                hello.actor_id, secrets.token_hex(8), hello.incarnation, hello.host, context.peer(), next_seq
            )
            link.complete = complete
            if old is not None:  # a reconnect: keep the counters
                link.connects, link.chunks, link.steps = old.connects + 1, old.chunks, old.steps
                link.bytes, link.backpressure, link.duplicates = old.bytes, old.backpressure, old.duplicates
            self._links[hello.actor_id] = link
        version = self._weights[0] if self._weights else 0
        return pb.Welcome(
            protocol_version=PROTOCOL_VERSION,
            session=link.session,
            next_seq=next_seq,
            weights_version=version,
            learner_run=self.run_dir.name,
            chunk_stream=True,
            shared_weights=str(self._shared.path) if self._shared else "",
            shared_key=self._shared.key if self._shared else "",
        )

    def _link(self, actor_id: int, session: str, context: grpc.ServicerContext) -> ActorLink:
        with self._lock:
            link = self._links.get(actor_id)
        if link is None:
            context.abort(
                grpc.StatusCode.NOT_FOUND, "unknown actor session (the learner restarted): reconnect"
            )
        if link.session != session:
            context.abort(
                grpc.StatusCode.ABORTED,
                f"actor id {actor_id} connected again from {link.host} ({link.peer}); "
                "every actor needs its own actor_id",
            )
        link.last_seen = time.monotonic()
        return link

    def _push_chunks(self, requests: Iterator[WireChunk], context: grpc.ServicerContext) -> Iterator[pb.Ack]:
        """Chunks on one stream, taken in the order sent: one Ack each, in that order."""
        with self._lock:
            self._chunk_streams.add(context)
        try:
            for msg in requests:
                yield self._push_chunk(msg, context)
        finally:
            with self._lock:
                self._chunk_streams.discard(context)

    def _push_chunk(self, msg: WireChunk, context: grpc.ServicerContext) -> pb.Ack:
        link = self._link(msg.actor_id, msg.session, context)
        try:
            chunk = decode_chunk(msg, self.max_bytes)
        except WireError as err:
            self.rejected += 1
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"malformed chunk: {err}")
        with self._lock:
            if self._links.get(msg.actor_id) is not link:  # superseded while this chunk decoded
                context.abort(grpc.StatusCode.ABORTED, f"actor id {msg.actor_id} connected again")
            cursor = link.next_seq
            if chunk.seq > cursor:  # a gap would lose steps: the actor sends again from cursor
                return pb.Ack(accepted=False, next_seq=cursor)
            if chunk.seq + len(chunk) <= cursor:
                link.duplicates += len(chunk)
                return pb.Ack(accepted=True, next_seq=cursor)
            try:
                self._queue.put_nowait(chunk)  # a partial overlap is trimmed by Ingest
            except queue.Full:
                link.backpressure += 1
                return pb.Ack(accepted=False, next_seq=cursor)
            link.next_seq = chunk.seq + len(chunk)
            if chunk.ends_episode:
                link.complete = link.next_seq
            link.chunks += 1
            link.steps += link.next_seq - cursor
            link.bytes += msg.size
            return pb.Ack(accepted=True, next_seq=link.next_seq)

    def _beat(self, msg: pb.Heartbeat, context: grpc.ServicerContext) -> pb.HeartbeatReply:
        link = self._link(msg.actor_id, msg.session, context)
        s = msg.stats
        link.stats = {
            "env_steps": s.env_steps,
            "episodes": s.episodes,
            "success_last20": s.success_last20,
            "last_return": s.last_return,
            "policy_version": s.policy_version,
            "backlog": s.backlog,
            "queue_depth": s.queue_depth,
            "reconnects": s.reconnects,
            "actor_backpressure": s.backpressure_events,
            "done": s.done,
        }
        return pb.HeartbeatReply(
            weights_version=self._weights[0] if self._weights else 0,
            next_seq=link.next_seq,
            trained_through=int(self.trained_through),
            learner_done=self.learner_done,
        )

    def _newer_than(self, version: int, incarnation: str) -> bool:
        current = self._weights
        return self._closing or (current is not None and (current[0] > version or current[1] != incarnation))

    def _watch_weights(self, req: pb.WeightsRequest, context: grpc.ServicerContext) -> Any:
        """Streams every newer version as it is published (the newest only, if several piled up)."""
        link = self._link(req.actor_id, req.session, context)
        have, have_incarnation = req.have_version, req.have_incarnation
        shared = req.shared and self._shared is not None  # heads only: the actor reads the copy
        if shared:
            with self._weights_changed:
                self._shared_readers += 1
                if self._weights is not None:  # the copy holds what the first head will name
                    self._share(self._weights[0], self._weights[2])
        try:
            while context.is_active() and link.session == req.session:
                with self._weights_changed:
                    is_new = lambda v=have, i=have_incarnation: self._newer_than(v, i)  # noqa: E731
                    self._weights_changed.wait_for(is_new, 1.0)
                    if self._closing:
                        return
                    current = self._weights
                if current is not None and (current[0] > have or current[1] != have_incarnation):
                    have, have_incarnation = current[0], current[1]
                    yield current[3] if shared else current[2]
                with self._lock:
                    link = self._links.get(req.actor_id, link)
        finally:
            if shared:
                with self._weights_changed:
                    self._shared_readers -= 1
