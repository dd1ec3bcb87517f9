"""Task node: what the twin knows about the task and a robot PC gets elsewhere, as ROS 2 topics.

On hardware the object's pose comes from a tracker (AprilTag, mocap), success from a reward
classifier or a person, and the scene is reset by a person. The twin has all three, and this
node publishes them under the names the RobotEnv reads, so the twin-backed run and the robot run
differ only in who publishes: `object_pose` (PoseStamped), `task/success` (std_msgs/Bool) and the
`reset_scene` service (std_srvs/Trigger), as robot_rl/ros/topics.py defines them.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np

from robot_rl.ros import messages, topics
from robot_rl.ros.transport import Transport

log = logging.getLogger(__name__)


class TaskScene(Protocol):
    """What the node reads (sim.twin.TwinScene is one)."""

    @property
    def has_object(self) -> bool: ...

    def object_pose(self) -> tuple[np.ndarray, np.ndarray, float]: ...

    def success(self) -> bool: ...

    def reset_scene(self) -> None: ...


@dataclass(frozen=True)
class TaskNodeParams:
    rate_hz: float = 100.0  # faster than any policy, so an observation never waits on it
    base_frame: str = "base"
    object_pose_topic: str = topics.OBJECT_POSE.name
    success_topic: str = topics.SUCCESS.name
    reset_service: str = topics.RESET_SCENE.name

    def __post_init__(self) -> None:
        if not (isinstance(self.rate_hz, (int, float)) and 1.0 <= self.rate_hz <= 1000.0):
            raise ValueError(f"TaskNodeParams.rate_hz must be in [1, 1000], got {self.rate_hz!r}")


class TaskNode:
    """Publishes the object pose and success at rate_hz; resets the scene on request.
    counters: published, reset_calls, errors."""

    def __init__(self, transport: Transport, scene: TaskScene, params: TaskNodeParams | None = None) -> None:
        self.params = p = params or TaskNodeParams()
        self.scene = scene
        self.counters = {"published": 0, "reset_calls": 0, "errors": 0}
        has_object = scene.has_object
        self._pose_pub = topics.OBJECT_POSE.publisher(transport, p.object_pose_topic) if has_object else None
        self._success_pub = topics.SUCCESS.publisher(transport, p.success_topic)
        self._handles = [
            transport.create_timer(1.0 / p.rate_hz, self._on_timer),
            transport.create_service(p.reset_service, topics.RESET_SCENE.srv_type, self._on_reset),
        ]

    def _on_timer(self) -> None:
        try:
            if self._pose_pub is not None:
                position, quat, stamp = self.scene.object_pose()
                self._pose_pub.publish(
                    messages.pose_stamped_msg(position, quat, stamp, self.params.base_frame)
                )
            self._success_pub.publish(messages.bool_msg(self.scene.success()))
        except (ValueError, RuntimeError) as exc:  # a scene mid-reset or a pose messages cannot carry
            self.counters["errors"] += 1
            log.warning("task state not published: %s", exc)
            return
        self.counters["published"] += 1

    def _on_reset(self, _request: Any) -> Any:
        self.counters["reset_calls"] += 1
        try:
            self.scene.reset_scene()
        except (ValueError, RuntimeError) as exc:
            return messages.trigger_response(False, f"scene reset failed: {exc}")
        return messages.trigger_response(True, "scene reset")

    def destroy(self) -> None:
        for handle in self._handles:
            handle.cancel()
