"""Twin guard: the MuJoCo twin checks each command for a real arm before it goes to the hardware.

The guard holds its own MjData of the arm's model and mirrors the real arm's joints into it. For
a command it predicts the configuration the arm's Cartesian controller reaches (damped least
squares from the mirrored joints, the DiffIK the sim arm servos with) and refuses the command when
that configuration
  - puts a joint beyond its range,
  - brings an arm geom closer than margin_m to the scene's static geoms (table, floor),
  - brings two arm links closer than margin_m to each other (self-collision), or
  - puts the ee outside the workspace box.
A twist is judged by the pose it reaches after twist_horizon_s.

Only the end configuration is checked, not the path to it: the SafetyFilter in front bounds each
command to a small step, so the path stays near its end. When the mirrored arm already breaks a
rule (pressed on the table, past a limit), a command passes only if it shrinks each such violation
and adds none: the arm can be backed out instead of being frozen where it is.

Self-collision skips pairs on one body, parent and child, pairs the model excludes from contact
(the two fingers), and pairs already within margin at the home posture: neighbouring links'
primitive geoms overlap there by construction, and a pair that touches at home is no hazard
(MoveIt's setup assistant drops such "default" pairs the same way). Geoms with contype and
conaffinity both 0 are visual only and ignored. Movable bodies (task objects) are not obstacles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING

import mujoco
import numpy as np

from drivers.rotations import integrate_angular_velocity
from drivers.safety import PoseCommand, TwistCommand, rotation_angle, workspace_corner
from sim.assets import ARM_JOINTS, FINGER_JOINTS, HOME_QPOS, build_model
from sim.controller import DiffIKController

if TYPE_CHECKING:
    from drivers.arm import ArmReading

# A violation: (what, geom / joint ids) -> (how far past the rule, in m or rad; a description).
Violations = dict[tuple[object, ...], tuple[float, str]]
_REASONS_SHOWN = 4  # a log line names a handful (joints, box, scene, self first), not dozens of pairs


@dataclass
class TwinGuardConfig:
    """What the twin refuses. Units in the names; the box is the ee's, in the base frame."""

    workspace_low: tuple[float, float, float] = (0.2, -0.3, 0.05)
    workspace_high: tuple[float, float, float] = (0.7, 0.3, 0.6)
    margin_m: float = 0.002  # clearance every arm geom keeps from the table and other links
    ik_iterations: int = 60  # DLS iterations to predict where a pose command takes the joints
    ik_tolerance_m: float = 5e-4  # the prediction stops once the ee is this close to the target
    ik_tolerance_rad: float = 5e-3
    twist_horizon_s: float = 0.2  # a twist is judged where it leaves the ee after this long
    arm_xml: str | None = None  # an external arm (sim/assets.py names) when no model is given

    def __post_init__(self) -> None:
        low = workspace_corner(self.workspace_low, "TwinGuardConfig.workspace_low")
        high = workspace_corner(self.workspace_high, "TwinGuardConfig.workspace_high")
        if not np.all(low < high):
            raise ValueError(f"TwinGuardConfig.workspace_low {low} must be below workspace_high {high}")
        self.workspace_low, self.workspace_high = tuple(low.tolist()), tuple(high.tolist())
        for name, top in (("margin_m", 0.1), ("ik_tolerance_m", 0.01), ("ik_tolerance_rad", 0.1)):
            value = getattr(self, name)
            zero_ok = name == "margin_m"  # a margin of 0 allows touching; a tolerance of 0 never converges
            if not (_number(value) and 0.0 <= value <= top and (value > 0 or zero_ok)):
                span = f"{'[' if zero_ok else '('}0, {top}]"
                raise ValueError(f"TwinGuardConfig.{name} must be a number in {span}, got {value!r}")
        if not (isinstance(self.ik_iterations, int) and 1 <= self.ik_iterations <= 1000):
            raise ValueError(
                f"TwinGuardConfig.ik_iterations must be an int in [1, 1000], got {self.ik_iterations!r}"
            )
        if not (_number(self.twist_horizon_s) and 0.0 < self.twist_horizon_s <= 2.0):
            raise ValueError(
                f"TwinGuardConfig.twist_horizon_s must be in (0, 2] s, got {self.twist_horizon_s!r}"
            )


def _number(x: object) -> bool:
    return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


@dataclass(frozen=True)
class GuardVerdict:
    """ok: the command may go to the arm; reason: why not, naming the geoms / joints."""

    ok: bool
    reason: str = ""


class TwinGuard:
    """The twin that judges commands for a real arm; see the module doc for the rules.

    model: the arm's MuJoCo model (shared read-only; the guard steps nothing and writes only its
    own MjData); None builds sim/assets' table scene with config.arm_xml's arm, or ours.
    """

    def __init__(self, model: mujoco.MjModel | None = None, config: TwinGuardConfig | None = None) -> None:
        self.cfg = cfg = config or TwinGuardConfig()
        self.model = m = model if model is not None else build_model(arm_xml=cfg.arm_xml)
        self.data = mujoco.MjData(m)
        self.ctrl = DiffIKController(m)
        self._low, self._high = np.array(cfg.workspace_low), np.array(cfg.workspace_high)
        self._joint_names = [m.joint(name).name for name in ARM_JOINTS]
        # An external arm may have a joint without limits (a continuous wrist): no range to check.
        self._limited = [bool(m.jnt_limited[m.joint(name).id]) for name in ARM_JOINTS]
        fingers = [m.joint(name) for name in FINGER_JOINTS]
        self._finger_qpos = [int(j.qposadr[0]) for j in fingers]
        self._finger_range = np.array([m.jnt_range[j.id] for j in fingers])  # rows: (closed, open)
        self._labels = [_geom_label(m, g) for g in range(m.ngeom)]
        # Planes have rbound 0 (unbounded): never skipped by the bounding-sphere test.
        self._rbound = np.where(m.geom_rbound > 0, m.geom_rbound, np.inf)
        self._env_pairs, self._self_pairs = self._pairs()
        self._mirrored = False
        self._current: Violations | None = None  # of the mirrored configuration, computed on demand

    # ---- mirroring ----------------------------------------------------------------------------
    def mirror(self, joint_positions: np.ndarray, gripper: float | None = None) -> None:
        """Set the twin's arm joints (rad) to the real arm's, and its fingers to a gripper reading
        (-1 open .. +1 closed) when one is given. ValueError on a wrong length or a non-finite value."""
        q = np.asarray(joint_positions, dtype=np.float64)
        n = len(self._joint_names)
        if q.shape != (n,) or not np.all(np.isfinite(q)):
            raise ValueError(
                f"TwinGuard.mirror needs {n} finite joint positions (rad), got {joint_positions!r}"
            )
        self.data.qpos[self.ctrl.qpos_slice] = q
        if gripper is not None and math.isfinite(gripper):
            self._set_fingers(gripper)
        mujoco.mj_kinematics(self.model, self.data)
        self._mirrored, self._current = True, None

    def _set_fingers(self, gripper: float) -> None:
        closed, opened = self._finger_range[:, 0], self._finger_range[:, 1]
        self.data.qpos[self._finger_qpos] = opened + (closed - opened) * (np.clip(gripper, -1, 1) + 1) / 2

    # ---- judging commands ---------------------------------------------------------------------
    def check(self, command: PoseCommand | TwistCommand, reading: ArmReading | None = None) -> GuardVerdict:
        """Whether `command` keeps the arm clear of the table, itself, its joint limits and the box.

        reading: the real arm's state the command was judged in; its joints are mirrored first.
        """
        if reading is not None:
            self.mirror(reading.joint_positions, reading.gripper)
        if not self._mirrored:
            return GuardVerdict(False, "no joint state mirrored yet")
        target = self._target(command)
        if target is None:
            return GuardVerdict(False, f"malformed command {command!r}")
        if self._current is None:
            self._current = self._violations()
        mirrored = self.data.qpos.copy()
        try:
            self._predict(*target)
            predicted = self._violations()
        finally:  # the mirrored state stays what the real arm reported
            self.data.qpos[:] = mirrored
            mujoco.mj_kinematics(self.model, self.data)
        # A violation the arm is already in may only shrink (to let it back out); any other refuses.
        worse = [v for k, v in predicted.items() if v[0] >= self._current.get(k, (0.0, ""))[0]]
        if not worse:
            return GuardVerdict(True)
        more = f"; and {len(worse) - _REASONS_SHOWN} more" if len(worse) > _REASONS_SHOWN else ""
        return GuardVerdict(False, "; ".join(v[1] for v in worse[:_REASONS_SHOWN]) + more)

    def _target(self, command: object) -> tuple[np.ndarray, np.ndarray, float] | None:
        """(ee position, wxyz quaternion, gripper) the command asks for; None when malformed."""
        try:
            if isinstance(command, PoseCommand):
                pos, quat = np.array(command.position, np.float64), np.array(command.quat_wxyz, np.float64)
            elif isinstance(command, TwistCommand):
                h = self.cfg.twist_horizon_s
                pos, quat = self.ctrl.ee_pose(self.data)  # from the mirrored joints, in the twin's frame
                pos = pos + np.asarray(command.linear, np.float64) * h
                quat = integrate_angular_velocity(quat, np.asarray(command.angular, np.float64), h)
            else:
                return None
            gripper = float(command.gripper)
        except (TypeError, ValueError):
            return None
        if pos.shape != (3,) or quat.shape != (4,) or not np.all(np.isfinite([*pos, *quat, gripper])):
            return None
        norm = float(np.linalg.norm(quat))
        return (pos, quat / norm, gripper) if norm > 0.5 else None

    def _predict(self, pos: np.ndarray, quat: np.ndarray, gripper: float) -> None:
        """Move the twin's joints (kinematically) to where DLS takes the ee. Joints are not clipped
        to their range: a target that needs a joint past its limit must show as a violation."""
        m, d, c, cfg = self.model, self.data, self.ctrl, self.cfg
        c.target_pos, c.target_quat = pos, quat
        self._set_fingers(gripper)
        for _ in range(cfg.ik_iterations):
            mujoco.mj_kinematics(m, d)
            ee_pos, ee_quat = c.ee_pose(d)
            if (
                np.linalg.norm(pos - ee_pos) <= cfg.ik_tolerance_m
                and rotation_angle(ee_quat, quat) <= cfg.ik_tolerance_rad
            ):
                return
            mujoco.mj_comPos(m, d)  # the Jacobian needs it
            d.qpos[c.qpos_slice] += c.joint_step(d)
        mujoco.mj_kinematics(m, d)

    # ---- rules ------------------------------------------------------------------------------
    def _violations(self) -> Violations:
        """Every rule the twin's current configuration breaks (needs a fresh kinematics pass)."""
        out: Violations = {}
        q = self.data.qpos[self.ctrl.qpos_slice]
        for i, (name, value, lo, hi) in enumerate(
            zip(self._joint_names, q, self.ctrl.q_low, self.ctrl.q_high, strict=True)
        ):
            past = max(lo - value, value - hi)
            if past > 0 and self._limited[i]:
                out[("joint", i)] = (past, f"{name} at {value:.3f} rad beyond its range [{lo:.3f}, {hi:.3f}]")
        ee = self.ctrl.ee_pose(self.data)[0]
        outside = float(np.linalg.norm(ee - np.clip(ee, self._low, self._high)))
        if outside > 0:
            out[("workspace",)] = (outside, f"ee at {np.round(ee, 3).tolist()} m outside the workspace box")
        margin_mm = self.cfg.margin_m * 1000
        for kind, pairs in (("scene contact", self._env_pairs), ("self-collision", self._self_pairs)):
            for a, b, dist in self._close(pairs):
                what = "touches" if dist < 0 else "comes within"
                text = f"{kind}: {self._labels[a]} {what} {self._labels[b]}"
                out[(kind, a, b)] = (
                    self.cfg.margin_m - dist,
                    f"{text} ({dist * 1000:.1f} mm, margin {margin_mm} mm)",
                )
        return out

    def _close(self, pairs: np.ndarray) -> list[tuple[int, int, float]]:
        """(geom a, geom b, signed distance m) of the pairs closer than the margin."""
        if len(pairs) == 0:
            return []
        m, d, margin = self.model, self.data, self.cfg.margin_m
        a, b = pairs[:, 0], pairs[:, 1]
        # Bounding spheres first: mj_geomDistance is the costly part and most pairs are far apart.
        centre = np.linalg.norm(d.geom_xpos[a] - d.geom_xpos[b], axis=1)
        near = np.flatnonzero(centre - self._rbound[a] - self._rbound[b] < margin)
        out = []
        for i in near:
            dist = mujoco.mj_geomDistance(m, d, int(a[i]), int(b[i]), margin + 1e-3, None)
            if dist < margin:
                out.append((int(a[i]), int(b[i]), float(dist)))
        return out

    def _pairs(self) -> tuple[np.ndarray, np.ndarray]:
        """(arm geom, static scene geom) pairs and the self-collision pairs of arm geoms."""
        m = self.model
        root = m.body_rootid[m.joint(ARM_JOINTS[0]).bodyid]
        solid = [g for g in range(m.ngeom) if m.geom_contype[g] or m.geom_conaffinity[g]]
        arm = [g for g in solid if m.body_rootid[m.geom_bodyid[g]] == root]
        scene = [g for g in solid if g not in arm and m.body_weldid[m.geom_bodyid[g]] == 0]
        # The base is bolted to the table: only geoms that a joint moves are checked against it.
        moving = [g for g in arm if m.body_weldid[m.geom_bodyid[g]] != 0]
        env = np.array([(a, s) for a in moving for s in scene], dtype=np.int64).reshape(-1, 2)
        excluded = {int(sig) for sig in m.exclude_signature[: m.nexclude]}
        arm_joints = {int(m.joint(name).id) for name in ARM_JOINTS}
        candidates = [
            (a, b)
            for i, a in enumerate(arm)
            for b in arm[i + 1 :]
            if not _adjacent(m, m.geom_bodyid[a], m.geom_bodyid[b], excluded, arm_joints)
        ]
        pairs = np.array(candidates, dtype=np.int64).reshape(-1, 2)
        return env, pairs[~self._touching_at_home(pairs)] if len(pairs) else pairs

    def _touching_at_home(self, pairs: np.ndarray) -> np.ndarray:
        """Which pairs are within margin at the home posture, fingers open (overlap by construction)."""
        self.data.qpos[self.ctrl.qpos_slice] = HOME_QPOS
        self._set_fingers(-1.0)
        mujoco.mj_kinematics(self.model, self.data)
        close = {(a, b) for a, b, _ in self._close(pairs)}
        return np.array([(int(a), int(b)) in close for a, b in pairs], dtype=bool)


def _adjacent(m: mujoco.MjModel, b1: int, b2: int, excluded: set[int], arm_joints: set[int]) -> bool:
    """Same body, parent and child, a pair the model excludes from contact, or bodies that no arm
    joint moves apart (the wrist flange and the fingers: how near those come is the gripper's
    design, not a posture the arm could avoid)."""
    lo, hi = min(b1, b2), max(b1, b2)
    if b1 == b2 or m.body_parentid[b1] == b2 or m.body_parentid[b2] == b1 or ((lo << 16) + hi) in excluded:
        return True
    return not arm_joints & (_joints_to_root(m, b1) ^ _joints_to_root(m, b2))


def _joints_to_root(m: mujoco.MjModel, body: int) -> set[int]:
    """Ids of the joints between a body and the world; the symmetric difference of two bodies' sets
    is the joints on the path between them."""
    joints: set[int] = set()
    while body > 0:
        start = int(m.body_jntadr[body])
        joints.update(range(start, start + int(m.body_jntnum[body])) if start >= 0 else ())
        body = int(m.body_parentid[body])
    return joints


def _geom_label(m: mujoco.MjModel, g: int) -> str:
    """The geom's name, or body/geomK (K-th geom of its body) for the unnamed primitives."""
    name = m.geom(g).name
    if name:
        return name
    body = int(m.geom_bodyid[g])
    return f"{m.body(body).name or f'body{body}'}/geom{g - int(m.body_geomadr[body])}"
