"""RobotEnv: a gymnasium env over ROS 2 topics, with the observation and action spaces of a sim task.

It reads what an arm node, camera nodes and (optionally) a tracker and a success signal publish,
and commands the arm with `target_pose` and `gripper/command`, the names of crisp_controllers-style
Cartesian controllers. Topic names are config, so the same env drives our nodes on the MuJoCo
twin (`robot-rl bringup configs/bringup/twin.yaml`), our nodes on a real arm, or realsense-ros
and a user's own controller. With in_process_twin=true the env starts the twin's nodes in its own
process (robot_rl/ros/local_twin.py) and lends the twin's sim task to the simulated person
(sim_task()).

Spaces, scaling, workspace and start pose are the task contract's (sim/task_spec.py), which the
sim tasks follow too: state as task_spec.robot_state, images uint8 [H, W, 3], actions in [-1, 1]
as (dx, dy, dz[, droll, dpitch, dyaw], gripper) applied by task_spec.step_target. Topic names and
types default to robot_rl/ros/topics.py's.

Time: step() sends the command, waits for the next control tick and then assembles the newest
messages. A message older than max_obs_age_s (by its header stamp, on the robot PC's clock)
is stale; after waiting one more max_obs_age_s for a fresh one, the env asks the arm to hold
and raises ObservationTimeout naming the topics. It never acts on old data.

Reset: gripper open, a scripted move to the start pose in steps of at most reset_step_m per
tick, then the `reset_scene` service when configured (the twin re-places the objects; on a
real robot set it to "" and reset the scene by hand or with your own service).

E-stop: estop() latches the arm node's e-stop service (the intervention wrapper calls it when the
person presses the teleop device's e-stop). Releasing it is the robot side's business, never this
env's.
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robot_rl.ros import codec, messages, topics
from robot_rl.ros.connect import RosConfig, open_transport
from robot_rl.ros.transport import Transport, TransportError
from sim.task_spec import (
    EE_DOWN_QUAT,
    GRIPPER_OPEN,
    OBJECT_STATE_DIM,
    TaskSpec,
    in_workspace,
    robot_state,
    start_position,
    state_dim,
    step_target,
)
from sim.tasks import TASKS

log = logging.getLogger(__name__)


class ObservationTimeout(RuntimeError):
    """A topic the observation needs is missing or stale; the arm was asked to hold."""


class RobotEnvError(RuntimeError):
    """The robot side refused or failed something the env asked for (reset, scene reset)."""


@dataclass
class RobotTopics:
    """Topic and service names (relative names take ros.namespace)."""

    joint_states: str = topics.JOINT_STATES.name
    current_pose: str = topics.CURRENT_POSE.name
    gripper_state: str = topics.GRIPPER_STATE.name  # one joint, "gripper": opening width in m
    target_pose: str = topics.TARGET_POSE.name
    gripper_command: str = topics.GRIPPER_COMMAND.name  # std_msgs/Float64 in [-1 open, +1 closed]
    object_pose: str = topics.OBJECT_POSE.name  # privileged=true: a tracker's (or the twin's) object pose
    success: str = topics.SUCCESS.name  # std_msgs/Bool; "" -> no reward signal (reward 0 always)
    reset_scene: str = topics.RESET_SCENE.name  # std_srvs/Trigger called at reset; "" -> none
    hold: str = topics.HOLD.name  # std_srvs/Trigger called on a safe stop; "" -> none
    estop: str = topics.ESTOP.name  # std_srvs/SetBool (true) called when the person presses e-stop
    # camera -> image topic; a camera not listed reads /<camera>/color/image_raw (realsense-ros)
    images: dict[str, str] = field(default_factory=dict)


@dataclass
class RobotEnvConfig:
    """A robot (or the twin) over ROS 2, shaped like the sim task `task`."""

    kind: str = "robot"
    task: str = "pick_cube"  # the sim task whose spaces and episode length it shares
    control_hz: float = 10.0
    privileged: bool = True  # object pose in the state, from topics.object_pose
    cameras: list[str] = field(default_factory=list)  # e.g. [wrist, front]
    image_size: list[int] = field(default_factory=lambda: [64, 64])  # [H, W] the camera node publishes
    rotation: bool = False
    max_episode_steps: int | None = None  # None: the task's default
    n_joints: int = 7
    base_frame: str = "base"
    max_obs_age_s: float = 0.25  # older observations are stale: safe stop
    connect_timeout_s: float = 20.0  # first reset: how long to wait for every topic
    reset_step_m: float = 0.02  # most ee travel per tick of the scripted reset move
    reset_tolerance_m: float = 0.01
    reset_timeout_s: float = 15.0
    service_timeout_s: float = 5.0
    hold_timeout_s: float = 1.0  # a safe stop waits this long for the hold service, then raises anyway
    randomize: bool = True  # start-pose noise here, and object placement in the sim counterpart
    # Start the twin's nodes in this process on an in-process bus (robot_rl/ros/local_twin.py)
    # instead of connecting to a bringup: ros is then unused. teleop=sim_human needs it.
    in_process_twin: bool = False
    topics: RobotTopics = field(default_factory=RobotTopics)
    ros: RosConfig = field(default_factory=RosConfig)

    def __post_init__(self) -> None:
        if self.task not in TASKS:
            raise ValueError(f"env.task must be one of {sorted(TASKS)}, got {self.task!r}")
        if TASKS[self.task].goal_dim:
            raise ValueError(f"task {self.task!r} has a goal in its state; RobotEnv has no goal source")
        if self.privileged and TASKS[self.task].object_state_dim != OBJECT_STATE_DIM:
            raise ValueError(
                f"task {self.task!r} has no single tracked object (RobotEnv reads one object_pose): "
                "set env.privileged=false"
            )
        if not 0 < self.control_hz <= 100:
            raise ValueError(f"env.control_hz must be in (0, 100], got {self.control_hz}")
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"env.image_size must be [height, width] >= 8, got {self.image_size}")
        positive = ("max_obs_age_s", "connect_timeout_s", "reset_step_m", "reset_tolerance_m")
        for name in (*positive, "reset_timeout_s", "service_timeout_s", "hold_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"env.{name} must be > 0, got {getattr(self, name)}")
        if self.n_joints < 1:
            raise ValueError(f"env.n_joints must be >= 1, got {self.n_joints}")


def robot_env_spaces(cfg: RobotEnvConfig) -> tuple[spaces.Dict, spaces.Box]:
    """The observation and action spaces, from config alone (the learner never connects)."""
    dim = state_dim(cfg.n_joints, OBJECT_STATE_DIM if cfg.privileged else 0)
    obs: dict[str, spaces.Space] = {"state": spaces.Box(-np.inf, np.inf, (dim,), np.float32)}
    if cfg.cameras:
        h, w = cfg.image_size
        obs["images"] = spaces.Dict({c: spaces.Box(0, 255, (h, w, 3), np.uint8) for c in cfg.cameras})
    return spaces.Dict(obs), spaces.Box(-1.0, 1.0, (7 if cfg.rotation else 4,), np.float32)


class _Latest:
    """The newest decoded message per topic with its stamp (header stamp, else receive time)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._values: dict[str, tuple[Any, float]] = {}
        self.bad: dict[str, int] = {}

    def put(self, topic: str, value: Any, stamp: float) -> None:
        with self._lock:
            self._values[topic] = (value, stamp)

    def count_bad(self, topic: str) -> None:
        with self._lock:
            self.bad[topic] = self.bad.get(topic, 0) + 1

    def get(self, topic: str) -> tuple[Any, float] | None:
        with self._lock:
            return self._values.get(topic)


class RobotEnv(gym.Env):
    """See the module docstring. transport: an open one to use (tests); None opens cfg.ros's
    backend at the first reset and spins it on a background thread. seed: the first draws of
    the start pose, as a sim env's first reset(seed)."""

    metadata = {"render_modes": []}  # noqa: RUF012 (gymnasium's convention)

    def __init__(
        self, cfg: RobotEnvConfig, transport: Transport | None = None, seed: int | None = None
    ) -> None:
        self.cfg = cfg
        if seed is not None:  # start-pose draws are reproducible without touching the robot here
            self._np_random, self._np_random_seed = gym.utils.seeding.np_random(seed)
        self.task_spec = TaskSpec()  # workspace, scaling and start pose, as the sim tasks'
        self.observation_space, self.action_space = robot_env_spaces(cfg)
        self.max_episode_steps = cfg.max_episode_steps or TASKS[cfg.task].default_max_steps
        self.period_s = 1.0 / cfg.control_hz
        self._transport, self._owns_transport = transport, transport is None
        self._twin: Any = None  # the in-process twin (robot_rl/ros/local_twin.LocalTwin), once started
        self._twin_seed = 0 if seed is None else seed
        self._latest = _Latest()
        self._spinning = threading.Event()
        self._spin_thread: threading.Thread | None = None
        self._connected = False
        self._target_pos = np.zeros(3)
        self._target_quat = np.array(EE_DOWN_QUAT)
        self._next_tick: float | None = None
        self._steps = 0
        self.counters = {"late_ticks": 0, "safe_stops": 0, "wrong_frame": 0}

    # ---- topics ---------------------------------------------------------------------------
    def _image_topic(self, camera: str) -> str:
        return self.cfg.topics.images.get(camera, topics.camera_topics(camera).color.name)

    def _needed(self) -> list[str]:
        t = self.cfg.topics
        needed = [t.joint_states, t.current_pose, t.gripper_state]
        needed += [t.object_pose] if self.cfg.privileged else []
        needed += [t.success] if t.success else []
        return needed + [self._image_topic(c) for c in self.cfg.cameras]

    def _connect(self) -> None:
        if self._transport is None and self.cfg.in_process_twin:
            from robot_rl.ros.local_twin import LocalTwin  # MuJoCo: only where the twin runs here

            self._twin = LocalTwin(self.cfg, self._twin_seed)
            self._transport = self._twin.transport()
        if self._transport is None:
            self._transport = open_transport(self.cfg.ros, "robot_env")
        tr, t = self._transport, self.cfg.topics
        readers = {
            t.joint_states: (topics.JOINT_STATES, self._read_joints),
            t.current_pose: (topics.CURRENT_POSE, self._read_pose),
            t.gripper_state: (topics.GRIPPER_STATE, self._read_gripper),
        }
        if self.cfg.privileged:
            readers[t.object_pose] = (topics.OBJECT_POSE, self._read_pose)
        if t.success:
            readers[t.success] = (topics.SUCCESS, lambda m: (messages.bool_from_msg(m), time.time()))
        for cam in self.cfg.cameras:
            readers[self._image_topic(cam)] = (topics.camera_topics(cam).color, messages.image_from_msg)
        for name, (topic, read) in readers.items():
            topic.subscribe(tr, self._on_message(name, read), name)
        self._pose_pub = topics.TARGET_POSE.publisher(tr, t.target_pose)
        self._gripper_pub = topics.GRIPPER_COMMAND.publisher(tr, t.gripper_command)
        if self._owns_transport:
            self._spinning.set()
            self._spin_thread = threading.Thread(target=self._spin, name="robot-env-spin", daemon=True)
            self._spin_thread.start()
        self._connected = True

    def _spin(self) -> None:
        while self._spinning.is_set():
            self._transport.spin_once(0.02)

    def _on_message(self, topic: str, read: Any) -> Any:
        def callback(msg: Any) -> None:
            try:
                value, stamp = read(msg)
            except (codec.CodecError, ValueError) as exc:
                self._latest.count_bad(topic)
                log.warning("dropped a message on %s: %s", topic, exc)
                return
            self._latest.put(topic, value, stamp)

        return callback

    def _read_joints(self, msg: Any) -> tuple[tuple[np.ndarray, np.ndarray], float]:
        _names, q, dq, stamp = messages.joint_state_from_msg(msg)
        n = self.cfg.n_joints
        if q.size < n:
            raise ValueError(f"joint_states carries {q.size} joints, the env expects {n}")
        return (q[:n], dq[:n]), stamp

    def _read_pose(self, msg: Any) -> tuple[tuple[np.ndarray, np.ndarray], float]:
        if msg.header.frame_id not in ("", self.cfg.base_frame):
            self.counters["wrong_frame"] += 1
            raise ValueError(f"pose in frame {msg.header.frame_id!r}, expected {self.cfg.base_frame!r}")
        position, quat, stamp = messages.pose_from_msg(msg)
        return (position, quat), stamp

    def _read_gripper(self, msg: Any) -> tuple[float, float]:
        _names, q, _dq, stamp = messages.joint_state_from_msg(msg)
        if q.size < 1:
            raise ValueError("gripper joint_states has no position")
        return float(q[0]), stamp

    # ---- observations ---------------------------------------------------------------------
    def _stale(self, now: float) -> list[str]:
        """Topics with no message yet or whose newest is older than max_obs_age_s, with why."""
        stamps = {topic: got[1] if (got := self._latest.get(topic)) else None for topic in self._needed()}
        return messages.stale(stamps, now, self.cfg.max_obs_age_s)

    def _wait_fresh(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while stale := self._stale(time.time()):
            if time.monotonic() >= deadline:
                self._safe_stop()
                raise ObservationTimeout(
                    f"stale observation: {', '.join(stale)}; max_obs_age_s={self.cfg.max_obs_age_s}. "
                    "The arm was asked to hold; check that the arm and camera nodes are running."
                )
            time.sleep(0.002)

    def _observe(self) -> tuple[dict[str, Any], dict[str, Any]]:
        self._wait_fresh(self.cfg.max_obs_age_s)
        t, now = self.cfg.topics, time.time()
        (q, dq), _ = self._latest.get(t.joint_states)
        (ee_pos, ee_quat), _ = self._latest.get(t.current_pose)
        width, _ = self._latest.get(t.gripper_state)
        obj = self._latest.get(t.object_pose)[0] if self.cfg.privileged else None
        obs: dict[str, Any] = {"state": robot_state(ee_pos, ee_quat, width, q, dq, obj)}
        ages = {topic: now - self._latest.get(topic)[1] for topic in self._needed()}
        if self.cfg.cameras:
            obs["images"] = {c: self._image(c) for c in self.cfg.cameras}
        success = bool(self._latest.get(t.success)[0]) if t.success else False
        return obs, {"success": success, "t_obs": now, "obs_age_s": ages, "ee_pos": ee_pos}

    def _image(self, camera: str) -> np.ndarray:
        image, _ = self._latest.get(self._image_topic(camera))
        h, w = self.cfg.image_size
        if image.shape != (h, w, 3) or image.dtype != np.uint8:
            self._safe_stop()
            raise ObservationTimeout(
                f"camera {camera!r} publishes {image.dtype} {image.shape}, the env expects uint8 "
                f"({h}, {w}, 3): set the camera node's resize to {w}x{h}"
            )
        return image

    # ---- commands -------------------------------------------------------------------------
    def _command(self, position: np.ndarray, quat: np.ndarray, gripper: float) -> None:
        self._gripper_pub.publish(messages.float64_msg(gripper))
        # Stamped as it leaves: the arm node judges staleness by this stamp, and a stamp taken
        # before the gripper publish made a busy actor's commands look older than they were.
        pose = messages.pose_stamped_msg(position, quat, time.time(), self.cfg.base_frame)
        self._pose_pub.publish(pose)

    def _wait_tick(self) -> None:
        """Sleep to the next control tick; a tick missed by over half a period restarts the clock
        (counted), so a late observation never passes for one a full period after its command."""
        now = time.monotonic()
        tick = now + self.period_s if self._next_tick is None else self._next_tick
        if now > tick + self.period_s / 2:
            self.counters["late_ticks"] += 1
            tick = now + self.period_s
        time.sleep(max(0.0, tick - now))
        self._next_tick = tick + self.period_s

    def _call(self, name: str, srv_type: str, request: Any, timeout_s: float | None = None) -> Any:
        timeout_s = self.cfg.service_timeout_s if timeout_s is None else timeout_s
        return self._transport.call_service(name, srv_type, request, timeout_s)

    def _safe_stop(self) -> None:
        """Ask the arm to hold (best effort: its watchdog holds it anyway once commands stop)."""
        self.counters["safe_stops"] += 1
        self._next_tick = None
        if self.cfg.topics.hold and self._transport is not None:
            try:
                hold = messages.trigger_request()
                self._call(self.cfg.topics.hold, topics.HOLD.srv_type, hold, self.cfg.hold_timeout_s)
            except TransportError as exc:
                log.error("safe stop: hold service failed (%s); the arm node's watchdog holds it", exc)

    def estop(self) -> str:
        """Latch the arm node's e-stop (its `estop` service, true): the node stops the arm and
        refuses every command until someone releases it there; nothing here can. The node's reply;
        RobotEnvError when it refused or did not answer within hold_timeout_s."""
        name = self.cfg.topics.estop
        if self._transport is None:
            raise RobotEnvError(f"the e-stop service {name} cannot be called before the first reset")
        try:
            latch = messages.set_bool_request(True)
            reply = self._call(name, topics.ESTOP.srv_type, latch, self.cfg.hold_timeout_s)
        except TransportError as exc:
            raise RobotEnvError(f"the arm node's e-stop service {name} did not answer: {exc}") from exc
        if not reply.success:
            raise RobotEnvError(f"the arm node's e-stop service {name} refused: {reply.message}")
        return str(reply.message)

    # ---- the twin's task, for the simulated person ------------------------------------------
    def sim_task_name(self) -> str | None:
        """The sim task whose true state sim_task() lends: env.task with in_process_twin=true;
        None for a robot or a twin in another process."""
        return self.cfg.task if self.cfg.in_process_twin else None

    def sim_task(self) -> AbstractContextManager[Any]:
        """The in-process twin's sim task, its physics paused while inside (TwinScene.paused());
        RobotEnvError without one (before the first reset, or in_process_twin=false)."""
        if self._twin is None:
            why = "before the first reset" if self.cfg.in_process_twin else "with env.in_process_twin=false"
            raise RobotEnvError(f"no twin in this process {why}: its sim task cannot be read")
        return self._twin.scene.paused()

    # ---- gymnasium API --------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        if not self._connected:
            self._connect()
            self._wait_fresh(self.cfg.connect_timeout_s)
        start = start_position(self.task_spec, self.np_random, self.cfg.randomize)
        self._move_to(in_workspace(start, self.task_spec), np.array(EE_DOWN_QUAT))
        if self.cfg.topics.reset_scene:
            service = self.cfg.topics.reset_scene
            reply = self._call(service, topics.RESET_SCENE.srv_type, messages.trigger_request())
            if not reply.success:
                raise RobotEnvError(f"{self.cfg.topics.reset_scene} refused: {reply.message}")
        self._next_tick = None
        self._wait_tick()
        obs, info = self._observe()
        self._target_pos = in_workspace(info.pop("ee_pos"), self.task_spec)
        self._target_quat = np.array(EE_DOWN_QUAT)
        self._steps = 0
        return obs, info

    def _move_to(self, goal: np.ndarray, quat: np.ndarray) -> None:
        """Open the gripper, rise to the goal's height first (clear of objects), then go to it."""
        _, info = self._observe()
        position = np.asarray(info["ee_pos"], dtype=np.float64)
        above = np.array([position[0], position[1], max(position[2], goal[2])])
        deadline = time.monotonic() + self.cfg.reset_timeout_s
        for waypoint in (above, goal):
            while True:
                offset = waypoint - position
                step = min(1.0, self.cfg.reset_step_m / max(float(np.linalg.norm(offset)), 1e-9))
                self._command(position + step * offset, quat, GRIPPER_OPEN)
                self._wait_tick()
                position = np.asarray(self._observe()[1]["ee_pos"], dtype=np.float64)
                if np.linalg.norm(waypoint - position) <= self.cfg.reset_tolerance_m:
                    break
                if time.monotonic() > deadline:
                    self._safe_stop()
                    raise RobotEnvError(
                        f"reset: the ee did not reach {np.round(goal, 3).tolist()} within "
                        f"{self.cfg.reset_timeout_s} s (at {np.round(position, 3).tolist()})"
                    )

    def step(self, action: np.ndarray):
        a = np.asarray(action, dtype=np.float64)
        if a.shape != self.action_space.shape or not np.all(np.isfinite(a)):
            raise ValueError(f"action must be finite with shape {self.action_space.shape}, got {action!r}")
        self._target_pos, self._target_quat, gripper = step_target(
            self._target_pos, self._target_quat, a, self.cfg.rotation, self.task_spec
        )
        self._command(self._target_pos, self._target_quat, gripper)
        self._wait_tick()
        obs, info = self._observe()
        info.pop("ee_pos")
        self._steps += 1
        success = info["success"]
        truncated = self._steps >= self.max_episode_steps and not success
        return obs, float(success), success, truncated, info

    def close(self) -> None:
        self._spinning.clear()
        if self._spin_thread is not None:
            self._spin_thread.join(timeout=2.0)
            self._spin_thread = None
        if self._owns_transport and self._transport is not None:
            self._transport.shutdown()
            self._transport = None
        if self._twin is not None:
            self._twin.close()
            self._twin = None
        self._connected = False


__all__ = ["ObservationTimeout", "RobotEnv", "RobotEnvConfig", "RobotEnvError", "robot_env_spaces"]
