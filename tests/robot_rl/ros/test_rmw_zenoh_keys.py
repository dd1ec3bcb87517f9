"""rmw_zenoh names on the wire, checked against the examples in rmw_zenoh's design document
(robot_rl/ros/rmw_zenoh_keys.py)."""

from __future__ import annotations

import struct

import pytest

from robot_rl.ros.rmw_zenoh_keys import (
    Attachment,
    NodeId,
    dds_type_name,
    entity_token,
    fully_qualified_name,
    mangle,
    node_token,
    qos_chunk,
    topic_key_expr,
)
from robot_rl.ros.transport import QoS

STRING_HASH = "RIHS01_df668c740482bbd48fb39d76a70dfd4bd59db1288021743503259e948f6b1a18"
ADD_TWO_INTS_HASH = "RIHS01_e118de6bf5eeb66a2491b5bda11202e7b68f198d6f67922cf30364858239c81a"


def test_topic_and_service_key_expressions_match_the_documented_examples() -> None:
    assert (
        topic_key_expr(0, "/chatter", "std_msgs/msg/String", STRING_HASH)
        == f"0/chatter/std_msgs::msg::dds_::String_/{STRING_HASH}"
    )
    assert (
        topic_key_expr(0, fully_qualified_name("chatter", "/robot1"), "std_msgs/msg/String", STRING_HASH)
        == f"0/robot1/chatter/std_msgs::msg::dds_::String_/{STRING_HASH}"
    )
    assert (
        topic_key_expr(2, "/add_two_ints", "example_interfaces/srv/AddTwoInts", ADD_TWO_INTS_HASH)
        == f"2/add_two_ints/example_interfaces::srv::dds_::AddTwoInts_/{ADD_TWO_INTS_HASH}"
    )
    assert (
        topic_key_expr(0, "/wrist_cam/image_raw", "sensor_msgs/msg/Image", "TypeHashNotSupported")
        == "0/wrist_cam/image_raw/sensor_msgs::msg::dds_::Image_/TypeHashNotSupported"
    )


def test_liveliness_tokens_match_the_documented_examples() -> None:
    listener = NodeId(2, "aac3178e146ba6f1fc6e6a4085e77f21", 0, "", "listener")
    assert node_token(listener) == "@ros2_lv/2/aac3178e146ba6f1fc6e6a4085e77f21/0/0/NN/%/%/listener"
    assert entity_token(
        listener, 10, "MS", "/chatter", "std_msgs/msg/String", STRING_HASH, QoS.reliable(10)
    ) == (
        "@ros2_lv/2/aac3178e146ba6f1fc6e6a4085e77f21/0/10/MS/%/%/listener/%chatter/"
        f"std_msgs::msg::dds_::String_/{STRING_HASH}/::,10:,:,:,,"
    )
    talker = NodeId(2, "8b20917502ee955ac4476e0266340d5c", 0, "", "talker")
    assert entity_token(
        talker, 10, "MP", "/chatter", "std_msgs/msg/String", STRING_HASH, QoS.reliable(7)
    ).endswith("/0/10/MP/%/%/talker/%chatter/std_msgs::msg::dds_::String_/" + STRING_HASH + "/::,7:,:,:,,")
    server = NodeId(2, "f9980ee0495eaafb3e38f0d19e2eae12", 0, "", "add_two_ints_server")
    srv = "example_interfaces/srv/AddTwoInts"
    assert entity_token(server, 10, "SS", "/add_two_ints", srv, ADD_TWO_INTS_HASH, QoS.reliable(10)) == (
        "@ros2_lv/2/f9980ee0495eaafb3e38f0d19e2eae12/0/10/SS/%/%/add_two_ints_server/%add_two_ints/"
        f"example_interfaces::srv::dds_::AddTwoInts_/{ADD_TWO_INTS_HASH}/::,10:,:,:,,"
    )


def test_namespaces_are_mangled_and_best_effort_is_written() -> None:
    camera = NodeId(0, "abc", 0, "/robot1/cameras", "wrist_cam")
    token = entity_token(
        camera, 3, "MP", "/robot1/cameras/image_raw", "sensor_msgs/msg/Image", "H", QoS.sensor_data()
    )
    assert token == (
        "@ros2_lv/0/abc/0/3/MP/%/%robot1%cameras/wrist_cam/%robot1%cameras%image_raw/sensor_msgs::msg::dds_::Image_/H/2::,5:,:,:,,"
    )
    assert mangle("") == "%" and qos_chunk(QoS.reliable(1)) == "::,1:,:,:,,"


def test_attachment_is_sequence_timestamp_and_gid_little_endian() -> None:
    gid = bytes(range(16))
    data = Attachment(7, 1_700_000_000_123_456_789, gid).to_bytes()
    assert len(data) == 33
    assert data[:8] == struct.pack("<q", 7) and data[8:16] == struct.pack("<q", 1_700_000_000_123_456_789)
    assert data[16] == 16 and data[17:] == gid
    assert Attachment.from_bytes(data) == Attachment(7, 1_700_000_000_123_456_789, gid)
    with pytest.raises(ValueError, match="33 bytes"):
        Attachment.from_bytes(data[:-1])
    with pytest.raises(ValueError, match="GID length"):
        Attachment.from_bytes(data[:16] + b"\x08" + data[17:])


def test_names_follow_ros2_rules() -> None:
    assert fully_qualified_name("image_raw", "wrist_cam") == "/wrist_cam/image_raw"
    assert fully_qualified_name("/arm/joint_states", "/ignored") == "/arm/joint_states"
    for bad in ("", "/", "a//b", "arm/", "1arm", "arm/*", "arm/**/x", "a b", "a__b"):
        with pytest.raises(ValueError, match="invalid ROS 2 name"):
            fully_qualified_name(bad)
    assert dds_type_name("std_srvs/srv/Trigger") == "std_srvs::srv::dds_::Trigger_"
    with pytest.raises(ValueError, match="pkg/msg/Name"):
        dds_type_name("Image")
