"""slide_to_mark (precision, articulated contact): move a slider along its rail to a mark, let go.

A carriage with a knob runs on a rail along world y (a slide joint with friction, so it stays
where it is left). The rail is a mocap body: reset moves it (x uniform in rail_x, y in rail_y)
without rebuilding the model; the carriage starts at travel uniform in +-start_range along the
rail and the mark lies at least min_move from it, within +-start_range too.
Goal (2, always in the state): the mark's world x, y (m).
Privileged state (8): the knob's position (3), its position relative to ee (3), the carriage's
travel along the rail (1, m) and its speed (1, m/s).
Sparse reward 1.0 (and terminated) once the carriage is within success_tolerance of the mark,
moving slower than still_speed, and neither finger pad touches the knob (the gripper let go).
Progress (for SimConfig.shaping): 0.2 x the tool's closeness to the knob + 0.2 while both pads
hold it + 0.5 x the carriage's closeness to the mark along the rail.
"""

from __future__ import annotations

import numpy as np

from sim.tasks._objects import FingerPads, closeness
from sim.tasks.base import TABLE_Z, SimTaskEnv

KNOB_HALF = (0.012, 0.01, 0.02)  # the fingers close on its +-y faces
CARRIAGE_HALF = (0.03, 0.025, 0.011)
TRAVEL = 0.14  # m either way along the rail
_KNOB_Z = TABLE_Z + 0.001 + 2 * CARRIAGE_HALF[2] + KNOB_HALF[2]  # knob centre height


class SlideToMarkEnv(SimTaskEnv):
    default_max_steps = 80  # clean expert needs 15-40, noisy demos about twice that
    goal_dim = 2
    object_state_dim = 8
    rail_x = (0.45, 0.58)
    rail_y = (-0.04, 0.04)
    start_range = 0.1  # m of travel either side of the rail's centre
    min_move = 0.05  # m between the start and the mark
    success_tolerance = 0.004  # m
    still_speed = 0.01  # m/s

    def _objects_xml(self) -> str:
        cx, cy, cz = CARRIAGE_HALF
        kx, ky, kz = KNOB_HALF
        rail_len = TRAVEL + cy
        # Only the carriage and knob collide (with the fingers); it floats 1 mm over the table.
        return f"""
<body name="rail" mocap="true" pos="0.5 0 {TABLE_Z}">
  <geom name="rail" type="box" pos="0 0 0.0005" size="0.008 {rail_len} 0.0005" contype="0"
        conaffinity="0" rgba="0.4 0.4 0.45 1"/>
  <site name="mark" pos="0 0 0.0012" size="0.035 0.0015 0.0002" type="box" rgba="0.9 0.1 0.1 1"/>
  <body name="slider" pos="0 0 {0.001 + cz}">
    <joint name="slider_joint" type="slide" axis="0 1 0" range="{-TRAVEL} {TRAVEL}" damping="3"
           frictionloss="1.5" armature="0.05"/>
    <geom name="carriage" type="box" size="{cx} {cy} {cz}" mass="0.2" rgba="0.2 0.3 0.85 1"
          contype="0" conaffinity="1"/>
    <geom name="knob" type="box" pos="0 0 {cz + kz}" size="{kx} {ky} {kz}" mass="0.05"
          rgba="0.85 0.55 0.1 1" friction="1.2 0.02 0.001" condim="4"/>
  </body>
</body>"""

    def _setup_task(self) -> None:
        self._rail_mocap = self.model.body_mocapid[self.model.body("rail").id]
        self._mark_site = self.model.site("mark").id
        joint = self.model.joint("slider_joint")
        self._slider_qpos, self._slider_qvel = int(joint.qposadr[0]), int(joint.dofadr[0])
        self._knob_geom = self.model.geom("knob").id
        self._pads = FingerPads(self.model)
        self.mark_travel = 0.0

    def _reset_task(self, rng: np.random.Generator) -> None:
        if self.cfg.randomize:
            rail = np.array([rng.uniform(*self.rail_x), rng.uniform(*self.rail_y)])
            start = rng.uniform(-self.start_range, self.start_range)
            mark = rng.uniform(-self.start_range, self.start_range)
            while abs(mark - start) < self.min_move:
                mark = rng.uniform(-self.start_range, self.start_range)
        else:
            rail, start, mark = np.array([np.mean(self.rail_x), np.mean(self.rail_y)]), -0.05, 0.05
        self.data.mocap_pos[self._rail_mocap] = [*rail, TABLE_Z]
        self.data.qpos[self._slider_qpos] = start
        self.data.qvel[self._slider_qvel] = 0.0
        self.mark_travel = float(mark)
        self.model.site_pos[self._mark_site, 1] = mark
        self.goal = rail + np.array([0.0, mark])

    def travel(self) -> float:
        """The carriage's position along the rail from the rail's centre, m."""
        return float(self.data.qpos[self._slider_qpos])

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        """The knob's centre and the carriage's orientation (the rail's: wxyz (1, 0, 0, 0))."""
        pos = self.data.mocap_pos[self._rail_mocap] + [0.0, self.travel(), _KNOB_Z - TABLE_Z]
        return pos, self.data.mocap_quat[self._rail_mocap].copy()

    def _object_state(self) -> np.ndarray:
        knob, _ = self.object_pose()
        speed = self.data.qvel[self._slider_qvel]
        return np.concatenate([knob, knob - self.ee_position(), [self.travel(), speed]])

    def touched_by_pad(self) -> bool:
        """Either finger pad touches the knob."""
        return self._pads.touching(self.data, self._knob_geom) > 0

    def progress(self) -> float:
        knob, _ = self.object_pose()
        held = self._pads.hold(self.data, self._knob_geom)
        reach = closeness(float(np.linalg.norm(self.ee_position() - knob)), 0.1)
        return 0.2 * reach + 0.2 * held + 0.5 * closeness(abs(self.travel() - self.mark_travel), 0.05)

    def _is_success(self) -> bool:
        near = abs(self.travel() - self.mark_travel) < self.success_tolerance
        still = abs(self.data.qvel[self._slider_qvel]) < self.still_speed
        return bool(near and still and not self.touched_by_pad())
