"""rclpy transport (robot_rl/ros/rclpy_backend.py). Without a ROS 2 install only the import guard
is tested; the rest is skipped with the reason, and runs where `source /opt/ros/<distro>/setup.bash`
has put rclpy on the path."""

from __future__ import annotations

import importlib.util
import re
import threading
import time
from collections.abc import Callable, Iterator

import pytest

pytest.importorskip("rosbags", reason="rosbags not installed (pip install rosbags)")

from robot_rl.ros import codec, messages
from robot_rl.ros.rclpy_backend import RCLPY_MISSING, RclpyTransport
from robot_rl.ros.transport import QoS, ServiceUnavailable

HAVE_RCLPY = importlib.util.find_spec("rclpy") is not None


@pytest.mark.skipif(HAVE_RCLPY, reason="rclpy is installed here")
def test_without_ros2_the_module_imports_and_the_transport_says_what_is_missing() -> None:
    with pytest.raises(ImportError, match=re.escape(f"{RCLPY_MISSING}: source /opt/ros")):
        RclpyTransport()


@pytest.fixture
def nodes() -> Iterator[tuple[RclpyTransport, RclpyTransport]]:
    pytest.importorskip("rclpy", reason=RCLPY_MISSING)
    arm, env = RclpyTransport("arm_test"), RclpyTransport("env_test")
    yield arm, env
    env.shutdown()
    arm.shutdown()


def _spin_until(nodes: tuple[RclpyTransport, ...], done: Callable[[], bool], timeout_s: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        for node in nodes:
            node.spin_once(0.02)
    return done()


@pytest.mark.ros
def test_joint_states_round_trip_and_garbled_are_counted(
    nodes: tuple[RclpyTransport, RclpyTransport],
) -> None:
    arm, env = nodes
    received: list[object] = []
    env.subscribe("/rl_test/joint_states", codec.JOINT_STATE, received.append, QoS.sensor_data())
    publisher = arm.create_publisher("/rl_test/joint_states", codec.JOINT_STATE, QoS.sensor_data())

    def publish() -> bool:
        publisher.publish(messages.joint_state_msg(["j1"], [0.5], [0.0], 1.0))
        publisher.publish_raw(b"\x00\x01\x00\x00garbage")
        return len(received) >= 2

    assert _spin_until((arm, env), publish)
    assert messages.joint_state_from_msg(received[0])[0] == ["j1"]
    assert env.dropped_garbled.get("/rl_test/joint_states", 0) >= 1


@pytest.mark.ros
def test_trigger_service_and_timer(nodes: tuple[RclpyTransport, RclpyTransport]) -> None:
    arm, env = nodes
    arm.create_service("/rl_test/reset", codec.TRIGGER, lambda _r: messages.trigger_response(True, "homed"))
    ticks: list[float] = []
    arm.create_timer(0.01, lambda: ticks.append(time.monotonic()))
    assert _spin_until((arm,), lambda: len(ticks) >= 3)
    spinner = threading.Thread(target=arm.spin, daemon=True)
    spinner.start()
    try:
        response = env.call_service(
            "/rl_test/reset", codec.TRIGGER, messages.trigger_request(), timeout_s=5.0
        )
    finally:
        arm.shutdown()
        spinner.join(timeout=5.0)
    assert (response.success, response.message) == (True, "homed")
    with pytest.raises(ServiceUnavailable):
        env.call_service("/rl_test/nothing", codec.TRIGGER, messages.trigger_request(), timeout_s=0.2)
