"""The MuJoCo twin of a task scene, standing behind the same drivers as the hardware.

A TwinScene is one sim task's scene (arm, table, objects) driven through the Arm protocol
(sim/sim_arm.py) and seen through the Camera protocol (sim/sim_camera.py), so the ROS
nodes, the RobotEnv, the actor and the learner run unchanged with no robot. What hardware has
no driver for comes from the scene itself: the object's pose (a tracker on a real robot), the
task's success (a reward classifier or a person) and a scene reset (a person, or a scripted
reset routine).

Physics runs on the wall clock (SimArm realtime) and every stamp is wall time, as a real robot
PC stamps its messages.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import numpy as np

from sim.sim_arm import SimArm, SimArmConfig
from sim.sim_camera import SimCamera, SimCameraConfig
from sim.tasks import TASKS, SimConfig, SimTaskEnv


class TwinScene:
    """The scene of `task`, its arm running in real time, and its task signals.

    seed: draws of object placements on every reset_scene(). randomize: the task's start
    randomisation (object placement), as SimEnvConfig.randomize.
    """

    def __init__(
        self,
        task: str = "pick_cube",
        *,
        physics_hz: float = 500.0,
        randomize: bool = True,
        seed: int = 0,
        realtime: bool = True,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if task not in TASKS:
            raise ValueError(f"unknown sim task {task!r}; choose one of {sorted(TASKS)}")
        self.task: SimTaskEnv = TASKS[task](SimConfig(physics_hz=physics_hz, randomize=randomize))
        self.task.reset(seed=seed)  # arm at its start posture, objects placed
        self.rng = np.random.default_rng(seed)
        self.clock = clock
        self.arm = SimArm(
            SimArmConfig(physics_hz=physics_hz, realtime=realtime), self.task.model, self.task.data, clock
        )

    @property
    def has_object(self) -> bool:
        return self.task.object_state_dim > 0

    def camera(self, name: str, width: int, height: int) -> SimCamera:
        """A camera of this scene ("wrist", "front"), stamping frames on the scene's clock."""
        return SimCamera.for_arm(self.arm, SimCameraConfig(name, width, height), clock=self.clock)

    def reset_scene(self) -> None:
        """Place the task's objects again (new draws), where the arm left the scene."""
        with self.arm.lock:
            self.task.reset_scene(self.rng)  # domain randomisation redrawn, objects placed

    def object_pose(self) -> tuple[np.ndarray, np.ndarray, float]:
        """(position, wxyz quaternion, stamp) of the task object."""
        with self.arm.lock:
            position, quat = self.task.object_pose()
            return position, quat, self.clock()

    def success(self) -> bool:
        with self.arm.lock:
            return bool(self.task._is_success())

    @contextmanager
    def paused(self) -> Iterator[SimTaskEnv]:
        """The scene's task with its physics paused while inside: read its true state there (the
        simulated person's scripted expert does, as a person looks at the real scene). Keep it
        short: the arm's servo loop waits."""
        with self.arm.lock:
            yield self.task

    def close(self) -> None:
        self.arm.close()
        self.task.close()
