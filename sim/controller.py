"""End-effector control: workspace clipping and a differential IK servo at physics rate.

Every physics step the controller turns the pose error of the tool centre point (ee_site) into a
joint-angle target for the arm's position servos with damped least squares, plus a weak pull
towards a rest posture in the null space (7 joints, 6 task dimensions). Because the target is
recomputed from the measured state each step, the arm is compliant in contact: the push force
is bounded by servo stiffness times the per-step correction, which is clipped.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import mujoco
import numpy as np

from sim.assets import ARM_ACTUATORS, ARM_JOINTS, EE_SITE, HOME_QPOS


def clip_to_workspace(target_xyz: np.ndarray, low: np.ndarray, high: np.ndarray) -> np.ndarray:
    """Clamp a Cartesian target (m) into the box [low, high]; returns a new float64 array.

    Raises ValueError on a malformed box so a bad config fails loudly instead of pinning the arm.
    """
    target = np.asarray(target_xyz, dtype=np.float64)
    low, high = np.asarray(low, dtype=np.float64), np.asarray(high, dtype=np.float64)
    if low.shape != target.shape or high.shape != target.shape:
        raise ValueError(f"workspace bounds {low.shape}/{high.shape} do not match target {target.shape}")
    if np.any(low > high):
        raise ValueError(f"workspace low {low} exceeds high {high}")
    return np.minimum(np.maximum(target, low), high)


def _contiguous(idx: np.ndarray, what: str) -> slice:
    if not np.array_equal(idx, np.arange(idx[0], idx[0] + len(idx))):
        raise ValueError(f"{what} must be contiguous and in joint1..joint7 order, got {idx.tolist()}")
    return slice(int(idx[0]), int(idx[0]) + len(idx))


@dataclass
class IKGains:
    damping: float = 0.05  # DLS damping (m), keeps steps bounded near singularities
    max_pos_step: float = 0.03  # m of error used per physics step; bounds contact force
    max_rot_step: float = 0.3  # rad
    nullspace_gain: float = 0.05


class DiffIKController:
    """Tracks (target_pos, target_quat) of ee_site by writing the arm's position-servo ctrl."""

    def __init__(self, model: mujoco.MjModel, gains: IKGains | None = None) -> None:
        self.model = model
        self.gains = gains or IKGains()
        self.site_id = model.site(EE_SITE).id
        joints = [model.joint(name) for name in ARM_JOINTS]
        self.qpos_idx = np.array([j.qposadr[0] for j in joints])
        self.dof_idx = np.array([j.dofadr[0] for j in joints])
        self.act_idx = np.array([model.actuator(name).id for name in ARM_ACTUATORS])
        self.q_low = model.jnt_range[[j.id for j in joints], 0].copy()
        self.q_high = model.jnt_range[[j.id for j in joints], 1].copy()
        self.q_rest = HOME_QPOS.copy()
        self.target_pos = np.zeros(3)
        self.target_quat = np.array([1.0, 0.0, 0.0, 0.0])
        self._jac = np.zeros((6, model.nv))
        self._jacp, self._jacr = self._jac[:3], self._jac[3:]  # contiguous row views
        self._jjt = np.zeros((6, 6))
        self._damping_flat = (np.eye(6) * self.gains.damping**2).reshape(-1)
        self._pull = np.zeros(model.nv)
        self._dq = np.zeros(model.nv)
        self._tmp6 = np.zeros(6)
        self._err = np.zeros(6)
        self._quat = np.empty(4)
        self._rot_local = np.empty(3)
        self._rot_world = np.empty(3)
        self._x = np.empty(6)
        # Slices, not index arrays: the arm's joints and actuators are contiguous in our model and
        # in any sensible external one, and slicing is several times cheaper per physics step.
        self.qpos_slice = _contiguous(self.qpos_idx, "arm joint qpos")
        self.dof_slice = _contiguous(self.dof_idx, "arm joint dofs")
        self.act_slice = _contiguous(self.act_idx, "arm actuators")

    def ee_pose(self, data: mujoco.MjData) -> tuple[np.ndarray, np.ndarray]:
        """(position, wxyz quaternion) of ee_site from the last forward pass."""
        mujoco.mju_mat2Quat(self._quat, data.site_xmat[self.site_id])
        return data.site_xpos[self.site_id].copy(), self._quat.copy()

    def joint_step(self, data: mujoco.MjData) -> np.ndarray:
        """Joint correction dq (7,) moving ee_site towards the target; needs a fresh kinematics pass.

        This runs every physics step, so it is written against Python overhead (~15 us):
        preallocated buffers and mujoco's C matrix helpers instead of numpy calls. The Jacobian
        keeps all nv columns: only the arm's joints move ee_site, so the others are zero and
        need no slicing.
        """
        g, sid, err = self.gains, self.site_id, self._err
        np.subtract(self.target_pos, data.site_xpos[sid], out=err[:3])
        n = math.sqrt(err[0] * err[0] + err[1] * err[1] + err[2] * err[2])
        if n > g.max_pos_step:
            err[:3] *= g.max_pos_step / n
        mujoco.mju_mat2Quat(self._quat, data.site_xmat[sid])
        # subQuat gives the rotation in the current ee frame; the Jacobian is in world frame.
        mujoco.mju_subQuat(self._rot_local, self.target_quat, self._quat)
        mujoco.mju_mulMatVec3(self._rot_world, data.site_xmat[sid], self._rot_local)
        r = self._rot_world
        n = math.sqrt(r[0] * r[0] + r[1] * r[1] + r[2] * r[2])
        err[3:] = r * (g.max_rot_step / n) if n > g.max_rot_step else r
        jac, jjt = self._jac, self._jjt
        mujoco.mj_jacSite(self.model, data, self._jacp, self._jacr, sid)
        mujoco.mju_mulMatMatT(jjt, jac, jac)
        mujoco.mju_addTo(jjt.reshape(-1), self._damping_flat)
        # DLS step plus a posture pull projected into the null space, in one solve:
        # dq = pull + J^T (JJ^T + l^2 I)^-1 (err - J pull).
        pull = self._pull
        np.subtract(self.q_rest, data.qpos[self.qpos_slice], out=pull[self.dof_slice])
        pull *= g.nullspace_gain
        mujoco.mju_mulMatVec(self._tmp6, jac, pull)
        mujoco.mju_sub(self._tmp6, err, self._tmp6)
        mujoco.mju_cholFactor(jjt, 0.0)
        mujoco.mju_cholSolve(self._x, jjt, self._tmp6)
        mujoco.mju_mulMatTVec(self._dq, jac, self._x)
        self._dq += pull
        return self._dq[self.dof_slice]

    def apply(self, data: mujoco.MjData) -> None:
        """One physics-rate update (call between mj_step1 and mj_step2): write servo targets.

        No clipping here: the servos' ctrlrange equals the joint range and mujoco clamps ctrl.
        """
        data.ctrl[self.act_slice] = data.qpos[self.qpos_slice] + self.joint_step(data)

    def solve_static(
        self, model: mujoco.MjModel, data: mujoco.MjData, iters: int = 200, tol: float = 1e-4
    ) -> bool:
        """Move qpos (kinematically, no dynamics) until ee_site reaches the target; for resets."""
        for _ in range(iters):
            mujoco.mj_kinematics(model, data)
            mujoco.mj_comPos(model, data)
            dq = self.joint_step(data).copy()
            if np.linalg.norm(dq) < tol:
                return True
            q = data.qpos[self.qpos_slice] + dq
            data.qpos[self.qpos_slice] = np.clip(q, self.q_low, self.q_high)
        return False
