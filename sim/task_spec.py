"""The task contract: what an action means, the workspace, the start pose and the state layout.

One home for what the MuJoCo tasks (sim/tasks/base.py), the ROS-backed RobotEnv, the MCAP
converter and the bringup's safety defaults must agree on, so a policy trained against one drives
and reads the others unchanged. Pure numpy (and MuJoCo's quaternion maths): no gymnasium, no ROS.

Action: float32 in [-1, 1], (dx, dy, dz, gripper) or, with rotation, (dx, dy, dz, droll, dpitch,
dyaw, gripper). step_target() applies it to the commanded ee target: the deltas are scaled by
pos_scale (m) and rot_scale (rad, a world-frame rotation vector) per control tick and added to
the target, whose position is then clipped to the workspace box. The gripper command is absolute:
GRIPPER_OPEN (-1) fully open .. GRIPPER_CLOSED (+1) closed. The orientation starts at
EE_DOWN_QUAT and, without rotation, stays there.

State: float32, in this order (base frame, which is the sim's world frame):
    ee_pos (3, m) | ee_quat (4, wxyz) | gripper_width (1, m, 0 closed) | joint_pos (n, rad) |
    joint_vel (n, rad/s) | task goal (goal_dim, only tasks that have one: reach, push) |
    object (OBJECT_STATE_DIM, only with privileged state or an object tracker:
            position, wxyz quaternion, position - ee_pos)
The object's quaternion is given one sign (w >= 0): q and -q are the same rotation and a policy
should see one of them. The ee quaternion is kept as the arm reports it: the tool points down,
where w is near 0 and a sign rule would flip it back and forth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields

import mujoco
import numpy as np

Vec3 = tuple[float, float, float]

WORKSPACE_LOW: Vec3 = (0.25, -0.3, 0.015)  # m, base frame: the ee target's box
WORKSPACE_HIGH: Vec3 = (0.75, 0.3, 0.4)
POS_SCALE = 0.025  # m of target motion per tick at |action| = 1
ROT_SCALE = 0.15  # rad of target rotation per tick at |action| = 1
EE_START: Vec3 = (0.45, 0.0, 0.2)  # m: where every episode starts, 20 cm above the table
EE_START_NOISE = 0.02  # m, +- per axis, when the start is randomised
# Tool pointing straight down, fingers closing along world y (the Panda's home orientation).
EE_DOWN_QUAT = (0.0, 1.0, 0.0, 0.0)
GRIPPER_OPEN, GRIPPER_CLOSED = -1.0, 1.0
OBJECT_STATE_DIM = 10


@dataclass(frozen=True)
class TaskSpec:
    """The numbers of the contract one env uses (defaults: the constants above)."""

    pos_scale: float = POS_SCALE
    rot_scale: float = ROT_SCALE
    workspace_low: Vec3 = WORKSPACE_LOW
    workspace_high: Vec3 = WORKSPACE_HIGH
    ee_start: Vec3 = EE_START
    ee_start_noise: float = EE_START_NOISE

    def __post_init__(self) -> None:
        for name in ("pos_scale", "rot_scale"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
        if not (isinstance(self.ee_start_noise, (int, float)) and 0 <= self.ee_start_noise < math.inf):
            raise ValueError(f"ee_start_noise must be a finite number >= 0, got {self.ee_start_noise!r}")
        for name in ("workspace_low", "workspace_high", "ee_start"):
            value = np.asarray(getattr(self, name), dtype=np.float64)
            if value.shape != (3,) or not np.all(np.isfinite(value)):
                raise ValueError(f"{name} must be 3 finite numbers (m), got {getattr(self, name)!r}")
            object.__setattr__(self, name, tuple(value.tolist()))
        if not all(lo < hi for lo, hi in zip(self.workspace_low, self.workspace_high, strict=True)):
            raise ValueError(
                f"workspace_low {self.workspace_low} must be below workspace_high {self.workspace_high}"
            )

    @classmethod
    def of(cls, config: object) -> TaskSpec:
        """The spec of a config that carries these fields by name (sim.tasks.SimConfig)."""
        return cls(**{f.name: getattr(config, f.name) for f in fields(cls)})


def start_position(spec: TaskSpec, rng: np.random.Generator, randomize: bool) -> np.ndarray:
    """The ee start (m): ee_start plus uniform noise of +-ee_start_noise per axis when randomize.
    Draws three numbers from rng either way, so a seed gives the same later draws."""
    noise = spec.ee_start_noise if randomize else 0.0
    return np.array(spec.ee_start) + rng.uniform(-noise, noise, 3)


def step_target(
    position: np.ndarray, quat_wxyz: np.ndarray, action: np.ndarray, rotation: bool, spec: TaskSpec
) -> tuple[np.ndarray, np.ndarray, float]:
    """(new target position, new target wxyz quaternion, gripper command in [-1, 1]) after one
    action, clipped to [-1, 1], from the commanded target (position, quat_wxyz)."""
    a = np.clip(np.asarray(action, dtype=np.float64), -1.0, 1.0)
    new_position = in_workspace(np.asarray(position, dtype=np.float64) + a[:3] * spec.pos_scale, spec)
    new_quat = turned(quat_wxyz, a[3:6] * spec.rot_scale) if rotation else quat_wxyz
    return new_position, new_quat, float(a[-1])


def gripper_actuator(command: float, open_value: float, closed_value: float) -> float:
    """The value a gripper actuator gets for a command (clipped to [-1, 1]): open_value at
    GRIPPER_OPEN, closed_value at GRIPPER_CLOSED, linear between."""
    return open_value + (closed_value - open_value) * (np.clip(command, -1.0, 1.0) + 1) / 2


def in_workspace(position: np.ndarray, spec: TaskSpec) -> np.ndarray:
    """position (m) clipped to the workspace box, as a new float64 array."""
    position = np.asarray(position, dtype=np.float64)
    return np.minimum(np.maximum(position, spec.workspace_low), spec.workspace_high)


def turned(quat_wxyz: np.ndarray, rotvec_world: np.ndarray) -> np.ndarray:
    """quat_wxyz turned by a world-frame rotation vector (rad), renormalised."""
    angle = float(np.linalg.norm(rotvec_world))
    if angle < 1e-9:
        return quat_wxyz
    dq, out = np.empty(4), np.empty(4)
    mujoco.mju_axisAngle2Quat(dq, rotvec_world / angle, angle)
    mujoco.mju_mulQuat(out, dq, np.asarray(quat_wxyz, dtype=np.float64))
    return out / np.linalg.norm(out)


# ---- state layout ----------------------------------------------------------------------------
def proprio_dim(n_joints: int) -> int:
    """Length of the arm's part of the state: ee pose, gripper width, joint positions and velocities."""
    return 3 + 4 + 1 + 2 * n_joints


def state_dim(n_joints: int, object_dim: int = 0, goal_dim: int = 0) -> int:
    """Length of the whole state: the arm's part, the task goal and the object part (privileged
    only; OBJECT_STATE_DIM for one tracked object, a task's own size for more objects)."""
    return proprio_dim(n_joints) + goal_dim + object_dim


def object_state(object_pos: np.ndarray, object_quat_wxyz: np.ndarray, ee_pos: np.ndarray) -> np.ndarray:
    """Position (3), quaternion with w >= 0 (4), position relative to the ee (3)."""
    pos = np.asarray(object_pos, dtype=np.float64).reshape(3)
    quat = np.asarray(object_quat_wxyz, dtype=np.float64).reshape(4)
    if quat[0] < 0:  # one sign per rotation, so the policy sees a continuous input
        quat = -quat
    return np.concatenate([pos, quat, pos - np.asarray(ee_pos, dtype=np.float64).reshape(3)])


def state_vector(
    ee_pos: np.ndarray,
    ee_quat_wxyz: np.ndarray,
    gripper_width_m: float,
    joint_pos: np.ndarray,
    joint_vel: np.ndarray,
    goal: np.ndarray | None = None,
    object_part: np.ndarray | None = None,
) -> np.ndarray:
    """The float32 state in the layout above, from its parts as given (robot_state checks them)."""
    parts = [ee_pos, ee_quat_wxyz, [gripper_width_m], joint_pos, joint_vel]
    parts += [p for p in (goal, object_part) if p is not None]
    return np.concatenate(parts).astype(np.float32)


def _unit_quat(quat_wxyz: np.ndarray, what: str) -> np.ndarray:
    q = np.asarray(quat_wxyz, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(q)) if q.shape == (4,) else 0.0
    if not np.isfinite(norm) or abs(norm - 1.0) > 1e-3:
        raise ValueError(f"{what} must be a unit (w, x, y, z) quaternion, got {quat_wxyz!r}")
    return q / norm


def robot_state(
    ee_pos: np.ndarray,
    ee_quat_wxyz: np.ndarray,
    gripper_width_m: float,
    joint_pos: np.ndarray,
    joint_vel: np.ndarray,
    object_pose: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """The state of a robot's readings (no task goal), its quaternions normalised; ValueError
    naming the part that is malformed or not finite."""
    ee = np.asarray(ee_pos, dtype=np.float64).reshape(-1)
    q = np.asarray(joint_pos, dtype=np.float64).reshape(-1)
    dq = np.asarray(joint_vel, dtype=np.float64).reshape(-1)
    if ee.shape != (3,):
        raise ValueError(f"ee_pos must have 3 values, got {ee.shape}")
    if q.shape != dq.shape:
        raise ValueError(f"joint_pos has {q.size} values but joint_vel has {dq.size}")
    ee_quat = _unit_quat(ee_quat_wxyz, "ee quaternion")
    obj = None
    if object_pose is not None:
        obj = object_state(object_pose[0], _unit_quat(object_pose[1], "object quaternion"), ee)
    state = state_vector(ee, ee_quat, float(gripper_width_m), q, dq, object_part=obj)
    if not np.all(np.isfinite(state)):
        raise ValueError(f"state has non-finite values at {np.flatnonzero(~np.isfinite(state)).tolist()}")
    return state
