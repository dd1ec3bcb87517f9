"""push (contact-rich): push a block across the table into a goal circle.

The block starts near block_center; the goal lies push_min..push_max away in a direction within
+-max_angle of +x (away from the robot). The goal is a circle on the table, so carrying the
block there also counts; the expert pushes it with the closed gripper.
Goal xy (2) is always in the state. Privileged state adds the block's position, quaternion and
position relative to ee (10). Success: block centre within success_radius of the goal.
"""

from __future__ import annotations

import numpy as np

from sim.tasks._objects import OBJECT_STATE_DIM, FreeObject, yaw_quat
from sim.tasks.base import TABLE_Z, SimTaskEnv

BLOCK_HALF = (0.03, 0.03, 0.02)


class PushEnv(SimTaskEnv):
    default_max_steps = 60  # expert needs 10-35
    goal_dim = 2
    object_state_dim = OBJECT_STATE_DIM
    block_center = np.array([0.45, 0.0])
    block_range = 0.04
    push_min, push_max = 0.08, 0.14
    max_angle = np.pi / 4
    success_radius = 0.025

    def _objects_xml(self) -> str:
        hx, hy, hz = BLOCK_HALF
        return f"""
<body name="block" pos="0.45 0 {hz}">
  <freejoint name="block_joint"/>
  <geom name="block" type="box" size="{hx} {hy} {hz}" mass="0.2" rgba="0.2 0.3 0.85 1"
        friction="0.5 0.01 0.0001"/>
</body>
<site name="goal" pos="0.55 0 0.001" size="{self.success_radius} 0.001" type="cylinder"
      rgba="0.2 0.8 0.2 0.5"/>"""

    def _setup_task(self) -> None:
        self.block = FreeObject(self.model, "block")
        self._goal_site = self.model.site("goal").id

    def _reset_task(self, rng: np.random.Generator) -> None:
        if self.cfg.randomize:
            xy = self.block_center + rng.uniform(-self.block_range, self.block_range, 2)
            yaw = rng.uniform(-np.pi / 8, np.pi / 8)
            angle = rng.uniform(-self.max_angle, self.max_angle)
            dist = rng.uniform(self.push_min, self.push_max)
        else:
            xy, yaw, angle, dist = self.block_center.copy(), 0.0, 0.0, (self.push_min + self.push_max) / 2
        self.block.place(self.data, np.array([xy[0], xy[1], TABLE_Z + BLOCK_HALF[2]]), yaw_quat(yaw))
        self.goal = xy + dist * np.array([np.cos(angle), np.sin(angle)])
        self.model.site_pos[self._goal_site, :2] = self.goal

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.block.pose(self.data)

    def _object_state(self) -> np.ndarray:
        return self.block.state(self.data, self.ee_position())

    def _is_success(self) -> bool:
        xy = self.block.pose(self.data)[0][:2]
        return bool(np.linalg.norm(xy - self.goal) < self.success_radius)
