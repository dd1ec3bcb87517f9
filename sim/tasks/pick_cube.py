"""pick_cube: grasp a 5 cm cube from the table and hold it above lift_height.

Sparse reward 1.0 (and terminated) once the cube's bottom is lift_height over the table while
both finger pads touch it. Start: cube xy uniform in +-cube_range around cube_center, yaw in
+-max_yaw; gripper open 20 cm above the table with +-2 cm noise.
Privileged state adds the cube's position, quaternion and position relative to ee (10 values).
"""

from __future__ import annotations

import numpy as np

from sim.tasks._objects import OBJECT_STATE_DIM, FingerPads, FreeObject, yaw_quat
from sim.tasks.base import TABLE_Z, SimTaskEnv

CUBE_HALF = 0.025


class PickCubeEnv(SimTaskEnv):
    default_max_steps = 50  # expert needs 14-17
    object_state_dim = OBJECT_STATE_DIM
    cube_center = np.array([0.5, 0.0])
    cube_range = 0.06
    max_yaw = np.pi / 8
    lift_height = 0.06

    def _objects_xml(self) -> str:
        h = CUBE_HALF
        return f"""
<body name="cube" pos="0.5 0 {h}">
  <freejoint name="cube_joint"/>
  <geom name="cube" type="box" size="{h} {h} {h}" mass="0.05" rgba="0.85 0.2 0.2 1"
        friction="1.2 0.02 0.001" condim="4"/>
</body>"""

    def _setup_task(self) -> None:
        self.cube = FreeObject(self.model, "cube")
        self._cube_geom = self.model.geom("cube").id
        self._pads = FingerPads(self.model)

    def _reset_task(self, rng: np.random.Generator) -> None:
        r = self.cube_range if self.cfg.randomize else 0.0
        yaw = rng.uniform(-self.max_yaw, self.max_yaw) if self.cfg.randomize else 0.0
        xy = self.cube_center + rng.uniform(-r, r, 2)
        self.cube.place(self.data, np.array([xy[0], xy[1], TABLE_Z + CUBE_HALF]), yaw_quat(yaw))

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.cube.pose(self.data)

    def _object_state(self) -> np.ndarray:
        return self.cube.state(self.data, self.ee_position())

    def grasped(self) -> bool:
        """Both finger pads are in contact with the cube."""
        return self._pads.hold(self.data, self._cube_geom)

    def _is_success(self) -> bool:
        lifted = self.cube.pose(self.data)[0][2] - CUBE_HALF > TABLE_Z + self.lift_height
        return bool(lifted and self.grasped())
