"""MuJoCo tasks as gymnasium envs, built by make_sim_env (see sim/tasks/base.py for layouts)."""

from __future__ import annotations

from collections.abc import Sequence

import gymnasium

from sim.randomize import DomainRandomization
from sim.tasks.base import SimConfig, SimTaskEnv
from sim.tasks.peg_insert import PegInsertEnv
from sim.tasks.pick_cube import PickCubeEnv
from sim.tasks.push import PushEnv
from sim.tasks.reach import ReachEnv
from sim.tasks.slide_to_mark import SlideToMarkEnv
from sim.tasks.stack_cube import StackCubeEnv

TASKS: dict[str, type[SimTaskEnv]] = {
    "pick_cube": PickCubeEnv,
    "reach": ReachEnv,
    "push": PushEnv,
    "peg_insert": PegInsertEnv,
    "stack_cube": StackCubeEnv,
    "slide_to_mark": SlideToMarkEnv,
}


def make_sim_env(
    task: str = "pick_cube",
    *,
    control_hz: float = 10.0,
    physics_hz: float = 500.0,
    privileged: bool = False,
    cameras: Sequence[str] = (),
    image_size: tuple[int, int] = (64, 64),
    rotation: bool = False,
    max_episode_steps: int | None = None,
    arm_xml: str | None = None,
    randomize: bool = True,
    domain_randomization: DomainRandomization | None = None,
    seed: int | None = None,
) -> gymnasium.Env:
    """Build a task env. seed, when given, seeds the first reset (later resets continue the stream).

    The env truncates itself at max_episode_steps (task default when None); it is returned
    unwrapped so that env.unwrapped is the task and no TimeLimit double-counts.
    randomize draws the start (object placement, ee start); domain_randomization, when given,
    also draws the scene's physics, latency, cameras and lights at every reset (sim/randomize.py).
    """
    if task not in TASKS:
        raise ValueError(f"unknown sim task {task!r}; choose one of {sorted(TASKS)}")
    config = SimConfig(
        control_hz=control_hz,
        physics_hz=physics_hz,
        privileged=privileged,
        cameras=tuple(cameras),
        image_size=tuple(image_size),
        rotation=rotation,
        max_episode_steps=max_episode_steps,
        arm_xml=arm_xml,
        randomize=randomize,
        domain_randomization=domain_randomization,
    )
    env = TASKS[task](config)
    if seed is not None:
        env.reset(seed=seed)
    return env


__all__ = ["TASKS", "DomainRandomization", "SimConfig", "SimTaskEnv", "make_sim_env"]
