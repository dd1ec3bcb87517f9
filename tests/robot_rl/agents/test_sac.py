"""Tests of robot_rl.agents: SAC losses, agent behaviour and state, BC, registry and configs."""

from __future__ import annotations

import io
from collections.abc import Iterator
from dataclasses import replace as dataclass_replace

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from robot_rl.agents import make_agent
from robot_rl.agents.base import Agent
from robot_rl.agents.bc import BCConfig
from robot_rl.agents.sac import (
    SACAgent,
    SACConfig,
    actor_loss,
    critic_loss,
    demo_bc_loss,
    td_target,
    temperature_loss,
)
from robot_rl.transition import Batch

D, A = 6, 3


def spaces(cams: tuple[str, ...] = ()) -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    d: dict[str, gym.Space] = {"state": gym.spaces.Box(-np.inf, np.inf, (D,), np.float32)}
    if cams:
        d["images"] = gym.spaces.Dict({c: gym.spaces.Box(0, 255, (64, 64, 3), np.uint8) for c in cams})
    return gym.spaces.Dict(d), gym.spaces.Box(-1, 1, (A,), np.float32)


def make_batch(b: int, seed: int = 0, cams: tuple[str, ...] = ()) -> Batch:
    rng = np.random.default_rng(seed)

    def obs() -> dict:
        o: dict = {"state": rng.standard_normal((b, D)).astype(np.float32)}
        if cams:
            o["images"] = {c: rng.integers(0, 255, (b, 64, 64, 3), dtype=np.uint8) for c in cams}
        return o

    return Batch(
        obs(), rng.uniform(-1, 1, (b, A)).astype(np.float32), rng.standard_normal(b).astype(np.float32),
        obs(), np.full(b, 0.99, np.float32),
    )  # fmt: skip


def batches(seed: int = 0, b: int = 32, cams: tuple[str, ...] = ()) -> Iterator[Batch]:
    i = seed
    while True:
        yield make_batch(b, i, cams)
        i += 1


def small_cfg(**kw) -> SACConfig:
    return SACConfig(**{"hidden_dims": [32, 32], "batch_size": 32, **kw})


# ---- losses on hand-computed cases ---------------------------------------------------------------


def test_td_target_by_hand() -> None:
    reward = torch.tensor([1.0, -0.5])
    discount = torch.tensor([0.9, 0.0])  # second sample terminated
    next_q = torch.tensor([[2.0, 5.0], [3.0, 4.0]])  # [M=2, B=2]: min per sample = [2, 4]
    logp = torch.tensor([-1.0, 0.5])
    alpha = torch.tensor(0.2)
    y = td_target(reward, discount, next_q, logp, alpha, backup_entropy=True)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * (2.0 + 0.2), -0.5]))
    y = td_target(reward, discount, next_q, logp, alpha, backup_entropy=False)
    torch.testing.assert_close(y, torch.tensor([1.0 + 0.9 * 2.0, -0.5]))


def test_critic_actor_temperature_losses_by_hand() -> None:
    q = torch.tensor([[1.0, 2.0], [3.0, 0.0]])
    loss, info = critic_loss(q, torch.tensor([1.0, 1.0]))
    assert loss.item() == pytest.approx((0 + 1 + 4 + 1) / 4) and "q_mean" in info
    loss, _ = actor_loss(q, torch.tensor([-1.0, 1.0]), torch.tensor(0.5))
    assert loss.item() == pytest.approx(((0.5 * -1 - 2.0) + (0.5 * 1 - 1.0)) / 2)
    log_alpha = torch.tensor(np.log(2.0), dtype=torch.float32, requires_grad=True)
    loss, info = temperature_loss(log_alpha, torch.tensor([1.0, 3.0]), target_entropy=-1.0)
    assert loss.item() == pytest.approx(2.0 * (-2.0 + 1.0)) and info["alpha"].item() == pytest.approx(2.0)
    loss.backward()
    assert log_alpha.grad.item() < 0  # entropy -2 < target -1 -> gradient step raises alpha


def test_demo_bc_loss_by_hand_counts_demo_rows_only() -> None:
    mode = torch.tensor([[0.0, 0.0], [1.0, -1.0], [0.5, 0.5]])
    action = torch.tensor([[1.0, 1.0], [0.0, -1.0], [0.5, -0.5]])
    loss, info = demo_bc_loss(mode, action, torch.tensor([False, True, True]))
    assert loss.item() == pytest.approx(((1.0 + 0.0) / 2 + (0.0 + 1.0) / 2) / 2)  # row 0 is online
    assert info["bc_loss"].item() == pytest.approx(loss.item())
    loss, _ = demo_bc_loss(mode, action, torch.zeros(3, dtype=torch.bool))
    assert loss.item() == 0.0


def test_bc_weight_pulls_the_actor_to_the_demo_actions() -> None:
    """With a large bc_weight the actor's mode moves to the demo rows' action, not the online rows'."""
    demo_action = np.array([0.8, -0.6, 0.4], np.float32)
    online_action = -demo_action

    def mixed() -> Iterator[Batch]:
        for i in range(10_000):
            batch = make_batch(32, i)
            batch.demo = np.arange(32) >= 16
            batch.action[:] = np.where(batch.demo[:, None], demo_action, online_action)
            yield batch

    agent = SACAgent(*spaces(), small_cfg(bc_weight=100.0, utd=1), seed=0)
    stream = mixed()
    first = agent.update(stream)["bc_loss"]
    for _ in range(300):
        last = agent.update(stream)["bc_loss"]
    assert last < 0.1 * first
    state = make_batch(64, 99_999).obs["state"]
    mode = np.stack([agent.act({"state": s}, deterministic=True) for s in state])
    assert np.abs(mode - demo_action).mean() < 0.2 < np.abs(mode - online_action).mean()


def test_bc_weight_needs_batches_that_mark_demo_rows() -> None:
    agent = SACAgent(*spaces(), small_cfg(bc_weight=1.0), seed=0)
    with pytest.raises(ValueError, match="demo rows"):
        agent.update(batches())  # make_batch leaves demo None
    assert "bc_loss" not in SACAgent(*spaces(), small_cfg(), seed=0).update(batches())


def test_min_over_random_subset_picks_subset_minimum(monkeypatch) -> None:
    import robot_rl.agents.sac as sac

    agent = SACAgent(*spaces(), small_cfg(num_critics=5, num_min_critics=2), seed=0)
    seen: dict = {}
    real_forward = agent.target_critic.forward

    def forward_spy(x, members=None, detach_params=False):
        seen["members"], seen["all"] = members, real_forward(x)  # all 5 members on the same input
        return real_forward(x, members, detach_params)

    real_td = sac.td_target

    def td_spy(reward, discount, next_q, next_log_prob, alpha, backup):
        seen["target"] = real_td(reward, discount, next_q, next_log_prob, alpha, backup)
        seen["by_hand"] = reward + discount * (next_q.min(0).values - alpha * next_log_prob)
        seen["next_q"] = next_q
        return seen["target"]

    monkeypatch.setattr(agent.target_critic, "forward", forward_spy)
    monkeypatch.setattr(sac, "td_target", td_spy)
    agent.update(batches())
    members = seen["members"]
    assert members.shape == (2,) and len(set(members.tolist())) == 2
    torch.testing.assert_close(seen["next_q"], seen["all"][members])  # only the subset is used
    subset_min = seen["all"][members].min(0).values
    assert torch.all(subset_min >= seen["all"].min(0).values)
    torch.testing.assert_close(seen["target"], seen["by_hand"])


# ---- agent behaviour --------------------------------------------------------------------------------


def test_act_shape_range_and_determinism() -> None:
    agent = make_agent("sac", *spaces(), small_cfg(), seed=0)
    assert isinstance(agent, Agent)
    obs = {"state": np.ones(D, np.float32)}
    a = agent.act(obs)
    assert a.shape == (A,) and a.dtype == np.float32 and np.all(np.abs(a) <= 1.0)
    np.testing.assert_array_equal(agent.act(obs, deterministic=True), agent.act(obs, deterministic=True))


def test_update_finite_metrics_and_changes_params() -> None:
    agent = SACAgent(*spaces(), small_cfg(num_critics=4, utd=3), seed=0)
    before = {k: v.clone() for k, v in agent.state_dict()["critic"].items()}
    actor_before = agent.policy_state()
    metrics = agent.update(batches())
    assert set(metrics) >= {"critic_loss", "actor_loss", "alpha", "entropy", "temperature_loss", "q_mean"}
    assert all(np.isfinite(v) for v in metrics.values())
    assert agent.num_updates == 3 == agent.updates_per_call
    assert any(not torch.equal(before[k], v) for k, v in agent.critic.state_dict().items())
    after = agent.policy_state()
    assert any(not torch.equal(actor_before[k], after[k]) for k in after)
    # target moved by tau only
    diff = (agent.target_critic.weights[0] - before["weights.0"]).abs().max()
    assert 0 < diff < (agent.critic.weights[0] - before["weights.0"]).abs().max()


def test_actor_warmup_trains_the_critic_alone_until_its_update_count() -> None:
    agent = SACAgent(*spaces(), small_cfg(utd=2, actor_warmup_updates=4), seed=0)
    actor_before, alpha_before = agent.policy_state(), agent.log_alpha.detach().clone()
    critic_before = {k: v.clone() for k, v in agent.critic.state_dict().items()}
    data = batches()
    for _ in range(2):  # 4 critic updates: the warm-up
        metrics = agent.update(data)
    assert {"actor_loss", "temperature_loss"} <= set(metrics)  # still logged
    assert all(torch.equal(actor_before[k], v) for k, v in agent.policy_state().items())
    assert torch.equal(alpha_before, agent.log_alpha.detach())
    assert any(not torch.equal(critic_before[k], v) for k, v in agent.critic.state_dict().items())
    agent.update(data)  # the first call after the warm-up steps the actor and the temperature
    assert any(not torch.equal(actor_before[k], v) for k, v in agent.policy_state().items())
    assert not torch.equal(alpha_before, agent.log_alpha.detach())


def test_state_dict_round_trip_identical_actions_and_next_update() -> None:
    a1 = SACAgent(*spaces(), small_cfg(num_critics=3, num_min_critics=2), seed=0)
    a1.update(batches(0))
    buf = io.BytesIO()
    torch.save(a1.state_dict(), buf)
    a2 = SACAgent(*spaces(), small_cfg(num_critics=3, num_min_critics=2), seed=123)
    buf.seek(0)
    a2.load_state_dict(torch.load(buf, weights_only=True))
    obs = {"state": np.full(D, 0.3, np.float32)}
    np.testing.assert_array_equal(a1.act(obs), a2.act(obs))  # same RNG state too
    m1, m2 = a1.update(batches(5)), a2.update(batches(5))
    assert m1 == m2
    for k, v in a1.critic.state_dict().items():
        torch.testing.assert_close(v, a2.critic.state_dict()[k], rtol=0, atol=0)


def test_policy_state_weights_only_load(tmp_path) -> None:
    a1 = SACAgent(*spaces(("wrist",)), small_cfg(feature_dim=8), seed=0)
    torch.save(a1.policy_state(), tmp_path / "p.pt")
    a2 = SACAgent(*spaces(("wrist",)), small_cfg(feature_dim=8), seed=1)
    a2.load_policy_state(torch.load(tmp_path / "p.pt", weights_only=True))
    obs = {"state": np.zeros(D, np.float32), "images": {"wrist": np.full((64, 64, 3), 90, np.uint8)}}
    np.testing.assert_array_equal(a1.act(obs, True), a2.act(obs, True))


def test_pixel_obs_two_cameras_update_trains_encoder() -> None:
    cams = ("wrist", "front")
    agent = SACAgent(*spaces(cams), small_cfg(feature_dim=8, batch_size=4), seed=0)
    enc_before = {k: v.clone() for k, v in agent.encoder.state_dict().items()}
    metrics = agent.update(batches(0, b=4, cams=cams))
    assert all(np.isfinite(v) for v in metrics.values())
    assert any(not torch.equal(enc_before[k], v) for k, v in agent.encoder.state_dict().items())
    obs = {"state": np.zeros(D, np.float32), "images": {c: np.zeros((64, 64, 3), np.uint8) for c in cams}}
    assert agent.act(obs).shape == (A,)


@pytest.mark.parametrize("read", [[], ["front"]])
def test_cameras_the_policy_reads_are_a_subset_and_the_rest_never_reach_it(read: list[str]) -> None:
    cams = ("wrist", "front")
    agent = SACAgent(*spaces(cams), small_cfg(feature_dim=8, batch_size=4, cameras=read), seed=0)
    assert agent.encoder.cameras == read
    assert agent.encoder.out_dim == D + 8 * len(read)
    metrics = agent.update(batches(0, b=4, cams=cams))  # batches carry both cameras
    assert all(np.isfinite(v) for v in metrics.values())
    obs = {"state": np.zeros(D, np.float32), "images": {c: np.zeros((64, 64, 3), np.uint8) for c in cams}}
    changed = {**obs, "images": {**obs["images"], "wrist": np.full((64, 64, 3), 255, np.uint8)}}
    # the wrist frame the policy does not read cannot change its action
    np.testing.assert_array_equal(agent.act(obs, True), agent.act(changed, True))


def test_bc_reads_only_its_cameras() -> None:
    agent = make_agent("bc", *spaces(("wrist",)), BCConfig(hidden_dims=[32], cameras=[]), seed=0)
    assert not agent.encoder.has_images
    metrics = agent.update(batches(0, b=8, cams=("wrist",)))
    assert np.isfinite(metrics["bc_loss"])


def test_cameras_the_env_lacks_or_named_twice_are_errors() -> None:
    with pytest.raises(ValueError, match=r"agent.cameras names \['side'\].*it has \['wrist'\]"):
        SACAgent(*spaces(("wrist",)), small_cfg(cameras=["side"]), seed=0)
    with pytest.raises(ValueError, match="each camera once"):
        SACConfig(cameras=["wrist", "wrist"])
    with pytest.raises(ValueError, match="each camera once"):
        BCConfig(cameras=["front", "front"])
    cfg = OmegaConf.merge(OmegaConf.structured(SACConfig), OmegaConf.from_dotlist(["cameras=[]"]))
    assert make_agent("sac", *spaces(("wrist",)), cfg, seed=0).encoder.cameras == []


def test_normalize_state_fits_once_on_the_first_update_and_ships_with_the_policy() -> None:
    agent = SACAgent(*spaces(), small_cfg(normalize_state=True), seed=0)
    shifted = (dataclass_replace(b, obs={"state": b.obs["state"] * 0.01 + 0.5}) for b in batches())
    agent.update(shifted)
    norm = agent.encoder.state_norm
    assert norm is not None and bool(norm.fitted)
    np.testing.assert_allclose(norm.mean.numpy(), 0.5, atol=0.003)  # the batches' states, not raw
    torch.testing.assert_close(agent.target_encoder.state_norm.mean, norm.mean)  # the target's too
    mean = norm.mean.clone()
    agent.update(batches(9))  # other states later: the statistics stay frozen
    torch.testing.assert_close(norm.mean, mean, rtol=0, atol=0)
    # an actor gets the statistics with the weights, and acts as the learner would
    actor = SACAgent(*spaces(), small_cfg(normalize_state=True), seed=1)
    actor.load_policy_state(agent.policy_state())
    obs = {"state": np.full(D, 0.5, np.float32)}
    np.testing.assert_array_equal(actor.act(obs, True), agent.act(obs, True))
    # a resumed learner does not refit
    resumed = SACAgent(*spaces(), small_cfg(normalize_state=True), seed=2)
    resumed.load_state_dict(agent.state_dict())
    assert not resumed.encoder.needs_state_fit


def test_bc_normalize_state_fits_on_the_demos() -> None:
    agent = make_agent("bc", *spaces(), BCConfig(hidden_dims=[32], normalize_state=True), seed=0)
    obs = np.full((64, D), 3.0, np.float32) + np.arange(64, dtype=np.float32)[:, None] * 1e-3
    demo = Batch({"state": obs}, np.zeros((64, A), np.float32), np.zeros(64, np.float32), {"state": obs},
                 np.zeros(64, np.float32))  # fmt: skip
    agent.update(iter([demo] * 17))
    np.testing.assert_allclose(agent.encoder.state_norm.mean.numpy(), obs.mean(0), rtol=1e-5)


# ---- BC, registry, config -----------------------------------------------------------------------


@pytest.mark.parametrize("loss", ["mse", "gaussian"])
def test_bc_reduces_loss_on_toy_data(loss: str) -> None:
    agent = make_agent("bc", *spaces(), BCConfig(hidden_dims=[64, 64], loss=loss, lr=3e-3), seed=0)
    rng = np.random.default_rng(0)
    obs = rng.standard_normal((256, D)).astype(np.float32)
    act = np.tanh(obs[:, :A] * 0.8).astype(np.float32)  # a learnable demo policy
    demo = Batch({"state": obs}, act, np.zeros(256, np.float32), {"state": obs}, np.zeros(256, np.float32))
    first = agent.update(iter([demo]))["action_mse"]
    for _ in range(150):
        last = agent.update(iter([demo]))["action_mse"]
    assert last < 0.3 * first
    a = agent.act({"state": obs[0]})
    np.testing.assert_array_equal(a, agent.act({"state": obs[0]}, deterministic=False))


def test_make_agent_and_config_errors() -> None:
    with pytest.raises(ValueError, match="unknown agent"):
        make_agent("ppo", *spaces())
    with pytest.raises(ValueError, match="unknown SACConfig keys"):
        make_agent("sac", *spaces(), {"num_critic": 3})
    with pytest.raises(ValueError, match="num_min_critics"):
        SACConfig(num_critics=2, num_min_critics=3)
    with pytest.raises(ValueError, match="tau"):
        SACConfig(tau=0.0)
    with pytest.raises(ValueError, match="encoder"):
        SACConfig(encoder="vit")
    with pytest.raises(ValueError, match="hidden_dims"):
        SACConfig(hidden_dims=[])
    for bad in (-0.1, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="bc_weight"):
            SACConfig(bc_weight=bad)
    with pytest.raises(ValueError, match="actor_warmup_updates"):
        SACConfig(actor_warmup_updates=-1)
    with pytest.raises(ValueError, match="loss"):
        BCConfig(loss="l1")


def test_structured_config_round_trip() -> None:
    cfg = OmegaConf.structured(SACConfig)
    cfg.num_critics = 10
    cfg.target_entropy = -2.0
    agent = make_agent("sac", *spaces(), cfg, seed=0)
    assert agent.cfg.num_critics == 10 and agent.target_entropy == -2.0
    assert SACAgent(*spaces(), SACConfig(), seed=0).target_entropy == -A / 2
