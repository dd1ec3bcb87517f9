"""The transport a ROS 2 node is written against, so one node class runs on rclpy, zenoh or in-process.

A node makes its publishers, subscriptions, timers and services in `__init__` through this
protocol, as ROS 2 demo nodes do through rclpy. Messages are the rosbags dataclasses of
`robot_rl.ros.codec`; every backend moves them as CDR bytes, so what a node sends is exactly
what a ROS 2 system would receive.

Callbacks run on the thread that calls `spin_once` / `spin` (one callback at a time, as in
rclpy's single-threaded executor), so a node's state needs no locks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, Protocol, runtime_checkable

Reliability = Literal["best_effort", "reliable"]


@dataclass(frozen=True)
class QoS:
    """The QoS a subscription asks for: reliability and how many unread messages it keeps
    (keep-last history; older ones are dropped, so a slow node always sees the newest)."""

    reliability: Reliability = "reliable"
    depth: int = 10

    def __post_init__(self) -> None:
        if self.reliability not in ("best_effort", "reliable"):
            raise ValueError(f"QoS.reliability must be 'best_effort' or 'reliable', got {self.reliability!r}")
        if isinstance(self.depth, bool) or not isinstance(self.depth, int) or self.depth < 1:
            raise ValueError(f"QoS.depth must be an integer >= 1, got {self.depth!r}")

    @classmethod
    def sensor_data(cls, depth: int = 5) -> QoS:
        """Camera frames and joint states: best effort, keep the last 1..5. A stale frame is worth
        less than a dropped one, and a reliable stream would queue behind a slow link."""
        if isinstance(depth, bool) or not isinstance(depth, int) or not 1 <= depth <= 5:
            raise ValueError(f"sensor data QoS keeps the last 1..5 messages, got depth={depth!r}")
        return cls("best_effort", depth)

    @classmethod
    def reliable(cls, depth: int = 10) -> QoS:
        """Commands and state changes: every message matters."""
        return cls("reliable", depth)


SENSOR_DATA = QoS.sensor_data()
RELIABLE = QoS.reliable()


class TransportError(RuntimeError):
    """Base of the errors a transport raises to the node that called it."""


class ServiceUnavailable(TransportError):
    """No server answers this service name and type."""


class ServiceTimeout(TransportError, TimeoutError):
    """A server exists but did not answer within the call's deadline."""


class ServiceFailed(TransportError):
    """The server received the request but could not answer it (its handler raised, or it could
    not decode the request)."""


@runtime_checkable
class Publisher(Protocol):
    """Handle made by `Transport.create_publisher`: sends messages of one type on one topic."""

    topic: str
    msg_type: str

    def publish(self, msg: Any) -> None: ...


class Handle(Protocol):
    """A subscription, timer or service; `cancel` stops it (idempotent)."""

    def cancel(self) -> None: ...


class Subscription(Handle, Protocol):
    @property
    def superseded(self) -> int:
        """Messages dropped from the keep-last queue for newer ones (the node fell behind).
        rclpy's middleware drops them without saying, so that backend reports 0."""
        ...


@runtime_checkable
class Transport(Protocol):
    """What a node needs from ROS 2. Names are ROS names ("/wrist_cam/image_raw"); types are ROS
    type names ("sensor_msgs/msg/Image", "std_srvs/srv/Trigger")."""

    def create_publisher(self, topic: str, msg_type: str, qos: QoS = RELIABLE) -> Publisher: ...

    def subscribe(
        self, topic: str, msg_type: str, callback: Callable[[Any], None], qos: QoS = RELIABLE
    ) -> Subscription:
        """Deliver each message on topic to callback (on the spinning thread). A payload that
        does not decode is dropped and counted in `dropped_garbled[topic]`, never raised."""
        ...

    def create_timer(self, period_s: float, callback: Callable[[], None]) -> Handle: ...

    def create_service(self, name: str, srv_type: str, handler: Callable[[Any], Any]) -> Handle:
        """Serve srv_type on name: handler(request) -> response, run on the spinning thread."""
        ...

    def call_service(self, name: str, srv_type: str, request: Any, timeout_s: float = 5.0) -> Any:
        """The response, or ServiceUnavailable / ServiceTimeout / ServiceFailed. Blocks; do not
        call it from a callback of a server this transport itself spins on rclpy."""
        ...

    def spin_once(self, timeout_s: float = 0.1) -> int:
        """Run the callbacks that are ready, waiting up to timeout_s for one; how many ran."""
        ...

    def spin(self) -> None:
        """Run callbacks until shutdown()."""
        ...

    def shutdown(self) -> None:
        """Stop spinning and release the middleware; the transport cannot be used after."""
        ...

    @property
    def dropped_garbled(self) -> Mapping[str, int]:
        """Payloads dropped because they did not decode, per topic or service name."""
        ...
