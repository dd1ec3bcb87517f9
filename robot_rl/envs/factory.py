"""The env seam: build an env from its config, in the project's observation format."""

from __future__ import annotations

import gymnasium as gym

from robot_rl.envs.config import EnvConfig, GymEnvConfig, RobotEnvConfig, SimEnvConfig
from robot_rl.envs.gym_adapter import StandardObsWrapper
from robot_rl.envs.robot_env import RobotEnv
from sim.tasks import TASKS, gym_id, make_sim_env


def make_env(cfg: EnvConfig, seed: int | None = None) -> gym.Env:
    """Build the env named by cfg. Observations follow robot_rl.transition; actions are in [-1, 1].

    A robot env connects to its topics at its first reset, not here, so building one to read its
    spaces (the learner does) touches no robot.
    """
    if isinstance(cfg, RobotEnvConfig):
        return RobotEnv(cfg, seed=seed)
    if isinstance(cfg, SimEnvConfig):
        return make_sim_env(cfg.task, cfg, seed=seed)
    if isinstance(cfg, GymEnvConfig):
        try:
            env = gym.make(cfg.id, max_episode_steps=cfg.max_episode_steps, **cfg.kwargs)
        except gym.error.Error as err:
            raise ValueError(f"env.id '{cfg.id}' could not be made: {err}") from err
        return StandardObsWrapper(env)
    raise TypeError(f"unknown env config {type(cfg).__name__}")


def sim_env_config(cfg: EnvConfig) -> SimEnvConfig | GymEnvConfig:
    """The config of the env scripted demos are recorded in: a robot env's own sim task (same
    spaces), a sim task's gymnasium id (env.id=robot_rl/PickCube-v0) that task, any other env
    itself."""
    task = _sim_task(cfg.id) if isinstance(cfg, GymEnvConfig) else None
    if task is not None:
        # make_sim_env's defaults (privileged false), as the gym route builds it
        return SimEnvConfig(
            **{"privileged": False, **cfg.kwargs}, task=task, max_episode_steps=cfg.max_episode_steps
        )
    if isinstance(cfg, RobotEnvConfig):
        return SimEnvConfig(
            task=cfg.task,
            control_hz=cfg.control_hz,
            privileged=cfg.privileged,
            cameras=list(cfg.cameras),
            image_size=list(cfg.image_size),
            rotation=cfg.rotation,
            max_episode_steps=cfg.max_episode_steps,
            randomize=cfg.randomize,
        )
    return cfg


def _sim_task(env_id: str) -> str | None:
    """The sim task a gymnasium id names (robot_rl/PickCube-v0, sim:robot_rl/PickCube-v0), else None."""
    name = env_id.rsplit(":", 1)[-1]  # gymnasium's "module:id" form
    return next((task for task in TASKS if gym_id(task) == name), None)
