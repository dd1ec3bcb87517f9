"""The frozen base of a residual or DSRL agent (robot_rl/agents/residual.py, dsrl.py), run where
the env runs.

with_base(agent_cfg, env) is the env a residual agent acts in: BaseActionEnv runs the base on every
observation the env gives (after a reset and after each step, an episode's last one included) and
appends its action, clipped to [-1, 1], to the state. Every path that builds an env for an agent
goes through it: the run folder's spaces (so a bad base stops start-up before the folder is made),
the actor, the final and `robot-rl eval` evaluations, and scripted demos (recorded with the base
running beside the scripted policy). Imported demos (demos=zarr) get their base actions once, at
import, from their stored observations (demo_labeller); a base that reads the live simulator rather
than the observation (the sim tasks' experts) fits scripted demos only.

agent.base is one of
- a run folder of this project, of any agent but residual: its config.yaml names the agent and the
  env, its weights/policy.pt holds the weights; the base acts deterministically (a flow policy
  samples all the same);
- a weights file in a run folder (<run>/weights/policy.pt), or beside a copy of its run's config.yaml;
- module:Class, called with the env to make policy(obs) -> action, with an optional reset() (called
  after each env reset) and close(), as demos.policy is: the sim tasks' experts
  (sim.experts:PickCubeExpert), a scripted controller, a client of a VLA served elsewhere. Any
  observation_space / action_space attributes it has must equal the env's.
A base made for other spaces than the env's stops start-up naming both.

A DSRL agent's env is robot_rl/runtime/noise_env.NoiseChunkEnv around its base, which must be a
flow_bc or diffusion_bc run (folder or weights file) with a deterministic sampler; with_base builds
it on the same paths, so a bad base stops start-up by name there too.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from functools import partial
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from omegaconf import DictConfig, OmegaConf

from robot_rl.agents.base import Agent, agent_configs, make_agent, to_config
from robot_rl.agents.chunking import ChunkedBCAgent
from robot_rl.agents.dsrl import DsrlConfig, base_act_horizon
from robot_rl.agents.residual import ResidualConfig, base_config_file, base_weights_file
from robot_rl.envs.config import EnvConfig, GymEnvConfig, RobotEnvConfig, SimEnvConfig
from robot_rl.envs.factory import make_env, sim_env_config
from robot_rl.envs.gym_adapter import reports_success
from robot_rl.imports import import_object
from robot_rl.runtime.noise_env import NoiseChunkEnv
from robot_rl.runtime.transport import load_weights
from robot_rl.transition import IMAGE_PREFIX, Obs, flat_to_obs

_ENV_CONFIGS = {"sim": SimEnvConfig, "gym": GymEnvConfig, "robot": RobotEnvConfig}


def _nothing() -> None:
    """A base without reset() or close()."""


@dataclass
class FrozenBase:
    """A loaded base: policy(obs) -> action; reset() at every episode start; close() at the end."""

    spec: str  # agent.base as given, for messages
    policy: Callable[[Obs], Any]
    reset: Callable[[], None] = field(default=_nothing)
    close: Callable[[], None] = field(default=_nothing)

    def action(self, obs: Obs, action_shape: tuple[int, ...]) -> np.ndarray:
        """The base's action for one observation, float32 clipped to [-1, 1]; a wrong shape or a
        value that is not finite raises naming the base."""
        action = np.asarray(self.policy(obs), np.float32)
        if action.shape != tuple(action_shape):
            raise ValueError(
                f"agent.base={self.spec} returned an action of shape {action.shape}; the env's is "
                f"{tuple(action_shape)}"
            )
        if not np.all(np.isfinite(action)):
            raise ValueError(f"agent.base={self.spec} returned a non-finite action {action.tolist()}")
        return np.clip(action, -1.0, 1.0)


# ---- loading -------------------------------------------------------------------------------------


def load_base(spec: str, env: gym.Env) -> FrozenBase:
    """agent.base -> the frozen base for this env (made with it, for a module:Class), checked
    against the env's spaces; raises ValueError naming the base."""
    weights = base_weights_file(spec)
    return _import_base(spec, env) if weights is None else _run_base(spec, weights, env)


def _import_base(spec: str, env: gym.Env) -> FrozenBase:
    factory = import_object(spec, "agent.base")
    try:
        policy = factory(env)
    except Exception as err:  # a user's class: say whose it was
        raise ValueError(f"agent.base={spec}: making the policy with the env failed: {err!r}") from err
    for name in ("observation_space", "action_space"):
        declared = getattr(policy, name, None)
        if declared is not None and declared != getattr(env, name):
            raise ValueError(f"agent.base={spec} has {name} {declared}; the env's is {getattr(env, name)}")
    return FrozenBase(spec, policy, getattr(policy, "reset", _nothing), getattr(policy, "close", _nothing))


def _run_base(spec: str, weights: Path, env: gym.Env) -> FrozenBase:
    agent = load_run_policy(spec, weights, env)
    return FrozenBase(spec, partial(agent.act, deterministic=True), agent.reset)


def load_run_policy(spec: str, weights: Path, env: gym.Env) -> Agent:
    """The agent of the base run that `weights` belong to, with those weights, checked against
    the env's spaces; raises ValueError naming the base."""
    config_path = base_config_file(spec, weights)
    run = OmegaConf.load(config_path)
    agent_cfg = _agent_config(spec, run, config_path)
    base_env = make_env(_env_config(spec, run, config_path))  # for its spaces; a robot env stays idle
    obs_space, action_space = base_env.observation_space, base_env.action_space
    base_env.close()
    theirs = describe_spaces(obs_space, action_space)
    ours = describe_spaces(env.observation_space, env.action_space)
    if theirs != ours:
        raise ValueError(f"agent.base={spec} was trained on {theirs}; this env has {ours}")
    agent = make_agent(agent_cfg, obs_space, action_space, seed=0)
    try:
        agent.load_policy_state(load_weights(weights)[1])
    except (RuntimeError, KeyError, ValueError) as err:
        raise ValueError(f"agent.base={spec}: {weights} does not load as its run's agent ({err})") from err
    return agent


def load_noise_base(spec: str, env: gym.Env) -> ChunkedBCAgent:
    """A DSRL agent's base: a flow_bc or diffusion_bc run's policy for this env whose sampler is
    deterministic given the noise; raises ValueError naming the base otherwise."""
    base_act_horizon(spec)  # a chunked policy's run folder or weights file, by its config
    weights = base_weights_file(spec)
    assert weights is not None
    agent = load_run_policy(spec, weights, env)
    if not isinstance(agent, ChunkedBCAgent):
        raise ValueError(
            f"agent.base={spec} is a {type(agent).__name__}; DSRL steers the initial noise of a flow_bc or "
            "diffusion_bc policy"
        )
    if getattr(agent.cfg, "ddim_eta", 0.0) > 0.0:
        raise ValueError(
            f"agent.base={spec} samples with ddim_eta={agent.cfg.ddim_eta}; DSRL needs a sampler that is "
            "deterministic given the noise (ddim_eta=0)"
        )
    return agent


def _agent_config(spec: str, run: DictConfig, where: Path) -> Any:
    """The base run's agent config: the registered config whose fields hold every key the run
    saved (config.yaml holds them all), the smallest such when one extends another."""
    node = OmegaConf.to_container(run.get("agent") or {}, resolve=True)
    assert isinstance(node, dict)
    keys = set(node) - {"name"}
    fits = sorted(
        (len(fields(cls)), name, cls)
        for name, cls in agent_configs().items()
        if keys and keys <= {f.name for f in fields(cls)}
    )
    if not fits or (len(fits) > 1 and fits[0][0] == fits[1][0]):
        found = "none" if not fits else " and ".join(name for _, name, _ in fits)
        raise ValueError(f"agent.base={spec}: the agent in {where} fits {found} of the known agents")
    config_cls = fits[0][2]
    if config_cls in (ResidualConfig, DsrlConfig):
        raise ValueError(f"agent.base={spec} is a {fits[0][1]} run; a base must be a policy of its own")
    return to_config(config_cls, node)


def _env_config(spec: str, run: DictConfig, where: Path) -> EnvConfig:
    node = run.get("env")
    kind = node.get("kind") if node is not None else None
    if kind not in _ENV_CONFIGS:
        raise ValueError(f"agent.base={spec}: {where} has no env of a known kind ({sorted(_ENV_CONFIGS)})")
    return OmegaConf.to_object(OmegaConf.merge(OmegaConf.structured(_ENV_CONFIGS[kind]), node))


def describe_spaces(obs_space: gym.spaces.Dict, action_space: gym.spaces.Box) -> str:
    """'state (D,), cameras {...}, action (A,)': what a base and an env must agree on."""
    images = obs_space.spaces.get("images")
    cameras = {c: tuple(s.shape) for c, s in images.spaces.items()} if images is not None else {}
    return f"state {tuple(obs_space['state'].shape)}, cameras {cameras}, action {tuple(action_space.shape)}"


# ---- the env a residual agent acts in ------------------------------------------------------------


class BaseActionEnv(gym.ObservationWrapper):
    """obs {"state": [D], ...} -> {"state": [D + A] = state | the base's action, ...}; the images
    pass unchanged. The base is reset after every env reset, then sees that first observation."""

    def __init__(self, env: gym.Env, base: FrozenBase) -> None:
        super().__init__(env)
        self.base = base
        self.action_shape = tuple(env.action_space.shape)
        state = env.observation_space["state"]
        bound = np.ones(int(np.prod(self.action_shape)), np.float32)
        low = np.concatenate([np.broadcast_to(state.low, state.shape).ravel(), -bound])
        high = np.concatenate([np.broadcast_to(state.high, state.shape).ravel(), bound])
        self.observation_space = gym.spaces.Dict(
            {**env.observation_space.spaces, "state": gym.spaces.Box(low, high, dtype=np.float32)}
        )

    @property
    def reports_success(self) -> bool:
        return reports_success(self.env)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict]:
        obs, info = self.env.reset(seed=seed, options=options)
        self.base.reset()  # after the env's: a scripted base reads the new scene
        return self.observation(obs), info

    def observation(self, obs: Obs) -> Obs:
        return {**obs, "state": with_base_action(obs["state"], self.base.action(obs, self.action_shape))}

    def close(self) -> None:
        try:
            self.base.close()
        finally:
            super().close()


def with_base_action(state: Any, action: np.ndarray) -> np.ndarray:
    """state [D], base action [A] -> float32 [D + A]: the residual agent's state."""
    return np.concatenate([np.asarray(state, np.float32).ravel(), action])


def with_base(agent_cfg: Any, env: gym.Env) -> gym.Env:
    """The env as the agent acts in it: a residual agent's sees its base's action in the state; a
    DSRL agent's takes its base's noise (NoiseChunkEnv); any other agent's is the env itself. A bad
    base raises (and closes the env)."""
    if not isinstance(agent_cfg, ResidualConfig | DsrlConfig):
        return env
    try:
        if isinstance(agent_cfg, DsrlConfig):
            return NoiseChunkEnv(env, load_noise_base(agent_cfg.base, env), agent_cfg.noise_bound)
        return BaseActionEnv(env, load_base(agent_cfg.base, env))
    except BaseException:
        env.close()
        raise


# ---- imported demos ------------------------------------------------------------------------------


def append_base_actions(
    base: FrozenBase, steps: dict[str, np.ndarray], final_obs: dict[str, np.ndarray] | None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray] | None]:
    """An episode in the store's form -> the same with the base's action appended to every state,
    the final observation's too; the base is reset first and sees the frames in order."""
    action_shape = tuple(steps["action"].shape[1:])
    obs_keys = [k for k in steps if k == "state" or k.startswith(IMAGE_PREFIX)]
    frames = [{k: steps[k][t] for k in obs_keys} for t in range(len(steps["state"]))]
    frames += [final_obs] if final_obs is not None else []
    base.reset()
    states = [with_base_action(f["state"], base.action(flat_to_obs(f), action_shape)) for f in frames]
    labelled = {**steps, "state": np.stack(states[: len(steps["state"])])}
    final = None if final_obs is None else {**final_obs, "state": states[-1]}
    return labelled, final


@contextlib.contextmanager
def demo_labeller(
    agent_cfg: Any, env_cfg: EnvConfig, log: Callable[[str], None] = print
) -> Iterator[Callable[..., tuple[dict, dict | None]] | None]:
    """For a residual agent, append_base_actions with its base (made with the env demos are
    recorded in); None for any other agent."""
    if not isinstance(agent_cfg, ResidualConfig):
        yield None
        return
    env = make_env(sim_env_config(env_cfg))
    base = None
    try:
        base = load_base(agent_cfg.base, env)
        log(f"demos: the base ({agent_cfg.base}) labels each imported step from its stored observation")
        yield partial(append_base_actions, base)
    finally:
        if base is not None:
            base.close()
        env.close()
