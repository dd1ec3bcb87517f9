"""Codec: every message type round-trips through CDR bytes on Humble and Jazzy; type hashes match
the values ROS 2 computes; garbled and truncated payloads raise CodecError and nothing else."""

from __future__ import annotations

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags not installed (pip install rosbags)")

from robot_rl.ros import codec, messages
from robot_rl.ros.codec import CodecError, MessageCodec, get_codec

DISTROS = ["humble", "jazzy"]


def _round_trip(msg: object, msg_type: str, distro: str) -> object:
    k = get_codec(distro)
    return k.decode(k.encode(msg, msg_type), msg_type)


@pytest.mark.parametrize("distro", DISTROS)
@pytest.mark.parametrize(
    "frame",
    [
        np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3),
        np.arange(4 * 5, dtype=np.uint8).reshape(4, 5),
        (np.arange(4 * 5, dtype=np.uint16) * 3001).reshape(4, 5),
    ],
    ids=["rgb8", "mono8", "depth16"],
)
def test_image_round_trip(distro: str, frame: np.ndarray) -> None:
    back, stamp = messages.image_from_msg(
        _round_trip(messages.image_msg(frame, 12.25, "wrist_cam"), codec.IMAGE, distro)
    )
    assert back.dtype == frame.dtype and back.shape == frame.shape
    np.testing.assert_array_equal(back, frame)
    assert stamp == pytest.approx(12.25)


def test_image_encodings_and_frame_id() -> None:
    assert messages.image_msg(np.zeros((2, 3, 3), np.uint8), 0.0, "wrist_cam").encoding == "rgb8"
    assert messages.image_msg(np.zeros((2, 3), np.uint16), 0.0, "wrist_cam").encoding == "16UC1"
    assert messages.image_msg(np.zeros((2, 3), np.uint8), 0.0, "wrist_cam").header.frame_id == "wrist_cam"
    with pytest.raises(ValueError, match="image must be"):
        messages.image_msg(np.zeros((2, 3, 3), np.float32), 0.0, "wrist_cam")


def _raw_image(
    encoding: str, width: int, height: int, step: int, data: np.ndarray, bigendian: int = 0
) -> object:
    return codec.get_codec().new(
        codec.IMAGE,
        header=messages.header_msg(1.0, "cam"),
        height=height,
        width=width,
        encoding=encoding,
        is_bigendian=bigendian,
        step=step,
        data=np.asarray(data, dtype=np.uint8),
    )


def test_image_from_ros_cameras_bgr_padding_and_big_endian() -> None:
    bgr = _raw_image("bgr8", 1, 1, 3, np.array([10, 20, 30]))
    np.testing.assert_array_equal(messages.image_from_msg(bgr)[0], [[[30, 20, 10]]])  # returned as RGB
    padded = _raw_image("mono8", 2, 2, 4, np.array([1, 2, 99, 99, 3, 4, 99, 99]))
    np.testing.assert_array_equal(messages.image_from_msg(padded)[0], [[1, 2], [3, 4]])
    big = _raw_image("16UC1", 1, 1, 2, np.array([0x01, 0x02]), bigendian=1)
    assert messages.image_from_msg(big)[0][0, 0] == 0x0102


def test_image_that_does_not_fill_its_size_is_a_codec_error() -> None:
    with pytest.raises(CodecError, match="does not fit"):
        messages.image_from_msg(_raw_image("rgb8", 2, 2, 6, np.zeros(11)))
    with pytest.raises(CodecError, match="does not fit"):
        messages.image_from_msg(_raw_image("rgb8", 2, 2, 5, np.zeros(10)))
    with pytest.raises(CodecError, match="unsupported image encoding"):
        messages.image_from_msg(_raw_image("yuv422", 2, 2, 4, np.zeros(8)))


class _Pinhole:
    """Any object with the intrinsics fields will do (the camera drivers have their own class)."""

    width, height, fx, fy, cx, cy = 640, 480, 600.5, 601.5, 320.25, 239.75
    distortion_model = "plumb_bob"
    distortion_coeffs = (0.1, -0.2, 0.001, 0.002, 0.05)


@pytest.mark.parametrize("distro", DISTROS)
def test_camera_info_round_trip(distro: str) -> None:
    msg = _round_trip(
        messages.camera_info_msg(_Pinhole(), 3.5, "wrist_cam_optical"), codec.CAMERA_INFO, distro
    )
    intrinsics, stamp = messages.intrinsics_from_msg(msg)
    assert (intrinsics.width, intrinsics.height) == (640, 480)
    assert (intrinsics.fx, intrinsics.fy, intrinsics.cx, intrinsics.cy) == (600.5, 601.5, 320.25, 239.75)
    assert intrinsics.distortion_model == "plumb_bob"
    assert intrinsics.distortion_coeffs == pytest.approx(_Pinhole.distortion_coeffs)
    assert stamp == 3.5
    np.testing.assert_array_equal(np.asarray(msg.p).reshape(3, 4)[:, :3], np.asarray(msg.k).reshape(3, 3))


def test_camera_info_without_intrinsics_is_a_codec_error() -> None:
    msg = messages.camera_info_msg(_Pinhole(), 0.0, "cam")
    msg.k[0] = 0.0
    with pytest.raises(CodecError, match="no usable intrinsics"):
        messages.intrinsics_from_msg(msg)


@pytest.mark.parametrize("distro", DISTROS)
def test_joint_state_round_trip(distro: str) -> None:
    names = [f"joint{i}" for i in range(1, 8)]
    q, dq = np.linspace(-1.0, 1.0, 7), np.linspace(0.5, -0.5, 7)
    msg = messages.joint_state_msg(names, q, dq, 7.125, effort=np.arange(7.0))
    back_names, back_q, back_dq, stamp = messages.joint_state_from_msg(
        _round_trip(msg, codec.JOINT_STATE, distro)
    )
    assert back_names == names and stamp == 7.125
    np.testing.assert_array_equal(back_q, q)
    np.testing.assert_array_equal(back_dq, dq)


def test_joint_state_without_velocities_reads_as_nan_and_mismatch_is_an_error() -> None:
    msg = messages.joint_state_msg(["a", "b"], [1.0, 2.0], [0.0, 0.0], 1.0)
    msg.velocity = np.zeros(0)
    assert np.isnan(messages.joint_state_from_msg(msg)[2]).all()
    msg.position = np.zeros(3)
    with pytest.raises(CodecError, match="2 names but 3 positions"):
        messages.joint_state_from_msg(msg)
    with pytest.raises(ValueError, match="q must have shape"):
        messages.joint_state_msg(["a"], [1.0, 2.0], [0.0], 1.0)


@pytest.mark.parametrize("distro", DISTROS)
def test_pose_round_trip_reorders_quaternion_for_ros(distro: str) -> None:
    quat_wxyz = np.array([0.5, 0.5, -0.5, 0.5])
    msg = messages.pose_stamped_msg([0.4, -0.1, 0.3], quat_wxyz, 2.0, "base_link")
    o = msg.pose.orientation
    assert (o.x, o.y, o.z, o.w) == (0.5, -0.5, 0.5, 0.5)  # ROS order x, y, z, w
    position, back_quat, stamp = messages.pose_from_msg(_round_trip(msg, codec.POSE_STAMPED, distro))
    np.testing.assert_array_equal(position, [0.4, -0.1, 0.3])
    np.testing.assert_array_equal(back_quat, quat_wxyz)
    assert stamp == 2.0 and msg.header.frame_id == "base_link"


@pytest.mark.parametrize("distro", DISTROS)
def test_twist_and_wrench_round_trip(distro: str) -> None:
    twist = _round_trip(
        messages.twist_stamped_msg([0.1, 0.2, 0.3], [-1, 0, 1], 4.0, "base_link"), codec.TWIST_STAMPED, distro
    )
    linear, angular, stamp = messages.twist_from_msg(twist)
    np.testing.assert_array_equal(linear, [0.1, 0.2, 0.3])
    np.testing.assert_array_equal(angular, [-1, 0, 1])
    assert stamp == 4.0
    wrench = _round_trip(
        messages.wrench_stamped_msg([1, 2, 30], [0.1, 0.2, 0.3], 5.0, "ft_sensor"),
        codec.WRENCH_STAMPED,
        distro,
    )
    force, torque, stamp = messages.wrench_from_msg(wrench)
    np.testing.assert_array_equal(force, [1, 2, 30])
    np.testing.assert_array_equal(torque, [0.1, 0.2, 0.3])
    assert stamp == 5.0


@pytest.mark.parametrize("distro", DISTROS)
def test_gripper_command_and_success_scalars_round_trip(distro: str) -> None:
    assert messages.float64_from_msg(_round_trip(messages.float64_msg(-0.25), codec.FLOAT64, distro)) == -0.25
    assert messages.bool_from_msg(_round_trip(messages.bool_msg(True), codec.BOOL, distro)) is True
    with pytest.raises(CodecError, match="finite"):
        messages.float64_from_msg(messages.float64_msg(float("nan")))
    with pytest.raises(CodecError, match="expected a std_msgs/msg/Bool"):
        messages.bool_from_msg(messages.float64_msg(1.0))


@pytest.mark.parametrize("distro", DISTROS)
def test_joy_round_trip(distro: str) -> None:
    msg = _round_trip(messages.joy_msg([0.5, -1.0, 0.0], [1, 0, 0, 1, 0], 6.5, "teleop"), codec.JOY, distro)
    axes, buttons, stamp = messages.joy_from_msg(msg)
    np.testing.assert_array_equal(axes, [0.5, -1.0, 0.0])
    np.testing.assert_array_equal(buttons, [1, 0, 0, 1, 0])
    assert stamp == 6.5 and msg.header.frame_id == "teleop"
    empty = _round_trip(messages.joy_msg([], [], 1.0, ""), codec.JOY, distro)
    assert messages.joy_from_msg(empty)[0].size == 0


def test_joy_with_non_finite_axes_or_non_integer_buttons_is_refused() -> None:
    with pytest.raises(ValueError, match="Joy axes must be finite"):
        messages.joy_msg([float("nan")], [], 1.0, "teleop")
    with pytest.raises(ValueError, match="Joy buttons must be integers"):
        messages.joy_msg([0.0], [0.5], 1.0, "teleop")
    for bad in (float("nan"), float("inf")):  # as another publisher may send it
        raw = get_codec().new(
            codec.JOY,
            header=messages.header_msg(1.0, "teleop"),
            axes=np.array([0.0, bad], dtype=np.float32),
            buttons=np.zeros(5, dtype=np.int32),
        )
        with pytest.raises(CodecError, match="Joy axes must be finite"):
            messages.joy_from_msg(_round_trip(raw, codec.JOY, "humble"))
    with pytest.raises(CodecError, match="expected a sensor_msgs/msg/Joy"):
        messages.joy_from_msg(messages.bool_msg(True))


@pytest.mark.parametrize("distro", DISTROS)
def test_header_and_std_srvs_round_trip(distro: str) -> None:
    header = _round_trip(messages.header_msg(1.5, "world"), codec.HEADER, distro)
    assert (header.stamp.sec, header.stamp.nanosec, header.frame_id) == (1, 500_000_000, "world")
    cases = [
        (messages.trigger_request(), codec.request_type(codec.TRIGGER)),
        (messages.trigger_response(True, "arm homed"), codec.response_type(codec.TRIGGER)),
        (messages.set_bool_request(True), codec.request_type(codec.SET_BOOL)),
        (messages.set_bool_response(False, "gripper busy"), codec.response_type(codec.SET_BOOL)),
    ]
    for msg, msg_type in cases:
        back = _round_trip(msg, msg_type, distro)
        assert back.__msgtype__ == msg_type
        assert {f: getattr(back, f) for f in vars(msg)} == vars(msg)
    # an empty request carries rosidl's one placeholder byte, as ROS 2 sends it
    assert (
        get_codec(distro).encode(messages.trigger_request(), "std_srvs/srv/Trigger_Request")
        == b"\x00\x01\x00\x00\x00"
    )


def test_stamps_are_whole_nanoseconds_and_reject_nonsense() -> None:
    t = messages.time_msg(1_700_000_000.123456789)
    assert t.sec == 1_700_000_000 and abs(t.nanosec - 123_456_789) < 1_000
    assert messages.stamp_from_time(messages.time_msg(0.999999999999)) == 1.0
    for bad in (-1.0, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="stamp must be"):
            messages.time_msg(bad)


def test_type_hashes_match_ros2() -> None:
    """Reference hashes: rmw_zenoh's design document (String, AddTwoInts) and ROS 2 Jazzy."""
    jazzy = MessageCodec("jazzy")
    assert jazzy.type_hash("std_msgs/msg/String") == (
        "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"
    )
    assert (
        jazzy.type_hash(codec.IMAGE)
        == "RIHS01_d31d41a9a4c4bc8eae9be757b0beed306564f7526c88ea6a4588fb9582527d47"
    )
    jazzy.register_service("example_interfaces/srv/AddTwoInts", "int64 a\nint64 b", "int64 sum")
    assert jazzy.type_hash("example_interfaces/srv/AddTwoInts") == (
        "RIHS01_e118de6bf5eeb66a2491b5bda11202e7b68f198d6f67922cf30364858239c81a"
    )
    assert (
        jazzy.type_hash(codec.TRIGGER)
        == "RIHS01_eeff2cd6fa5ad9d27cdf4dec64818317839b62f212a91e6b5304b634b2062c5f"
    )
    assert (  # as `ros2 topic info -v` reports it for joy_node's topic
        jazzy.type_hash(codec.JOY)
        == "RIHS01_0d356c79cad3401e35ffeb75a96a96e08be3ef896b8b83841d73e890989372c5"
    )
    assert get_codec("humble").type_hash(codec.TRIGGER) == "TypeHashNotSupported"
    with pytest.raises(KeyError, match="unknown ROS 2"):
        jazzy.type_hash("std_srvs/srv/Nope")


def test_encoding_the_wrong_message_or_an_unknown_distro_is_rejected() -> None:
    with pytest.raises(CodecError, match="cannot encode a sensor_msgs/msg/JointState as"):
        get_codec().encode(messages.joint_state_msg(["a"], [0], [0], 0.0), codec.IMAGE)
    with pytest.raises(ValueError, match="unknown ROS 2 distro"):
        MessageCodec("rolling")  # type: ignore[arg-type]


# --- fuzz -------------------------------------------------------------------------------------

_SAMPLES = {
    codec.IMAGE: messages.image_msg(np.arange(12, dtype=np.uint8).reshape(2, 2, 3), 1.0, "wrist_cam"),
    codec.CAMERA_INFO: messages.camera_info_msg(_Pinhole(), 1.0, "wrist_cam"),
    codec.JOINT_STATE: messages.joint_state_msg(["shoulder", "elbow"], [0.1, 0.2], [0.0, 0.1], 1.0),
    codec.POSE_STAMPED: messages.pose_stamped_msg([0.1, 0.2, 0.3], [1, 0, 0, 0], 1.0, "base_link"),
    codec.TWIST_STAMPED: messages.twist_stamped_msg([0.1, 0, 0], [0, 0, 0.1], 1.0, "base_link"),
    codec.WRENCH_STAMPED: messages.wrench_stamped_msg([0, 0, 5], [0, 0, 0], 1.0, "ft_sensor"),
    codec.HEADER: messages.header_msg(1.0, "base_link"),
    codec.FLOAT64: messages.float64_msg(0.5),
    codec.BOOL: messages.bool_msg(True),
    codec.JOY: messages.joy_msg([0.5, 1.0, 0.0], [1, 0, 0, 0, 1], 1.0, "teleop"),
    "std_srvs/srv/Trigger_Request": messages.trigger_request(),
    "std_srvs/srv/Trigger_Response": messages.trigger_response(True, "ok"),
    "std_srvs/srv/SetBool_Request": messages.set_bool_request(True),
    "std_srvs/srv/SetBool_Response": messages.set_bool_response(True, "ok"),
}
_READERS = {
    codec.IMAGE: messages.image_from_msg,
    codec.CAMERA_INFO: messages.intrinsics_from_msg,
    codec.JOINT_STATE: messages.joint_state_from_msg,
    codec.POSE_STAMPED: messages.pose_from_msg,
    codec.TWIST_STAMPED: messages.twist_from_msg,
    codec.WRENCH_STAMPED: messages.wrench_from_msg,
    codec.FLOAT64: messages.float64_from_msg,
    codec.BOOL: messages.bool_from_msg,
    codec.JOY: messages.joy_from_msg,
}


@pytest.mark.parametrize("msg_type", list(_SAMPLES))
def test_every_truncation_is_a_codec_error(msg_type: str) -> None:
    payload = get_codec().encode(_SAMPLES[msg_type], msg_type)
    for n in range(len(payload)):
        with pytest.raises(CodecError, match="garbled"):
            get_codec().decode(payload[:n], msg_type)


def _decode_and_read(payload: bytes, msg_type: str) -> bool:
    """True when payload decoded (and, for the robot types, read) cleanly; False on CodecError.
    Any other exception fails the test."""
    try:
        msg = get_codec().decode(payload, msg_type)
        assert msg.__msgtype__ == msg_type
        if msg_type in _READERS:
            _READERS[msg_type](msg)
    except CodecError:
        return False
    return True


@pytest.mark.parametrize("msg_type", list(_SAMPLES))
def test_random_and_bit_flipped_payloads_raise_only_codec_errors(msg_type: str) -> None:
    rng = np.random.default_rng(sum(map(ord, msg_type)))
    valid = get_codec().encode(_SAMPLES[msg_type], msg_type)
    rejected = 0
    for trial in range(300):
        if trial % 3 == 0:  # pure noise, sometimes behind a valid CDR header
            body = rng.integers(0, 256, int(rng.integers(0, 120)), dtype=np.uint8).tobytes()
            payload = (b"\x00\x01\x00\x00" + body) if trial % 2 else body
        else:  # a valid message with a few bytes flipped, or extra bytes at the end
            buf = bytearray(valid)
            for i in rng.integers(0, len(buf), int(rng.integers(1, 4))):
                buf[i] ^= int(rng.integers(1, 256))
            payload = bytes(buf) if trial % 3 == 1 else valid + bytes(rng.integers(0, 256, 8, dtype=np.uint8))
        rejected += not _decode_and_read(payload, msg_type)
    assert rejected >= 100  # most of the noise is caught; none of it crashed in any other way
