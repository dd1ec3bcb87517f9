"""TeleopNode over the in-process transport: it publishes what a synthetic device reports, in
teleop_topics' layout, every tick while idle too; a lost device means silence until it is back."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest
from arm_doubles import RecordingArm, SteppedClock
from teleop_doubles import SyntheticDevice

from drivers.safety import SafetyFilter, SafetyLimits
from drivers.teleop.base import Buttons, TeleopReading
from drivers.teleop.keyboard import Keyboard
from robot_rl.hil.devices import make_hardware_device
from robot_rl.ros import codec, messages
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.nodes.arm_node import ArmNode
from robot_rl.ros.nodes.teleop_node import TeleopNode, TeleopNodeParams
from robot_rl.ros.teleop_topics import reading_from_msgs
from sim.sim_arm import SimArm


class Rig:
    def __init__(self, device: SyntheticDevice, params: TeleopNodeParams | None = None) -> None:
        self.t = 1000.0
        self.bus = bus = InprocBus()
        self.transport = InprocTransport(bus)
        self.device = device
        self.node = TeleopNode(
            self.transport, device, params or TeleopNodeParams(rate_hz=200.0), lambda: self.t
        )
        self.client = InprocTransport(bus)
        self.twists: list[Any] = []
        self.joys: list[Any] = []
        self.client.subscribe("teleop/twist", codec.TWIST_STAMPED, self.twists.append)
        self.client.subscribe("teleop/joy", codec.JOY, self.joys.append)

    def spin_until(self, done: Callable[[], bool], timeout_s: float = 5.0) -> None:
        deadline = time.monotonic() + timeout_s
        while not done() and time.monotonic() < deadline:
            self.transport.spin_once(0.005)
            self.client.spin_once(0.0)
        assert done(), "condition not reached"

    def ticks(self, n: int) -> None:
        """Let n more timer ticks run."""
        counters = self.node.counters
        target = sum(counters[k] for k in ("published", "lost", "bad_readings")) + n
        self.spin_until(lambda: sum(counters[k] for k in ("published", "lost", "bad_readings")) >= target)
        self.client.spin_once(0.0)


def test_the_node_publishes_what_the_device_reports() -> None:
    reading = TeleopReading(
        np.array([0.5, -1.0, 0.0, 0.25, 0.0, 1.0]), 1.0, Buttons(intervene=True, rerecord=True), True, 7.0
    )
    rig = Rig(SyntheticDevice(reading))
    rig.spin_until(lambda: len(rig.joys) >= 1 and len(rig.twists) >= 1)
    back = reading_from_msgs(rig.twists[-1], rig.joys[-1])
    np.testing.assert_array_equal(back.twist, reading.twist)
    assert (back.gripper, back.buttons, back.active, back.stamp) == (1.0, reading.buttons, True, rig.t)
    assert rig.twists[-1].header.frame_id == rig.joys[-1].header.frame_id == "teleop"
    axes, buttons, _ = messages.joy_from_msg(rig.joys[-1])
    np.testing.assert_array_equal(axes, [1.0, 1.0, 1.0])  # gripper, has_gripper, active
    np.testing.assert_array_equal(buttons, [1, 0, 0, 1, 0])  # intervene success failure rerecord estop


def test_an_idle_device_is_published_too_as_the_heartbeat() -> None:
    rig = Rig(SyntheticDevice())
    rig.spin_until(lambda: len(rig.joys) >= 5)
    back = reading_from_msgs(rig.twists[-1], rig.joys[-1])
    assert not back.active and back.gripper is None and back.buttons == Buttons()
    np.testing.assert_array_equal(back.twist, np.zeros(6))
    axes, _, _ = messages.joy_from_msg(rig.joys[-1])
    np.testing.assert_array_equal(axes, [0.0, 0.0, 0.0])  # no gripper command: 0 with has_gripper 0


def test_a_lost_device_silences_the_node_until_it_is_back() -> None:
    device = SyntheticDevice()
    rig = Rig(device, TeleopNodeParams(rate_hz=200.0, restart_every_s=1.0))
    rig.ticks(2)
    device.lost, device.refuse_start = True, True
    rig.ticks(1)
    published, heard = rig.node.counters["published"], len(rig.joys)
    assert rig.node.counters["lost"] == 1
    rig.t += 2.0  # restart_every_s has passed, but the device cannot be started
    rig.spin_until(lambda: device.stops >= 1)
    for _ in range(10):
        rig.transport.spin_once(0.01)
    rig.client.spin_once(0.0)
    assert rig.node.counters["published"] == published and len(rig.joys) == heard  # silence, no made-up zeros
    device.refuse_start = False
    rig.t += 2.0
    rig.spin_until(lambda: rig.node.counters["restarts"] == 1 and len(rig.joys) > heard)
    assert device.starts == 1 and rig.node.counters["published"] > published


def test_a_reading_the_layout_cannot_carry_is_not_published() -> None:
    bad = TeleopReading(np.array([2.0, 0, 0, 0, 0, 0]), None, Buttons(), True, 0.0)  # a device bug
    rig = Rig(SyntheticDevice(bad))
    rig.ticks(3)
    assert rig.node.counters["bad_readings"] >= 3 and rig.node.counters["published"] == 0
    assert rig.joys == [] and rig.twists == []


def test_an_estop_press_on_the_device_latches_the_arm_node_on_another_machine() -> None:
    """Teleop node -> teleop/joy -> arm node, no actor in between: after the press the arm node
    refuses every command and the driver sees none of them."""
    clock = SteppedClock()
    arm = RecordingArm(SimArm(clock=clock))
    rig = Rig(SyntheticDevice())
    arm_transport = InprocTransport(rig.bus)
    # a box around the twin's start posture (its ee starts above the task contract's box)
    limits = SafetyLimits((0.2, -0.3, 0.05), (0.7, 0.3, 0.6), 0.03, 0.2, 0.25, 1.0, 30.0, 0.2)
    arm_node = ArmNode(arm_transport, arm, SafetyFilter(limits), clock=clock)
    pose_pub = rig.client.create_publisher("target_pose", codec.POSE_STAMPED)

    def arm_takes_what_came() -> None:
        while arm_transport.spin_once(0.0):
            pass

    def send_pose() -> None:
        reading = arm.state()
        pose = messages.pose_stamped_msg(reading.ee_position, reading.ee_quat_wxyz, clock.t, "base")
        pose_pub.publish(pose)
        arm_takes_what_came()

    rig.ticks(2)
    send_pose()
    assert len(arm.sent) == 1 and not arm_node.estopped
    rig.device.once.append(TeleopReading(np.zeros(6), None, Buttons(estop=True), False, 0.0))
    rig.ticks(2)
    arm_takes_what_came()
    assert arm_node.estopped and arm.stops == 1 and arm_node.counters["teleop_estops"] == 1
    rig.ticks(3)  # the button is up again: the node publishes estop 0, which releases nothing
    arm_takes_what_came()
    for _ in range(3):
        send_pose()
    assert arm_node.estopped and len(arm.sent) == 1 and arm_node.counters["refused_estop"] == 3


def test_params_and_devices_are_checked() -> None:
    with pytest.raises(ValueError, match="rate_hz must be in"):
        TeleopNodeParams(rate_hz=1.0)
    with pytest.raises(ValueError, match="teleop device must be one of"):
        make_hardware_device("joystick")
    with pytest.raises(ValueError, match="teleop config for keyboard"):
        make_hardware_device("keyboard", {"deadband": 2.0})
    with pytest.raises(ValueError, match="teleop config for keyboard"):
        make_hardware_device("keyboard", {"no_such_key": 1})
    device = make_hardware_device("keyboard", {"deadband": 0.2, "scale": [1.0] * 6})
    assert isinstance(device, Keyboard) and device.cfg.deadband == 0.2
