"""In-process transport: pub/sub through CDR bytes, keep-last QoS, timers, services, garbled
payloads counted (robot_rl/ros/inproc.py)."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest

pytest.importorskip("rosbags", reason="rosbags not installed (pip install rosbags)")

from robot_rl.ros import codec, messages
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.transport import (
    Publisher,
    QoS,
    ServiceFailed,
    ServiceTimeout,
    ServiceUnavailable,
    Transport,
)

JOINTS = ["joint1", "joint2", "joint3"]


def _spin_until(transport: InprocTransport, done: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        transport.spin_once(0.05)


@pytest.fixture
def bus() -> InprocBus:
    return InprocBus()


@pytest.fixture
def nodes(bus: InprocBus) -> Iterator[tuple[InprocTransport, InprocTransport]]:
    arm, env = InprocTransport(bus), InprocTransport(bus)
    yield arm, env
    arm.shutdown()
    env.shutdown()


def test_joint_states_reach_a_subscriber_on_another_node(
    nodes: tuple[InprocTransport, InprocTransport],
) -> None:
    arm, env = nodes
    received: list[object] = []
    env.subscribe("/arm/joint_states", codec.JOINT_STATE, received.append, QoS.sensor_data())
    publisher = arm.create_publisher("/arm/joint_states", codec.JOINT_STATE, QoS.sensor_data())
    assert isinstance(arm, Transport) and isinstance(publisher, Publisher)
    publisher.publish(messages.joint_state_msg(JOINTS, [0.1, 0.2, 0.3], [0.0, 0.0, 0.0], 10.0))
    assert received == []  # nothing runs until the receiving node spins
    _spin_until(env, lambda: bool(received))
    names, q, _dq, stamp = messages.joint_state_from_msg(received[0])
    assert names == JOINTS and stamp == 10.0
    np.testing.assert_array_equal(q, [0.1, 0.2, 0.3])


def test_a_subscription_sees_only_its_own_type(nodes: tuple[InprocTransport, InprocTransport]) -> None:
    arm, env = nodes
    poses: list[object] = []
    env.subscribe("/arm/ee_pose", codec.POSE_STAMPED, poses.append)
    arm.create_publisher("/arm/ee_pose", codec.TWIST_STAMPED).publish(
        messages.twist_stamped_msg([0, 0, 0], [0, 0, 0], 1.0, "base_link")
    )
    arm.create_publisher("/arm/ee_pose", codec.POSE_STAMPED).publish(
        messages.pose_stamped_msg([0.3, 0, 0.2], [1, 0, 0, 0], 1.0, "base_link")
    )
    _spin_until(env, lambda: bool(poses))
    env.spin_once(0.0)
    assert len(poses) == 1 and poses[0].__msgtype__ == codec.POSE_STAMPED


def test_keep_last_depth_delivers_the_newest_frames(nodes: tuple[InprocTransport, InprocTransport]) -> None:
    camera, env = nodes
    stamps: list[float] = []
    env.subscribe(
        "/wrist_cam/image_raw",
        codec.IMAGE,
        lambda m: stamps.append(messages.image_from_msg(m)[1]),
        QoS.sensor_data(2),
    )
    publisher = camera.create_publisher("/wrist_cam/image_raw", codec.IMAGE, QoS.sensor_data(2))
    for i in range(5):
        publisher.publish(messages.image_msg(np.full((4, 4, 3), i, np.uint8), float(i), "wrist_cam"))
    env.spin_once(0.0)
    assert stamps == [3.0, 4.0]


def test_garbled_payload_is_dropped_and_counted_per_topic(
    bus: InprocBus, nodes: tuple[InprocTransport, InprocTransport]
) -> None:
    arm, env = nodes
    received: list[object] = []
    env.subscribe("/arm/joint_states", codec.JOINT_STATE, received.append)
    valid = env.codec.encode(messages.joint_state_msg(JOINTS, [0, 0, 0], [0, 0, 0], 1.0), codec.JOINT_STATE)
    assert bus.deliver("/arm/joint_states", codec.JOINT_STATE, valid[: len(valid) // 2]) == 1
    arm.create_publisher("/arm/joint_states", codec.JOINT_STATE).publish_raw(
        b"\x00\x01\x00\x00not a joint state"
    )
    bus.deliver("/arm/joint_states", codec.JOINT_STATE, valid)
    _spin_until(env, lambda: bool(received))
    assert len(received) == 1
    assert env.dropped_garbled == {"/arm/joint_states": 2}


def test_relative_names_resolve_under_the_namespace(bus: InprocBus) -> None:
    left = InprocTransport(bus, namespace="/left_arm")
    received: list[object] = []
    left.subscribe("joint_states", codec.JOINT_STATE, received.append)
    InprocTransport(bus).create_publisher("/left_arm/joint_states", codec.JOINT_STATE).publish(
        messages.joint_state_msg(JOINTS, [0, 0, 0], [0, 0, 0], 1.0)
    )
    _spin_until(left, lambda: bool(received))
    assert len(received) == 1
    with pytest.raises(ValueError, match="invalid ROS 2 name"):
        left.subscribe("joint states", codec.JOINT_STATE, received.append)


def test_timer_runs_until_cancelled(nodes: tuple[InprocTransport, InprocTransport]) -> None:
    arm, _ = nodes
    ticks: list[float] = []
    timer = arm.create_timer(0.01, lambda: ticks.append(time.monotonic()))
    _spin_until(arm, lambda: len(ticks) >= 3)
    assert len(ticks) >= 3
    timer.cancel()
    count = len(ticks)
    arm.spin_once(0.05)
    assert len(ticks) == count


def _reset_handler(calls: list[object]) -> Callable[[object], object]:
    def handle(request: object) -> object:
        calls.append(request)
        return messages.trigger_response(True, "arm homed")

    return handle


def test_service_on_the_same_node_answers_without_a_second_thread(
    nodes: tuple[InprocTransport, InprocTransport],
) -> None:
    arm, _ = nodes
    calls: list[object] = []
    arm.create_service("/arm/reset", codec.TRIGGER, _reset_handler(calls))
    response = arm.call_service("/arm/reset", codec.TRIGGER, messages.trigger_request(), timeout_s=1.0)
    assert (response.success, response.message) == (True, "arm homed") and len(calls) == 1


def test_service_on_another_node_runs_on_that_nodes_spinning_thread(
    nodes: tuple[InprocTransport, InprocTransport],
) -> None:
    arm, env = nodes
    threads: list[int] = []

    def close_gripper(request: object) -> object:
        threads.append(threading.get_ident())
        return messages.set_bool_response(request.data, "closed" if request.data else "open")

    arm.create_service("/gripper/close", codec.SET_BOOL, close_gripper)
    spinner = threading.Thread(target=arm.spin, daemon=True)
    spinner.start()
    try:
        response = env.call_service(
            "/gripper/close", codec.SET_BOOL, messages.set_bool_request(True), timeout_s=5.0
        )
    finally:
        arm.shutdown()
        spinner.join(timeout=5.0)
    assert (response.success, response.message) == (True, "closed")
    assert threads == [spinner.ident]


def test_service_errors_say_what_went_wrong(nodes: tuple[InprocTransport, InprocTransport]) -> None:
    arm, env = nodes
    with pytest.raises(ServiceUnavailable, match="/arm/reset"):
        env.call_service("/arm/reset", codec.TRIGGER, messages.trigger_request(), timeout_s=0.5)
    arm.create_service("/arm/reset", codec.TRIGGER, _reset_handler([]))
    with pytest.raises(ServiceUnavailable, match="SetBool"):  # same name, other type: not this server
        env.call_service("/arm/reset", codec.SET_BOOL, messages.set_bool_request(True), timeout_s=0.5)
    with pytest.raises(ServiceTimeout, match="did not answer"):  # nobody spins the arm node
        env.call_service("/arm/reset", codec.TRIGGER, messages.trigger_request(), timeout_s=0.05)

    def broken(_request: object) -> object:
        raise RuntimeError("controller fault")

    env.create_service("/env/reset", codec.TRIGGER, broken)
    with pytest.raises(ServiceFailed, match="controller fault"):
        env.call_service("/env/reset", codec.TRIGGER, messages.trigger_request(), timeout_s=1.0)


def test_shutdown_leaves_the_bus(bus: InprocBus) -> None:
    env = InprocTransport(bus)
    env.subscribe("/arm/joint_states", codec.JOINT_STATE, lambda _m: None)
    env.create_service("/env/reset", codec.TRIGGER, _reset_handler([]))
    env.shutdown()
    assert bus.deliver("/arm/joint_states", codec.JOINT_STATE, b"") == 0
    with pytest.raises(ServiceUnavailable):
        InprocTransport(bus).call_service(
            "/env/reset", codec.TRIGGER, messages.trigger_request(), timeout_s=0.1
        )
    assert env.spin_once(0.0) == 0
