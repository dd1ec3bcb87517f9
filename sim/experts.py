"""Scripted experts: closed-loop state machines reading privileged poses from env.unwrapped.

They work whatever the observation holds (privileged or not, with or without cameras), so they
can record demos for image-based policies. Actions follow the env's layout: (dx, dy, dz,
gripper) or, with rotation, (dx, dy, dz, 0, 0, 0, gripper); the expert never rotates.
"""

from __future__ import annotations

import math
from typing import Any

import gymnasium
import numpy as np

from sim.tasks.peg_insert import CLEARANCE, HOLE_DEPTH, PEG_HALF
from sim.tasks.pick_cube import CUBE_HALF
from sim.tasks.push import BLOCK_HALF
from sim.tasks.stack_cube import BASE_HALF, TOP_HALF

OPEN, CLOSED = -1.0, 1.0
GRASP_PHASES = ("approach", "descend", "close")  # _Expert._grasp's


class _Expert:
    """Shared plumbing: move-to-point action, gripper, noise, action layout."""

    gain = 1.0  # fraction of the remaining error asked for per tick (then clipped to [-1, 1])
    first_phase = "approach"
    close_ticks = 3  # ticks the gripper closes or opens before the next move

    def __init__(self, env: gymnasium.Env, noise: float = 0.0, seed: int | None = None) -> None:
        self.env = env
        self.task: Any = env.unwrapped
        self.noise = noise
        self.rng = np.random.default_rng(seed)
        self.action_dim = int(env.action_space.shape[0])
        self.reset()

    def reset(self) -> None:
        """Call after env.reset(): forget the phase of the last episode."""
        self.phase = self.first_phase
        self.ticks = 0

    def _action(self, target_xyz: np.ndarray, gripper: float) -> np.ndarray:
        delta = (np.asarray(target_xyz) - self.task.ee_position()) / self.task.pos_scale
        action = np.zeros(self.action_dim, dtype=np.float32)
        action[:3] = np.clip(self.gain * delta, -1.0, 1.0)
        action[-1] = gripper
        if self.noise > 0:
            action[:3] += self.rng.normal(0.0, self.noise, 3)
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def _grasp(self, xy: np.ndarray, grasp_z: float, hover_z: float, tol: float, then: str) -> np.ndarray:
        """Phases approach (open, above xy at hover_z) -> descend (to grasp_z; back up if more
        than 2 tol off in xy) -> close (close_ticks) -> `then`. tol (m) gates each move."""
        ee = self.task.ee_position()
        xy_err = float(np.linalg.norm(xy - ee[:2]))
        grasp = np.array([xy[0], xy[1], grasp_z])
        if self.phase == "approach":
            if xy_err < tol and abs(ee[2] - hover_z) < 0.03:
                self.phase = "descend"
            return self._action(np.array([xy[0], xy[1], hover_z]), OPEN)
        if self.phase == "descend":
            if xy_err > 2 * tol:
                self.phase = "approach"
            elif abs(ee[2] - grasp_z) < tol:
                self.phase, self.ticks = "close", 0
            return self._action(grasp, OPEN)
        self.ticks += 1
        if self.ticks >= self.close_ticks:
            self.phase = then
        return self._action(grasp, CLOSED)


class ReachExpert(_Expert):
    def __call__(self, obs: Any) -> np.ndarray:
        return self._action(self.task.goal, OPEN)


class PickCubeExpert(_Expert):
    """approach above the cube -> descend -> close -> lift; restarts if the cube slips out."""

    hover = 0.08  # m above the cube centre before descending
    lift_to = 0.16  # m above the table for the tool centre point while lifting
    half = CUBE_HALF  # of the cube to pick, m

    def __call__(self, obs: Any) -> np.ndarray:
        cube, _ = self.task.object_pose()
        ee = self.task.ee_position()
        if self.phase in GRASP_PHASES:
            return self._grasp(cube[:2], cube[2] - 0.005, cube[2] + self.hover, 0.01, then="lift")
        # lift: go back round if the cube is no longer between the fingers
        if self.task.gripper_width() < 2 * self.half - 0.01 or cube[2] < ee[2] - 0.03:
            self.phase = "approach"
            return self._action(ee + np.array([0.0, 0.0, 0.05]), OPEN)
        return self._action(np.array([ee[0], ee[1], self.lift_to]), CLOSED)


class PushExpert(_Expert):
    """Go behind the block (seen from the goal), lower the closed gripper, push it to the goal."""

    push_z = 0.025  # tool centre height while pushing (block is 4 cm tall)
    safe_z = 0.08  # travel height clear of the block
    standoff = BLOCK_HALF[0] + 0.035  # behind the block centre; covers a rotated block's corner
    first_phase = "to_start"

    def __call__(self, obs: Any) -> np.ndarray:
        block, _ = self.task.object_pose()
        goal = np.asarray(self.task.goal)
        ee = self.task.ee_position()
        to_goal = goal - block[:2]
        dist = float(np.linalg.norm(to_goal))
        direction = to_goal / max(dist, 1e-6)
        behind = block[:2] - direction * self.standoff
        # Lateral offset of the pusher from the block->goal line, and how far behind it is.
        rel = ee[:2] - block[:2]
        lateral = abs(rel[0] * direction[1] - rel[1] * direction[0])
        along = float(rel @ direction)
        if self.phase == "push" and (lateral > 0.02 or along > -BLOCK_HALF[0] + 0.005):
            self.phase = "to_start"  # lost the block: re-approach from behind
        if self.phase == "to_start":
            gap = float(np.linalg.norm(ee[:2] - behind))
            if gap < 0.012 and ee[2] < self.push_z + 0.01:
                self.phase = "push"
            elif gap < 0.03:
                return self._action(np.array([*behind, self.push_z]), CLOSED)
            elif ee[2] < self.safe_z - 0.02:
                # low and off the line: rise in place first so the move does not sweep the block
                return self._action(np.array([ee[0], ee[1], self.safe_z]), CLOSED)
            else:
                return self._action(np.array([*behind, self.safe_z]), CLOSED)
        # push: aim at a point beyond the goal so the block keeps moving until it arrives, and
        # steer back onto the line through block and goal.
        target_xy = goal - direction * self.standoff + direction * min(dist, 0.02)
        return self._action(np.array([*target_xy, self.push_z]), CLOSED)


class StackCubeExpert(PickCubeExpert):
    """Pick the red cube as PickCubeExpert does, carry it over the blue one, lower it until it
    sits a few millimetres above, open, and rise clear."""

    half = TOP_HALF
    lift_to = 0.14
    align_tol = 0.003  # m of cube-to-cube xy error before lowering
    drop_gap = 0.003  # m between the cubes when the gripper opens

    def __call__(self, obs: Any) -> np.ndarray:
        if self.phase in GRASP_PHASES:
            return super().__call__(obs)
        ee = self.task.ee_position()
        if self.phase == "retreat":
            return self._action(np.array([ee[0], ee[1], self.lift_to]), OPEN)
        if self.phase == "release":
            self.ticks += 1
            if self.ticks >= self.close_ticks:
                self.phase = "retreat"
            return self._action(ee, OPEN)
        cube, _ = self.task.object_pose()
        base, _ = self.task.base_pose()
        if self.phase == "lift":
            action = super().__call__(obs)  # lifts, or goes back round if the cube slipped
            if self.phase == "lift" and ee[2] > self.lift_to - 0.02:
                self.phase = "carry"
            return action
        if self.task.gripper_width() < 2 * self.half - 0.01 or cube[2] < ee[2] - 0.03:
            self.phase = "approach"
            return self._action(ee + np.array([0.0, 0.0, 0.05]), OPEN)
        target_xy = base[:2] + ee[:2] - cube[:2]  # aim the cube, not the gripper
        err = float(np.linalg.norm(base[:2] - cube[:2]))
        gap = (cube[2] - self.half) - (base[2] + BASE_HALF)
        if self.phase == "carry":
            if err < self.align_tol:
                self.phase = "lower"
            return self._action(np.array([*target_xy, self.lift_to]), CLOSED)
        # lower: centre while going down; open once the cube is just above the other
        if gap < self.drop_gap:
            self.phase, self.ticks = "release", 0
            return self._action(ee, OPEN)
        step_z = ee[2] - min(gap, 0.02)
        return self._action(np.array([*target_xy, step_z]), CLOSED)


class SlideToMarkExpert(_Expert):
    """Grasp the knob, slide the carriage until it is on the mark, open, and rise clear; grasp
    again if it is not on the mark once let go."""

    hover = 0.05  # m above the knob's centre before descending
    settle_tol = 0.0015  # m from the mark before letting go

    def __call__(self, obs: Any) -> np.ndarray:
        knob, _ = self.task.object_pose()
        ee = self.task.ee_position()
        to_mark = self.task.mark_travel - self.task.travel()
        if self.phase in GRASP_PHASES:
            return self._grasp(knob[:2], knob[2], knob[2] + self.hover, 0.006, then="slide")
        if self.phase == "slide":
            if abs(to_mark) < self.settle_tol:
                self.phase, self.ticks = "release", 0
            target = np.array([knob[0], ee[1] + to_mark, knob[2]])
            return self._action(target, CLOSED)
        if self.phase == "release":
            self.ticks += 1
            if self.ticks >= self.close_ticks:
                self.phase = "retreat"
            return self._action(ee, OPEN)
        # retreat: rise; if the carriage is off the mark once free, go back for it
        if ee[2] > knob[2] + self.hover - 0.02 and abs(to_mark) > self.task.success_tolerance:
            self.phase = "approach"
        return self._action(np.array([ee[0], ee[1], knob[2] + self.hover]), OPEN)


def _yaw(quat: np.ndarray) -> float:
    """Heading (rad) of a wxyz quaternion's x axis about world z."""
    w, x, y, z = quat
    return math.atan2(2 * (w * z + x * y), 1 - 2 * (y * y + z * z))


def _wrap(angle: float, period: float) -> float:
    """angle folded into [-period/2, period/2)."""
    return (angle + period / 2) % period - period / 2


class PegInsertExpert(_Expert):
    """Grasp the peg near its top, lift it clear of the walls, turn it to the hole's yaw (with
    rotation actions), hover it over the hole, then lower it slowly while centring it."""

    grasp_below_top = 0.015  # m from the peg's top down to the tool centre point: fingers clear the walls
    carry_z = 0.13  # m, tool centre height while carrying: the peg's bottom clears the walls
    align_tol = 0.0015  # m of peg-to-hole error before lowering

    def __call__(self, obs: Any) -> np.ndarray:
        peg, quat = self.task.object_pose()
        ee = self.task.ee_position()
        top = peg[2] + PEG_HALF[2]
        if self.phase in GRASP_PHASES:
            return self._grasp(peg[:2], top - self.grasp_below_top, top + 0.05, 0.008, then="carry")
        slipped = abs(top - self.grasp_below_top - ee[2]) > 0.03
        if self.task.gripper_width() < 2 * PEG_HALF[1] - 0.008 or slipped:
            self.phase = "approach"  # dropped it: go back round
            return self._action(ee + np.array([0.0, 0.0, 0.05]), OPEN)
        hole = np.asarray(self.task.goal)
        target_xy = hole[:2] + ee[:2] - peg[:2]  # the peg sits off-centre in the grasp: aim the peg
        err = float(np.linalg.norm(hole[:2] - peg[:2]))
        yaw_err = _wrap(hole[2] - _yaw(quat), np.pi / 2)
        above_walls = peg[2] - PEG_HALF[2] - HOLE_DEPTH  # m between the peg's bottom and the walls' top
        if self.phase == "carry":
            if above_walls > 0.002 and err < self.align_tol and abs(yaw_err) < 0.03:
                self.phase = "insert"
            if err > 0.02:  # travel high: rise, then cross over
                z = self.carry_z if ee[2] > self.carry_z - 0.03 else ee[2] + 0.03
            else:  # close: line up just above the walls
                z = ee[2] + 0.006 - above_walls
            action = self._action(np.array([*target_xy, z]), CLOSED)
        else:  # insert: keep centring while going down slowly; back up if it lands on the rim
            if err > CLEARANCE + 0.001 and above_walls > -0.003:
                self.phase = "carry"
            action = self._action(np.array([*target_xy, ee[2] - 0.01]), CLOSED)
        if self.action_dim == 7:
            action[5] = np.clip(yaw_err / self.task.rot_scale, -1.0, 1.0)
        return action


EXPERTS: dict[str, type[_Expert]] = {
    "pick_cube": PickCubeExpert,
    "reach": ReachExpert,
    "push": PushExpert,
    "peg_insert": PegInsertExpert,
    "stack_cube": StackCubeExpert,
    "slide_to_mark": SlideToMarkExpert,
}


def expert_for(task: str) -> type[_Expert]:
    if task not in EXPERTS:
        raise ValueError(f"no scripted expert for task {task!r}; have {sorted(EXPERTS)}")
    return EXPERTS[task]
