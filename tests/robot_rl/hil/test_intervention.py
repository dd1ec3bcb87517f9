"""The intervention wrapper: executed vs proposed action, the flags, the hold, the buttons, a
device that disconnects, and the safety filter in the path of the person's commands."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import gymnasium as gym
import numpy as np
import pytest
from arm_doubles import RecordingArm

from drivers.safety import SafetyFilter
from drivers.teleop import base as teleop_base
from drivers.teleop.base import (
    Buttons,
    MappedDevice,
    TeleopConfig,
    TeleopDisconnected,
    TeleopError,
    TeleopReading,
)
from robot_rl.envs.robot_env import RobotEnv, RobotEnvConfig
from robot_rl.hil.intervention import InterventionWrapper, TeleopEStop
from robot_rl.ros.bringup import default_safety
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.nodes.arm_node import ArmNode, ArmNodeParams
from robot_rl.ros.nodes.task_node import TaskNode
from sim import task_spec
from sim.twin import TwinScene


class SpyEnv(gym.Env):
    """Records the actions it is stepped with; never ends an episode by itself."""

    def __init__(self, action_dim: int = 4) -> None:
        self.action_space = gym.spaces.Box(-1.0, 1.0, (action_dim,), np.float32)
        self.observation_space = gym.spaces.Box(-1.0, 1.0, (2,), np.float32)
        self.actions: list[np.ndarray] = []
        self.closed = False

    def reset(self, *, seed=None, options=None):
        return np.zeros(2, np.float32), {}

    def step(self, action):
        self.actions.append(np.asarray(action).copy())
        return np.zeros(2, np.float32), 0.25, False, False, {"success": False}

    def close(self):
        self.closed = True


class ScriptedDevice:
    """Gives the readings it is scripted with (an exception is raised instead), then idle ones."""

    def __init__(self, readings: list) -> None:
        self.readings = list(readings)
        self.starts = self.stops = 0
        self.start_error: Exception | None = None

    def start(self) -> None:
        self.starts += 1
        if self.start_error is not None:
            raise self.start_error

    def stop(self) -> None:
        self.stops += 1

    def poll(self) -> TeleopReading:
        if not self.readings:
            return TeleopReading.idle(0.0)
        reading = self.readings.pop(0)
        if isinstance(reading, Exception):
            raise reading
        return reading


def person(twist=(0, 0, 0, 0, 0, 0), gripper=None, active=True, **buttons) -> TeleopReading:
    return TeleopReading(np.array(twist, float), gripper, Buttons(**buttons), active, 0.0)


POLICY = np.array([0.1, 0.2, 0.3, -1.0], np.float32)


def wrapped(readings: list, action_dim: int = 4) -> tuple[InterventionWrapper, SpyEnv, ScriptedDevice]:
    env, device = SpyEnv(action_dim), ScriptedDevice(readings)
    wrapper = InterventionWrapper(env, device)
    wrapper.reset()
    return wrapper, env, device


def test_the_policy_acts_while_the_person_does_not():
    wrapper, env, device = wrapped([person(active=False)])
    _, reward, terminated, truncated, info = wrapper.step(POLICY)
    assert device.starts == 1
    assert not info["intervened"] and reward == 0.25 and not (terminated or truncated)
    np.testing.assert_array_equal(info["executed_action"], POLICY)
    np.testing.assert_array_equal(info["policy_action"], POLICY)
    np.testing.assert_array_equal(env.actions[-1], POLICY)


def test_the_persons_twist_is_the_executed_delta_and_the_gripper_is_kept_without_a_command():
    readings = [person((0.5, -2.0, 0.0, 0.7, 0.0, 0.0), gripper=1.0), person((0.0, 0.0, -0.4, 0, 0, 0))]
    wrapper, env, _ = wrapped(readings)
    _, _, _, _, info = wrapper.step(POLICY)
    assert info["intervened"]
    np.testing.assert_array_equal(info["executed_action"], [0.5, -1.0, 0.0, 1.0])  # clipped, no rotation
    np.testing.assert_array_equal(info["policy_action"], POLICY)
    np.testing.assert_array_equal(env.actions[-1], info["executed_action"])
    _, _, _, _, info = wrapper.step(POLICY)
    np.testing.assert_allclose(info["executed_action"], [0.0, 0.0, -0.4, 1.0])  # gripper stays closed


def test_rotation_envs_get_the_rotation_part():
    wrapper, _, _ = wrapped([person((0.1, 0.2, 0.3, 0.4, 0.5, 0.6), gripper=-1.0)], action_dim=7)
    _, _, _, _, info = wrapper.step(np.zeros(7, np.float32))
    np.testing.assert_allclose(info["executed_action"], [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, -1.0])


def test_the_hold_keeps_the_person_in_control_after_the_last_input():
    clock = [0.0]

    class Stick(MappedDevice):
        """One raw axis, pushed for the first poll only."""

        def __init__(self) -> None:
            super().__init__(TeleopConfig(hold_s=0.5, axes=["a", "", "", "", "", ""]), lambda: clock[0])
            self.pushes = [1.0]

        def start(self) -> None: ...

        def stop(self) -> None: ...

        def poll(self) -> TeleopReading:
            return self.reading({"a": self.pushes.pop(0) if self.pushes else 0.0}, [])

    wrapper = InterventionWrapper(SpyEnv(), Stick())
    wrapper.reset()
    flags = []
    for t in (0.0, 0.3, 0.6):
        clock[0] = t
        _, _, _, _, info = wrapper.step(POLICY)
        flags.append((info["intervened"], float(info["executed_action"][0])))
    # pushed; then released but within hold_s: the arm is the person's and stays (x = 0); then the policy
    assert flags == [(True, 1.0), (True, 0.0), (False, pytest.approx(0.1))]


def test_success_and_failure_end_the_episode_with_their_reward_once_per_press():
    wrapper, _, _ = wrapped([person(active=False, success=True)])
    _, reward, terminated, truncated, info = wrapper.step(POLICY)
    assert (reward, terminated, truncated, info["success"], info["label"]) == (
        1.0,
        True,
        False,
        True,
        "success",
    )
    wrapper, _, _ = wrapped([person(active=False, failure=True), person(active=False, failure=True)])
    _, reward, terminated, truncated, info = wrapper.step(POLICY)
    assert (reward, terminated, truncated, info["success"], info["label"]) == (
        0.0,
        False,
        True,
        False,
        "failure",
    )
    _, reward, _, truncated, info = wrapper.step(POLICY)  # still held: no second label
    assert reward == 0.25 and not truncated and "label" not in info


def test_rerecord_marks_and_ends_the_episode():
    wrapper, _, _ = wrapped([person(active=False, rerecord=True)])
    _, _, terminated, truncated, info = wrapper.step(POLICY)
    assert info["rerecord"] and truncated and not terminated


def test_estop_holds_the_arm_then_refuses_to_go_on():
    wrapper, env, _ = wrapped(
        [person((1, 0, 0, 0, 0, 0), gripper=1.0), person((1, 1, 1, 0, 0, 0), estop=True)]
    )
    wrapper.step(POLICY)
    _, _, _, truncated, info = wrapper.step(POLICY)
    np.testing.assert_array_equal(env.actions[-1], [0.0, 0.0, 0.0, 1.0])  # no motion, still closed
    assert truncated and info["estop"] and not info["intervened"]
    assert info["estop_message"] == "e-stop pressed on the teleop device: the arm was held"
    with pytest.raises(TeleopEStop, match="e-stop pressed"):
        wrapper.step(POLICY)
    with pytest.raises(TeleopEStop):
        wrapper.reset()


def test_a_device_lost_mid_intervention_holds_the_arm_and_says_so():
    lost = TeleopDisconnected("the SpaceMouse stopped answering: is it unplugged?")
    wrapper, env, device = wrapped([person((1, 0, 0, 0, 0, 0), gripper=1.0), lost])
    wrapper.step(POLICY)
    _, _, terminated, truncated, info = wrapper.step(POLICY)
    np.testing.assert_array_equal(env.actions[-1], [0.0, 0.0, 0.0, 1.0])  # not the policy's action
    assert truncated and not terminated and "unplugged" in info["teleop_lost"]
    device.start_error = TeleopError("no SpaceMouse found")
    with pytest.raises(TeleopError, match="no SpaceMouse found"):
        wrapper.reset()  # starts the device again, and says why it cannot
    device.start_error = None
    wrapper.reset()
    assert device.starts == 3


def test_close_stops_the_device_and_the_env():
    wrapper, env, device = wrapped([])
    wrapper.close()
    assert device.stops == 1 and env.closed


def test_the_devices_gripper_commands_are_the_task_contracts():
    assert (teleop_base.GRIPPER_OPEN, teleop_base.GRIPPER_CLOSED) == (
        task_spec.GRIPPER_OPEN,
        task_spec.GRIPPER_CLOSED,
    )


def test_envs_without_the_task_contracts_action_are_refused():
    with pytest.raises(ValueError, match=r"\(dx, dy, dz\[, droll, dpitch, dyaw\], gripper\)"):
        InterventionWrapper(SpyEnv(action_dim=6), ScriptedDevice([]))


@contextmanager
def twin_robot_env() -> Iterator[tuple[RobotEnv, ArmNode, RecordingArm]]:
    """RobotEnv over the twin's arm and task nodes on an in-process bus; the arm records what
    reached it."""
    bus, scene = InprocBus(), TwinScene("pick_cube", seed=0)
    arm = RecordingArm(scene.arm)
    arm_tr, task_tr, env_tr = InprocTransport(bus), InprocTransport(bus), InprocTransport(bus)
    arm_node = ArmNode(arm_tr, arm, SafetyFilter(default_safety()), ArmNodeParams(), clock=time.time)
    TaskNode(task_tr, scene)
    stop = threading.Event()

    def spin(transport: InprocTransport) -> None:
        while not stop.is_set():
            transport.spin_once(0.01)

    threads = [threading.Thread(target=spin, args=(tr,), daemon=True) for tr in (arm_tr, task_tr, env_tr)]
    for thread in threads:
        thread.start()
    env = RobotEnv(RobotEnvConfig(max_obs_age_s=0.25, connect_timeout_s=5.0), transport=env_tr, seed=0)
    try:
        yield env, arm_node, arm
    finally:
        env.close()
        stop.set()
        for thread in threads:
            thread.join(timeout=2.0)
        scene.close()


def test_the_persons_commands_go_through_the_arm_nodes_safety_filter():
    """On a robot env the person's action is published as target_pose like the policy's, and the
    arm node filters it (here the twin's nodes on an in-process bus)."""
    with twin_robot_env() as (env, arm_node, _):
        wrapper = InterventionWrapper(env, ScriptedDevice([person((1, 0, 0, 0, 0, 0), gripper=-1.0)] * 4))
        obs, _ = wrapper.reset()
        start, passed = obs["state"][:3].copy(), arm_node.counters["passed"]
        for _ in range(4):
            obs, _, _, _, info = wrapper.step(np.array([-1.0, 0.0, 0.0, 1.0], np.float32))  # the policy: -x
            assert info["intervened"]
        assert arm_node.counters["passed"] - passed >= 4  # every command met the filter
        assert obs["state"][0] - start[0] > 0.05  # the person's +x moved the arm
        wrapper.close()


def test_an_estop_on_a_robot_latches_the_arm_node_before_anything_else_reaches_the_arm():
    with twin_robot_env() as (env, arm_node, arm):
        wrapper = InterventionWrapper(env, ScriptedDevice([person((1, 0, 0, 0, 0, 0), estop=True)]))
        wrapper.reset()
        sent, grippers = len(arm.sent), len(arm.grippers)
        _, _, _, truncated, info = wrapper.step(POLICY)
        assert truncated and info["estop"] and not info["intervened"]
        assert arm_node.estopped and arm.stops == 1
        assert "arm node's e-stop is latched" in info["estop_message"]
        assert (len(arm.sent), len(arm.grippers)) == (sent, grippers)  # the hold step was refused too
        assert arm_node.counters["refused_estop"] >= 1
        with pytest.raises(TeleopEStop, match="latched"):
            wrapper.reset()  # the env is never reset (its scripted move) once the e-stop is pressed
        assert len(arm.sent) == sent
        wrapper.close()


def test_an_estop_that_cannot_be_latched_still_holds_and_says_to_use_the_robots_own():
    with twin_robot_env() as (env, arm_node, _):
        env.cfg.topics.estop = "no_such_estop"
        env.cfg.hold_timeout_s = 0.2
        wrapper = InterventionWrapper(env, ScriptedDevice([person((1, 0, 0, 0, 0, 0), estop=True)]))
        wrapper.reset()
        _, _, _, truncated, info = wrapper.step(POLICY)
        assert truncated and not arm_node.estopped
        np.testing.assert_array_equal(info["executed_action"], [0.0, 0.0, 0.0, -1.0])  # held, open
        assert "could NOT be latched" in info["estop_message"] and "no_such_estop" in info["estop_message"]
        wrapper.close()
