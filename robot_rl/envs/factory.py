"""The env seam: build an env from its config, in the project's observation format."""

from __future__ import annotations

import importlib.util

import gymnasium as gym

from robot_rl.envs.config import EnvConfig, GymEnvConfig, RobotEnvConfig, SimEnvConfig
from robot_rl.envs.gym_adapter import StandardObsWrapper
from robot_rl.envs.robot_env import RobotEnv
from robot_rl.imports import cwd_on_path, import_module
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
        return StandardObsWrapper(make_gym_env(cfg), seed=seed)
    raise TypeError(f"unknown env config {type(cfg).__name__}")


def make_gym_env(cfg: GymEnvConfig) -> gym.Env:
    """gym.make(env.id) after importing env.imports (the packages that register their ids on
    import); gymnasium's own `module:id` form works too. Both find modules in the current folder."""
    for name in cfg.imports:
        import_module(name, "env.imports")
    cwd_on_path()  # gymnasium imports the module of a `module:id` itself
    try:
        return gym.make(cfg.id, max_episode_steps=cfg.max_episode_steps, **cfg.kwargs)
    except ModuleNotFoundError as err:  # the module of `module:id`
        module = cfg.id.partition(":")[0]
        raise ValueError(
            f"env.id '{cfg.id}': cannot import '{module}' ({err.msg.split('.')[0]}); install it, run from "
            "the folder that holds it, or fix the name before ':'"
        ) from err
    except gym.error.Error as err:
        raise ValueError(f"env.id '{cfg.id}' could not be made: {err}; {_how_to_name(cfg.id)}") from err


def _how_to_name(env_id: str) -> str:
    """How to name the package that registers env_id, with a guess where its namespace is a module."""
    if ":" in env_id:
        return "check the id after ':' against the ids its module registers"
    namespace = env_id.split("/", 1)[0] if "/" in env_id else None
    if namespace and importlib.util.find_spec(namespace) is not None:
        return f"did you mean env.id={namespace}:{env_id} (imports {namespace}, which registers it)?"
    return f"if a package registers it, name it: env.id=<module>:{env_id} or env.imports=[<module>]"


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
