"""Base class of the MuJoCo tasks: arm, controller, action scaling, observations, cameras.

Observation: {"state": float32[D], "images": {camera: uint8[H, W, 3]}} ("images" only when
cameras were asked). The state is, in this order:
    ee_pos (3, m, world) | ee_quat (4, wxyz) | gripper_width (1, m) | joint_pos (7, rad) |
    joint_vel (7, rad/s) | task goal (task-specific, always: it is the task's specification) |
    object pose (task-specific, only when privileged=True)
Action: float32 in [-1, 1]: (dx, dy, dz, gripper) or, with rotation=True,
(dx, dy, dz, droll, dpitch, dyaw, gripper). Deltas are scaled by pos_scale (m) / rot_scale (rad)
per control tick and added to the ee target, which is clipped to the workspace box. The gripper
command is absolute: -1 fully open, +1 closed.

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
from sim.controller import DiffIKController, clip_to_workspace
from sim.randomize import DomainRandomization, Randomizer

TABLE_Z = 0.0
# Tool pointing straight down, fingers closing along world y (Panda home orientation).
EE_DOWN_QUAT = np.array([0.0, 1.0, 0.0, 0.0])
PROPRIO_DIM = 3 + 4 + 1 + 7 + 7
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
    pos_scale: float = 0.025  # m per tick at |action| = 1
    rot_scale: float = 0.15  # rad per tick at |action| = 1
    workspace_low: tuple[float, float, float] = (0.25, -0.3, 0.015)
    workspace_high: tuple[float, float, float] = (0.75, 0.3, 0.4)
    ee_start: tuple[float, float, float] = (0.45, 0.0, 0.2)
    ee_start_noise: float = 0.02
    extra: dict[str, Any] = field(default_factory=dict)
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
        self.pos_scale, self.rot_scale = self.cfg.pos_scale, self.cfg.rot_scale
        self.workspace_low = np.array(self.cfg.workspace_low, dtype=np.float64)
        self.workspace_high = np.array(self.cfg.workspace_high, dtype=np.float64)
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
        self.action_space = spaces.Box(-1.0, 1.0, (7 if self.cfg.rotation else 4,), np.float32)
        state_dim = PROPRIO_DIM + self.goal_dim + (self.object_state_dim if self.cfg.privileged else 0)
        obs_spaces: dict[str, spaces.Space] = {"state": spaces.Box(-np.inf, np.inf, (state_dim,), np.float32)}
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
        # -1 open -> high end of ctrlrange, +1 closed -> low end
        return hi + (lo - hi) * (np.clip(command, -1, 1) + 1) / 2

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
        noise = self.cfg.ee_start_noise if self.cfg.randomize else 0.0
        start = np.array(self.cfg.ee_start) + rng.uniform(-noise, noise, 3)
        self.ctrl.target_pos, self.ctrl.target_quat = start, EE_DOWN_QUAT.copy()
        self.data.qpos[self.ctrl.qpos_idx] = self.ctrl.q_rest
        self.ctrl.solve_static(self.model, self.data)
        self.data.ctrl[self.ctrl.act_idx] = self.data.qpos[self.ctrl.qpos_idx]
        self.data.qpos[self._finger_qpos] = self._gripper_range[1]
        self._set_gripper(-1.0)
        self._reset_task(rng)
        mujoco.mj_forward(self.model, self.data)
        self.ctrl.target_pos, self.ctrl.target_quat = self.ctrl.ee_pose(self.data)
        self._cmd_pos, self._cmd_quat = self.ctrl.target_pos, self.ctrl.target_quat
        self._steps = 0
        return self._obs(), {"success": False, "t_obs": self._t_obs}

    def step(self, action: np.ndarray):
        a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
        if a.shape != self.action_space.shape:
            raise ValueError(f"action shape {a.shape}, expected {self.action_space.shape}")
        # The commanded target accumulates actions; with latency the controller follows it late.
        target = self._cmd_pos + a[:3] * self.pos_scale
        self._cmd_pos = clip_to_workspace(target, self.workspace_low, self.workspace_high)
        if self.cfg.rotation:
            self._cmd_quat = _turned(self._cmd_quat, a[3:6] * self.rot_scale)
        gripper = self._gripper_ctrl(a[-1])
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
        return obs, float(success), success, truncated, info

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
        parts = [
            ee_pos,
            ee_quat,
            [self.gripper_width()],
            d.qpos[self.ctrl.qpos_idx],
            d.qvel[self.ctrl.dof_idx],
        ]
        if self.goal_dim:
            parts.append(self.goal[: self.goal_dim])
        if self.cfg.privileged:
            parts.append(self._object_state())
        obs: dict[str, Any] = {"state": np.concatenate(parts).astype(np.float32)}
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


def _turned(quat: np.ndarray, rotvec_world: np.ndarray) -> np.ndarray:
    """quat turned by a world-frame rotation vector (rad), renormalised."""
    angle = float(np.linalg.norm(rotvec_world))
    if angle < 1e-9:
        return quat
    dq, out = np.empty(4), np.empty(4)
    mujoco.mju_axisAngle2Quat(dq, rotvec_world / angle, angle)
    mujoco.mju_mulQuat(out, dq, quat)
    return out / np.linalg.norm(out)
