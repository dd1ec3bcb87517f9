"""ArmNode over the in-process transport with the MuJoCo twin (state only, no GL).

The twin is wrapped in a recording double, so the tests can check the one rule that matters:
nothing outside the safety limits ever reached the driver. The twin-guard hook is tested in
tests/sim/test_twin_guard.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from arm_doubles import RecordingArm, SteppedClock

from drivers.arm import ArmReading
from drivers.safety import PoseCommand, SafetyFilter, SafetyLimits
from robot_rl.ros import codec, messages
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.nodes.arm_node import ArmNode, ArmNodeParams
from sim.assets import FINGER_JOINTS
from sim.sim_arm import SimArm

LIMITS = SafetyLimits((0.2, -0.3, 0.05), (0.7, 0.3, 0.6), 0.03, 0.2, 0.25, 1.0, 30.0, 0.2)


class Rig:
    """A node on its own bus over a fresh twin that stamps its state on the test's clock."""

    def __init__(self, params: ArmNodeParams | None = None) -> None:
        self.clock = SteppedClock()
        self.twin = SimArm(clock=self.clock)
        self.arm = RecordingArm(self.twin)
        self.bus = InprocBus()
        self.transport = InprocTransport(self.bus)
        self.node = ArmNode(self.transport, self.arm, SafetyFilter(LIMITS), params, clock=self.clock)
        self.client = InprocTransport(self.bus)
        self.pose_pub = self.client.create_publisher("target_pose", codec.POSE_STAMPED)
        self.twist_pub = self.client.create_publisher("target_twist", codec.TWIST_STAMPED)
        self.gripper_pub = self.client.create_publisher("gripper/command", codec.FLOAT64)

    def drain(self) -> None:
        while self.transport.spin_once(0.0):
            pass

    def spin_until(self, done: Callable[[], bool], timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.transport.spin_once(0.005)
            self.client.spin_once(0.0)

    def ee(self) -> tuple[np.ndarray, np.ndarray]:
        reading = self.arm.state()
        return reading.ee_position, reading.ee_quat_wxyz

    def send_gripper(self, value: float) -> None:
        self.gripper_pub.publish(messages.float64_msg(value))
        self.drain()

    def finger_opening(self) -> float:
        """The twin's opening between the pads (m): the sim tasks' gripper_width()."""
        m, d = self.twin.model, self.twin.data
        return float(sum(d.qpos[m.joint(name).qposadr[0]] for name in FINGER_JOINTS))

    def send_pose(self, position: Any, quat: Any, stamp: float | None = None, frame: str = "base") -> None:
        stamp = self.clock.t if stamp is None else stamp
        self.pose_pub.publish(messages.pose_stamped_msg(position, quat, stamp, frame))
        self.drain()


def test_state_is_published_at_the_configured_rate() -> None:
    rig = Rig(ArmNodeParams(state_rate_hz=200.0))
    joints: list[Any] = []
    poses: list[Any] = []
    rig.client.subscribe("joint_states", codec.JOINT_STATE, joints.append)
    rig.client.subscribe("current_pose", codec.POSE_STAMPED, poses.append)
    rig.spin_until(lambda: len(joints) >= 20 and len(poses) >= 20)
    assert len(joints) >= 20 and len(poses) >= 20
    names, q, _, stamp = messages.joint_state_from_msg(joints[-1])
    assert names == [f"joint{i}" for i in range(1, 8)] and stamp == pytest.approx(1000.0)
    np.testing.assert_allclose(q, rig.twin.state().joint_positions)
    position, _, _ = messages.pose_from_msg(poses[-1])
    assert poses[-1].header.frame_id == "base"
    np.testing.assert_allclose(position, rig.twin.state().ee_position)


def test_fuzzed_commands_never_leave_the_safety_limits() -> None:
    rig = Rig()
    rng = np.random.default_rng(0)
    check = SafetyFilter(LIMITS)
    for i in range(300):
        position, quat = rig.ee()
        now = rig.clock.t
        kind = i % 10
        if kind == 0:  # garbled bytes on the wire
            payload = codec.get_codec().encode(
                messages.pose_stamped_msg(position, quat, now, "base"), codec.POSE_STAMPED
            )
            cut = payload[: int(rng.integers(0, len(payload)))]  # truncated, or random bytes
            rig.bus.deliver("/target_pose", codec.POSE_STAMPED, cut if i % 20 else rng.bytes(len(cut)))
            rig.drain()
        elif kind == 1:  # a small step near the ee, mostly passed as is
            rig.send_pose(position + rng.normal(0, 0.01, 3), quat)
        elif kind == 2:  # NaN / inf anywhere
            bad = position.copy()
            bad[rng.integers(3)] = rng.choice([np.nan, np.inf, -np.inf])
            rig.send_pose(bad, quat)
        elif kind == 3:  # huge, far outside the box
            rig.send_pose(rng.choice([-1, 1], 3) * 1e300, rng.normal(size=4) * 1e200)
        elif kind == 4:  # inside the box but far from the ee: clipped to one step
            rig.send_pose(rng.uniform(LIMITS.workspace_low, LIMITS.workspace_high), rng.normal(size=4))
        elif kind == 5:  # stale or from the future
            rig.send_pose(position, quat, now + rng.choice([-5.0, -0.5, 0.5, 5.0]))
        elif kind == 6:  # a frame the limits are not written in
            rig.send_pose(position, quat, frame="camera_link")
        elif kind == 7:  # a nanosec field no clock produces
            msg = messages.pose_stamped_msg(position, quat, now, "base")
            msg.header.stamp.nanosec = 2_000_000_000
            rig.pose_pub.publish(msg)
            rig.drain()
        else:  # twists: random, huge, NaN
            scale = rng.choice([0.1, 10.0, 1e300, np.nan])
            twist = messages.twist_stamped_msg(
                rng.normal(size=3) * scale, rng.normal(size=3) * scale, now, "base"
            )
            rig.twist_pub.publish(twist)
            rig.drain()
        if i % 5 == 4:  # let the twin move and time pass, so states stay fresh and poses change
            rig.twin.advance(0.01)
            rig.clock.t += 0.01
    assert rig.arm.sent, "no command passed at all: the test exercised nothing"
    for command, reading in rig.arm.sent:
        assert check.within_limits(command, reading.ee), command
        if isinstance(command, PoseCommand):
            assert np.all(
                (LIMITS.workspace_low <= command.position) & (command.position <= LIMITS.workspace_high)
            )
    c = rig.node.counters
    assert c["passed"] == len(rig.arm.sent) and c["clipped"] > 0 and c["held"] > 0
    assert c["wrong_frame"] == 30 and c["bad_stamp"] == 30
    assert rig.transport.dropped_garbled["/target_pose"] > 0
    assert rig.arm.holds >= c["held"]


def test_watchdog_holds_once_after_the_timeout() -> None:
    rig = Rig(ArmNodeParams(watchdog_timeout_s=0.1))
    rig.send_pose(*rig.ee())
    assert rig.node.counters["passed"] == 1
    holds = rig.arm.holds
    rig.spin_until(lambda: False, timeout_s=0.1)  # watchdog ticks, but the command is still fresh
    assert rig.node.counters["watchdog_holds"] == 0
    rig.clock.t += 0.15
    rig.spin_until(lambda: rig.node.counters["watchdog_holds"] > 0)
    rig.spin_until(lambda: False, timeout_s=0.1)
    assert rig.node.counters["watchdog_holds"] == 1 and rig.arm.holds == holds + 1


def test_commands_superseded_while_the_node_was_behind_are_counted() -> None:
    rig = Rig()
    position, quat = rig.ee()
    for _ in range(5):  # the node does not spin meanwhile: its keep-last queue keeps the newest
        rig.pose_pub.publish(messages.pose_stamped_msg(position, quat, rig.clock.t, "base"))
    rig.drain()
    assert rig.node.counters["received"] == 1 and rig.node.counters["passed"] == 1
    rig.spin_until(lambda: rig.node.counters["superseded"] > 0)  # refreshed on the watchdog timer
    assert rig.node.counters["superseded"] == 4


def test_estop_latches_until_released() -> None:
    rig = Rig()
    response = rig.transport.call_service("estop", codec.SET_BOOL, messages.set_bool_request(True))
    assert response.success and rig.arm.stops == 1 and rig.node.estopped
    rig.send_pose(*rig.ee())
    rig.twist_pub.publish(messages.twist_stamped_msg([0.01, 0, 0], [0, 0, 0], rig.clock.t, "base"))
    rig.drain()
    assert rig.arm.sent == [] and rig.node.counters["refused_estop"] == 2
    response = rig.transport.call_service("estop", codec.SET_BOOL, messages.set_bool_request(False))
    assert response.success and not rig.node.estopped
    rig.send_pose(*rig.ee())
    assert len(rig.arm.sent) == 1


def teleop_joy(estop: int, buttons: int = 5) -> Any:
    """A teleop node's Joy (robot_rl/ros/teleop_topics.py) with the e-stop button as given."""
    pressed = [0] * buttons
    pressed[min(4, buttons - 1)] = estop
    return messages.joy_msg([0.0, 0.0, 0.0], pressed, 1000.0, "teleop")


def test_a_teleop_estop_press_latches_and_the_teleop_cannot_release_it() -> None:
    rig = Rig()
    joy = rig.client.create_publisher("teleop/joy", codec.JOY)
    joy.publish(teleop_joy(0))
    rig.drain()
    rig.send_pose(*rig.ee())
    assert not rig.node.estopped and len(rig.arm.sent) == 1
    for _ in range(3):  # the button held for a few ticks: one latch
        joy.publish(teleop_joy(1))
    rig.drain()
    assert rig.node.estopped and rig.arm.stops == 1 and rig.node.counters["teleop_estops"] == 1
    joy.publish(teleop_joy(0))  # let go: still latched
    rig.drain()
    rig.send_pose(*rig.ee())
    rig.send_gripper(1.0)
    assert rig.node.estopped and len(rig.arm.sent) == 1 and rig.arm.grippers == []
    assert rig.node.counters["refused_estop"] == 2
    response = rig.transport.call_service("estop", codec.SET_BOOL, messages.set_bool_request(False))
    assert response.success and not rig.node.estopped  # the service releases it, once safe


def test_a_foreign_joy_on_the_teleop_topic_is_counted_not_obeyed() -> None:
    rig = Rig()
    joy = rig.client.create_publisher("teleop/joy", codec.JOY)
    joy.publish(teleop_joy(1, buttons=12))  # a gamepad's raw Joy: not the teleop layout
    rig.drain()
    assert not rig.node.estopped and rig.node.counters["bad_teleop_joy"] == 1


def test_an_arm_node_without_a_teleop_topic_ignores_teleop() -> None:
    rig = Rig(ArmNodeParams(teleop_joy_topic=""))
    rig.client.create_publisher("teleop/joy", codec.JOY).publish(teleop_joy(1))
    rig.drain()
    assert not rig.node.estopped


def test_hold_service_and_hold_verdicts_call_arm_hold() -> None:
    rig = Rig()
    response = rig.transport.call_service("hold", codec.TRIGGER, messages.trigger_request())
    assert response.success and rig.arm.holds == 1
    rig.send_pose(*rig.ee(), stamp=rig.clock.t - 1.0)  # stale
    assert rig.node.counters["held"] == 1 and rig.arm.holds == 2 and rig.arm.sent == []


def test_params_below_a_servo_rate_are_refused() -> None:
    with pytest.raises(ValueError, match="state_rate_hz"):
        ArmNodeParams(state_rate_hz=50.0)
    with pytest.raises(ValueError, match="watchdog_timeout_s"):
        ArmNodeParams(watchdog_timeout_s=0.0)
    with pytest.raises(ValueError, match="gripper_max_width_m"):
        ArmNodeParams(gripper_max_width_m=0.0)


def test_gripper_command_reaches_the_twin_and_rides_on_later_commands() -> None:
    rig = Rig()
    opening = rig.finger_opening()
    rig.send_gripper(1.0)
    assert rig.arm.grippers == [1.0] and rig.node.counters["gripper_passed"] == 1
    rig.twin.advance(0.5)
    assert rig.finger_opening() < 0.1 * opening  # the fingers closed
    rig.send_pose(*rig.ee())
    assert rig.arm.sent[-1][0].gripper == 1.0  # a pose command does not reopen the hand
    assert rig.node.counters["watchdog_holds"] == 0


def test_gripper_command_out_of_range_is_clipped() -> None:
    rig = Rig()
    rig.send_gripper(5.0)
    rig.send_gripper(-7.5)
    rig.send_gripper(0.25)
    assert rig.arm.grippers == [1.0, -1.0, 0.25]
    assert rig.node.counters["gripper_clipped"] == 2 and rig.node.gripper_command == 0.25


@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_non_finite_gripper_command_is_dropped_and_counted(value: float) -> None:
    rig = Rig()
    rig.send_gripper(value)
    assert rig.arm.grippers == [] and rig.node.counters["bad_gripper"] == 1
    assert rig.node.gripper_command == -1.0  # the commands that follow keep the last good value


def test_gripper_command_refused_while_estopped() -> None:
    rig = Rig()
    rig.transport.call_service("estop", codec.SET_BOOL, messages.set_bool_request(True))
    rig.send_gripper(1.0)
    assert rig.arm.grippers == [] and rig.node.counters["refused_estop"] == 1
    assert rig.node.gripper_command == -1.0


def test_gripper_commands_alone_do_not_feed_the_watchdog() -> None:
    rig = Rig(ArmNodeParams(watchdog_timeout_s=0.1))
    rig.twist_pub.publish(messages.twist_stamped_msg([0.01, 0, 0], [0, 0, 0], rig.clock.t, "base"))
    rig.drain()
    assert rig.node.counters["passed"] == 1
    for _ in range(4):
        rig.clock.t += 0.05
        rig.send_gripper(0.0)
    rig.spin_until(lambda: rig.node.counters["watchdog_holds"] > 0)
    assert rig.node.counters["watchdog_holds"] == 1


def test_gripper_state_is_the_twins_opening_in_metres() -> None:
    rig = Rig()
    states: list[Any] = []
    rig.client.subscribe("gripper/joint_states", codec.JOINT_STATE, states.append)
    rig.spin_until(lambda: len(states) >= 1)
    names, width, velocity, stamp = messages.joint_state_from_msg(states[-1])
    assert names == ["gripper"] and velocity.tolist() == [0.0] and stamp == pytest.approx(1000.0)
    assert width[0] == pytest.approx(rig.finger_opening(), abs=1e-3)  # open at home
    rig.send_gripper(0.0)  # half closed, then still
    rig.twin.advance(1.0)
    states.clear()
    rig.spin_until(lambda: len(states) >= 1)
    width = messages.joint_state_from_msg(states[-1])[1][0]
    assert width == pytest.approx(rig.finger_opening(), abs=1e-3)
    assert width == pytest.approx(0.5 * ArmNodeParams().gripper_max_width_m, abs=2e-3)


def test_no_gripper_state_without_a_gripper_reading() -> None:
    rig = Rig()

    def no_gripper() -> ArmReading:  # an arm without a gripper, or one that cannot read it
        r = rig.twin.state()
        return ArmReading(r.ee, r.joint_positions, r.joint_velocities)

    rig.arm.state = no_gripper  # type: ignore[method-assign]
    states: list[Any] = []
    joints: list[Any] = []
    rig.client.subscribe("gripper/joint_states", codec.JOINT_STATE, states.append)
    rig.client.subscribe("joint_states", codec.JOINT_STATE, joints.append)
    rig.spin_until(lambda: len(joints) >= 5)
    assert len(joints) >= 5 and states == []
