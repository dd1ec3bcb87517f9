"""teleop_topics: the layout round-trips and refuses what breaks it; RosTeleop reads back what a
teleop node publishes (in-process), keeps one-tick presses, and calls stale, missing, refused or
future-stamped messages a lost device; end to end, a node that dies mid-intervention makes the
InterventionWrapper hold a sim env's arm and say why."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from teleop_doubles import SyntheticDevice

from drivers.teleop.base import Buttons, TeleopDisconnected, TeleopError, TeleopReading
from robot_rl.cli import CONFIG_DIR, to_train_config
from robot_rl.config import register_configs
from robot_rl.hil.intervention import InterventionWrapper
from robot_rl.ros import codec, messages
from robot_rl.ros.codec import CodecError
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.nodes.teleop_node import TeleopNode, TeleopNodeParams
from robot_rl.ros.teleop_topics import RosTeleop, RosTeleopConfig, reading_from_msgs, reading_msgs
from sim.tasks import make_sim_env

PERSON = TeleopReading(np.array([1.0, -0.5, 0.0, 0.0, 0.25, 0.0]), 1.0, Buttons(intervene=True), True, 0.0)


def _equal(a: TeleopReading, b: TeleopReading) -> bool:
    return bool(np.array_equal(a.twist, b.twist)) and (a.gripper, a.buttons, a.active) == (
        b.gripper,
        b.buttons,
        b.active,
    )


# --- the layout -------------------------------------------------------------------------------


@pytest.mark.parametrize("gripper", [None, -1.0, 1.0, 0.5])
def test_a_reading_round_trips_through_its_two_messages(gripper: float | None) -> None:
    reading = TeleopReading(PERSON.twist, gripper, Buttons(success=True, estop=True), False, 0.0)
    k = codec.get_codec("jazzy")
    twist, joy = reading_msgs(reading, 12.5)
    back = reading_from_msgs(
        k.decode(k.encode(twist, codec.TWIST_STAMPED), codec.TWIST_STAMPED),
        k.decode(k.encode(joy, codec.JOY), codec.JOY),
    )
    assert _equal(back, reading) and back.stamp == 12.5


def _joy(axes: list[float], buttons: list[int]) -> object:
    return codec.get_codec().new(
        codec.JOY,
        header=messages.header_msg(1.0, "teleop"),
        axes=np.array(axes, np.float32),
        buttons=np.array(buttons, np.int32),
    )


@pytest.mark.parametrize(
    ("axes", "buttons", "twist", "match"),
    [
        ([0, 0], [0] * 5, [0] * 6, "must have 3 axes"),
        ([0, 0, 0], [0] * 4, [0] * 6, "and 5 buttons"),
        ([0, 0.5, 0], [0] * 5, [0] * 6, "has_gripper must be 0 or 1"),
        ([0, 0, 2], [0] * 5, [0] * 6, "active must be 0 or 1"),
        ([1.5, 1, 1], [0] * 5, [0] * 6, "gripper must be in"),
        ([0, 0, 1], [0, 2, 0, 0, 0], [0] * 6, "buttons must be 0 or 1"),
        ([0, 0, 1], [0] * 5, [3, 0, 0, 0, 0, 0], "twist must be 6 finite values"),
        ([0, 0, 1], [0] * 5, [float("nan"), 0, 0, 0, 0, 0], "twist must be 6 finite values"),
    ],
)
def test_messages_that_break_the_layout_are_refused(axes, buttons, twist, match) -> None:
    twist_msg = messages.twist_stamped_msg(twist[:3], twist[3:], 1.0, "teleop")
    with pytest.raises(CodecError, match=match):
        reading_from_msgs(twist_msg, _joy(axes, buttons))


def test_a_reading_outside_the_layout_is_not_published() -> None:
    with pytest.raises(ValueError, match="6 values in"):
        reading_msgs(TeleopReading(np.full(6, 1.5), None, Buttons(), True, 0.0), 1.0)
    with pytest.raises(ValueError, match="gripper command is in"):
        reading_msgs(TeleopReading(np.zeros(6), 2.0, Buttons(), True, 0.0), 1.0)


# --- RosTeleop against a node ---------------------------------------------------------------


class Link:
    """A teleop node spinning on its own thread and a RosTeleop reading it, on one bus and one
    settable clock (the test moves it to age the messages)."""

    def __init__(self, device: SyntheticDevice | None = None, **cfg: float) -> None:
        self.t = 1000.0
        self.bus = InprocBus()
        self.device = device or SyntheticDevice(PERSON)
        self.node_transport = InprocTransport(self.bus)
        self.node = TeleopNode(self.node_transport, self.device, TeleopNodeParams(rate_hz=200.0), self.clock)
        self._running = threading.Event()
        self._running.set()
        self._thread = threading.Thread(target=self._spin, daemon=True)
        self._thread.start()
        self.reader = RosTeleop(
            RosTeleopConfig(**{"connect_timeout_s": 5.0, **cfg}), InprocTransport(self.bus), self.clock
        )

    def clock(self) -> float:
        return self.t

    def _spin(self) -> None:
        while self._running.is_set():
            self.node_transport.spin_once(0.005)

    def kill_node(self) -> None:
        """The node's process dies: nothing more is published."""
        self._running.clear()
        self._thread.join(timeout=2.0)
        self.node.destroy()

    def wait_published(self, n: int) -> None:
        target = self.node.counters["published"] + n
        wait_until(lambda: self.node.counters["published"] >= target)


def wait_until(done: Callable[[], bool], timeout_s: float = 5.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not done() and time.monotonic() < deadline:
        time.sleep(0.002)
    assert done(), "condition not reached"


@pytest.fixture
def link():
    links: list[Link] = []

    def make(device: SyntheticDevice | None = None, **cfg: float) -> Link:
        links.append(Link(device, **cfg))
        return links[-1]

    yield make
    for each in links:
        each.kill_node()
        each.reader.stop()


def test_ros_teleop_reads_back_what_the_node_publishes(link) -> None:
    rig = link()
    rig.reader.start()
    assert _equal(rig.reader.poll(), PERSON)
    turn = TeleopReading(np.array([0, 0, 0, 0, 0, -1.0]), None, Buttons(), True, 0.0)
    rig.device.reading = turn
    wait_until(lambda: _equal(rig.reader.poll(), turn))
    assert rig.reader.poll().stamp == rig.t
    assert rig.reader.counters["joy"] >= 2 and rig.reader.counters["bad_layout"] == 0


def test_a_press_the_node_saw_for_one_tick_reaches_a_slower_reader(link) -> None:
    rig = link(SyntheticDevice(TeleopReading.idle(0.0)))
    rig.reader.start()
    rig.reader.poll()
    rig.device.once.append(TeleopReading(np.zeros(6), 1.0, Buttons(success=True), True, 0.0))
    wait_until(lambda: not rig.device.once)
    rig.wait_published(2)  # the press, then idle ones
    rig.t += 0.001
    wait_until(lambda: rig.reader.newest_stamp == rig.t)  # the reader took all up to a later idle one
    pressed = rig.reader.poll()
    assert pressed.buttons == Buttons(success=True) and pressed.gripper == 1.0
    rig.t += 0.001
    wait_until(lambda: rig.reader.newest_stamp == rig.t)
    after = rig.reader.poll()
    assert after.buttons == Buttons() and after.gripper is None


def test_a_dead_node_is_a_lost_device_that_says_how_old_its_messages_are(link) -> None:
    rig = link(max_age_s=0.25)
    rig.reader.start()
    rig.reader.poll()
    rig.kill_node()
    rig.t += 0.2
    rig.reader.poll()  # within max_age_s: still trusted
    rig.t += 0.5
    with pytest.raises(TeleopDisconnected, match=r"teleop node lost: the newest teleop/twist is 0.70 s old"):
        rig.reader.poll()
    assert rig.reader.counters["lost"] == 1


def test_a_node_whose_device_is_unplugged_goes_silent_and_is_lost(link) -> None:
    rig = link()
    rig.reader.start()
    rig.device.lost = True
    rig.device.refuse_start = True
    wait_until(lambda: rig.node.counters["lost"] >= 1)
    rig.t += 1.0
    with pytest.raises(TeleopDisconnected, match="s old"):
        rig.reader.poll()


def test_no_node_stops_start_up_with_what_to_do() -> None:
    reader = RosTeleop(RosTeleopConfig(connect_timeout_s=0.2), InprocTransport(InprocBus()))
    with pytest.raises(
        TeleopError, match=r"no teleop node answers within 0.2 s \(no message on teleop/twist"
    ):
        reader.start()
    with pytest.raises(TeleopError, match="before start"):
        reader.poll()


def test_clocks_that_disagree_are_a_lost_device(link) -> None:
    rig = link()
    rig.reader.start()
    rig.reader.clock = lambda: rig.t - 2.0  # the reader's machine is 2 s behind the node's
    with pytest.raises(TeleopDisconnected, match=r"2\.00 s in the future: sync the two machines' clocks"):
        rig.reader.poll()


def test_refused_messages_are_counted_and_named_when_the_device_is_lost(link) -> None:
    rig = link()
    rig.reader.start()
    rig.kill_node()
    rig.t += 1.0
    foreign = InprocTransport(rig.bus)
    publisher = foreign.create_publisher("teleop/joy", codec.JOY)
    publisher.publish(messages.joy_msg([0.0, 0.0, 1.0, 0.0], [0] * 5, rig.t, "teleop"))  # 4 axes
    wait_until(lambda: rig.reader.counters["bad_layout"] == 1)  # taken on the reader's spin thread
    with pytest.raises(
        TeleopDisconnected, match="1 message\\(s\\) refused, the last: teleop Joy must have 3"
    ):
        rig.reader.poll()


def test_config_values_are_checked() -> None:
    with pytest.raises(ValueError, match=r"teleop\.max_age_s must be in"):
        RosTeleopConfig(max_age_s=0.0)
    with pytest.raises(ValueError, match=r"teleop\.connect_timeout_s must be > 0"):
        RosTeleopConfig(connect_timeout_s=-1.0)


# --- end to end -----------------------------------------------------------------------------


def test_a_node_that_dies_mid_intervention_holds_the_sim_arm_and_says_so(link) -> None:
    rig = link(max_age_s=0.25)
    env = InterventionWrapper(make_sim_env("pick_cube", seed=0), rig.reader)
    try:
        env.reset(seed=0)
        policy = np.array([-1.0, -1.0, -1.0, -1.0], np.float32)
        _, _, _, truncated, info = env.step(policy)
        assert info["intervened"] and not truncated
        np.testing.assert_array_equal(info["executed_action"], [1.0, -0.5, 0.0, 1.0])  # the person's
        np.testing.assert_array_equal(info["policy_action"], policy)
        rig.kill_node()
        rig.t += 1.0
        _, _, terminated, truncated, info = env.step(policy)
        np.testing.assert_array_equal(info["executed_action"], [0.0, 0.0, 0.0, 1.0])  # held, gripper kept
        assert not info["intervened"] and truncated and not terminated
        assert "teleop node lost: the newest teleop/twist is 1.00 s old" in info["teleop_lost"]
        rig.reader.cfg.connect_timeout_s = 0.2
        with pytest.raises(TeleopError, match="no teleop node answers"):
            env.reset()  # the wrapper starts the device again; no node answers, and it says so
    finally:
        env.close()


def test_teleop_ros_composes_from_the_command_line() -> None:
    register_configs()
    overrides = ["teleop=ros", "teleop.ros.connect=[tcp/teleop-pc:7447]", "teleop.max_age_s=0.5"]
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = to_train_config(compose("train", overrides=overrides)).teleop
    assert type(cfg) is RosTeleopConfig and cfg.ros.connect == ["tcp/teleop-pc:7447"] and cfg.max_age_s == 0.5
