"""The topic contract (robot_rl/ros/topics.py): every node, RobotEnv, the recorder and mcap2zarr
take their default names and types from it, and each type is one the codec and a bag can carry."""

from __future__ import annotations

import pytest
from rosbags.typesys import Stores, get_typestore

from robot_rl.data.mcap_convert import ConvertConfig
from robot_rl.envs.robot_env import RobotTopics
from robot_rl.ros import codec, topics
from robot_rl.ros.nodes.arm_node import ArmNodeParams
from robot_rl.ros.nodes.camera_node import CameraNodeParams
from robot_rl.ros.nodes.task_node import TaskNodeParams
from robot_rl.ros.record import DEFAULT_TOPICS, camera_topics, parse_topic
from robot_rl.ros.transport import SENSOR_DATA

ROLES = list(topics.ROBOT_TOPICS)


@pytest.mark.parametrize("role", ROLES)
def test_env_and_converter_default_to_the_contracts_names(role: str) -> None:
    name = topics.ROBOT_TOPICS[role].name
    assert getattr(RobotTopics(), role) == name
    assert getattr(ConvertConfig(), f"{role}_topic") == name
    read = ConvertConfig(with_object=True).topics()[role]
    assert read == (f"/{name}", topics.ROBOT_TOPICS[role].msg_type)


def test_nodes_default_to_the_contracts_names() -> None:
    arm, task = ArmNodeParams(), TaskNodeParams()
    for role in ("joint_states", "current_pose", "gripper_state", "target_pose", "gripper_command"):
        assert getattr(arm, f"{role}_topic") == topics.ROBOT_TOPICS[role].name
    assert arm.target_twist_topic == topics.TARGET_TWIST.name
    assert (arm.estop_service, arm.hold_service) == (topics.ESTOP.name, topics.HOLD.name)
    assert (task.object_pose_topic, task.success_topic) == (topics.OBJECT_POSE.name, topics.SUCCESS.name)
    assert task.reset_service == RobotTopics().reset_scene == topics.RESET_SCENE.name
    assert RobotTopics().hold == topics.HOLD.name


def test_recorder_records_the_contracts_topics_with_their_types() -> None:
    assert list(DEFAULT_TOPICS) == [
        "joint_states",
        "current_pose",
        "gripper/joint_states",
        "target_pose",
        "gripper/command",
        "object_pose",
        "task/success",
    ]
    for topic in (*topics.ROBOT_TOPICS.values(), topics.TARGET_TWIST):
        assert parse_topic(topic.name) == (f"/{topic.name}", topic.msg_type)
        assert parse_topic(f"/robot1/{topic.name}") == (f"/robot1/{topic.name}", topic.msg_type)


def test_camera_names_are_realsense_ros_everywhere() -> None:
    named = topics.camera_topics("wrist")
    params = CameraNodeParams("wrist")
    assert (params.color_topic, params.info_topic, params.depth_topic) == (
        "/wrist/color/image_raw",
        "/wrist/color/camera_info",
        "/wrist/aligned_depth_to_color/image_raw",
    )
    assert (named.color.name, named.info.name, named.depth.name) == (
        params.color_topic,
        params.info_topic,
        params.depth_topic,
    )
    assert camera_topics("wrist") == (named.color.name, named.info.name)
    assert named.color.msg_type == codec.IMAGE and named.color.qos == SENSOR_DATA


def test_every_type_is_carried_by_the_codec_or_a_bag() -> None:
    store = get_typestore(Stores.ROS2_HUMBLE)
    all_topics = [t for t in vars(topics).values() if isinstance(t, topics.Topic)]
    assert len(all_topics) >= 10
    for topic in all_topics:
        assert topic.msg_type in store.types, topic
        assert topic.msg_type in codec.MESSAGE_TYPES, topic
    for service in (topics.ESTOP, topics.HOLD, topics.RESET_SCENE):
        assert service.srv_type in codec.SERVICE_TYPES
    commands = (topics.TARGET_POSE, topics.TARGET_TWIST, topics.GRIPPER_COMMAND, topics.TELEOP_TWIST)
    assert all(t.qos.reliability == "reliable" and t.qos.depth == 1 for t in commands)
