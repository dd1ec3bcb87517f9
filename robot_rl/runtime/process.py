"""Small set-up steps shared by the processes: threads, device, agent construction."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import gymnasium as gym
import torch

from robot_rl.agents.base import Agent
from robot_rl.agents.bc import BCAgent, BCConfig
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.config import TrainConfig


def set_torch_threads(n: int) -> None:
    """One thread by default: on a shared 2-core box two threads run up to 10x slower."""
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # already set in this process
        torch.set_num_interop_threads(1)


def supervisor_gone(parent_pid: int) -> bool:
    """True once the process that started us has died (we were re-parented): time to stop."""
    return os.getppid() != parent_pid


def post_status(status: Any, msg: dict[str, Any]) -> None:
    """Progress messages are best effort: a full or closed queue must never stop the robot."""
    with contextlib.suppress(Exception):
        status.put_nowait(msg)


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' was asked for but torch sees no CUDA device")
    return name


def build_agent(
    cfg: TrainConfig, obs_space: gym.spaces.Dict, action_space: gym.spaces.Box, device: str
) -> Agent:
    """The agent seam: the config's type names the algorithm."""
    if isinstance(cfg.agent, SACConfig):
        return SACAgent(obs_space, action_space, cfg.agent, device=device, seed=cfg.seed)
    if isinstance(cfg.agent, BCConfig):
        return BCAgent(obs_space, action_space, cfg.agent, device=device, seed=cfg.seed)
    raise TypeError(f"unknown agent config {type(cfg.agent).__name__}")


def is_offline(cfg: TrainConfig) -> bool:
    """Agents that learn from demos only (BC) sample the demo buffer alone."""
    return isinstance(cfg.agent, BCConfig)
