"""Standard ROS 2 messages built from and read into the robot's terms (numpy arrays, seconds,
(w, x, y, z) quaternions), on the types and codec of robot_rl/ros/codec.py.

Builders (`*_msg`) raise ValueError for a caller's bad value; readers (`*_from_msg`) take messages
off the network and raise CodecError, and only CodecError, for one that makes no sense for the
robot (an image whose data does not fill its size, a non-finite command).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from robot_rl.ros.codec import (
    BOOL,
    CAMERA_INFO,
    FLOAT64,
    HEADER,
    IMAGE,
    JOINT_STATE,
    JOY,
    POSE_STAMPED,
    SET_BOOL,
    TRIGGER,
    TWIST_STAMPED,
    WRENCH_STAMPED,
    CodecError,
    get_codec,
    request_type,
    response_type,
)


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


def stale(stamps: Mapping[str, float | None], now: float, max_age_s: float) -> list[str]:
    """The names whose newest stamp (s; None: nothing received) is more than max_age_s from now,
    each with why: "wrist (nothing received)", "joint_states (+0.412 s old)"."""
    out = []
    for name, stamp in stamps.items():
        if stamp is None:
            out.append(f"{name} (nothing received)")
        elif abs(now - stamp) > max_age_s:
            out.append(f"{name} ({now - stamp:+.3f} s old)")
    return out


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


# --- joysticks -----------------------------------------------------------------------------


def joy_msg(axes: Sequence[float], buttons: Sequence[int], stamp_s: float, frame_id: str) -> Any:
    """sensor_msgs/Joy: axes (float32 on the wire, finite; by convention in [-1, 1]) and
    buttons (int32, 1 pressed / 0 released), as joy_node publishes them."""
    axes_arr = np.asarray(axes, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(axes_arr)):
        raise ValueError(f"Joy axes must be finite, got {axes_arr.tolist()}")
    buttons_arr = np.asarray(buttons).reshape(-1)
    if buttons_arr.size and buttons_arr.dtype.kind not in "biu":
        raise ValueError(f"Joy buttons must be integers, got {buttons_arr.dtype}")
    return _new(
        JOY,
        header=header_msg(stamp_s, frame_id),
        axes=axes_arr.astype(np.float32),
        buttons=buttons_arr.astype(np.int32),
    )


def joy_from_msg(msg: Any) -> tuple[np.ndarray, np.ndarray, float]:
    """(axes float64 (N,), buttons int32 (M,), stamp_s) of a sensor_msgs/Joy; CodecError when an
    axis is not finite (a layout's sizes and ranges are its reader's to check)."""
    _check_type(msg, JOY)
    axes = np.asarray(msg.axes, dtype=np.float64).reshape(-1)
    if not np.all(np.isfinite(axes)):
        raise CodecError(f"Joy axes must be finite, got {axes.tolist()}")
    buttons = np.asarray(msg.buttons, dtype=np.int32).reshape(-1)
    return axes, buttons.copy(), stamp_from_time(msg.header.stamp)


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
