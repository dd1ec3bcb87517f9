"""DSRL: SAC in a frozen chunked base's noise box, its critic fed whole decisions, pinned to its
base, weights-only state. The env side (the noise -> chunk map, the bound, bad bases at start-up)
is tests/robot_rl/runtime/test_noise_env.py."""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from robot_rl.agents.base import make_agent
from robot_rl.agents.bc import BCConfig
from robot_rl.agents.dsrl import DsrlAgent, DsrlConfig
from robot_rl.agents.flow_bc import FlowBCConfig
from robot_rl.data.mixer import DemoMixer
from robot_rl.data.replay import ReplayBuffer
from robot_rl.runtime.transport import load_weights, save_weights

D, N, H = 5, 8, 3  # state size, noise size (chunk x action), the base's act_horizon


def spaces() -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    obs = gym.spaces.Dict({"state": gym.spaces.Box(-np.inf, np.inf, (D,), np.float32)})
    return obs, gym.spaces.Box(-1, 1, (N,), np.float32)


def a_base(tmp_path: Path, content: bytes = b"flow weights v1", agent_cfg: object | None = None) -> str:
    """A base run folder as far as the agent reads it: config.yaml (the agent's horizons) and the
    weights file it pins."""
    folder = tmp_path / f"base_{content.hex()[-8:]}"
    (folder / "weights").mkdir(parents=True)
    agent_cfg = agent_cfg if agent_cfg is not None else FlowBCConfig(chunk=4, act_horizon=H)
    (folder / "config.yaml").write_text(OmegaConf.to_yaml({"agent": asdict(agent_cfg)}))
    (folder / "weights" / "policy.pt").write_bytes(content)
    return str(folder)


def agent(base: str, seed: int = 0, **cfg) -> DsrlAgent:
    built = make_agent(
        DsrlConfig(base=base, hidden_dims=[32, 32], batch_size=16, utd=2, **cfg), *spaces(), seed=seed
    )
    assert isinstance(built, DsrlAgent)
    return built


def observations(n: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"state": rng.normal(size=D).astype(np.float32)} for _ in range(n)]


def decisions_buffer(seed: int = 0) -> ReplayBuffer:
    """Episodes of decisions as NoiseChunkEnv stores them: each noise held for H ticks (the last
    one cut by the episode's end), a reward of 1 at the terminating tick."""
    rng = np.random.default_rng(seed)
    buf = ReplayBuffer(500, {"state": ((D,), np.float32)}, N, gamma=0.9, seed=seed)
    for _ in range(6):
        steps = 10
        noise = np.repeat(rng.uniform(-1, 1, (4, N)), H, axis=0)[:steps].astype(np.float32)
        ep = {
            "state": rng.normal(size=(steps, D)).astype(np.float32),
            "action": noise,
            "reward": np.eye(steps, dtype=np.float32)[-1],
            "terminated": np.eye(steps, dtype=bool)[-1],
            "truncated": np.zeros(steps, bool),
        }
        buf.add_episode(ep, {"state": rng.normal(size=D).astype(np.float32)})
    return buf


def assert_same_acts(a: DsrlAgent, b: DsrlAgent) -> None:
    acts = [(a.act(o, deterministic=True), b.act(o, deterministic=True)) for o in observations(8, seed=5)]
    for ours, theirs in acts:
        np.testing.assert_array_equal(ours, theirs)


def test_the_agent_acts_in_the_noise_box_and_its_critic_takes_whole_decisions(tmp_path):
    dsrl = agent(a_base(tmp_path))
    assert dsrl.critic_chunk == H  # the learner feeds decisions of up to the base's act_horizon
    with torch.no_grad():
        for p in dsrl.actor.parameters():
            p.normal_(0.0, 5.0)  # saturated: tanh is what bounds it, so noise <= noise_bound
    for obs in observations(50):
        for deterministic in (True, False):
            u = dsrl.act(obs, deterministic)
            assert u.shape == (N,) and np.all(np.abs(u) <= 1.0)


def test_updates_on_chunk_transitions(tmp_path):
    dsrl = agent(a_base(tmp_path), best_of_n=3)
    batches = DemoMixer(decisions_buffer(), None).iterate_chunks(16, dsrl.critic_chunk)
    for _ in range(4):
        info = dsrl.update(batches)
        assert all(np.isfinite(v) for v in info.values())
    assert dsrl.num_updates == 8


def test_weights_load_weights_only_and_pin_the_base(tmp_path):
    base = a_base(tmp_path)
    learner = agent(base, seed=1, best_of_n=4)
    batches = DemoMixer(decisions_buffer(), None).iterate_chunks(16, H)
    learner.update(batches)
    save_weights(tmp_path / "policy.pt", 3, learner.policy_state())
    version, state = load_weights(tmp_path / "policy.pt")  # weights_only=True inside
    assert version == 3 and any(k.startswith("critic.") for k in state)  # best-of-N acts with it
    actor = agent(base, seed=1, best_of_n=4)
    actor.load_policy_state(state)
    actor.generator.set_state(learner.generator.get_state())  # best-of-N draws its candidates
    assert_same_acts(actor, learner)
    other = agent(a_base(tmp_path, b"another flow"), best_of_n=4)
    with pytest.raises(ValueError, match="differs from the base the weights came from") as err:
        other.load_policy_state(state)
    assert learner.base_id in str(err.value) and other.base_id in str(err.value)


def test_resume_restores_everything_and_refuses_another_base(tmp_path):
    base = a_base(tmp_path)
    trained = agent(base, seed=3)
    trained.update(DemoMixer(decisions_buffer(), None).iterate_chunks(16, H))
    torch.save(trained.state_dict(), tmp_path / "learner.pt")
    state = torch.load(tmp_path / "learner.pt", weights_only=True)  # as the learner resumes
    resumed = agent(base, seed=4)
    resumed.load_state_dict(state)
    assert resumed.num_updates == trained.num_updates and resumed.base_id == trained.base_id
    assert_same_acts(resumed, trained)
    with pytest.raises(ValueError, match="the checkpoint"):
        agent(a_base(tmp_path, b"changed"), seed=4).load_state_dict(state)


def test_a_base_without_noise_to_steer_is_named(tmp_path):
    with pytest.raises(ValueError, match=r"agent\.base=no/such/run: no such run folder"):
        agent("no/such/run")
    with pytest.raises(ValueError, match=r"agent\.base=sim\.experts:ReachExpert: DSRL steers the noise"):
        agent("sim.experts:ReachExpert")
    bc = a_base(tmp_path, b"bc", BCConfig())
    with pytest.raises(ValueError, match=f"agent.base={bc}: the agent in .* is not a chunked policy"):
        agent(bc)


@pytest.mark.parametrize(
    ("fields", "names"),
    [
        ({"base": ""}, "agent.base"),
        ({"noise_bound": 0.0}, "noise_bound"),
        ({"gripper": "discrete"}, "gripper"),
    ],
)
def test_bad_config_is_refused_naming_the_field(tmp_path, fields, names):
    with pytest.raises(ValueError, match=names):
        DsrlConfig(**({"base": a_base(tmp_path)} | fields))
