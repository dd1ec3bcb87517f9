"""Best-of-N with the critic (agent.best_of_n, on SAC and so on residual and DSRL): act with the
draw the critic ranks highest, and back the TD target up through the same max."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.agents import sac
from robot_rl.agents.base import make_agent
from robot_rl.agents.common import prepare_batch
from robot_rl.agents.residual import ResidualConfig
from robot_rl.agents.sac import SACAgent, SACConfig, pick_best
from robot_rl.transition import Batch

D, A, N = 4, 3, 6
PREFERRED = torch.tensor([0.5, -0.8, 0.2])  # the stand-in critic's favourite action


def stand_in_critic(
    x: torch.Tensor, members: torch.Tensor | None = None, detach_params: bool = False
) -> torch.Tensor:
    """[B, F + A] -> [K', B]: the same score from every member, highest at PREFERRED."""
    q = -(x[:, -A:] - PREFERRED).square().sum(-1)
    return torch.stack([q] * (2 if members is None else len(members)))


def spaces(state: int = D) -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    obs = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (state,), np.float32)})
    return obs, gym.spaces.Box(-1, 1, (A,), np.float32)


def agent(n: int = N, seed: int = 0) -> SACAgent:
    return make_agent(
        SACConfig(hidden_dims=[32, 32], best_of_n=n, backup_entropy=False), *spaces(), seed=seed
    )


def draws(agent: SACAgent, features: torch.Tensor, state: torch.Tensor) -> torch.Tensor:
    """The N actions the agent draws from this generator state: [N, B, A]."""
    g = torch.Generator().set_state(state)
    return agent.actor(features.repeat(agent.cfg.best_of_n, 1), g)[0].view(
        agent.cfg.best_of_n, len(features), A
    )


def test_pick_best_takes_each_rows_highest_score_first_on_ties():
    candidates = torch.arange(3 * 2 * 1, dtype=torch.float32).view(3, 2, 1)
    best, index = pick_best(candidates, torch.tensor([[0.0, 5.0], [2.0, 5.0], [1.0, 4.0]]))
    assert index.tolist() == [1, 0] and best[:, 0].tolist() == [2.0, 1.0]


def test_acting_picks_the_argmax_under_a_stand_in_critic():
    bon = agent()
    bon._critic_fn = stand_in_critic
    rng = np.random.default_rng(0)
    for _ in range(10):
        obs = {"state": rng.normal(size=D).astype(np.float32)}
        features = bon.encoder({"state": torch.as_tensor(obs["state"])[None]})
        with torch.no_grad():
            candidates = draws(bon, features, bon.generator.get_state())[:, 0]
        scores = stand_in_critic(candidates).mean(0)
        np.testing.assert_allclose(bon.act(obs), candidates[scores.argmax()].numpy(), atol=1e-6)
        assert scores.max() > scores.min()  # the pick is a real choice among different draws


def test_the_td_target_backs_up_through_the_same_max(monkeypatch):
    bon = agent()
    bon._target_fn = stand_in_critic
    targets: list[torch.Tensor] = []
    loss = sac.critic_loss
    monkeypatch.setattr(sac, "critic_loss", lambda q, target: (targets.append(target), loss(q, target))[1])
    rng = np.random.default_rng(1)
    batch = Batch(
        obs={"state": rng.normal(size=(8, D)).astype(np.float32)},
        action=rng.uniform(-1, 1, (8, A)).astype(np.float32),
        reward=np.full(8, 0.5, np.float32),
        next_obs={"state": rng.normal(size=(8, D)).astype(np.float32)},
        discount=np.full(8, 0.9, np.float32),
    )
    tb = prepare_batch(batch, bon.device, augment=False)
    with torch.no_grad():
        candidates = draws(bon, bon.encoder(tb.next_obs), bon.generator.get_state())  # [N, 8, A]
    q = -(candidates - PREFERRED).square().sum(-1)  # [N, 8]
    bon._critic_step(tb)
    torch.testing.assert_close(targets[0], 0.5 + 0.9 * q.max(0).values)


def test_the_weights_carry_the_critic_and_an_actor_picks_as_the_learner_does():
    learner, actor = agent(seed=1), agent(seed=1)
    with torch.no_grad():
        for p in learner.critic.parameters():
            p.normal_(0.0, 1.0)
    actor.load_policy_state(learner.policy_state())
    assert any(k.startswith("critic.") for k in learner.policy_state())  # best-of-N acts with it
    rng = np.random.default_rng(2)
    for _ in range(5):
        obs = {"state": rng.normal(size=D).astype(np.float32)}
        np.testing.assert_array_equal(actor.act(obs), learner.act(obs))
    assert not any(k.startswith("critic.") for k in agent(n=1).policy_state())  # plain SAC ships no critic


def test_a_residual_best_of_n_stays_within_its_scale(tmp_path):
    base = tmp_path / "base.pt"
    base.write_bytes(b"w")
    cfg = ResidualConfig(base=str(base), hidden_dims=[32, 32], best_of_n=N, scale=0.1)
    residual = make_agent(cfg, *spaces(D + A), seed=0)
    with torch.no_grad():
        for p in residual.actor.parameters():
            p.normal_(0.0, 5.0)
    rng = np.random.default_rng(3)
    for _ in range(50):
        state = np.concatenate([rng.normal(size=D), rng.uniform(-1, 1, A)]).astype(np.float32)
        for deterministic in (True, False):
            assert np.max(np.abs(residual.act({"state": state}, deterministic) - state[D:])) <= 0.1 + 1e-6


def test_best_of_n_must_be_at_least_one():
    with pytest.raises(ValueError, match="best_of_n"):
        SACConfig(best_of_n=0)
