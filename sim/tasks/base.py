"""Base class of the MuJoCo tasks: arm, controller, observations, cameras.

Observation: {"state": float32[D], "images": {camera: uint8[H, W, 3]}} ("images" only when
cameras were asked). The state and the action follow the task contract (sim/task_spec.py): the
state is the 7-joint arm's part, then the task goal (always, for tasks that have one: it is the
task's specification), then the object (only when privileged=True). SimConfig's pos_scale,
rot_scale, workspace box and start pose default to the contract's constants.

Domain randomisation (SimConfig.domain_randomization, sim/randomize.py) draws masses, friction,
camera and light poses at every reset from the env's np_random, and delays each action by the
episode's latency_steps physics steps. reset_scene(rng) redraws it and re-places the objects
without touching the arm (for the twin).

What a scripted expert may read from env.unwrapped: ee_position(), ee_quat(), gripper_width(),
object_pose() (position, wxyz quaternion of the task object), goal (np.ndarray or None),
workspace_low / workspace_high, pos_scale, dt.
"""

from __future__ import annotations

import time
from abc import abstractmethod
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from sim.assets import FINGER_JOINTS, build_model
from sim.controller import DiffIKController
from sim.randomize import DomainRandomization, Randomizer
from sim.task_spec import (
    EE_DOWN_QUAT,
    EE_START,
    EE_START_NOISE,
    GRIPPER_OPEN,
    POS_SCALE,
    ROT_SCALE,
    WORKSPACE_HIGH,
    WORKSPACE_LOW,
    TaskSpec,
    gripper_actuator,
    proprio_dim,
    start_position,
    state_dim,
    state_vector,
    step_target,
)

TABLE_Z = 0.0
N_JOINTS = 7  # the sim arm's
PROPRIO_DIM = proprio_dim(N_JOINTS)
_TUPLE_FIELDS = ("cameras", "image_size", "workspace_low", "workspace_high", "ee_start")  # of SimConfig


@dataclass
class SimConfig:
    """How a task env is built (make_sim_env's keywords). Also the hydra config of env=sim
    (robot_rl.envs.config.SimEnvConfig), so its fields are OmegaConf types: a sequence is a tuple
    here and arrives as a list from hydra; __post_init__ turns it back into a tuple and checks values.
    """

    control_hz: float = 10.0
    physics_hz: float = 500.0
    privileged: bool = False
    cameras: tuple[str, ...] = ()
    image_size: tuple[int, int] = (64, 64)  # (H, W)
    rotation: bool = False
    max_episode_steps: int | None = None  # None: the task's default
    arm_xml: str | None = None
    randomize: bool = True
    pos_scale: float = POS_SCALE  # m per tick at |action| = 1
    rot_scale: float = ROT_SCALE  # rad per tick at |action| = 1
    workspace_low: tuple[float, float, float] = WORKSPACE_LOW
    workspace_high: tuple[float, float, float] = WORKSPACE_HIGH
    ee_start: tuple[float, float, float] = EE_START
    ee_start_noise: float = EE_START_NOISE
    extra: dict[str, Any] = field(default_factory=dict)
    # Potential-based shaping (Ng et al. 1999): each step's reward adds progress(s') - progress(s),
    # the task's staged progress in [0, 1) (reach, grasp, carry, place), so an episode's shaping
    # sums to less than 1 and success (reward 1) stays what pays most. Success and `info` are
    # unchanged. Only tasks that define progress() have it (peg_insert, stack_cube, slide_to_mark).
    shaping: bool = False
    # Drawn at every reset; the default (every range off) leaves the scene as built, no latency.
    domain_randomization: DomainRandomization = field(default_factory=DomainRandomization)

    def __post_init__(self) -> None:
        if not 0 < self.control_hz <= self.physics_hz:
            raise ValueError(f"need 0 < control_hz <= physics_hz, got {self.control_hz}, {self.physics_hz}")
        if isinstance(self.cameras, str):
            raise ValueError(f"cameras must be a list of camera names, got {self.cameras!r}")
        for name in _TUPLE_FIELDS:
            setattr(self, name, tuple(getattr(self, name)))
        if len(self.image_size) != 2 or min(self.image_size) < 8:
            raise ValueError(f"image_size must be [height, width], each >= 8, got {list(self.image_size)}")
        self.image_size = (int(self.image_size[0]), int(self.image_size[1]))
        if self.domain_randomization is None:  # make_sim_env's old "no randomisation"
            self.domain_randomization = DomainRandomization()


class SimTaskEnv(gym.Env):
    """A task on the Panda-like arm. Subclasses define objects, reset, goal, success."""

    metadata = {"render_modes": ["rgb_array"]}  # noqa: RUF012 (gymnasium's convention)
    default_max_steps: int = 60
    object_state_dim: int = 0
    goal_dim: int = 0

    def __init__(self, config: SimConfig | None = None) -> None:
        self.cfg = config or SimConfig()  # SimConfig checked its values
        self.n_substeps = max(1, round(self.cfg.physics_hz / self.cfg.control_hz))
        self.dt = self.n_substeps / self.cfg.physics_hz
        self.max_episode_steps = self.cfg.max_episode_steps or self.default_max_steps
        self.task_spec = TaskSpec.of(self.cfg)
        self.pos_scale, self.rot_scale = self.task_spec.pos_scale, self.task_spec.rot_scale
        self.workspace_low = np.array(self.task_spec.workspace_low, dtype=np.float64)
        self.workspace_high = np.array(self.task_spec.workspace_high, dtype=np.float64)
        h, w = self.cfg.image_size
        self.model = build_model(self._objects_xml(), self.cfg.physics_hz, self.cfg.arm_xml, max(640, h, w))
        self.data = mujoco.MjData(self.model)
        self.ctrl = DiffIKController(self.model)
        self._finger_qpos = np.array([self.model.joint(j).qposadr[0] for j in FINGER_JOINTS])
        gripper = self.model.actuator("gripper")
        self._gripper_act = gripper.id
        self._gripper_range = self.model.actuator_ctrlrange[gripper.id].copy()
        dr = self.cfg.domain_randomization
        self._randomizer = Randomizer(self.model, dr) if dr.enabled else None
        self.latency_steps = 0  # this episode's, physics steps
        # Delayed commands: (physics step it takes effect, target_pos, target_quat, gripper ctrl).
        self._pending: deque[tuple[int, np.ndarray, np.ndarray, float]] = deque()
        self._physics_step = 0
        self._cmd_pos, self._cmd_quat = self.ctrl.target_pos, self.ctrl.target_quat  # set by reset
        self._renderer: mujoco.Renderer | None = None
        if self.cfg.cameras:
            for cam in self.cfg.cameras:
                if mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_CAMERA, cam) < 0:
                    raise ValueError(f"unknown camera {cam!r}; this scene has 'wrist' and 'front'")
            self._renderer = mujoco.Renderer(self.model, h, w)
        self.goal: np.ndarray | None = None
        self._steps = 0
        self._setup_task()
        if self.cfg.shaping and type(self).progress is SimTaskEnv.progress:
            raise ValueError(
                f"env.shaping=true: {type(self).__name__} has no progress measure to shape with; "
                "peg_insert, stack_cube and slide_to_mark have one"
            )
        self._potential = 0.0
        self.action_space = spaces.Box(-1.0, 1.0, (7 if self.cfg.rotation else 4,), np.float32)
        dim = state_dim(N_JOINTS, self.object_state_dim if self.cfg.privileged else 0, self.goal_dim)
        obs_spaces: dict[str, spaces.Space] = {"state": spaces.Box(-np.inf, np.inf, (dim,), np.float32)}
        if self.cfg.cameras:
            obs_spaces["images"] = spaces.Dict(
                {cam: spaces.Box(0, 255, (h, w, 3), np.uint8) for cam in self.cfg.cameras}
            )
        self.observation_space = spaces.Dict(obs_spaces)

    # ---- task hooks -------------------------------------------------------------------------
    @abstractmethod
    def _objects_xml(self) -> str:
        """MJCF inserted into the worldbody: task objects and visual goal markers."""

    def _setup_task(self) -> None:
        """Look up ids after the model exists."""

    @abstractmethod
    def _reset_task(self, rng: np.random.Generator) -> None:
        """Place objects and draw the goal (qpos of free joints, self.goal)."""

    @abstractmethod
    def _is_success(self) -> bool: ...

    def _object_state(self) -> np.ndarray:
        return np.zeros(0)

    def progress(self) -> float:
        """The staged progress in [0, 1) that SimConfig.shaping rewards; tasks with one override."""
        raise NotImplementedError(f"{type(self).__name__} has no progress measure for shaping")

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """(position, wxyz quaternion) of the task object; tasks without one raise."""
        raise NotImplementedError(f"{type(self).__name__} has no object")

    # ---- robot state ------------------------------------------------------------------------
    def ee_position(self) -> np.ndarray:
        return self.data.site_xpos[self.ctrl.site_id].copy()

    def ee_quat(self) -> np.ndarray:
        return self.ctrl.ee_pose(self.data)[1]

    def gripper_width(self) -> float:
        """Opening between the finger pads, m (0 closed, 0.08 fully open)."""
        return float(self.data.qpos[self._finger_qpos].sum())

    def _gripper_ctrl(self, command: float) -> float:
        lo, hi = self._gripper_range
        return gripper_actuator(command, open_value=hi, closed_value=lo)  # ctrlrange's high end is open

    def _set_gripper(self, command: float) -> None:
        self.data.ctrl[self._gripper_act] = self._gripper_ctrl(command)

    # ---- scene ------------------------------------------------------------------------------
    def _randomize(self, rng: np.random.Generator) -> None:
        self.latency_steps = self._randomizer.apply(rng) if self._randomizer is not None else 0
        self._pending.clear()

    def reset_scene(self, rng: np.random.Generator) -> None:
        """Redraw the domain randomisation and re-place the task's objects; the arm stays put.

        For a scene reset outside reset() (the twin's, under its arm lock): the arm keeps its
        pose and targets, and pending delayed actions are dropped.
        """
        self._randomize(rng)
        self._reset_task(rng)
        mujoco.mj_forward(self.model, self.data)

    # ---- gymnasium API ----------------------------------------------------------------------
    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        super().reset(seed=seed)
        rng = self.np_random
        mujoco.mj_resetData(self.model, self.data)
        self._randomize(rng)
        self._physics_step = 0
        start = start_position(self.task_spec, rng, self.cfg.randomize)
        self.ctrl.target_pos, self.ctrl.target_quat = start, np.array(EE_DOWN_QUAT)
        self.data.qpos[self.ctrl.qpos_idx] = self.ctrl.q_rest
        self.ctrl.solve_static(self.model, self.data)
        self.data.ctrl[self.ctrl.act_idx] = self.data.qpos[self.ctrl.qpos_idx]
        self.data.qpos[self._finger_qpos] = self._gripper_range[1]
        self._set_gripper(GRIPPER_OPEN)
        self._reset_task(rng)
        mujoco.mj_forward(self.model, self.data)
        self.ctrl.target_pos, self.ctrl.target_quat = self.ctrl.ee_pose(self.data)
        self._cmd_pos, self._cmd_quat = self.ctrl.target_pos, self.ctrl.target_quat
        self._steps = 0
        self._potential = self.progress() if self.cfg.shaping else 0.0
        return self._obs(), {"success": False, "t_obs": self._t_obs}

    def step(self, action: np.ndarray):
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action shape {a.shape}, expected {self.action_space.shape}")
        # The commanded target accumulates actions; with latency the controller follows it late.
        self._cmd_pos, self._cmd_quat, command = step_target(
            self._cmd_pos, self._cmd_quat, a, self.cfg.rotation, self.task_spec
        )
        gripper = self._gripper_ctrl(command)
        if self.latency_steps == 0:
            self.ctrl.target_pos, self.ctrl.target_quat = self._cmd_pos, self._cmd_quat
            self.data.ctrl[self._gripper_act] = gripper
            self._simulate(self.n_substeps)
        else:
            due = self._physics_step + self.latency_steps
            self._pending.append((due, self._cmd_pos, self._cmd_quat, gripper))
            self._simulate_delayed()
        # Refresh poses and contacts so obs and success see the state after the last substep.
        mujoco.mj_forward(self.model, self.data)
        self._steps += 1
        success = self._is_success()
        truncated = self._steps >= self.max_episode_steps and not success
        info = {"success": success}
        obs = self._obs()
        info["t_obs"] = self._t_obs
        return obs, float(success) + self._shaping(), success, truncated, info

    def _shaping(self) -> float:
        """progress(s') - progress(s) with SimConfig.shaping, else 0."""
        if not self.cfg.shaping:
            return 0.0
        potential = self.progress()
        delta, self._potential = potential - self._potential, potential
        return delta

    def _simulate(self, n: int) -> None:
        model, data, apply = self.model, self.data, self.ctrl.apply
        for _ in range(n):
            # step1 computes kinematics of the current state, so the IK sees fresh poses.
            mujoco.mj_step1(model, data)
            apply(data)
            mujoco.mj_step2(model, data)
        self._physics_step += n

    def _simulate_delayed(self) -> None:
        """One control tick, switching targets at the physics step each delayed command is due."""
        pending = self._pending
        for _ in range(self.n_substeps):
            while pending and pending[0][0] <= self._physics_step:
                _, self.ctrl.target_pos, self.ctrl.target_quat, gripper = pending.popleft()
                self.data.ctrl[self._gripper_act] = gripper
            self._simulate(1)

    def _obs(self) -> dict[str, Any]:
        d = self.data
        ee_pos, ee_quat = self.ctrl.ee_pose(d)
        state = state_vector(
            ee_pos,
            ee_quat,
            self.gripper_width(),
            d.qpos[self.ctrl.qpos_idx],
            d.qvel[self.ctrl.dof_idx],
            goal=self.goal[: self.goal_dim] if self.goal_dim else None,
            object_part=self._object_state() if self.cfg.privileged else None,
        )
        obs: dict[str, Any] = {"state": state}
        self._t_obs = time.time()
        if self._renderer is not None:
            images = {}
            for cam in self.cfg.cameras:
                self._renderer.update_scene(d, camera=cam)
                images[cam] = self._renderer.render().copy()
            obs["images"] = images
        return obs

    def render(self) -> np.ndarray | None:
        if self._renderer is None:
            return None
        self._renderer.update_scene(self.data, camera=self.cfg.cameras[0])
        return self._renderer.render().copy()

    def close(self) -> None:
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
