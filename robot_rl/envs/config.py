"""The env configs, one per kind of env (env=sim | gym | robot); robot_rl.config registers them
with hydra. They live next to the envs so that robot_rl.envs never imports robot_rl.config.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from omegaconf import MISSING

from robot_rl.envs.robot_env import RobotEnvConfig
from sim.tasks import SimConfig

__all__ = ["EnvConfig", "GymEnvConfig", "RobotEnvConfig", "SimEnvConfig"]


@dataclass
class SimEnvConfig(SimConfig):
    """env=sim: a MuJoCo task from sim/, built from SimConfig's fields (sim/tasks/base.py) plus
    which task. Differs from SimConfig only in privileged's default (the learning default: object
    poses in the state; the pixel route sets false).

    e.g. env.task=reach env.cameras=[wrist,front] env.domain_randomization.mass_scale=[0.8,1.2]
    ++env.domain_randomization.camera_pos_m={front:0.02} (a dict field is set with ++);
    the ranges are sim/randomize.py's DomainRandomization.
    """

    privileged: bool = True
    kind: str = "sim"
    task: str = "pick_cube"
    # Training curriculum, collection only (evaluation starts at the task's own reset): this share
    # of the collected episodes starts where the scripted demo policy (demos.policy, else the
    # task's expert) left the task after 1..expert_start_max_steps ticks, as Nair et al. 2018
    # reset to demo states. sim/expert_starts.py.
    expert_starts: float = 0.0
    expert_start_max_steps: int = 40

    def __post_init__(self) -> None:
        super().__post_init__()
        if not 0.0 <= self.expert_starts <= 1.0:
            raise ValueError(f"env.expert_starts must be in [0, 1], got {self.expert_starts}")
        if self.expert_start_max_steps < 1:
            raise ValueError(f"env.expert_start_max_steps must be >= 1, got {self.expert_start_max_steps}")


@dataclass
class GymEnvConfig:
    """Any registered gymnasium env with Box or Dict observations and a Box action space
    (the sim tasks too: env.id=robot_rl/PickCube-v0)."""

    kind: str = "gym"
    id: str = MISSING  # e.g. Hopper-v5; a package's id: pkg:task-v0 (gymnasium imports pkg first)
    kwargs: dict[str, Any] = field(default_factory=dict)
    max_episode_steps: int | None = None
    # Modules imported in every process before gym.make, for packages that register their ids
    # on import (the current folder is searched too): env.imports=[my_pkg]
    imports: list[str] = field(default_factory=list)


EnvConfig = SimEnvConfig | GymEnvConfig | RobotEnvConfig
