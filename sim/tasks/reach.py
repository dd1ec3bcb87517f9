"""reach: bring the tool centre point within success_radius of a random target.

The target position (3) is always in the state: it is the task's specification. There is no
object, so privileged=True adds nothing. Sparse reward 1.0 and terminated on success.
"""

from __future__ import annotations

import numpy as np

from sim.tasks.base import SimTaskEnv


class ReachEnv(SimTaskEnv):
    default_max_steps = 20  # expert needs 2-8
    goal_dim = 3
    target_low = np.array([0.35, -0.15, 0.05])
    target_high = np.array([0.6, 0.15, 0.3])
    success_radius = 0.02

    def _objects_xml(self) -> str:
        return '<site name="target" pos="0.5 0 0.2" size="0.02" rgba="0.2 0.8 0.2 0.5"/>'

    def _setup_task(self) -> None:
        self._target_site = self.model.site("target").id

    def _reset_task(self, rng: np.random.Generator) -> None:
        if self.cfg.randomize:
            self.goal = rng.uniform(self.target_low, self.target_high)
        else:
            self.goal = (self.target_low + self.target_high) / 2
        self.model.site_pos[self._target_site] = self.goal

    def _is_success(self) -> bool:
        return bool(np.linalg.norm(self.ee_position() - self.goal) < self.success_radius)
