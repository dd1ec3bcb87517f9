"""In-process transport for unit tests: nodes in one process talk through an `InprocBus`.

Every message crosses the bus as CDR bytes, encoded by the publisher and decoded by each
subscriber, so a node tested here has exercised the same codec it uses on a robot, and a test
can put garbled bytes on a topic with `InprocBus.deliver`. Like rmw_zenoh, a subscription only
sees messages of its own type: the bus is keyed by (topic, type).
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from robot_rl.ros.codec import DEFAULT_DISTRO, CodecError, Distro, get_codec, request_type, response_type
from robot_rl.ros.executor import Executor, Registration, Timer, WorkQueue, serve_request
from robot_rl.ros.rmw_zenoh_keys import fully_qualified_name
from robot_rl.ros.transport import RELIABLE, QoS, ServiceFailed, ServiceTimeout, ServiceUnavailable

log = logging.getLogger(__name__)
SERVICE_QUEUE_DEPTH = 10  # requests waiting for the server's spin; more are answered "busy"


@dataclass(frozen=True)
class _ServiceEndpoint:
    srv_type: str
    owner: InprocTransport
    queue: WorkQueue  # of (request payload, reply(payload | None, error | None))


class InprocBus:
    """The topics and services that a process's InprocTransports (one per node) share."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._subscribers: dict[tuple[str, str], list[Callable[[bytes], None]]] = {}
        self._services: dict[str, _ServiceEndpoint] = {}

    def deliver(self, topic: str, msg_type: str, payload: bytes) -> int:
        """Hand CDR bytes to every subscription of (topic, msg_type); how many there were."""
        with self._lock:
            receivers = list(self._subscribers.get((topic, msg_type), ()))
        for receive in receivers:
            receive(payload)
        return len(receivers)

    def _add_subscriber(self, key: tuple[str, str], receive: Callable[[bytes], None]) -> Callable[[], None]:
        with self._lock:
            self._subscribers.setdefault(key, []).append(receive)

        def remove() -> None:
            with self._lock:
                self._subscribers[key].remove(receive)

        return remove

    def _add_service(self, name: str, endpoint: _ServiceEndpoint) -> Callable[[], None]:
        with self._lock:
            if name in self._services:
                raise ValueError(f"service {name} already has a server on this bus")
            self._services[name] = endpoint

        def remove() -> None:
            with self._lock:
                self._services.pop(name, None)

        return remove

    def _service(self, name: str) -> _ServiceEndpoint | None:
        with self._lock:
            return self._services.get(name)


class InprocPublisher:
    """Publishes one message type on one topic of the bus."""

    def __init__(self, transport: InprocTransport, topic: str, msg_type: str) -> None:
        self._transport = transport
        self.topic = topic
        self.msg_type = msg_type

    def publish(self, msg: Any) -> None:
        self.publish_raw(self._transport.codec.encode(msg, self.msg_type))

    def publish_raw(self, payload: bytes) -> None:
        """Publish bytes that are already CDR (e.g. replayed from a recording), unchecked."""
        self._transport.bus.deliver(self.topic, self.msg_type, bytes(payload))


class _Reply:
    """A client's slot for its one answer."""

    def __init__(self) -> None:
        self.done = threading.Event()
        self.payload: bytes | None = None
        self.error: str | None = None

    def set(self, payload: bytes | None, error: str | None) -> None:
        self.payload, self.error = payload, error
        self.done.set()


class InprocTransport:
    """One node's view of an InprocBus (a private bus when none is given)."""

    def __init__(
        self, bus: InprocBus | None = None, *, namespace: str = "", distro: Distro = DEFAULT_DISTRO
    ) -> None:
        self.bus = bus if bus is not None else InprocBus()
        self.namespace = namespace
        self.codec = get_codec(distro)
        self._executor = Executor()
        self._handles: list[Registration | Timer] = []

    def _name(self, name: str) -> str:
        return fully_qualified_name(name, self.namespace)

    def create_publisher(self, topic: str, msg_type: str, qos: QoS = RELIABLE) -> InprocPublisher:
        self.codec.message_class(msg_type)  # an unknown type fails here, not at the first publish
        return InprocPublisher(self, self._name(topic), msg_type)

    def subscribe(
        self, topic: str, msg_type: str, callback: Callable[[Any], None], qos: QoS = RELIABLE
    ) -> Registration:
        name = self._name(topic)
        self.codec.message_class(msg_type)
        queue = self._executor.queue(qos.depth, callback)

        def receive(payload: bytes) -> None:
            try:
                msg = self.codec.decode(payload, msg_type)
            except CodecError as exc:
                self._executor.count_garbled(name)
                log.warning("dropped a garbled message on %s: %s", name, exc)
                return
            queue.push(msg)

        handle = Registration(queue.cancel, self.bus._add_subscriber((name, msg_type), receive), queue=queue)
        self._handles.append(handle)
        return handle

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        timer = self._executor.timer(period_s, callback)
        self._handles.append(timer)
        return timer

    def create_service(self, name: str, srv_type: str, handler: Callable[[Any], Any]) -> Registration:
        fq_name = self._name(name)
        req_type, resp_type = request_type(srv_type), response_type(srv_type)
        self.codec.message_class(req_type)

        def run(item: tuple[bytes, Callable[[bytes | None, str | None], None]]) -> None:
            payload, reply = item
            try:
                request = self.codec.decode(payload, req_type)
            except CodecError as exc:
                self._executor.count_garbled(fq_name)
                reply(None, f"server could not decode the request: {exc}")
                return
            serve_request(
                handler,
                request,
                resp_type,
                respond=lambda response: reply(self.codec.encode(response, resp_type), None),
                fail=lambda why: reply(None, why),
            )

        queue = self._executor.queue(
            SERVICE_QUEUE_DEPTH, run, on_evict=lambda item: item[1](None, "server busy")
        )
        remove = self.bus._add_service(fq_name, _ServiceEndpoint(srv_type, self, queue))
        handle = Registration(queue.cancel, remove)
        self._handles.append(handle)
        return handle

    def call_service(self, name: str, srv_type: str, request: Any, timeout_s: float = 5.0) -> Any:
        fq_name = self._name(name)
        payload = self.codec.encode(request, request_type(srv_type))
        endpoint = self.bus._service(fq_name)
        if endpoint is None or endpoint.srv_type != srv_type:
            raise ServiceUnavailable(f"no {srv_type} server on {fq_name}")
        reply = _Reply()
        deadline = time.monotonic() + timeout_s
        endpoint.queue.push((payload, reply.set))
        if endpoint.owner is self:
            try:
                endpoint.queue.drain()
            except Exception as exc:
                raise ServiceFailed(f"{fq_name}: {reply.error}") from exc
        if not reply.done.wait(max(0.0, deadline - time.monotonic())):
            raise ServiceTimeout(f"{fq_name} did not answer within {timeout_s} s")
        if reply.error is not None or reply.payload is None:
            raise ServiceFailed(f"{fq_name}: {reply.error}")
        try:
            return self.codec.decode(reply.payload, response_type(srv_type))
        except CodecError as exc:
            self._executor.count_garbled(fq_name)
            raise ServiceFailed(f"{fq_name} answered with a garbled response: {exc}") from exc

    def spin_once(self, timeout_s: float = 0.1) -> int:
        return self._executor.spin_once(timeout_s)

    def spin(self) -> None:
        self._executor.spin()

    def shutdown(self) -> None:
        for handle in self._handles:
            handle.cancel()
        self._handles.clear()
        self._executor.shutdown()

    @property
    def dropped_garbled(self) -> Mapping[str, int]:
        return self._executor.dropped_garbled
