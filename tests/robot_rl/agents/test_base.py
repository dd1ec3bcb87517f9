"""The agents' one registry: built by name or from a config object; offline read from the class."""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import numpy as np
import pytest

from robot_rl.agents.base import AGENTS, agent_class, agent_configs, make_agent
from robot_rl.agents.bc import BCAgent, BCConfig
from robot_rl.agents.sac import SACAgent, SACConfig


def spaces() -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    obs = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (5,), np.float32)})
    return obs, gym.spaces.Box(-1, 1, (2,), np.float32)


def test_a_config_object_names_its_agent():
    sac = make_agent(SACConfig(hidden_dims=[32, 32]), *spaces(), seed=0)
    bc = make_agent(BCConfig(hidden_dims=[16]), *spaces(), seed=0)
    assert isinstance(sac, SACAgent) and sac.cfg.hidden_dims == [32, 32]
    assert isinstance(bc, BCAgent) and bc.cfg.hidden_dims == [16]


def test_name_and_config_build_the_same_agent():
    by_name = make_agent("sac", *spaces(), SACConfig(hidden_dims=[32, 32]), seed=4)
    by_config = make_agent(SACConfig(hidden_dims=[32, 32]), *spaces(), seed=4)
    obs = {"state": np.linspace(-1, 1, 5, dtype=np.float32)}
    np.testing.assert_array_equal(
        by_name.act(obs, deterministic=True), by_config.act(obs, deterministic=True)
    )


def test_offline_is_the_agent_classes():
    assert agent_class("bc").offline and agent_class(BCConfig()).offline
    assert not agent_class("sac").offline and not make_agent("sac", *spaces()).offline


def test_every_registered_agent_has_a_config_for_hydra():
    from hydra.core.config_store import ConfigStore

    from robot_rl.config import register_configs

    register_configs()
    stored = ConfigStore.instance().list("agent")
    assert set(agent_configs()) == set(AGENTS) == {"sac", "bc", "flow_bc", "diffusion_bc", "residual", "dsrl"}
    assert {f"{name}.yaml" for name in AGENTS} <= set(stored)


def test_unregistered_configs_and_mixed_calls_are_refused():
    @dataclass
    class PPOConfig:
        clip: float = 0.2

    with pytest.raises(ValueError, match="no agent is registered for config PPOConfig"):
        make_agent(PPOConfig(), *spaces())
    with pytest.raises(ValueError, match="not both"):
        make_agent(SACConfig(), *spaces(), cfg=SACConfig())
    with pytest.raises(ValueError, match="unknown agent 'ppo'"):
        agent_class("ppo")
