"""Domain randomisation of a task scene: masses, friction, actuation latency, cameras, lights.

What each range touches (nothing else in the model changes):
    mass_scale      mass and inertia of every body with a free joint (the task objects; the arm
                    and table keep theirs), one factor per body
    friction_scale  sliding, torsional and rolling friction of the table, the task objects'
                    geoms and the finger geoms, one factor per geom (MuJoCo takes the larger of
                    a contact pair's two, so independent draws also vary which surface rules)
    latency_steps   physics steps (1 / physics_hz s each) between an action and its effect on
                    the arm and gripper targets; whole control ticks are latency_steps equal to
                    physics_hz / control_hz (e.g. 50 at the default 500 / 10 Hz)
    camera_pos_m    {camera: m}: each axis of that camera's position uniform in +-m
    camera_rot_rad  {camera: rad}: that camera turned by an angle uniform in [0, rad] about a
                    uniformly random axis
    light_scale     diffuse and ambient intensity of every light and of the headlight, one factor
                    per light
    light_pos_m     each axis of every light's position uniform in +-m

A range whose low equals its high draws nothing, so the defaults (all off) leave both the scene
and the env's random stream exactly as without randomisation.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import mujoco
import numpy as np

FRICTION_BODIES = ("left_finger", "right_finger")  # besides the table geom and the free bodies
TABLE_GEOM = "table"
RANDOMIZED_FIELDS = (
    "body_mass",
    "body_inertia",
    "geom_friction",
    "cam_pos",
    "cam_quat",
    "light_pos",
    "light_diffuse",
    "light_ambient",
)  # of MjModel, besides vis.headlight's diffuse and ambient and mj_setConst's mass constants


def _check_range(name: str, value: Sequence[float], low_bound: float, strict: bool) -> tuple[float, float]:
    """(low, high) as floats; raises naming the field when malformed or below low_bound."""
    if isinstance(value, str) or not isinstance(value, Sequence) or len(value) != 2:
        raise ValueError(f"domain_randomization.{name} must be [low, high], got {value!r}")
    low, high = float(value[0]), float(value[1])
    if not (math.isfinite(low) and math.isfinite(high)):
        raise ValueError(f"domain_randomization.{name} must be finite, got {value!r}")
    if low > high:
        raise ValueError(f"domain_randomization.{name}: low {low} > high {high}")
    if low < low_bound or (strict and low == low_bound):
        relation = ">" if strict else ">="
        raise ValueError(f"domain_randomization.{name} must be {relation} {low_bound}, got {value!r}")
    return low, high


def _check_jitter(name: str, value: Mapping[str, float], most: float) -> dict[str, float]:
    if not isinstance(value, Mapping):
        raise ValueError(f"domain_randomization.{name} must be {{camera: amount}}, got {value!r}")
    out = {}
    for camera, amount in value.items():
        amount = float(amount)
        if not 0.0 <= amount <= most:
            bounds = ">= 0" if math.isinf(most) else f"in [0, {most:.4g}]"
            raise ValueError(f"domain_randomization.{name}[{camera!r}] must be {bounds}, got {amount}")
        out[str(camera)] = amount
    return out


@dataclass
class DomainRandomization:
    """Ranges drawn afresh at every reset (units in the names; see the module doc for targets).

    Also the hydra config env.domain_randomization (robot_rl's env=sim): a range comes as a list
    from there, a tuple from Python; __post_init__ checks it and stores a tuple.
    """

    mass_scale: tuple[float, float] = (1.0, 1.0)  # x nominal, free bodies
    friction_scale: tuple[float, float] = (1.0, 1.0)  # x nominal, table / object / finger geoms
    latency_steps: tuple[int, int] = (0, 0)  # physics steps, inclusive
    camera_pos_m: dict[str, float] = field(default_factory=dict)
    camera_rot_rad: dict[str, float] = field(default_factory=dict)
    light_scale: tuple[float, float] = (1.0, 1.0)  # x nominal diffuse and ambient
    light_pos_m: float = 0.0

    def __post_init__(self) -> None:
        self.mass_scale = _check_range("mass_scale", self.mass_scale, 0.0, strict=True)
        self.friction_scale = _check_range("friction_scale", self.friction_scale, 0.0, strict=True)
        self.light_scale = _check_range("light_scale", self.light_scale, 0.0, strict=False)
        latency = _check_range("latency_steps", self.latency_steps, 0.0, strict=False)
        if any(v != int(v) for v in latency):
            raise ValueError(
                f"domain_randomization.latency_steps must be whole steps, got {self.latency_steps!r}"
            )
        self.latency_steps = (int(latency[0]), int(latency[1]))
        self.camera_pos_m = _check_jitter("camera_pos_m", self.camera_pos_m, math.inf)
        self.camera_rot_rad = _check_jitter("camera_rot_rad", self.camera_rot_rad, math.pi)
        self.light_pos_m = float(self.light_pos_m)
        if not 0.0 <= self.light_pos_m < math.inf:
            raise ValueError(f"domain_randomization.light_pos_m must be >= 0, got {self.light_pos_m}")

    @property
    def enabled(self) -> bool:
        """True when some range would change the scene or the action timing."""
        return (
            self.mass_scale != (1.0, 1.0)
            or self.friction_scale != (1.0, 1.0)
            or self.latency_steps != (0, 0)
            or any(self.camera_pos_m.values())
            or any(self.camera_rot_rad.values())
            or self.light_scale != (1.0, 1.0)
            or self.light_pos_m > 0.0
        )


def _draw(rng: np.random.Generator, bounds: tuple[float, float], n: int) -> np.ndarray:
    # A fixed value consumes no random numbers, so switching a range off leaves the others' draws
    # (and the task's placements) as they were.
    low, high = bounds
    return np.full(n, low) if low == high else rng.uniform(low, high, n)


def _random_turn(rng: np.random.Generator, max_angle: float) -> np.ndarray:
    """wxyz quaternion of an angle uniform in [0, max_angle] about a uniformly random axis."""
    axis = rng.normal(size=3)
    axis /= max(float(np.linalg.norm(axis)), 1e-12)
    quat = np.empty(4)
    mujoco.mju_axisAngle2Quat(quat, axis, rng.uniform(0.0, max_angle))
    return quat


class Randomizer:
    """Records a model's nominal values once; apply() restores them, then draws new ones.

    Restoring first means every episode's draw is relative to the built scene, so values never
    drift however many resets there are, and the same generator state gives the same scene.
    """

    def __init__(self, model: mujoco.MjModel, config: DomainRandomization) -> None:
        self.model, self.cfg = model, config
        cameras = {model.camera(i).name: i for i in range(model.ncam)}
        for name in (*config.camera_pos_m, *config.camera_rot_rad):
            if name not in cameras:
                raise ValueError(
                    f"domain_randomization names camera {name!r}; this scene has {sorted(cameras)}"
                )
        self._cam_pos = {cameras[c]: v for c, v in sorted(config.camera_pos_m.items()) if v > 0}
        self._cam_rot = {cameras[c]: v for c, v in sorted(config.camera_rot_rad.items()) if v > 0}
        self.object_bodies = np.unique(model.jnt_bodyid[model.jnt_type == mujoco.mjtJoint.mjJNT_FREE])
        self.friction_geoms = self._friction_geoms()
        self._nominal = {name: getattr(model, name).copy() for name in RANDOMIZED_FIELDS}
        self._headlight = (model.vis.headlight.diffuse.copy(), model.vis.headlight.ambient.copy())
        # mj_setConst recomputes mass-derived constants; a scratch MjData keeps the caller's state.
        self._scratch = mujoco.MjData(model) if config.mass_scale != (1.0, 1.0) else None
        self.latency_steps = 0

    def _friction_geoms(self) -> np.ndarray:
        m = self.model
        bodies = set(self.object_bodies.tolist())
        bodies |= {m.body(name).id for name in FRICTION_BODIES if _has(m, mujoco.mjtObj.mjOBJ_BODY, name)}
        table = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_GEOM, TABLE_GEOM)
        collides = (m.geom_contype != 0) | (m.geom_conaffinity != 0)
        return np.array(
            [g for g in range(m.ngeom) if collides[g] and (g == table or m.geom_bodyid[g] in bodies)],
            dtype=int,
        )

    def restore(self) -> None:
        """Put every randomised field back to the value the model was built with."""
        self._restore_fields()
        if self._scratch is not None:
            mujoco.mj_setConst(self.model, self._scratch)

    def _restore_fields(self) -> None:
        for name, value in self._nominal.items():
            getattr(self.model, name)[:] = value
        self.model.vis.headlight.diffuse[:], self.model.vis.headlight.ambient[:] = self._headlight

    def apply(self, rng: np.random.Generator) -> int:
        """Restore, then draw a new scene from rng; returns the episode's latency in physics steps.

        Leaves the caller's MjData alone: run mj_forward afterwards so its camera and light
        poses follow the new model.
        """
        m, cfg = self.model, self.cfg
        self._restore_fields()
        mass = _draw(rng, cfg.mass_scale, len(self.object_bodies))
        m.body_mass[self.object_bodies] *= mass
        m.body_inertia[self.object_bodies] *= mass[:, None]
        if self._scratch is not None:
            mujoco.mj_setConst(m, self._scratch)
        friction = _draw(rng, cfg.friction_scale, len(self.friction_geoms))
        m.geom_friction[self.friction_geoms] *= friction[:, None]  # sliding, torsional, rolling alike
        low, high = cfg.latency_steps
        self.latency_steps = low if low == high else int(rng.integers(low, high + 1))
        for cam, amount in self._cam_pos.items():
            m.cam_pos[cam] += rng.uniform(-amount, amount, 3)
        turned = np.empty(4)
        for cam, angle in self._cam_rot.items():
            mujoco.mju_mulQuat(turned, _random_turn(rng, angle), self._nominal["cam_quat"][cam])
            m.cam_quat[cam] = turned
        scale = _draw(rng, cfg.light_scale, m.nlight + 1)
        m.light_diffuse *= scale[:-1, None]
        m.light_ambient *= scale[:-1, None]
        m.vis.headlight.diffuse[:] *= scale[-1]
        m.vis.headlight.ambient[:] *= scale[-1]
        if cfg.light_pos_m > 0:
            m.light_pos += rng.uniform(-cfg.light_pos_m, cfg.light_pos_m, (m.nlight, 3))
        return self.latency_steps


def _has(model: mujoco.MjModel, kind: mujoco.mjtObj, name: str) -> bool:
    return mujoco.mj_name2id(model, kind, name) >= 0
