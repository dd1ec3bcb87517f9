"""Residual SAC: zero at the start, bounded by its scale, pinned to its base, weights-only state."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.agents.base import make_agent
from robot_rl.agents.residual import ResidualAgent, ResidualConfig, base_identity
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.runtime.transport import load_weights, save_weights
from robot_rl.transition import Batch

D, A = 5, 3  # env state, action; the agent's state is D + A (the base's action last)


def spaces() -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    obs = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (D + A,), np.float32)})
    return obs, gym.spaces.Box(-1, 1, (A,), np.float32)


def a_base(tmp_path: Path, content: bytes = b"base weights v1") -> str:
    path = tmp_path / f"base_{len(content)}_{content[-2:].hex()}.pt"
    path.write_bytes(content)
    return str(path)


def agent(base: str, seed: int = 0, **cfg) -> ResidualAgent:
    config = ResidualConfig(base=base, hidden_dims=[32, 32], batch_size=16, utd=2, **cfg)
    built = make_agent(config, *spaces(), seed=seed)
    assert isinstance(built, ResidualAgent)
    return built


def observations(n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [
        {"state": np.concatenate([rng.normal(size=D), rng.uniform(-1, 1, A)]).astype(np.float32)}
        for _ in range(n)
    ]


def scramble(actor: torch.nn.Module, seed: int = 0) -> None:
    """Large random weights everywhere: the residual saturates, as far from zero as it gets."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in actor.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 5.0)


def batch(n: int, seed: int = 0) -> Batch:
    obs = np.stack([o["state"] for o in observations(2 * n, seed)])
    rng = np.random.default_rng(seed)
    return Batch(
        obs={"state": obs[:n]},
        action=rng.uniform(-1, 1, (n, A)).astype(np.float32),
        reward=rng.random(n).astype(np.float32),
        next_obs={"state": obs[n:]},
        discount=np.full(n, 0.99, np.float32),
    )


def test_at_step_0_the_executed_action_is_the_base(tmp_path):
    residual = agent(a_base(tmp_path))
    for obs in observations(20):
        np.testing.assert_array_equal(residual.act(obs, deterministic=True), obs["state"][D:])
    # with progressive exploration a collecting step at step 0 is the base's too, noise and all
    progressive = agent(a_base(tmp_path), progressive_steps=100)
    for obs in observations(50, seed=1):
        np.testing.assert_array_equal(progressive.act(obs), obs["state"][D:])


@pytest.mark.parametrize("scale", [0.05, 0.2, 1.0])
def test_the_residual_never_moves_the_action_further_than_scale(tmp_path, scale):
    residual = agent(a_base(tmp_path), scale=scale)
    scramble(residual.actor)
    moved = []
    for obs in observations(200, seed=2):
        for deterministic in (True, False):
            action = residual.act(obs, deterministic=deterministic)
            assert np.all(np.abs(action) <= 1.0)
            moved.append(np.max(np.abs(action - obs["state"][D:])))
    assert max(moved) <= scale + 1e-6
    assert max(moved) > 0.5 * scale  # the scrambled residual does push: the bound is what holds it
    # the training-time path (the critic's and the actor loss's actions) is bounded the same way
    features = torch.as_tensor(np.stack([o["state"] for o in observations(64, seed=3)]))
    executed, _ = residual.actor(features)
    assert torch.all((executed - features[:, D:]).abs() <= scale + 1e-6)


def test_updates_train_the_residual_and_keep_it_bounded(tmp_path):
    residual = agent(a_base(tmp_path))
    batches = iter([batch(16, seed=s) for s in range(20)])
    for _ in range(5):
        info = residual.update(batches)
        assert all(np.isfinite(v) for v in info.values())
    assert residual.update_calls == 5 and residual.num_updates == 10
    last = [m for m in residual.actor.modules() if isinstance(m, torch.nn.Linear)][-1]
    assert last.weight.abs().sum() > 0  # no longer zero: it learned
    for obs in observations(20, seed=4):
        assert np.max(np.abs(residual.act(obs) - obs["state"][D:])) <= residual.cfg.scale + 1e-6


def test_weights_load_weights_only_and_pin_the_base(tmp_path):
    base = a_base(tmp_path)
    learner = agent(base, seed=1)
    scramble(learner.actor)
    learner.update_calls = 7
    save_weights(tmp_path / "policy.pt", 3, learner.policy_state())
    version, state = load_weights(tmp_path / "policy.pt")  # weights_only=True inside
    actor = agent(base, seed=2)
    actor.load_policy_state(state)
    assert version == 3 and actor.update_calls == 7
    for obs in observations(10, seed=5):
        np.testing.assert_array_equal(
            actor.act(obs, deterministic=True), learner.act(obs, deterministic=True)
        )

    other = agent(a_base(tmp_path, b"another base"))
    with pytest.raises(ValueError, match="differs from the base the weights came from") as err:
        other.load_policy_state(state)
    assert learner.base_id in str(err.value) and other.base_id in str(err.value)
    sac = make_agent(SACConfig(hidden_dims=[32, 32]), *spaces(), seed=0)
    with pytest.raises(ValueError, match="no base identity"):
        actor.load_policy_state(sac.policy_state())


def test_resume_restores_everything_and_refuses_another_base(tmp_path):
    base = a_base(tmp_path)
    trained = agent(base, seed=3)
    batches = iter([batch(16, seed=s) for s in range(10)])
    for _ in range(3):
        trained.update(batches)
    torch.save(trained.state_dict(), tmp_path / "learner.pt")
    state = torch.load(tmp_path / "learner.pt", weights_only=True)
    resumed = agent(base, seed=4)
    resumed.load_state_dict(state)
    assert resumed.update_calls == 3 and resumed.num_updates == trained.num_updates
    for obs in observations(5, seed=6):
        np.testing.assert_array_equal(
            resumed.act(obs, deterministic=True), trained.act(obs, deterministic=True)
        )
    with pytest.raises(ValueError, match="the checkpoint"):
        agent(a_base(tmp_path, b"changed"), seed=4).load_state_dict(state)


def test_progressive_exploration_adds_the_residual_more_often_as_the_learner_trains(tmp_path):
    base = a_base(tmp_path)
    learner = agent(base, progressive_steps=100)
    scramble(learner.actor)
    actor = agent(base, seed=5, progressive_steps=100)

    def residual_share(update_calls: int) -> float:
        learner.update_calls = update_calls
        actor.load_policy_state(learner.policy_state())
        obs = observations(400, seed=update_calls)
        return float(np.mean([not np.array_equal(actor.act(o), o["state"][D:]) for o in obs]))

    assert residual_share(0) == 0.0
    assert 0.15 < residual_share(30) < 0.45
    assert residual_share(100) == 1.0 and residual_share(500) == 1.0


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"base": ""}, "agent.base"),
        ({"scale": 0.0}, "agent.scale"),
        ({"scale": 1.5}, "agent.scale"),
        ({"progressive_steps": -1}, "progressive_steps"),
        ({"gripper": "discrete"}, "gripper"),
        ({"normalize_state": True}, "normalize_state"),
    ],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, fields, names):
    with pytest.raises(ValueError, match=names):
        ResidualConfig(**({"base": a_base(tmp_path)} | fields))


def test_a_base_that_is_neither_a_run_nor_an_import_path_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"agent\.base=no/such/run: no such run folder"):
        base_identity("no/such/run")
    (tmp_path / "not_a_run").mkdir()
    with pytest.raises(ValueError, match="is it a robot-rl run folder"):
        base_identity(str(tmp_path / "not_a_run"))
    with pytest.raises(ValueError, match="needs a ResidualConfig"):
        ResidualAgent(*spaces(), None)


def test_the_state_must_carry_the_base_action(tmp_path):
    obs = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (A,), np.float32)})
    with pytest.raises(ValueError, match="must end with the base's action"):
        make_agent(ResidualConfig(base=a_base(tmp_path)), obs, spaces()[1])


def test_the_registry_tells_residual_from_sac_configs(tmp_path):
    assert type(make_agent(SACConfig(hidden_dims=[8]), *spaces())) is SACAgent
    by_name = make_agent("residual", *spaces(), {"base": a_base(tmp_path), "hidden_dims": [8]})
    assert isinstance(by_name, ResidualAgent) and not by_name.offline
