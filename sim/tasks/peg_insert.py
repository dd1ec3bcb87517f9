"""peg_insert (precision, contact): pick a square peg and seat it in a square hole.

The peg (2.5 cm square, 8 cm tall) stands on the table; the hole is a 2.9 cm square pocket, 3 cm
deep (HOLE_DEPTH), in a block built from four wall boxes (MuJoCo has no boolean geometry), so the
clearance is 2 mm a side. The hole block is a mocap body: reset moves it without rebuilding
the model. Start: peg xy uniform in +-peg_range around peg_center, yaw in +-max_peg_yaw; hole xy
uniform in the box hole_low..hole_high, at least min_gap from the peg; with rotation=True the
hole's yaw is uniform in +-max_hole_yaw too (0 otherwise: without rotation actions the gripper
cannot turn the peg).

Goal (3, always in the state): the hole centre's x, y (m) and its yaw (rad, 0 without rotation).
Privileged state adds the peg's position, wxyz quaternion and position relative to ee (10).
Sparse reward 1.0 (and terminated) once the peg is seated: its lowest corner within
seat_tolerance of the hole's floor (the table) and its centre within the clearance (+1 mm) of
the hole's centre.
Progress (for SimConfig.shaping): 0.2 x the tool's closeness to the peg + 0.2 while both pads
hold it + 0.3 x the peg's closeness to the hole's axis in xy + 0.29 x how far (of HOLE_DEPTH)
the peg is down the hole once it is inside.
"""

from __future__ import annotations

import math

import numpy as np

from sim.tasks._objects import OBJECT_STATE_DIM, FingerPads, FreeObject, closeness, yaw_quat
from sim.tasks.base import TABLE_Z, SimTaskEnv

PEG_HALF = (0.0125, 0.0125, 0.04)
CLEARANCE = 0.002  # m a side between peg and hole wall
HOLE_HALF = PEG_HALF[0] + CLEARANCE
WALL = 0.02  # wall thickness, m
HOLE_DEPTH = 0.03


def _inside(x: float, y: float) -> bool:
    """The peg's centre (x, y in the hole's frame, m) lies within the clearance (+1 mm) of the
    hole's centre."""
    return max(abs(x), abs(y)) < CLEARANCE + 0.001


def _wall_geoms() -> str:
    """Four walls around the square hole, in the hole body's frame (floor: the table)."""
    hz = HOLE_DEPTH / 2
    long, short = HOLE_HALF + WALL, WALL / 2
    off = HOLE_HALF + WALL / 2
    walls = [(off, 0, short, long), (-off, 0, short, long)]  # the x walls run the full length
    walls += [(0, off, HOLE_HALF, short), (0, -off, HOLE_HALF, short)]
    return "\n".join(
        f'<geom name="hole_wall{i}" type="box" pos="{x} {y} {hz}" size="{sx} {sy} {hz}" '
        'rgba="0.3 0.55 0.3 1" friction="0.6 0.005 0.0001"/>'
        for i, (x, y, sx, sy) in enumerate(walls)
    )


class PegInsertEnv(SimTaskEnv):
    default_max_steps = 100  # clean expert needs 20-40, noisy demos about twice that
    goal_dim = 3
    object_state_dim = OBJECT_STATE_DIM
    peg_center = np.array([0.45, -0.08])
    peg_range = 0.04
    max_peg_yaw = np.pi / 12
    hole_low = np.array([0.45, 0.03])
    hole_high = np.array([0.6, 0.14])
    min_gap = 0.1  # m between peg and hole centres at the start
    max_hole_yaw = np.pi / 6
    seat_tolerance = 0.004  # m between the peg's bottom and the hole floor

    def _objects_xml(self) -> str:
        hx, hy, hz = PEG_HALF
        return f"""
<body name="peg" pos="0.45 -0.08 {hz}">
  <freejoint name="peg_joint"/>
  <geom name="peg" type="box" size="{hx} {hy} {hz}" mass="0.05" rgba="0.85 0.55 0.1 1"
        friction="1.2 0.02 0.001" condim="4"/>
</body>
<body name="hole" mocap="true" pos="0.52 0.08 0">
  {_wall_geoms()}
</body>"""

    def _setup_task(self) -> None:
        self.peg = FreeObject(self.model, "peg")
        self._peg_geom = self.model.geom("peg").id
        self._pads = FingerPads(self.model)
        self._hole_mocap = self.model.body_mocapid[self.model.body("hole").id]

    def _reset_task(self, rng: np.random.Generator) -> None:
        if self.cfg.randomize:
            peg_xy = self.peg_center + rng.uniform(-self.peg_range, self.peg_range, 2)
            peg_yaw = rng.uniform(-self.max_peg_yaw, self.max_peg_yaw)
            hole_xy = rng.uniform(self.hole_low, self.hole_high)
            while np.linalg.norm(hole_xy - peg_xy) < self.min_gap:
                hole_xy = rng.uniform(self.hole_low, self.hole_high)
            hole_yaw = rng.uniform(-self.max_hole_yaw, self.max_hole_yaw) if self.cfg.rotation else 0.0
        else:
            peg_xy, peg_yaw = self.peg_center.copy(), 0.0
            hole_xy, hole_yaw = (self.hole_low + self.hole_high) / 2, 0.0
        self.peg.place(self.data, np.array([*peg_xy, TABLE_Z + PEG_HALF[2]]), yaw_quat(peg_yaw))
        self.data.mocap_pos[self._hole_mocap] = [*hole_xy, TABLE_Z]
        self.data.mocap_quat[self._hole_mocap] = yaw_quat(hole_yaw)
        self.goal = np.array([*hole_xy, hole_yaw])

    def object_pose(self) -> tuple[np.ndarray, np.ndarray]:
        return self.peg.pose(self.data)

    def _object_state(self) -> np.ndarray:
        return self.peg.state(self.data, self.ee_position())

    def peg_in_hole_frame(self) -> np.ndarray:
        """The peg centre's (x, y) in the hole's frame and its lowest corner's height over the floor."""
        pos = self.data.xpos[self.peg.body_id]
        rot_z = self.data.xmat[self.peg.body_id].reshape(3, 3)[2]  # world z of the peg's axes
        lowest = pos[2] - float(np.abs(rot_z) @ PEG_HALF)
        hx, hy, yaw = self.goal
        dx, dy = pos[0] - hx, pos[1] - hy
        c, s = math.cos(yaw), math.sin(yaw)
        return np.array([c * dx + s * dy, -s * dx + c * dy, lowest - TABLE_Z])

    def progress(self) -> float:
        peg, _ = self.peg.pose(self.data)
        x, y, bottom = self.peg_in_hole_frame()
        held = self._pads.hold(self.data, self._peg_geom)
        reach = closeness(float(np.linalg.norm(self.ee_position() - peg)), 0.1)
        depth = float(np.clip(1.0 - bottom / HOLE_DEPTH, 0.0, 1.0)) if _inside(x, y) else 0.0
        return 0.2 * reach + 0.2 * held + 0.3 * closeness(float(np.hypot(x, y)), 0.03) + 0.29 * depth

    def _is_success(self) -> bool:
        x, y, bottom = self.peg_in_hole_frame()
        return bool(_inside(x, y) and bottom < self.seat_tolerance)
