"""MuJoCo tasks as gymnasium envs, built by make_sim_env (observation and action layouts: sim/task_spec.py).

Every task in TASKS is also registered with gymnasium as robot_rl/<Task>-v0 (pick_cube ->
robot_rl/PickCube-v0), with make_sim_env's keywords:

    import gymnasium, sim
    env = gymnasium.make("robot_rl/PickCube-v0", cameras=["wrist", "front"], privileged=False)
    # or, without importing sim first: gymnasium.make("sim:robot_rl/PickCube-v0")

The env truncates itself at its task's limit (SimConfig.max_episode_steps, the task's default when
None), so the ids are registered without a TimeLimit. gymnasium.make's own max_episode_steps=N
wraps one around the env: it ends episodes at N when N is below the env's limit and changes
nothing above it; to lengthen episodes pass config=SimConfig(max_episode_steps=N) instead.
"""

from __future__ import annotations

import dataclasses
from typing import Any

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
GYM_NAMESPACE = "robot_rl"
_CONFIG_FIELDS = frozenset(f.name for f in dataclasses.fields(SimConfig))


def make_sim_env(
    task: str = "pick_cube", config: SimConfig | None = None, *, seed: int | None = None, **overrides: Any
) -> gymnasium.Env:
    """Build a task env from config (SimConfig() when None), each keyword replacing that field,
    e.g. make_sim_env("reach", cameras=["front"], privileged=True). seed, when given, seeds the
    first reset (later resets continue the stream).

    The env truncates itself at max_episode_steps (task default when None); it is returned
    unwrapped so that env.unwrapped is the task and no TimeLimit double-counts.
    randomize draws the start (object placement, ee start); domain_randomization, when given,
    also draws the scene's physics, latency, cameras and lights at every reset (sim/randomize.py).
    """
    if task not in TASKS:
        raise ValueError(f"unknown sim task {task!r}; choose one of {sorted(TASKS)}")
    unknown = sorted(set(overrides) - _CONFIG_FIELDS)
    if unknown:
        fields = sorted(_CONFIG_FIELDS)
        raise TypeError(f"make_sim_env got unknown keywords {unknown}; SimConfig's fields are {fields}")
    config = config if config is not None else SimConfig()
    if overrides:
        config = dataclasses.replace(config, **overrides)  # re-runs SimConfig's checks
    env = TASKS[task](config)
    if seed is not None:
        env.reset(seed=seed)
    return env


def gym_id(task: str) -> str:
    """The gymnasium id of a task: pick_cube -> robot_rl/PickCube-v0."""
    return f"{GYM_NAMESPACE}/{''.join(part.capitalize() for part in task.split('_'))}-v0"


def register_tasks() -> None:
    """Register every task in TASKS with gymnasium (again after adding one to TASKS at run time)."""
    for task in TASKS:
        if gym_id(task) not in gymnasium.registry:
            gymnasium.register(
                gym_id(task),
                entry_point="sim.tasks:make_sim_env",
                kwargs={"task": task},
                max_episode_steps=None,  # the env truncates itself (module doc)
            )


register_tasks()

__all__ = [
    "TASKS",
    "DomainRandomization",
    "SimConfig",
    "SimTaskEnv",
    "gym_id",
    "make_sim_env",
    "register_tasks",
]
