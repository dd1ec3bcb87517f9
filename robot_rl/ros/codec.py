"""Standard ROS 2 messages as CDR bytes, without rclpy, and numpy helpers in the robot's terms.

rclpy only comes with a ROS 2 install, so the message layer uses rosbags' typestore: it knows the
standard message definitions of each distro and (de)serialises them to the CDR bytes that every
RMW puts on the wire. Humble is the default because it is what most robot PCs run; Jazzy is
selectable and is the one whose type hashes (REP-2016, RIHS01) rmw_zenoh puts in its key
expressions.

Bytes from the network are not trusted: `MessageCodec.decode` and the `*_from_msg` helpers raise
`CodecError`, and only `CodecError`, for a garbled or truncated payload, so a transport can count
and drop it instead of dying in a callback thread.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal, Protocol

import numpy as np
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


def _new(msg_type: str, **fields: Any) -> Any:
    # rosbags serialises by attribute name, so messages built with Humble's classes encode
    # under Jazzy too for every type here (their definitions are the same).
    return get_codec().new(msg_type, **fields)


def _check_type(msg: Any, msg_type: str) -> None:
    if getattr(msg, "__msgtype__", None) != msg_type:
        raise CodecError(f"expected a {msg_type}, got {getattr(msg, '__msgtype__', type(msg).__name__)}")


# --- stamps and headers ---------------------------------------------------------------------


def time_msg(stamp_s: float) -> Any:
    """builtin_interfaces/Time of a stamp in seconds (rounded to the nearest ns)."""
    if not math.isfinite(stamp_s) or stamp_s < 0 or stamp_s >= 2**31:
        raise ValueError(f"stamp must be finite seconds in [0, 2^31), got {stamp_s!r}")
    total_ns = round(stamp_s * 1e9)
    return _new(
        "builtin_interfaces/msg/Time", sec=total_ns // 1_000_000_000, nanosec=total_ns % 1_000_000_000
    )


def stamp_from_time(time: Any) -> float:
    """Seconds of a builtin_interfaces/Time; CodecError when nanosec is out of range."""
    if not 0 <= time.nanosec < 1_000_000_000:
        raise CodecError(f"Time.nanosec must be in [0, 1e9), got {time.nanosec}")
    return time.sec + time.nanosec * 1e-9


def header_msg(stamp_s: float, frame_id: str) -> Any:
    """std_msgs/Header: when (s) and in which frame."""
    return _new(HEADER, stamp=time_msg(stamp_s), frame_id=str(frame_id))


# --- vectors --------------------------------------------------------------------------------


def _vec(values: Any, n: int, what: str) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    if arr.shape != (n,):
        raise ValueError(f"{what} must have shape ({n},), got {arr.shape}")
    return arr


def _vector3(values: Any, what: str) -> Any:
    x, y, z = _vec(values, 3, what)
    return _new("geometry_msgs/msg/Vector3", x=float(x), y=float(y), z=float(z))


def _from_xyz(v: Any) -> np.ndarray:
    return np.array([v.x, v.y, v.z], dtype=np.float64)


# --- images ---------------------------------------------------------------------------------

# encoding -> (dtype, channels). bgr8 is decoded only: our observations are RGB.
_ENCODINGS: dict[str, tuple[np.dtype, int]] = {
    "rgb8": (np.dtype(np.uint8), 3),
    "bgr8": (np.dtype(np.uint8), 3),
    "mono8": (np.dtype(np.uint8), 1),
    "16UC1": (np.dtype(np.uint16), 1),
    "mono16": (np.dtype(np.uint16), 1),
}


def image_msg(frame: np.ndarray, stamp_s: float, frame_id: str) -> Any:
    """sensor_msgs/Image of a camera frame: uint8 (H, W, 3) -> rgb8, uint8 (H, W) -> mono8,
    uint16 (H, W) -> 16UC1 (depth in mm, as RealSense publishes it)."""
    arr = np.asarray(frame)
    if arr.dtype == np.uint8 and arr.ndim == 3 and arr.shape[2] == 3:
        encoding = "rgb8"
    elif arr.dtype == np.uint8 and arr.ndim == 2:
        encoding = "mono8"
    elif arr.dtype == np.uint16 and arr.ndim == 2:
        encoding = "16UC1"
    else:
        raise ValueError(
            f"image must be uint8 (H, W, 3), uint8 (H, W) or uint16 (H, W), got {arr.dtype} {arr.shape}"
        )
    height, width = arr.shape[:2]
    data = np.ascontiguousarray(arr, dtype=arr.dtype.newbyteorder("<")).view(np.uint8).reshape(-1)
    return _new(
        IMAGE,
        header=header_msg(stamp_s, frame_id),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=0,
        step=width * arr.dtype.itemsize * (arr.shape[2] if arr.ndim == 3 else 1),
        data=data,
    )


def image_from_msg(msg: Any) -> tuple[np.ndarray, float]:
    """(frame, stamp_s) of a sensor_msgs/Image: uint8 (H, W, 3) RGB for rgb8 and bgr8, uint8
    (H, W) for mono8, uint16 (H, W) for 16UC1/mono16. Row padding (step > row bytes) is dropped."""
    _check_type(msg, IMAGE)
    if msg.encoding not in _ENCODINGS:
        raise CodecError(f"unsupported image encoding {msg.encoding!r}; supported: {sorted(_ENCODINGS)}")
    dtype, channels = _ENCODINGS[msg.encoding]
    row_bytes = msg.width * channels * dtype.itemsize
    data = np.asarray(msg.data, dtype=np.uint8)
    if msg.step < row_bytes or data.size != msg.step * msg.height:
        size = f"{msg.width}x{msg.height} {msg.encoding} step {msg.step}"
        raise CodecError(f"image {size} does not fit its {data.size} data bytes")
    rows = data.reshape(msg.height, msg.step)[:, :row_bytes]
    pixels = np.ascontiguousarray(rows).view(dtype.newbyteorder(">" if msg.is_bigendian else "<"))
    frame = pixels.astype(dtype).reshape(
        (msg.height, msg.width, channels) if channels > 1 else (msg.height, msg.width)
    )
    if msg.encoding == "bgr8":
        frame = np.ascontiguousarray(frame[:, :, ::-1])
    return frame, stamp_from_time(msg.header.stamp)


# --- camera intrinsics ----------------------------------------------------------------------


class Intrinsics(Protocol):
    """What camera_info_msg reads: pinhole intrinsics of a camera, sizes and values in px."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str
    distortion_coeffs: tuple[float, ...]


@dataclass(frozen=True)
class CameraIntrinsics:
    """Pinhole intrinsics read back from a CameraInfo (same fields as the camera drivers')."""

    width: int
    height: int
    fx: float
    fy: float
    cx: float
    cy: float
    distortion_model: str = ""
    distortion_coeffs: tuple[float, ...] = ()


def camera_info_msg(intrinsics: Intrinsics, stamp_s: float, frame_id: str) -> Any:
    """sensor_msgs/CameraInfo of an unrectified pinhole camera: K from fx fy cx cy, R identity,
    P = [K | 0] (a monocular camera), distortion passed through."""
    fx, fy, cx, cy = (float(v) for v in (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy))
    k = np.array([fx, 0.0, cx, 0.0, fy, cy, 0.0, 0.0, 1.0])
    p = np.array([fx, 0.0, cx, 0.0, 0.0, fy, cy, 0.0, 0.0, 0.0, 1.0, 0.0])
    roi = _new(
        "sensor_msgs/msg/RegionOfInterest", x_offset=0, y_offset=0, height=0, width=0, do_rectify=False
    )
    return _new(
        CAMERA_INFO,
        header=header_msg(stamp_s, frame_id),
        height=int(intrinsics.height),
        width=int(intrinsics.width),
        distortion_model=str(intrinsics.distortion_model),
        d=np.asarray(intrinsics.distortion_coeffs, dtype=np.float64).reshape(-1),
        k=k,
        r=np.eye(3).reshape(-1),
        p=p,
        binning_x=0,
        binning_y=0,
        roi=roi,
    )


def intrinsics_from_msg(msg: Any) -> tuple[CameraIntrinsics, float]:
    """(intrinsics, stamp_s) of a sensor_msgs/CameraInfo; CodecError when K is not a camera matrix."""
    _check_type(msg, CAMERA_INFO)
    k = np.asarray(msg.k, dtype=np.float64)
    fx, fy, cx, cy = float(k[0]), float(k[4]), float(k[2]), float(k[5])
    if not (np.all(np.isfinite(k)) and fx > 0 and fy > 0 and msg.width > 0 and msg.height > 0):
        raise CodecError(f"CameraInfo has no usable intrinsics: {msg.width}x{msg.height}, K={k.tolist()}")
    intrinsics = CameraIntrinsics(
        width=int(msg.width),
        height=int(msg.height),
        fx=fx,
        fy=fy,
        cx=cx,
        cy=cy,
        distortion_model=str(msg.distortion_model),
        distortion_coeffs=tuple(float(c) for c in msg.d),
    )
    return intrinsics, stamp_from_time(msg.header.stamp)


# --- joints ---------------------------------------------------------------------------------


def joint_state_msg(
    names: Sequence[str], q: Any, dq: Any, stamp_s: float, effort: Any | None = None, frame_id: str = ""
) -> Any:
    """sensor_msgs/JointState: joint positions q (rad or m), velocities dq, optional effort."""
    n = len(names)
    return _new(
        JOINT_STATE,
        header=header_msg(stamp_s, frame_id),
        name=[str(name) for name in names],
        position=_vec(q, n, "q"),
        velocity=_vec(dq, n, "dq"),
        effort=np.zeros(0) if effort is None else _vec(effort, n, "effort"),
    )


def joint_state_from_msg(msg: Any) -> tuple[list[str], np.ndarray, np.ndarray, float]:
    """(names, q, dq, stamp_s) of a sensor_msgs/JointState. ROS lets a driver leave velocity
    empty when it does not measure it; dq is then NaN, so nothing mistakes it for "at rest"."""
    _check_type(msg, JOINT_STATE)
    names = list(msg.name)
    q = np.asarray(msg.position, dtype=np.float64)
    dq = np.asarray(msg.velocity, dtype=np.float64)
    if dq.size == 0:
        dq = np.full(len(names), np.nan)
    if q.shape != (len(names),) or dq.shape != (len(names),):
        raise CodecError(f"JointState has {len(names)} names but {q.size} positions and {dq.size} velocities")
    return names, q.copy(), dq.copy(), stamp_from_time(msg.header.stamp)


# --- poses, twists, wrenches ----------------------------------------------------------------


def pose_stamped_msg(position: Any, quat_wxyz: Any, stamp_s: float, frame_id: str) -> Any:
    """geometry_msgs/PoseStamped of an ee pose: position (3,) m and a unit quaternion in the
    project's (w, x, y, z) order. ROS orders quaternions (x, y, z, w); this reorders them."""
    x, y, z = _vec(position, 3, "position")
    qw, qx, qy, qz = _vec(quat_wxyz, 4, "quat_wxyz")
    pose = _new(
        "geometry_msgs/msg/Pose",
        position=_new("geometry_msgs/msg/Point", x=float(x), y=float(y), z=float(z)),
        orientation=_new("geometry_msgs/msg/Quaternion", x=float(qx), y=float(qy), z=float(qz), w=float(qw)),
    )
    return _new(POSE_STAMPED, header=header_msg(stamp_s, frame_id), pose=pose)


def pose_from_msg(msg: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """(position (3,), quat_wxyz (4,), stamp_s) of a PoseStamped; the quaternion comes back in
    the project's (w, x, y, z) order from ROS's (x, y, z, w). The frame is msg.header.frame_id."""
    _check_type(msg, POSE_STAMPED)
    o = msg.pose.orientation
    return _from_xyz(msg.pose.position), np.array([o.w, o.x, o.y, o.z]), stamp_from_time(msg.header.stamp)


def twist_stamped_msg(linear: Any, angular: Any, stamp_s: float, frame_id: str) -> Any:
    """geometry_msgs/TwistStamped: linear (3,) m/s and angular (3,) rad/s velocity in frame_id."""
    twist = _new(
        "geometry_msgs/msg/Twist", linear=_vector3(linear, "linear"), angular=_vector3(angular, "angular")
    )
    return _new(TWIST_STAMPED, header=header_msg(stamp_s, frame_id), twist=twist)


def twist_from_msg(msg: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """(linear (3,), angular (3,), stamp_s) of a TwistStamped."""
    _check_type(msg, TWIST_STAMPED)
    return _from_xyz(msg.twist.linear), _from_xyz(msg.twist.angular), stamp_from_time(msg.header.stamp)


def wrench_stamped_msg(force: Any, torque: Any, stamp_s: float, frame_id: str) -> Any:
    """geometry_msgs/WrenchStamped: force (3,) N and torque (3,) N m, e.g. at the ee F/T sensor."""
    wrench = _new(
        "geometry_msgs/msg/Wrench", force=_vector3(force, "force"), torque=_vector3(torque, "torque")
    )
    return _new(WRENCH_STAMPED, header=header_msg(stamp_s, frame_id), wrench=wrench)


def wrench_from_msg(msg: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """(force (3,), torque (3,), stamp_s) of a WrenchStamped."""
    _check_type(msg, WRENCH_STAMPED)
    return _from_xyz(msg.wrench.force), _from_xyz(msg.wrench.torque), stamp_from_time(msg.header.stamp)


# --- std_msgs scalars ------------------------------------------------------------------------


def float64_msg(value: float) -> Any:
    """std_msgs/Float64 (no header: the newest value is the command)."""
    return _new(FLOAT64, data=float(value))


def float64_from_msg(msg: Any) -> float:
    """The value of a std_msgs/Float64; CodecError when it is not finite."""
    _check_type(msg, FLOAT64)
    value = float(msg.data)
    if not math.isfinite(value):
        raise CodecError(f"Float64 value must be finite, got {value}")
    return value


def bool_msg(value: bool) -> Any:
    """std_msgs/Bool."""
    return _new(BOOL, data=bool(value))


def bool_from_msg(msg: Any) -> bool:
    _check_type(msg, BOOL)
    return bool(msg.data)


# --- std_srvs -------------------------------------------------------------------------------


def trigger_request() -> Any:
    """std_srvs/Trigger request (no fields; e.g. "reset the arm")."""
    return _new(request_type(TRIGGER), structure_needs_at_least_one_member=0)


def trigger_response(success: bool, message: str = "") -> Any:
    """std_srvs/Trigger response: whether it worked and a human-readable why."""
    return _new(response_type(TRIGGER), success=bool(success), message=str(message))


def set_bool_request(data: bool) -> Any:
    """std_srvs/SetBool request (e.g. gripper closed, intervention on)."""
    return _new(request_type(SET_BOOL), data=bool(data))


def set_bool_response(success: bool, message: str = "") -> Any:
    """std_srvs/SetBool response."""
    return _new(response_type(SET_BOOL), success=bool(success), message=str(message))
