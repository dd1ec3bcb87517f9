"""The state vector of a robot observation, built from what the arm and a tracker report.

One layout for the sim tasks (sim/tasks/base.py), the ROS-backed RobotEnv and the MCAP converter,
so a policy trained in one reads the others unchanged:

    ee_pos (3, m, base) | ee_quat (4, wxyz) | gripper_width (1, m) | joint_pos (n, rad) |
    joint_vel (n, rad/s) | object (10, only with an object tracker: position, wxyz quaternion,
    position - ee_pos)

The object's quaternion is given one sign (w >= 0): q and -q are the same rotation and a policy
should see one of them. The ee quaternion is kept as the arm reports it, as the sim tasks do: the
tool points down, where w is near 0 and a sign rule would flip it back and forth.
"""

from __future__ import annotations

import numpy as np

OBJECT_STATE_DIM = 10


def proprio_dim(n_joints: int) -> int:
    """Length of the arm's part of the state: ee pose, gripper width, joint positions and velocities."""
    return 3 + 4 + 1 + 2 * n_joints


def state_dim(n_joints: int, with_object: bool) -> int:
    return proprio_dim(n_joints) + (OBJECT_STATE_DIM if with_object else 0)


def _unit_quat(quat_wxyz: np.ndarray, what: str) -> np.ndarray:
    q = np.asarray(quat_wxyz, dtype=np.float64).reshape(-1)
    norm = float(np.linalg.norm(q)) if q.shape == (4,) else 0.0
    if not np.isfinite(norm) or abs(norm - 1.0) > 1e-3:
        raise ValueError(f"{what} must be a unit (w, x, y, z) quaternion, got {quat_wxyz!r}")
    return q / norm


def object_state(object_pos: np.ndarray, object_quat_wxyz: np.ndarray, ee_pos: np.ndarray) -> np.ndarray:
    """Position (3), quaternion with w >= 0 (4), position relative to the ee (3)."""
    pos = np.asarray(object_pos, dtype=np.float64).reshape(3)
    quat = _unit_quat(object_quat_wxyz, "object quaternion")
    if quat[0] < 0:
        quat = -quat
    return np.concatenate([pos, quat, pos - np.asarray(ee_pos, dtype=np.float64).reshape(3)])


def robot_state(
    ee_pos: np.ndarray,
    ee_quat_wxyz: np.ndarray,
    gripper_width_m: float,
    joint_pos: np.ndarray,
    joint_vel: np.ndarray,
    object_pose: tuple[np.ndarray, np.ndarray] | None = None,
) -> np.ndarray:
    """float32 state in the layout above; ValueError naming the part that is malformed or not finite."""
    ee = np.asarray(ee_pos, dtype=np.float64).reshape(-1)
    q = np.asarray(joint_pos, dtype=np.float64).reshape(-1)
    dq = np.asarray(joint_vel, dtype=np.float64).reshape(-1)
    if ee.shape != (3,):
        raise ValueError(f"ee_pos must have 3 values, got {ee.shape}")
    if q.shape != dq.shape:
        raise ValueError(f"joint_pos has {q.size} values but joint_vel has {dq.size}")
    parts = [ee, _unit_quat(ee_quat_wxyz, "ee quaternion"), [float(gripper_width_m)], q, dq]
    if object_pose is not None:
        parts.append(object_state(object_pose[0], object_pose[1], ee))
    state = np.concatenate(parts)
    if not np.all(np.isfinite(state)):
        raise ValueError(f"state has non-finite values at {np.flatnonzero(~np.isfinite(state)).tolist()}")
    return state.astype(np.float32)
