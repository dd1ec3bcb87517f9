"""The topic contract: every topic and service of the robot stack, its default name and its type.

The arm and task nodes publish and serve these, RobotEnv reads and commands them, `robot-rl
record` records them and mcap2zarr converts them; each takes its default names from here and lets
config rename them. Names follow crisp_controllers (the arm) and realsense-ros (the cameras), so
clients written against those stacks work unchanged. Relative names take the ROS namespace.

QoS: sensor data (states, poses, frames, success) is best effort and keeps the newest few, since a
late reading is worth less than a dropped one; a command is reliable with depth 1, since only the
newest target matters and one queued behind it would be stale anyway.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from robot_rl.ros import codec
from robot_rl.ros.transport import SENSOR_DATA, Publisher, QoS, Subscription, Transport

COMMAND_QOS = QoS.reliable(depth=1)


@dataclass(frozen=True)
class Topic:
    """A topic's default name, message type (codec.*), the QoS its ends use, and what it carries."""

    name: str
    msg_type: str
    qos: QoS
    meaning: str

    def publisher(self, transport: Transport, name: str | None = None) -> Publisher:
        """A publisher of this topic under `name` (a config's rename; None: the default name)."""
        return transport.create_publisher(self.name if name is None else name, self.msg_type, self.qos)

    def subscribe(
        self, transport: Transport, callback: Callable[[Any], None], name: str | None = None
    ) -> Subscription:
        """A subscription to this topic under `name` (None: the default name)."""
        return transport.subscribe(self.name if name is None else name, self.msg_type, callback, self.qos)


@dataclass(frozen=True)
class Service:
    """A service's default name, service type (codec.*) and what a call does."""

    name: str
    srv_type: str
    meaning: str


# ---- the arm node (crisp_controllers' names) ---------------------------------------------------
JOINT_STATES = Topic("joint_states", codec.JOINT_STATE, SENSOR_DATA, "arm joint positions (rad), velocities")
CURRENT_POSE = Topic("current_pose", codec.POSE_STAMPED, SENSOR_DATA, "measured ee pose, base frame")
GRIPPER_STATE = Topic(
    "gripper/joint_states", codec.JOINT_STATE, SENSOR_DATA, 'one joint "gripper": opening width in m'
)
TARGET_POSE = Topic("target_pose", codec.POSE_STAMPED, COMMAND_QOS, "absolute ee target, base frame")
TARGET_TWIST = Topic("target_twist", codec.TWIST_STAMPED, COMMAND_QOS, "ee velocity command, base frame")
GRIPPER_COMMAND = Topic("gripper/command", codec.FLOAT64, COMMAND_QOS, "gripper: -1 open .. +1 closed")
ESTOP = Service("estop", codec.SET_BOOL, "true latches the e-stop, false releases it")
HOLD = Service("hold", codec.TRIGGER, "hold the arm where it is")

# ---- the task: a tracker, a success signal and a scene reset (the twin's task node on the twin)
OBJECT_POSE = Topic("object_pose", codec.POSE_STAMPED, SENSOR_DATA, "the task object's pose, base frame")
SUCCESS = Topic("task/success", codec.BOOL, SENSOR_DATA, "whether the task is achieved now")
RESET_SCENE = Service("reset_scene", codec.TRIGGER, "re-place the task's objects")

# ---- teleop and the reward classifier ----------------------------------------------------------
# The teleop node (nodes/teleop_node.py) publishes a device's reading and RosTeleop
# (teleop_topics.py, which documents the layout) reads it back. Joy is reliable with joy_node's
# depth 10: a button pressed for one tick must not be lost, and it is the node's heartbeat. The
# reward classifier publishes its verdict on SUCCESS's name (or its own, set in
# env.topics.success), so RobotEnv reads either unchanged.
TELEOP_TWIST = Topic("teleop/twist", codec.TWIST_STAMPED, COMMAND_QOS, "the person's twist, axes in [-1, 1]")
TELEOP_JOY = Topic("teleop/joy", codec.JOY, QoS.reliable(depth=10), "gripper, active, buttons; heartbeat")

# Topics of the robot stack by role (the field names of RobotTopics, ArmNodeParams' `<role>_topic`
# and mcap2zarr's --topic ROLE=NAME), in the order `robot-rl record` lists its defaults.
ROBOT_TOPICS: dict[str, Topic] = {
    "joint_states": JOINT_STATES,
    "current_pose": CURRENT_POSE,
    "gripper_state": GRIPPER_STATE,
    "target_pose": TARGET_POSE,
    "gripper_command": GRIPPER_COMMAND,
    "object_pose": OBJECT_POSE,
    "success": SUCCESS,
}


# ---- cameras (realsense-ros' names) ------------------------------------------------------------
@dataclass(frozen=True)
class CameraTopics:
    color: Topic
    info: Topic
    depth: Topic


def camera_topics(camera: str) -> CameraTopics:
    """The topics of camera node `camera`: /<camera>/color/image_raw, /<camera>/color/camera_info and
    /<camera>/aligned_depth_to_color/image_raw, as realsense2_camera names them."""
    return CameraTopics(
        Topic(f"/{camera}/color/image_raw", codec.IMAGE, SENSOR_DATA, f"{camera}'s color image"),
        Topic(f"/{camera}/color/camera_info", codec.CAMERA_INFO, SENSOR_DATA, f"{camera}'s intrinsics"),
        Topic(
            f"/{camera}/aligned_depth_to_color/image_raw",
            codec.IMAGE,
            SENSOR_DATA,
            f"{camera}'s depth aligned to color",
        ),
    )
