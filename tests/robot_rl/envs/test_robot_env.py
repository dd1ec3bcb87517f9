"""RobotEnv over the in-process transport, with the twin's arm and task nodes behind it (no GL).

Each node has its own transport spun on its own thread, as in `robot-rl bringup`; a test "kills"
a node by no longer spinning its transport, so its topics go silent as a crashed process's would.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import numpy as np
import pytest

from drivers.safety import SafetyFilter
from robot_rl.envs.factory import make_env, sim_env_config
from robot_rl.envs.robot_env import (
    ObservationTimeout,
    RobotEnv,
    RobotEnvConfig,
    RobotTopics,
    robot_env_spaces,
)
from robot_rl.ros import codec, messages
from robot_rl.ros.bringup import default_safety
from robot_rl.ros.inproc import InprocBus, InprocTransport
from robot_rl.ros.nodes.arm_node import ArmNode, ArmNodeParams
from robot_rl.ros.nodes.task_node import TaskNode
from sim.tasks import make_sim_env
from sim.twin import TwinScene


@dataclass
class Twin:
    """The twin's nodes on one in-process bus; `spinning[name]` cleared = that node is dead."""

    bus: InprocBus
    scene: TwinScene
    arm_node: ArmNode
    task_node: TaskNode
    holds: list[float] = field(default_factory=list)
    spinning: dict[str, threading.Event] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)

    def spin(self, name: str, transport: InprocTransport) -> None:
        alive = self.spinning.setdefault(name, threading.Event())
        alive.set()
        stop = self.spinning.setdefault("_all", threading.Event())

        def loop() -> None:
            while not stop.is_set():
                if alive.is_set():
                    transport.spin_once(0.01)
                else:
                    time.sleep(0.01)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        self.threads.append(thread)

    def env(self, **overrides: object) -> RobotEnv:
        transport = InprocTransport(self.bus)
        self.spin("env", transport)
        cfg = RobotEnvConfig(max_obs_age_s=0.25, connect_timeout_s=5.0, **overrides)  # type: ignore[arg-type]
        return RobotEnv(cfg, transport=transport, seed=0)


@pytest.fixture
def twin() -> Iterator[Twin]:
    bus = InprocBus()
    scene = TwinScene("pick_cube", seed=0)
    arm_tr, task_tr = InprocTransport(bus), InprocTransport(bus)
    arm_node = ArmNode(arm_tr, scene.arm, SafetyFilter(default_safety()), ArmNodeParams(), clock=time.time)
    rig = Twin(bus, scene, arm_node, TaskNode(task_tr, scene))
    hold = scene.arm.hold

    def recorded_hold() -> None:
        rig.holds.append(time.time())
        hold()

    scene.arm.hold = recorded_hold  # type: ignore[method-assign]
    rig.spin("arm", arm_tr)
    rig.spin("task", task_tr)
    yield rig
    rig.spinning["_all"].set()
    for thread in rig.threads:
        thread.join(timeout=2.0)
    scene.close()


def test_spaces_are_the_sim_tasks() -> None:
    for privileged, cameras in ((True, []), (False, ["wrist", "front"])):
        cfg = RobotEnvConfig(privileged=privileged, cameras=cameras)
        sim = make_sim_env("pick_cube", privileged=privileged)  # no cameras: nothing renders
        obs_space, action_space = robot_env_spaces(cfg)
        assert obs_space["state"] == sim.observation_space["state"]
        assert action_space == sim.action_space
        assert ("images" in obs_space.spaces) == bool(cameras)
        sim.close()
    sim_cfg = sim_env_config(RobotEnvConfig())
    assert (sim_cfg.task, sim_cfg.privileged, sim_cfg.control_hz) == ("pick_cube", True, 10.0)


def test_building_a_robot_env_touches_no_robot() -> None:
    env = make_env(RobotEnvConfig(), seed=3)  # the learner does this for the spaces
    assert env.observation_space["state"].shape == (32,)
    env.close()


@pytest.mark.parametrize(
    ("overrides", "match"),
    [
        ({"task": "reach"}, "goal"),
        ({"task": "stack_cube"}, "single tracked object"),  # two cubes: one object_pose cannot say
        ({"task": "nope"}, "env.task"),
        ({"image_size": [4, 4]}, "image_size"),
        ({"max_obs_age_s": 0.0}, "max_obs_age_s"),
        ({"control_hz": -1.0}, "control_hz"),
    ],
)
def test_bad_config_is_refused_with_its_name(overrides: dict, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        RobotEnvConfig(**overrides)


def test_episode_moves_the_twin_and_reads_the_sim_state_layout(twin: Twin) -> None:
    env = twin.env()
    obs, info = env.reset()
    assert twin.task_node.counters["reset_calls"] == 1
    assert obs["state"].shape == (32,) and obs["state"].dtype == np.float32
    assert max(info["obs_age_s"].values()) < 0.25
    start = obs["state"][:3].copy()
    for _ in range(4):
        obs, reward, terminated, truncated, info = env.step(np.array([1.0, 0.0, 0.0, -1.0], np.float32))
    moved = obs["state"][:3] - start
    assert moved[0] > 0.05 and abs(moved[1]) < 0.02  # +x commanded, about 2.5 cm a tick
    cube_pos, _quat, _ = twin.scene.object_pose()
    np.testing.assert_allclose(obs["state"][22:25], cube_pos, atol=1e-3)  # the object part
    np.testing.assert_allclose(obs["state"][29:32], cube_pos - obs["state"][:3], atol=0.02)
    assert reward == 0.0 and not terminated and not truncated
    for _ in range(5):
        obs, *_ = env.step(np.array([0.0, 0.0, 0.0, 1.0], np.float32))
    assert obs["state"][7] < 0.02  # gripper width in m: closed on nothing
    assert twin.arm_node.counters["passed"] >= 9 and twin.arm_node.counters["held"] == 0
    env.close()


def test_robot_env_maps_an_action_to_the_sim_envs_target(twin: Twin) -> None:
    """From the same commanded target, the same actions give the same target pose and gripper
    command in RobotEnv (what it publishes) and in the sim task (what its controller follows)."""
    env = twin.env(rotation=True)
    env.reset()
    sent: list[tuple[str, object]] = []
    probe = InprocTransport(twin.bus)
    probe.subscribe("target_pose", codec.POSE_STAMPED, lambda m: sent.append(("pose", m)))
    probe.subscribe("gripper/command", codec.FLOAT64, lambda m: sent.append(("gripper", m)))
    twin.spin("probe", probe)
    sim = make_sim_env("pick_cube", rotation=True, seed=0).unwrapped
    sim._cmd_pos, sim._cmd_quat = env._target_pos.copy(), env._target_quat.copy()  # the same start
    actions = [[1.0, -0.5, 0.2, 0.4, -0.3, 1.0, 0.3], [2.0, 0.0, -3.0, 0.0, 0.0, -2.0, -1.5]]
    for action in np.array(actions, np.float32):
        sent.clear()
        env.step(action)
        sim.step(action)
        deadline = time.monotonic() + 2.0
        while len(sent) < 2 and time.monotonic() < deadline:
            time.sleep(0.005)
        got = dict(sent)
        position, quat, _stamp = messages.pose_from_msg(got["pose"])
        assert np.array_equal(position, sim.ctrl.target_pos)
        np.testing.assert_allclose(quat, sim.ctrl.target_quat, atol=1e-12)
        gripper = messages.float64_from_msg(got["gripper"])
        assert gripper == float(np.clip(action[-1], -1, 1))
        assert sim.data.ctrl[sim._gripper_act] == sim._gripper_ctrl(gripper)
    sim.close()
    env.close()


def test_success_from_the_task_topic_terminates(twin: Twin) -> None:
    env = twin.env()
    obs, _ = env.reset()
    for i in range(45):  # a proportional grasp-and-lift on the tracked cube pose
        ee, cube = obs["state"][:3], obs["state"][22:25]
        rel = cube - ee
        if i < 14:
            near = np.linalg.norm(rel[:2]) < 0.01
            a = [*np.clip(rel[:2] / 0.025, -1, 1), np.clip(rel[2] / 0.025, -1, 1) if near else 0.0, -1.0]
        elif i < 18:
            a = [0.0, 0.0, 0.0, 1.0]
        else:
            a = [0.0, 0.0, 1.0, 1.0]
        obs, reward, terminated, truncated, info = env.step(np.array(a, np.float32))
        if terminated or truncated:
            break
    assert terminated and reward == 1.0 and info["success"]
    env.close()


def test_non_finite_action_is_refused_before_any_command(twin: Twin) -> None:
    env = twin.env()
    env.reset()
    received = twin.arm_node.counters["received"]
    with pytest.raises(ValueError, match="finite"):
        env.step(np.array([np.nan, 0.0, 0.0, 0.0], np.float32))
    with pytest.raises(ValueError, match="shape"):
        env.step(np.zeros(7, np.float32))
    time.sleep(0.05)
    assert twin.arm_node.counters["received"] == received
    env.close()


@pytest.mark.timeout(60)  # an error, not a hang
def test_dead_arm_node_is_a_safe_stop_with_the_topics_named(twin: Twin) -> None:
    env = twin.env()
    env.reset()
    twin.spinning["arm"].clear()  # the arm node's process is gone: its topics fall silent
    with pytest.raises(ObservationTimeout, match="joint_states") as err:
        for _ in range(10):
            env.step(np.zeros(4, np.float32))
    assert "current_pose" in str(err.value) and "object_pose" not in str(err.value)
    assert env.counters["safe_stops"] == 1
    env.close()


def test_dead_tracker_holds_the_arm(twin: Twin) -> None:
    env = twin.env()
    env.reset()
    holds = len(twin.holds)
    twin.spinning["task"].clear()
    with pytest.raises(ObservationTimeout, match="object_pose"):
        for _ in range(10):
            env.step(np.zeros(4, np.float32))
    assert len(twin.holds) > holds  # the env's safe stop reached the arm through the hold service
    env.close()


def test_pose_in_another_frame_is_dropped_and_counted(twin: Twin) -> None:
    topics = RobotTopics(current_pose="spoofed_pose")
    env = twin.env(topics=topics)
    spoofer = InprocTransport(twin.bus)
    pub = spoofer.create_publisher("spoofed_pose", codec.POSE_STAMPED)
    env._connect()  # subscribe without a reset, so only the spoofed topic feeds the pose
    for _ in range(3):
        pub.publish(messages.pose_stamped_msg([0.5, 0.0, 0.2], [0, 1, 0, 0], time.time(), "camera_link"))
    deadline = time.monotonic() + 2.0
    while env.counters["wrong_frame"] < 3 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert env.counters["wrong_frame"] == 3
    assert env._latest.get("spoofed_pose") is None
    env.close()


def test_camera_of_the_wrong_size_is_named(twin: Twin) -> None:
    env = twin.env(cameras=["wrist"], privileged=False, image_size=[64, 64])
    cam = InprocTransport(twin.bus)
    pub = cam.create_publisher("/wrist/color/image_raw", codec.IMAGE)
    stop = threading.Event()

    def publish() -> None:
        while not stop.is_set():
            pub.publish(messages.image_msg(np.zeros((48, 64, 3), np.uint8), time.time(), "wrist"))
            time.sleep(0.02)

    thread = threading.Thread(target=publish, daemon=True)
    thread.start()
    try:
        with pytest.raises(ObservationTimeout, match=r"resize to 64x64"):
            env.reset()
    finally:
        stop.set()
        thread.join()
        env.close()
