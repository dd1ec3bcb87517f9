"""The agent seam: the Agent protocol the runtime calls, and the one registry of algorithms.

AGENTS names each algorithm's (agent class, config class). make_agent builds an agent from a name
(tests, users) or from a config object (the runtime's cfg.agent: its type names the algorithm), and
robot_rl.config registers every config class as hydra's agent=<name>, so a new algorithm is one
module plus one AGENTS entry.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch

from robot_rl.transition import Batch, Obs

__all__ = ["AGENTS", "Agent", "agent_class", "agent_configs", "make_agent", "to_config"]


@runtime_checkable
class Agent(Protocol):
    """What the runtime needs from an algorithm (SAC, residual, diffusion, BC).

    The actor process builds the same agent from the same config and only calls act() and
    load_policy_state(); the learner calls update() and the state methods.
    """

    # True: learns from demonstrations alone (BC), so the learner samples only the demo buffer and
    # starts as soon as it holds demos; False: learns from the actors' transitions too (SAC).
    # An agent that acts on an observation history in action chunks also has an attribute
    # `window = (obs_horizon, chunk)`: the learner then feeds it WindowBatch windows
    # (robot_rl/data/windows.py) instead of transitions. One whose critic backs up whole decisions
    # of several ticks (DSRL) has `critic_chunk = most ticks per decision`: the learner then feeds
    # it chunk transitions (windows.gather_chunks).
    offline: bool

    def act(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        """One unbatched observation -> float32[A] action in [-1, 1]."""
        ...

    def reset(self) -> None:
        """A new episode starts: drop any state act() keeps between calls (an observation history,
        the rest of an action chunk). The actor and evaluation call it before each episode."""
        ...

    def update(self, batches: Iterator[Batch]) -> dict[str, float]:
        """Take as many batches as the algorithm's UTD needs; return scalar metrics."""
        ...

    @property
    def updates_per_call(self) -> int:
        """Gradient steps one update() call makes (its UTD loop length)."""
        ...

    def policy_state(self) -> dict[str, torch.Tensor]:
        """Weights the actor needs (a flat tensor dict, safe for weights_only loading)."""
        ...

    def load_policy_state(self, state: dict[str, torch.Tensor]) -> None: ...

    def state_dict(self) -> dict[str, Any]:
        """Everything to resume training: networks, optimisers, temperature."""
        ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


def _sac() -> tuple[type, type]:
    from robot_rl.agents.sac import SACAgent, SACConfig

    return SACAgent, SACConfig


def _bc() -> tuple[type, type]:
    from robot_rl.agents.bc import BCAgent, BCConfig

    return BCAgent, BCConfig


def _flow_bc() -> tuple[type, type]:
    from robot_rl.agents.flow_bc import FlowBCAgent, FlowBCConfig

    return FlowBCAgent, FlowBCConfig


def _diffusion_bc() -> tuple[type, type]:
    from robot_rl.agents.diffusion_bc import DiffusionBCAgent, DiffusionBCConfig

    return DiffusionBCAgent, DiffusionBCConfig


def _residual() -> tuple[type, type]:
    from robot_rl.agents.residual import ResidualAgent, ResidualConfig

    return ResidualAgent, ResidualConfig


def _dsrl() -> tuple[type, type]:
    from robot_rl.agents.dsrl import DsrlAgent, DsrlConfig

    return DsrlAgent, DsrlConfig


# name -> () -> (agent class, config class); imported lazily so one agent's deps never load another's.
AGENTS: dict[str, Callable[[], tuple[type, type]]] = {
    "sac": _sac,
    "bc": _bc,
    "flow_bc": _flow_bc,
    "diffusion_bc": _diffusion_bc,
    "residual": _residual,
    "dsrl": _dsrl,
}


def to_config(config_cls: type, cfg: Any) -> Any:
    """None, a config instance, a mapping or an OmegaConf DictConfig -> an instance of config_cls.

    Unknown keys raise ValueError naming them (and the dataclass's __post_init__ checks values).
    """
    if cfg is None:
        return config_cls()
    if isinstance(cfg, config_cls):
        return cfg
    if not isinstance(cfg, Mapping):
        try:  # OmegaConf DictConfig (structured or not) -> plain dict
            from omegaconf import DictConfig, OmegaConf

            if isinstance(cfg, DictConfig):
                cfg = OmegaConf.to_container(cfg, resolve=True)
        except ImportError:
            pass
    if isinstance(cfg, Mapping):
        cfg = {k: v for k, v in cfg.items() if k != "name"}  # hydra groups often carry the name
        known = {f.name for f in dataclasses.fields(config_cls)}
        unknown = sorted(set(cfg) - known)
        if unknown:
            raise ValueError(f"unknown {config_cls.__name__} keys {unknown}; valid keys: {sorted(known)}")
        return config_cls(**cfg)
    if dataclasses.is_dataclass(cfg):
        raise ValueError(f"expected a {config_cls.__name__}, got {type(cfg).__name__}")
    raise ValueError(f"cannot build {config_cls.__name__} from {type(cfg).__name__}")


def agent_configs() -> dict[str, type]:
    """name -> config class of every registered agent (hydra's agent group)."""
    return {name: load()[1] for name, load in AGENTS.items()}


def agent_class(agent: str | Any) -> type:
    """The agent class registered under a name, or for a config object (by its type)."""
    return _lookup(agent)[0]


def _lookup(agent: str | Any) -> tuple[type, type]:
    if isinstance(agent, str):
        if agent not in AGENTS:
            raise ValueError(f"unknown agent {agent!r}; choose one of {sorted(AGENTS)}")
        return AGENTS[agent]()
    for load in AGENTS.values():
        agent_cls, config_cls = load()
        if type(agent) is config_cls:  # exact: ResidualConfig is a SACConfig too
            return agent_cls, config_cls
    known = sorted(c.__name__ for c in agent_configs().values())
    raise ValueError(f"no agent is registered for config {type(agent).__name__}; known configs: {known}")


def make_agent(
    agent: str | Any,
    obs_space: gym.spaces.Dict,
    action_space: gym.spaces.Box,
    cfg: Any = None,
    device: str = "cpu",
    seed: int | None = None,
) -> Agent:
    """Build an agent for these spaces: by name (a key of AGENTS: "sac", "bc", "flow_bc", "diffusion_bc",
    "residual", "dsrl"; cfg as accepted by to_config), or from its config object (make_agent(train_cfg.agent,
    ...); cfg must then be None)."""
    agent_cls, config_cls = _lookup(agent)
    if not isinstance(agent, str):
        if cfg is not None:
            raise ValueError("make_agent takes a name with a cfg, or a config object alone, not both")
        cfg = agent
    return agent_cls(obs_space, action_space, to_config(config_cls, cfg), device=device, seed=seed)
