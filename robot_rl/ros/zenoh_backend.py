"""Zenoh transport: ROS 2 topics and services without a ROS 2 install, wire-compatible by design
with rmw_zenoh.

Payloads are CDR, key expressions, liveliness tokens and attachments follow rmw_zenoh's
documented format (see `robot_rl.ros.rmw_zenoh_keys`), so nodes on a robot PC running ROS 2 with
rmw_zenoh and our processes on a machine without ROS 2 can meet on the same zenoh router.
Services are zenoh queryables, as in rmw_zenoh.

Zenoh delivers on its own threads. Those threads only decode (dropping and counting a garbled
payload, never raising) and queue; callbacks run on the thread that spins this transport.
"""

from __future__ import annotations

import itertools
import json
import logging
import os
import queue as queue_lib
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

import zenoh

from robot_rl.ros.codec import DEFAULT_DISTRO, CodecError, Distro, get_codec, request_type, response_type
from robot_rl.ros.executor import Executor, Registration, Timer, WorkQueue, serve_request
from robot_rl.ros.rmw_zenoh_keys import (
    GID_SIZE,
    Attachment,
    EntityKind,
    NodeId,
    entity_token,
    fully_qualified_name,
    node_token,
    topic_key_expr,
)
from robot_rl.ros.transport import RELIABLE, QoS, ServiceFailed, ServiceTimeout, ServiceUnavailable

log = logging.getLogger(__name__)
SERVICE_QUEUE_DEPTH = 10  # requests waiting for the server's spin; more are answered "busy"
_NO_CLIENT = Attachment(0, 0, bytes(GID_SIZE))  # a request from a plain zenoh get, no rmw attachment


@dataclass(frozen=True)
class ZenohConfig:
    """Who this node is on the zenoh network and how it gets there. The defaults are rmw_zenoh's
    session defaults: a peer that connects to the zenoh router on tcp/localhost:7447, listens on a
    loopback port, and does no multicast scouting (robots on one LAN must not find each other
    by accident)."""

    domain_id: int = 0
    node_name: str = "robot_rl"
    namespace: str = ""
    distro: Distro = DEFAULT_DISTRO
    mode: Literal["peer", "client"] = "peer"
    connect: tuple[str, ...] = ("tcp/localhost:7447",)
    listen: tuple[str, ...] = ("tcp/localhost:0",)
    multicast_scouting: bool = False

    def __post_init__(self) -> None:
        if isinstance(self.domain_id, bool) or not isinstance(self.domain_id, int) or self.domain_id < 0:
            raise ValueError(f"ZenohConfig.domain_id must be an integer >= 0, got {self.domain_id!r}")
        if self.mode not in ("peer", "client"):
            raise ValueError(f"ZenohConfig.mode must be 'peer' or 'client', got {self.mode!r}")
        fully_qualified_name(self.node_name)  # a node name follows the rules of one name token
        if "/" in self.node_name:
            raise ValueError(f"ZenohConfig.node_name must be one token, got {self.node_name!r}")
        if self.namespace:
            fully_qualified_name(self.namespace)

    def to_zenoh(self) -> zenoh.Config:
        return zenoh.Config.from_json5(
            json.dumps(
                {
                    "mode": self.mode,
                    "connect": {"endpoints": list(self.connect)},
                    "listen": {"endpoints": list(self.listen)},
                    "scouting": {"multicast": {"enabled": self.multicast_scouting}},
                }
            )
        )


class ZenohPublisher:
    """Publishes one message type on one topic, with rmw_zenoh's attachment on every sample."""

    def __init__(
        self, transport: ZenohTransport, topic: str, msg_type: str, publisher: zenoh.Publisher
    ) -> None:
        self._transport = transport
        self._publisher = publisher
        self.topic = topic
        self.msg_type = msg_type
        self.gid = os.urandom(GID_SIZE)
        self._sequence = itertools.count(1)
        self._lock = threading.Lock()

    def publish(self, msg: Any) -> None:
        self.publish_raw(self._transport.codec.encode(msg, self.msg_type))

    def publish_raw(self, payload: bytes) -> None:
        """Publish bytes that are already CDR (e.g. replayed from a recording), unchecked."""
        with self._lock:  # sequence numbers must rise in the order samples leave
            attachment = Attachment(next(self._sequence), time.time_ns(), self.gid)
            self._publisher.put(bytes(payload), attachment=attachment.to_bytes())


class ZenohTransport:
    """One node on a zenoh session. Use as a context manager, or call shutdown()."""

    def __init__(self, config: ZenohConfig | None = None) -> None:
        self.config = config if config is not None else ZenohConfig()
        self.codec = get_codec(self.config.distro)
        self._executor = Executor()
        self._session = zenoh.open(self.config.to_zenoh())
        namespace = fully_qualified_name(self.config.namespace) if self.config.namespace else ""
        self.node = NodeId(
            self.config.domain_id, str(self._session.zid()), 0, namespace, self.config.node_name
        )
        self._entity_ids = itertools.count(1)
        self._registrations: list[Registration | Timer] = []
        self._clients: dict[str, Attachment] = {}  # key expression -> this client's GID (seq unused)
        self._client_sequence = itertools.count(1)
        self._local_services: dict[str, WorkQueue] = {}
        self._lock = threading.Lock()
        self._closed = False
        token = self._session.liveliness().declare_token(node_token(self.node))
        self._registrations.append(Registration(token.undeclare))

    def __enter__(self) -> ZenohTransport:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.shutdown()

    # --- naming ---------------------------------------------------------------------------------

    def _name(self, name: str) -> str:
        return fully_qualified_name(name, self.node.namespace)

    def key_expr(self, name: str, type_name: str) -> str:
        """The zenoh key expression of a topic or service of this node, as rmw_zenoh forms it."""
        return topic_key_expr(
            self.node.domain_id, self._name(name), type_name, self.codec.type_hash(type_name)
        )

    def _announce(self, kind: EntityKind, fq_name: str, type_name: str, qos: QoS) -> zenoh.LivelinessToken:
        """Liveliness token that puts an entity in the ROS 2 graph (ros2 topic list etc.)."""
        token = entity_token(
            self.node, next(self._entity_ids), kind, fq_name, type_name, self.codec.type_hash(type_name), qos
        )
        return self._session.liveliness().declare_token(token)

    def _register(self, *undo: Callable[[], None], queue: WorkQueue | None = None) -> Registration:
        registration = Registration(*undo, queue=queue)
        with self._lock:
            self._registrations.append(registration)
        return registration

    # --- topics ---------------------------------------------------------------------------------

    def create_publisher(self, topic: str, msg_type: str, qos: QoS = RELIABLE) -> ZenohPublisher:
        fq_name = self._name(topic)
        reliability = (
            zenoh.Reliability.RELIABLE if qos.reliability == "reliable" else zenoh.Reliability.BEST_EFFORT
        )
        publisher = self._session.declare_publisher(self.key_expr(fq_name, msg_type), reliability=reliability)
        token = self._announce("MP", fq_name, msg_type, qos)
        self._register(publisher.undeclare, token.undeclare)
        return ZenohPublisher(self, fq_name, msg_type, publisher)

    def subscribe(
        self, topic: str, msg_type: str, callback: Callable[[Any], None], qos: QoS = RELIABLE
    ) -> Registration:
        fq_name = self._name(topic)
        work = self._executor.queue(qos.depth, callback)

        def on_sample(sample: zenoh.Sample) -> None:  # zenoh's thread: decode, count, queue
            try:
                msg = self.codec.decode(sample.payload.to_bytes(), msg_type)
            except CodecError as exc:
                self._executor.count_garbled(fq_name)
                log.warning("dropped a garbled message on %s: %s", fq_name, exc)
                return
            work.push(msg)

        key = self.key_expr(fq_name, msg_type)
        subscriber = self._session.declare_subscriber(key, zenoh.handlers.Callback(on_sample))
        token = self._announce("MS", fq_name, msg_type, qos)
        return self._register(work.cancel, subscriber.undeclare, token.undeclare, queue=work)

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        timer = self._executor.timer(period_s, callback)
        with self._lock:
            self._registrations.append(timer)
        return timer

    # --- services -------------------------------------------------------------------------------

    def create_service(self, name: str, srv_type: str, handler: Callable[[Any], Any]) -> Registration:
        fq_name = self._name(name)
        key = self.key_expr(fq_name, srv_type)
        req_type, resp_type = request_type(srv_type), response_type(srv_type)

        def run(item: tuple[zenoh.Query, bytes, bytes]) -> None:  # the spinning thread
            query, payload, attachment = item
            try:
                request = self.codec.decode(payload, req_type)
            except CodecError as exc:
                self._executor.count_garbled(fq_name)
                _reply_err(query, f"server could not decode the request: {exc}")
                return
            serve_request(
                handler,
                request,
                resp_type,
                respond=lambda response: self._reply(
                    query, key, self.codec.encode(response, resp_type), attachment
                ),
                fail=lambda why: _reply_err(query, why),
            )

        work = self._executor.queue(
            SERVICE_QUEUE_DEPTH, run, on_evict=lambda item: _reply_err(item[0], "server busy")
        )

        def on_query(query: zenoh.Query) -> None:  # zenoh's thread: queue for the spinning thread
            payload = query.payload.to_bytes() if query.payload is not None else b""
            attachment = query.attachment.to_bytes() if query.attachment is not None else b""
            work.push((query, payload, attachment))

        queryable = self._session.declare_queryable(key, zenoh.handlers.Callback(on_query), complete=True)
        token = self._announce("SS", fq_name, srv_type, RELIABLE)
        with self._lock:
            self._local_services[key] = work
        return self._register(
            work.cancel, queryable.undeclare, token.undeclare, lambda: self._local_services.pop(key, None)
        )

    def _reply(self, query: zenoh.Query, key: str, payload: bytes, request_attachment: bytes) -> None:
        """Answer with the request's sequence number and client GID, as rmw_zenoh's servers do."""
        try:
            client = Attachment.from_bytes(request_attachment)
        except ValueError:
            client = _NO_CLIENT
        attachment = Attachment(client.sequence_number, time.time_ns(), client.gid)
        try:
            query.reply(key, payload, attachment=attachment.to_bytes())
        finally:
            query.drop()

    def _client_attachment(self, key: str, fq_name: str, srv_type: str) -> bytes:
        """The attachment of a new request; the first call to a service announces this client."""
        with self._lock:
            client = self._clients.get(key)
        if client is None:
            token = self._announce("SC", fq_name, srv_type, RELIABLE)
            client = Attachment(0, 0, os.urandom(GID_SIZE))
            with self._lock:
                self._clients[key] = client
                self._registrations.append(Registration(token.undeclare))
        return Attachment(next(self._client_sequence), time.time_ns(), client.gid).to_bytes()

    def call_service(self, name: str, srv_type: str, request: Any, timeout_s: float = 5.0) -> Any:
        fq_name = self._name(name)
        key = self.key_expr(fq_name, srv_type)
        payload = self.codec.encode(request, request_type(srv_type))
        replies: queue_lib.SimpleQueue[zenoh.Reply] = queue_lib.SimpleQueue()
        finished = threading.Event()
        self._session.get(
            key,
            zenoh.handlers.Callback(replies.put, finished.set),
            payload=payload,
            attachment=self._client_attachment(key, fq_name, srv_type),
            target=zenoh.QueryTarget.ALL_COMPLETE,
            timeout=timeout_s + 1.0,  # our deadline decides; zenoh's only cleans up after it
        )
        reply = self._await_reply(key, replies, finished, time.monotonic() + timeout_s)
        if reply is None:
            if finished.is_set():
                raise ServiceUnavailable(f"no {srv_type} server answers on {fq_name}")
            raise ServiceTimeout(f"{fq_name} did not answer within {timeout_s} s")
        if reply.ok is None:
            raise ServiceFailed(f"{fq_name}: {reply.err.payload.to_string() if reply.err else 'no reply'}")
        try:
            return self.codec.decode(reply.ok.payload.to_bytes(), response_type(srv_type))
        except CodecError as exc:
            self._executor.count_garbled(fq_name)
            raise ServiceFailed(f"{fq_name} answered with a garbled response: {exc}") from exc

    def _await_reply(
        self,
        key: str,
        replies: queue_lib.SimpleQueue[zenoh.Reply],
        finished: threading.Event,
        deadline: float,
    ) -> zenoh.Reply | None:
        """The first reply, or None when the query finished without one or the deadline passed.
        A server on this same transport is run here, so a node can call its own service."""
        with self._lock:
            local = self._local_services.get(key)
        while True:
            try:
                return replies.get(
                    timeout=0.005 if local is not None else max(0.0, min(0.05, deadline - time.monotonic()))
                )
            except queue_lib.Empty:
                pass
            if local is not None:
                try:
                    local.drain()
                except Exception as exc:
                    raise ServiceFailed(
                        f"{key}: the service handler raised {type(exc).__name__}: {exc}"
                    ) from exc
            if (finished.is_set() and replies.empty()) or time.monotonic() >= deadline:
                return None

    # --- spinning -------------------------------------------------------------------------------

    def spin_once(self, timeout_s: float = 0.1) -> int:
        return self._executor.spin_once(timeout_s)

    def spin(self) -> None:
        self._executor.spin()

    def shutdown(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
            registrations, self._registrations = self._registrations, []
        self._executor.shutdown()
        for registration in reversed(registrations):
            try:
                registration.cancel()
            except zenoh.ZError as exc:  # already gone with a dropped link; nothing left to undo
                log.debug("undeclare during shutdown: %s", exc)
        self._session.close()

    @property
    def dropped_garbled(self) -> Mapping[str, int]:
        return self._executor.dropped_garbled


def _reply_err(query: zenoh.Query, why: str) -> None:
    try:
        query.reply_err(why.encode())
    finally:
        query.drop()
