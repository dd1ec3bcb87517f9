"""stack_cube (precision placement, release): put the red cube on the blue one and let go.

The red cube (4 cm) is picked and placed on the blue cube (5 cm); both start at random xy in
the box cube_low..cube_high, at least min_gap apart, with yaw in +-max_yaw.
No goal in the state (the blue cube's position is object state, as the red one's is).
Privileged state (20): the red cube's position, wxyz quaternion and position relative to ee
(10), then the same for the blue cube (10).
Sparse reward 1.0 (and terminated) once the red cube rests on the blue one: its bottom within
rest_tolerance of the blue cube's top, centres within align_tolerance in xy, the red cube still
(speed under still_speed) and neither finger pad touching it.
Progress (for SimConfig.shaping): 0.2 x the tool's closeness to the red cube + 0.2 while both
pads hold it + 0.5 x the red cube's closeness to its resting place on the blue one.
"""

from __future__ import annotations

import numpy as np

from sim.tasks._objects import OBJECT_STATE_DIM, FingerPads, FreeObject, closeness, yaw_quat
from sim.tasks.base import TABLE_Z, SimTaskEnv

TOP_HALF = 0.02  # red cube, picked
BASE_HALF = 0.025  # blue cube, stays on the table


class StackCubeEnv(SimTaskEnv):
    default_max_steps = 100  # clean expert needs 20-40, noisy demos about twice that
    object_state_dim = 2 * OBJECT_STATE_DIM
    cube_low = np.array([0.4, -0.12])
    cube_high = np.array([0.6, 0.12])
    min_gap = 0.09  # m between the cubes' centres at the start
    max_yaw = np.pi / 8
    rest_tolerance = 0.004  # m
    align_tolerance = 0.015  # m
    still_speed = 0.02  # m/s

    def _objects_xml(self) -> str:
        t, b = TOP_HALF, BASE_HALF
        return f"""
<body name="cube" pos="0.5 -0.06 {t}">
  <freejoint name="cube_joint"/>
  <geom name="cube" type="box" size="{t} {t} {t}" mass="0.04" rgba="0.85 0.2 0.2 1"
        friction="1.2 0.02 0.001" condim="4"/>
</body>
<body name="base_cube" pos="0.5 0.06 {b}">
  <freejoint name="base_cube_joint"/>
  <geom name="base_cube" type="box" size="{b} {b} {b}" mass="0.1" rgba="0.2 0.3 0.85 1"
        friction="1.0 0.02 0.001" condim="4"/>
</body>"""

    def _setup_task(self) -> None:
        self.cube = FreeObject(self.model, "cube")
        self.base_cube = FreeObject(self.model, "base_cube")
        self._cube_geom = self.model.geom("cube").id
        self._pads = FingerPads(self.model)

    def _reset_task(self, rng: np.random.Generator) -> None:
        if self.cfg.randomize:
            top_xy = rng.uniform(self.cube_low, self.cube_high)
            base_xy = rng.uniform(self.cube_low, self.cube_high)
            while np.linalg.norm(base_xy - top_xy) < self.min_gap:
                base_xy = rng.uniform(self.cube_low, self.cube_high)
            yaws = rng.uniform(-self.max_yaw, self.max_yaw, 2)
        else:
            mid = (self.cube_low + self.cube_high) / 2
            offset = np.array([0.0, 0.06])
            top_xy, base_xy, yaws = mid - offset, mid + offset, np.zeros(2)
        self.cube.place(self.data, np.array([*top_xy, TABLE_Z + TOP_HALF]), yaw_quat(yaws[0]))
        self.base_cube.place(self.data, np.array([*base_xy, TABLE_Z + BASE_HALF]), yaw_quat(yaws[1]))

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The red cube's pose (the one to pick); base_pose() is the blue one's."""
        return self.cube.pose(self.data)

    def base_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.base_cube.pose(self.data)

    def _object_state(self) -> np.ndarray:
        ee = self.ee_position()
        return np.concatenate([self.cube.state(self.data, ee), self.base_cube.state(self.data, ee)])

    def touched_by_pad(self) -> bool:
        """Either finger pad touches the red cube."""
        return self._pads.touching(self.data, self._cube_geom) > 0

    def progress(self) -> float:
        top, _ = self.cube.pose(self.data)
        base, _ = self.base_cube.pose(self.data)
        rest = base + np.array([0.0, 0.0, BASE_HALF + TOP_HALF])
        held = self._pads.hold(self.data, self._cube_geom)
        reach = closeness(float(np.linalg.norm(self.ee_position() - top)), 0.1)
        return 0.2 * reach + 0.2 * held + 0.5 * closeness(float(np.linalg.norm(top - rest)), 0.1)

    def _is_success(self) -> bool:
        top, _ = self.cube.pose(self.data)
        base, _ = self.base_cube.pose(self.data)
        on_top = abs((top[2] - TOP_HALF) - (base[2] + BASE_HALF)) < self.rest_tolerance
        aligned = np.linalg.norm(top[:2] - base[:2]) < self.align_tolerance
        speed = np.linalg.norm(self.data.qvel[self.cube.qvel_adr : self.cube.qvel_adr + 3])
        return bool(on_top and aligned and speed < self.still_speed and not self.touched_by_pad())
