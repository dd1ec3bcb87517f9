"""The agent seam: the Agent protocol the runtime calls, and the registry that builds agents by name."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Mapping
from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np
import torch

from robot_rl.transition import Batch, Obs

__all__ = ["AGENTS", "Agent", "make_agent", "to_config"]


@runtime_checkable
class Agent(Protocol):
    """What the runtime needs from an algorithm (SAC, residual, diffusion, BC).

    The actor process builds the same agent from the same config and only calls act() and
    load_policy_state(); the learner calls update() and the state methods.
    """

    def act(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        """One unbatched observation -> float32[A] action in [-1, 1]."""
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


# name -> () -> (agent class, config class); imported lazily so one agent's deps never load another's.
AGENTS: dict[str, Callable[[], tuple[type, type]]] = {"sac": _sac, "bc": _bc}


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


def make_agent(
    name: str,
    obs_space: gym.spaces.Dict,
    action_space: gym.spaces.Box,
    cfg: Any = None,
    device: str = "cpu",
    seed: int | None = None,
) -> Agent:
    """Build agent `name` ("sac" | "bc") for these spaces; cfg as accepted by to_config."""
    if name not in AGENTS:
        raise ValueError(f"unknown agent {name!r}; choose one of {sorted(AGENTS)}")
    agent_cls, config_cls = AGENTS[name]()
    return agent_cls(obs_space, action_space, to_config(config_cls, cfg), device=device, seed=seed)
