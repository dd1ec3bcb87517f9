"""The transport on rclpy, for a robot PC with ROS 2 installed (`source /opt/ros/<distro>/setup.bash`).

rclpy cannot be installed from PyPI, so it is imported only when an RclpyTransport is made; the
rest of robot_rl imports this module on any machine. Nodes keep using the rosbags messages of
`robot_rl.ros.codec`: topics cross rclpy as serialized CDR (raw publish and raw subscriptions),
so what a node sends is encoded by the same codec on every transport. Services have no raw path
in rclpy; requests and responses are converted to rclpy's classes through their CDR bytes.

Differences from the zenoh and in-process transports, both rclpy's own: a service handler that
raises leaves the client without an answer (it gets ServiceTimeout), and `call_service` from a
callback deadlocks while this transport's executor is the one running that callback.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from types import ModuleType
from typing import Any

from robot_rl.ros.codec import DEFAULT_DISTRO, CodecError, Distro, get_codec, request_type, response_type
from robot_rl.ros.executor import Registration, serve_request
from robot_rl.ros.transport import RELIABLE, QoS, ServiceFailed, ServiceTimeout, ServiceUnavailable

log = logging.getLogger(__name__)
RCLPY_MISSING = "rclpy not installed (needs a ROS 2 install)"


def import_rclpy() -> ModuleType:
    """rclpy, or ImportError saying how to get it (or what to use instead)."""
    try:
        import rclpy
    except ImportError as exc:
        raise ImportError(
            f"{RCLPY_MISSING}: source /opt/ros/<distro>/setup.bash first, or use the zenoh transport"
        ) from exc
    return rclpy


def _qos_profile(qos: QoS) -> Any:
    from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy

    reliability = (
        ReliabilityPolicy.RELIABLE if qos.reliability == "reliable" else ReliabilityPolicy.BEST_EFFORT
    )
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=qos.depth,
        reliability=reliability,
        durability=DurabilityPolicy.VOLATILE,
    )


class RclpyPublisher:
    """Publishes one message type on one topic as CDR bytes."""

    def __init__(self, transport: RclpyTransport, publisher: Any, topic: str, msg_type: str) -> None:
        self._transport = transport
        self._publisher = publisher
        self.topic = topic
        self.msg_type = msg_type

    def publish(self, msg: Any) -> None:
        self.publish_raw(self._transport.codec.encode(msg, self.msg_type))

    def publish_raw(self, payload: bytes) -> None:
        """Publish bytes that are already CDR (e.g. replayed from a recording), unchecked."""
        self._publisher.publish(bytes(payload))


class RclpyTransport:
    """One rclpy node with its own single-threaded executor."""

    def __init__(
        self, node_name: str = "robot_rl", namespace: str = "", distro: Distro | None = None
    ) -> None:
        rclpy = import_rclpy()
        from rclpy.executors import SingleThreadedExecutor

        self._rclpy = rclpy
        chosen = distro or os.environ.get("ROS_DISTRO", DEFAULT_DISTRO)
        self.codec = get_codec(chosen if chosen in ("humble", "jazzy") else DEFAULT_DISTRO)  # type: ignore[arg-type]
        self._owns_context = not rclpy.ok()
        if self._owns_context:
            rclpy.init()
        self.node = rclpy.create_node(node_name, namespace=namespace or None)
        self._executor = SingleThreadedExecutor()
        self._executor.add_node(self.node)
        self._clients: dict[tuple[str, str], Any] = {}
        self._dropped: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._ran = 0
        self._shutdown = False

    def _counted(self, callback: Callable[..., Any]) -> Callable[..., Any]:
        """callback, counting its runs so spin_once can say how many callbacks it ran."""

        def run(*args: Any) -> Any:
            self._ran += 1
            return callback(*args)

        return run

    def _garbled(self, name: str, exc: CodecError) -> None:
        with self._lock:
            self._dropped[name] += 1
        log.warning("dropped a garbled message on %s: %s", name, exc)

    def create_publisher(self, topic: str, msg_type: str, qos: QoS = RELIABLE) -> RclpyPublisher:
        from rosidl_runtime_py.utilities import get_message

        publisher = self.node.create_publisher(get_message(msg_type), topic, _qos_profile(qos))
        return RclpyPublisher(self, publisher, publisher.topic_name, msg_type)

    def subscribe(
        self, topic: str, msg_type: str, callback: Callable[[Any], None], qos: QoS = RELIABLE
    ) -> Registration:
        from rosidl_runtime_py.utilities import get_message

        self.codec.message_class(msg_type)
        subscription = None

        def on_bytes(payload: bytes) -> None:
            try:
                msg = self.codec.decode(payload, msg_type)
            except CodecError as exc:
                self._garbled(subscription.topic_name if subscription else topic, exc)
                return
            callback(msg)

        subscription = self.node.create_subscription(
            get_message(msg_type), topic, self._counted(on_bytes), _qos_profile(qos), raw=True
        )
        return Registration(lambda: self.node.destroy_subscription(subscription))

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Registration:
        if not period_s > 0:
            raise ValueError(f"timer period must be > 0 s, got {period_s!r}")
        timer = self.node.create_timer(period_s, self._counted(callback))
        return Registration(lambda: self.node.destroy_timer(timer))

    def create_service(self, name: str, srv_type: str, handler: Callable[[Any], Any]) -> Registration:
        from rclpy.serialization import deserialize_message, serialize_message
        from rosidl_runtime_py.utilities import get_service

        srv_class = get_service(srv_type)
        req_type, resp_type = request_type(srv_type), response_type(srv_type)

        def on_request(ros_request: Any, ros_response: Any) -> Any:
            request = self.codec.decode(serialize_message(ros_request), req_type)
            answer: list[Any] = []
            serve_request(
                handler, request, resp_type, answer.append, lambda why: log.error("%s: %s", name, why)
            )
            return deserialize_message(self.codec.encode(answer[0], resp_type), srv_class.Response)

        service = self.node.create_service(srv_class, name, self._counted(on_request))
        return Registration(lambda: self.node.destroy_service(service))

    def call_service(self, name: str, srv_type: str, request: Any, timeout_s: float = 5.0) -> Any:
        from rclpy.serialization import deserialize_message, serialize_message
        from rosidl_runtime_py.utilities import get_service

        srv_class = get_service(srv_type)
        client = self._clients.get((name, srv_type))
        if client is None:
            client = self._clients[(name, srv_type)] = self.node.create_client(srv_class, name)
        deadline = time.monotonic() + timeout_s
        if not client.wait_for_service(timeout_sec=timeout_s):
            raise ServiceUnavailable(f"no {srv_type} server on {name} within {timeout_s} s")
        ros_request = deserialize_message(
            self.codec.encode(request, request_type(srv_type)), srv_class.Request
        )
        future = client.call_async(ros_request)
        self._executor.spin_until_future_complete(future, timeout_sec=max(0.0, deadline - time.monotonic()))
        if not future.done():
            client.remove_pending_request(future)
            raise ServiceTimeout(f"{name} did not answer within {timeout_s} s")
        if future.exception() is not None:
            raise ServiceFailed(f"{name}: {future.exception()}")
        try:
            return self.codec.decode(serialize_message(future.result()), response_type(srv_type))
        except CodecError as exc:
            self._garbled(name, exc)
            raise ServiceFailed(f"{name} answered with a response the codec cannot read: {exc}") from exc

    def spin_once(self, timeout_s: float = 0.1) -> int:
        before = self._ran
        self._executor.spin_once(timeout_sec=timeout_s)
        return self._ran - before

    def spin(self) -> None:
        while not self._shutdown and self._rclpy.ok():
            self._executor.spin_once(timeout_sec=0.1)

    def shutdown(self) -> None:
        if self._shutdown:
            return
        self._shutdown = True
        self._executor.shutdown()
        self.node.destroy_node()
        if self._owns_context and self._rclpy.ok():
            self._rclpy.shutdown()

    @property
    def dropped_garbled(self) -> Mapping[str, int]:
        with self._lock:
            return dict(self._dropped)
