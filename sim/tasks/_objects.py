"""Helpers shared by tasks with free-floating objects, and the finger pads' contacts."""

from __future__ import annotations

import math

import mujoco
import numpy as np

from sim.task_spec import OBJECT_STATE_DIM, object_state


def yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


class FreeObject:
    """Pose access and placement of a body with a free joint."""

    def __init__(self, model: mujoco.MjModel, body: str) -> None:
        self.body_id = model.body(body).id
        joint_id = model.body_jntadr[self.body_id]
        self.qpos_adr = model.jnt_qposadr[joint_id]
        self.qvel_adr = model.jnt_dofadr[joint_id]

    def place(self, data: mujoco.MjData, pos: np.ndarray, quat: np.ndarray) -> None:
        data.qpos[self.qpos_adr : self.qpos_adr + 3] = pos
        data.qpos[self.qpos_adr + 3 : self.qpos_adr + 7] = quat
        data.qvel[self.qvel_adr : self.qvel_adr + 6] = 0.0

    def pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        q = data.qpos[self.qpos_adr : self.qpos_adr + 7]
        return q[:3].copy(), q[3:].copy()

    def state(self, data: mujoco.MjData, ee_pos: np.ndarray) -> np.ndarray:
        """Privileged object state in the task contract's layout (sim/task_spec.object_state)."""
        return object_state(*self.pose(data), ee_pos)


class FingerPads:
    """Which finger pads touch a geom, from the contacts of the last mj_forward/mj_step."""

    def __init__(self, model: mujoco.MjModel) -> None:
        self.geoms = {model.geom("left_finger_pad").id, model.geom("right_finger_pad").id}

    def touching(self, data: mujoco.MjData, geom: int) -> int:
        """How many pads (0, 1 or 2) touch `geom`."""
        pairs = data.contact.geom[: data.ncon]
        with_geom = pairs[(pairs == geom).any(axis=1)]
        return len(self.geoms & set(with_geom.ravel().tolist()))

    def hold(self, data: mujoco.MjData, geom: int) -> bool:
        """Both pads touch `geom`: the gripper holds it."""
        return self.touching(data, geom) == 2


def closeness(distance: float, scale: float) -> float:
    """1 at distance 0, falling towards 0 over about `scale` (m): a shaping term's reach."""
    return 1.0 - math.tanh(distance / scale)


__all__ = ["OBJECT_STATE_DIM", "FingerPads", "FreeObject", "closeness", "yaw_quat"]
