"""Standard ROS 2 messages as CDR bytes, without rclpy: the wire layer.

rclpy only comes with a ROS 2 install, so the message layer uses rosbags' typestore: it knows the
standard message definitions of each distro and (de)serialises them to the CDR bytes that every
RMW puts on the wire. Humble is the default because it is what most robot PCs run; Jazzy is
selectable and is the one whose type hashes (REP-2016, RIHS01) rmw_zenoh puts in its key
expressions.

Bytes from the network are not trusted: `MessageCodec.decode` (and the readers of
robot_rl/ros/messages.py, which build and read these messages in the robot's terms) raise
`CodecError`, and only `CodecError`, for a garbled or truncated payload, so a transport can count
and drop it instead of dying in a callback thread.
"""

from __future__ import annotations

import functools
from typing import Any, Literal

from rosbags.interfaces import Nodetype
from rosbags.typesys import Stores, get_types_from_msg, get_typestore

Distro = Literal["humble", "jazzy"]
DEFAULT_DISTRO: Distro = "humble"
_STORES: dict[str, Stores] = {"humble": Stores.ROS2_HUMBLE, "jazzy": Stores.ROS2_JAZZY}

HEADER = "std_msgs/msg/Header"
IMAGE = "sensor_msgs/msg/Image"
CAMERA_INFO = "sensor_msgs/msg/CameraInfo"
JOINT_STATE = "sensor_msgs/msg/JointState"
POSE_STAMPED = "geometry_msgs/msg/PoseStamped"
TWIST_STAMPED = "geometry_msgs/msg/TwistStamped"
WRENCH_STAMPED = "geometry_msgs/msg/WrenchStamped"
FLOAT64 = "std_msgs/msg/Float64"  # a gripper command in [-1 open, +1 closed]
BOOL = "std_msgs/msg/Bool"  # a task's success signal (the twin's, a reward classifier's)
JOY = "sensor_msgs/msg/Joy"  # a teleop device's axes and buttons (robot_rl/ros/teleop_topics.py)
TRIGGER = "std_srvs/srv/Trigger"
SET_BOOL = "std_srvs/srv/SetBool"

MESSAGE_TYPES = (
    HEADER,
    IMAGE,
    CAMERA_INFO,
    JOINT_STATE,
    POSE_STAMPED,
    TWIST_STAMPED,
    WRENCH_STAMPED,
    FLOAT64,
    BOOL,
    JOY,
)
SERVICE_TYPES = (TRIGGER, SET_BOOL)

# .srv files of the services we use; rosbags' stores carry no std_srvs. An empty request gets
# the placeholder byte rosidl adds to empty structs, so it matches what ROS 2 sends.
_SERVICE_DEFINITIONS = {
    TRIGGER: ("uint8 structure_needs_at_least_one_member", "bool success\nstring message"),
    SET_BOOL: ("bool data", "bool success\nstring message"),
}
# rosidl maps a .msg `char` to IDL uint8, and the type hash is taken over the IDL. rosbags'
# Jazzy store keeps `char` in ServiceEventInfo, which changes every service's RIHS01 hash (the
# wire layout, one byte each, is the same). With uint8 the hashes match those ROS 2 computes.
_SERVICE_EVENT_INFO = (
    "uint8 REQUEST_SENT=0\nuint8 REQUEST_RECEIVED=1\nuint8 RESPONSE_SENT=2\nuint8 RESPONSE_RECEIVED=3\n"
    "uint8 event_type\nbuiltin_interfaces/Time stamp\nuint8[16] client_gid\nint64 sequence_number"
)
TYPE_HASH_NOT_SUPPORTED = "TypeHashNotSupported"  # what Humble-era rmw_zenoh puts for a type hash


class CodecError(ValueError):
    """A payload that is not a valid CDR message of the expected type, or a message whose
    contents make no sense for the robot (an image whose data does not fill its size)."""


def request_type(srv_type: str) -> str:
    """Message type of a service's request: std_srvs/srv/Trigger -> std_srvs/srv/Trigger_Request."""
    return f"{srv_type}_Request"


def response_type(srv_type: str) -> str:
    """Message type of a service's response."""
    return f"{srv_type}_Response"


def _srv_types(text: str, name: str) -> dict[str, Any]:
    """Parse one .msg text as a service part; rosbags names every type pkg/msg/X, ROS pkg/srv/X."""

    def fix(type_ref: Any) -> Any:
        kind, detail = type_ref
        if kind == Nodetype.NAME:
            return (kind, detail.replace("/srv/msg/", "/srv/"))
        if kind in (Nodetype.ARRAY, Nodetype.SEQUENCE):
            return (kind, (fix(detail[0]), detail[1]))
        return type_ref

    parsed = get_types_from_msg(text, name)
    return {
        key.replace("/srv/msg/", "/srv/"): (consts, [(field, fix(ref)) for field, ref in fields])
        for key, (consts, fields) in parsed.items()
    }


class MessageCodec:
    """CDR (de)serialisation and type hashes for one ROS 2 distro."""

    def __init__(self, distro: Distro = DEFAULT_DISTRO) -> None:
        if distro not in _STORES:
            raise ValueError(f"unknown ROS 2 distro {distro!r}; known: {sorted(_STORES)}")
        self.distro: Distro = distro
        self._store = get_typestore(_STORES[distro])
        self._register_services()

    def _register_services(self) -> None:
        if "service_msgs/msg/ServiceEventInfo" in self._store.fielddefs:
            fixed = get_types_from_msg(_SERVICE_EVENT_INFO, "service_msgs/msg/ServiceEventInfo")
            self._store.fielddefs.update(fixed)
        for srv, (request, response) in _SERVICE_DEFINITIONS.items():
            self.register_service(srv, request, response)

    def register_service(self, srv_type: str, request_def: str, response_def: str) -> None:
        """Add a service type from the two halves of its .srv file (the text above and below
        `---`), so it can be encoded and, from Iron on, hashed as ROS 2 hashes it."""
        req, resp = request_type(srv_type), response_type(srv_type)
        types = {**_srv_types(request_def, req), **_srv_types(response_def, resp)}
        if "service_msgs/msg/ServiceEventInfo" in self._store.fielddefs:
            # Iron and later: the service type, which is what gets hashed, includes its event.
            event = f"service_msgs/ServiceEventInfo info\n{req}[<=1] request\n{resp}[<=1] response"
            types.update(_srv_types(event, f"{srv_type}_Event"))
            whole = f"{req} request_message\n{resp} response_message\n{srv_type}_Event event_message"
            types.update(_srv_types(whole, srv_type))
        self._store.register(types)

    def message_class(self, msg_type: str) -> type:
        """The dataclass of msg_type in this distro; KeyError naming it when unknown."""
        try:
            return self._store.types[msg_type]
        except KeyError:
            raise KeyError(f"unknown ROS 2 message type {msg_type!r} in {self.distro}") from None

    def new(self, msg_type: str, **fields: Any) -> Any:
        """A message of msg_type; every field must be given (rosbags has no defaults)."""
        return self.message_class(msg_type)(**fields)

    def encode(self, msg: Any, msg_type: str) -> bytes:
        """CDR bytes (little endian, with the 4-byte encapsulation header) of msg."""
        actual = getattr(msg, "__msgtype__", None)
        if actual != msg_type:
            raise CodecError(f"cannot encode a {actual or type(msg).__name__} as {msg_type}")
        try:
            return bytes(self._store.serialize_cdr(msg, msg_type))
        except Exception as exc:  # rosbags raises AttributeError/struct.error/... on bad fields
            raise CodecError(f"cannot encode {msg_type}: {type(exc).__name__}: {exc}") from exc

    def decode(self, payload: bytes | bytearray | memoryview, msg_type: str) -> Any:
        """The message in payload; CodecError for anything that is not a msg_type in CDR."""
        self.message_class(msg_type)  # an unknown type is the caller's bug, not a garbled payload
        try:
            return self._store.deserialize_cdr(bytes(payload), msg_type)
        except Exception as exc:  # garbled bytes surface as many kinds of error inside rosbags
            raise CodecError(
                f"garbled {msg_type} payload ({len(payload)} bytes): {type(exc).__name__}: {exc}"
            ) from exc

    def type_hash(self, type_name: str) -> str:
        """REP-2016 type hash (RIHS01_<sha256>) of a message or service type, or
        "TypeHashNotSupported" on Humble, which has no type hashes (as rmw_zenoh writes there)."""
        if type_name not in self._store.types and request_type(type_name) not in self._store.types:
            raise KeyError(f"unknown ROS 2 message or service type {type_name!r} in {self.distro}")
        if self.distro == "humble":
            return TYPE_HASH_NOT_SUPPORTED
        return self._store.hash_rihs01(type_name)


def get_codec(distro: Distro = DEFAULT_DISTRO) -> MessageCodec:
    """One shared codec per distro: building a typestore takes tens of milliseconds."""
    return _shared_codec(distro)


@functools.cache
def _shared_codec(distro: Distro) -> MessageCodec:
    return MessageCodec(distro)
