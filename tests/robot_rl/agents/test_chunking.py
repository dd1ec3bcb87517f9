"""What every chunked BC agent (flow_bc, diffusion_bc) shares, checked on each: shapes, fitting the
demos' normalisation, chunks across ticks and episodes, temporal ensembling, EMA acting weights
that ship weights-only, resuming, learning a tiny dataset, and `robot-rl train agent=<name>`.
The helpers here serve test_flow_bc.py and test_diffusion_bc.py too."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.agents.base import agent_class, agent_configs, make_agent
from robot_rl.agents.chunking import ChunkedBCAgent, prepare_windows
from robot_rl.data.mixer import DemoMixer
from robot_rl.data.replay import ReplayBuffer

D, A = 3, 2
SMALL = {"hidden_dims": [64, 64], "batch_size": 16, "norm_batches": 2, "noise_per_obs": 2, "chunk": 4}
# each algorithm's few sampling steps for the tests, and the name of its loss metric
ALGORITHMS = {
    "flow_bc": ({"flow_steps": 3}, "flow_loss"),
    "diffusion_bc": ({"diffusion_steps": 20, "ddim_steps": 3}, "diffusion_loss"),
}
both = pytest.mark.parametrize("name", list(ALGORITHMS))


def spaces(camera: bool = False) -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    obs = {"state": gym.spaces.Box(-np.inf, np.inf, (D,), np.float32)}
    if camera:
        obs["images"] = gym.spaces.Dict({"front": gym.spaces.Box(0, 255, (24, 24, 3), np.uint8)})
    return gym.spaces.Dict(obs), gym.spaces.Box(-1, 1, (A,), np.float32)


def make(name: str, seed: int = 0, camera: bool = False, **overrides) -> ChunkedBCAgent:
    """A small agent of algorithm `name` (a key of ALGORITHMS) acting 2 actions of each 4-step chunk."""
    cfg = agent_configs()[name](**{**SMALL, "act_horizon": 2, **ALGORITHMS[name][0], **overrides})
    built = make_agent(cfg, *spaces(camera), seed=seed)
    assert isinstance(built, agent_class(name))
    return built


def obs(i: float, camera: bool = False) -> dict:
    o = {"state": np.full(D, i, np.float32)}
    if camera:
        o["images"] = {"front": np.full((24, 24, 3), int(i) % 256, np.uint8)}
    return o


def demo_buffer(camera: bool = False, episodes: int = 3, steps: int = 12) -> ReplayBuffer:
    """Demos whose action is a fixed function of the state, so a policy can fit them."""
    spec = ReplayBuffer.obs_spec_from_space(spaces(camera)[0])
    buf = ReplayBuffer(200, spec, A, seed=0)
    rng = np.random.default_rng(0)
    for _ in range(episodes):
        state = rng.uniform(-1, 1, (steps, D)).astype(np.float32)
        ep = {
            "state": state,
            "action": np.stack([np.tanh(state[:, 0]), 0.5 * state[:, 1]], 1).astype(np.float32),
            "reward": np.zeros(steps, np.float32),
            "terminated": np.eye(steps, dtype=bool)[-1],
            "truncated": np.zeros(steps, bool),
        }
        if camera:
            ep["image_front"] = rng.integers(0, 255, (steps, 24, 24, 3), dtype=np.uint8)
        buf.add_episode(ep, None)
    return buf


def windows(agent_: ChunkedBCAgent, buf: ReplayBuffer):
    return DemoMixer(buf, None).iterate_windows(agent_.cfg.batch_size, *agent_.window)


class ChunkStub:
    """sample_chunk stand-in: chunk n holds 10 * n + step index in every dimension."""

    def __init__(self, chunk: int) -> None:
        self.calls, self.chunk = 0, chunk

    def __call__(self) -> np.ndarray:
        self.calls += 1
        values = 10.0 * self.calls + np.arange(self.chunk)
        return np.repeat(values[:, None], A, 1).astype(np.float32) / 100.0


@both
@pytest.mark.parametrize("camera", [False, True])
def test_shapes(name: str, camera: bool):
    a = make(name, camera=camera)
    batch = next(windows(a, demo_buffer(camera)))
    assert batch.obs["state"].shape == (16, 2, D) and batch.action.shape == (16, 4, A)
    metrics = a.update(windows(a, demo_buffer(camera)))
    loss = ALGORITHMS[name][1]
    assert set(metrics) == {loss} and np.isfinite(metrics[loss])
    action = a.act(obs(0.3, camera))
    assert action.shape == (A,) and action.dtype == np.float32 and np.all(np.abs(action) <= 1.0)
    assert a.sample_chunk().shape == (4, A)


@both
def test_the_first_update_fits_the_statistics_on_real_entries_only(name: str):
    a = make(name)
    buf = demo_buffer()
    a.update(windows(a, buf))
    held = buf.action[buf.has_trans]
    torch.testing.assert_close(a.normalizer.action_center, torch.as_tensor((held.max(0) + held.min(0)) / 2))


@both
def test_a_chunk_runs_across_ticks_and_an_episode_end_drops_its_rest(name: str):
    a = make(name, act_horizon=3)
    stub = ChunkStub(4)
    a.sample_chunk = stub
    acted = [a.act(obs(i))[0] * 100 for i in range(4)]
    np.testing.assert_allclose(acted, [10, 11, 12, 20])  # 3 of each chunk, then a new one
    a.reset()  # mid-chunk: steps 21 and 22 are dropped
    np.testing.assert_allclose(a.act(obs(9))[0] * 100, 30)
    assert stub.calls == 3
    np.testing.assert_array_equal([o["state"][0] for o in a._history], [9, 9])  # no history carried over


@both
def test_temporal_ensembling_blends_every_prediction_for_this_tick(name: str):
    a = make(name, temporal_ensembling=True, ensemble_decay=0.5)
    a.sample_chunk = ChunkStub(4)
    got = [a.act(obs(i))[0] * 100 for i in range(6)]
    # tick k: chunk j (made at tick j - 1, for j > k - 4) votes its entry k - j + 1, oldest weighted most
    for k, value in enumerate(got):
        makers = [j for j in range(max(0, k - 3), k + 1)]
        votes = np.array([10 * (j + 1) + k - j for j in makers], float)
        weights = np.exp(-0.5 * np.arange(len(makers)))
        np.testing.assert_allclose(value, (weights * votes).sum() / weights.sum(), rtol=1e-5)


@both
def test_acting_uses_the_ema_weights_and_they_lag_the_online_ones(name: str):
    a = make(name)
    batches = windows(a, demo_buffer())
    for _ in range(5):
        a.update(batches)
    online = torch.cat([p.flatten() for p in a.denoiser.parameters()])
    ema = torch.cat([p.flatten() for p in a.ema_denoiser.parameters()])
    assert not torch.allclose(online, ema)
    state = a.act_generator.get_state()
    before = a.act(obs(0.5))
    with torch.no_grad():
        for p in a.denoiser.parameters():
            p.zero_()
    a.reset()
    a.act_generator.set_state(state)
    np.testing.assert_array_equal(a.act(obs(0.5)), before)  # the online weights play no part
    for p in a.ema_denoiser.parameters():
        p.add_(1.0)
    a.reset()
    a.act_generator.set_state(state)
    assert not np.array_equal(a.act(obs(0.5)), before)  # the EMA weights do


@pytest.mark.parametrize(
    ("name", "camera", "overrides"),
    [
        ("flow_bc", False, {}),
        ("flow_bc", True, {}),
        ("diffusion_bc", False, {}),
        ("diffusion_bc", True, {}),
        ("diffusion_bc", False, {"ddim_eta": 1.0}),  # DDIM's noise on the way, from the act generator
    ],
)
def test_policy_state_loads_weights_only_and_acts_the_same_in_a_fresh_agent(
    name: str, camera: bool, overrides
):
    trained = make(name, seed=3, camera=camera, **overrides)
    batches = windows(trained, demo_buffer(camera))
    for _ in range(3):
        trained.update(batches)
    buf = io.BytesIO()
    torch.save(trained.policy_state(), buf)
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    assert {"normalizer.state_mean", "normalizer.action_center", "denoiser.net.net.0.weight"} <= set(state)
    fresh = make(name, seed=3, camera=camera, **overrides)
    fresh.load_policy_state(state)
    assert bool(fresh.normalizer.fitted)
    for i in range(5):  # three chunk samples with act_horizon 2
        np.testing.assert_array_equal(trained.act(obs(i, camera)), fresh.act(obs(i, camera)))


@both
def test_resuming_from_state_dict_continues_the_same_training(name: str):
    a, b = make(name, seed=1), make(name, seed=2)
    buf = demo_buffer()
    a.update(windows(a, buf))
    checkpoint = io.BytesIO()  # as the learner's checkpoint goes: saved, then loaded weights-only
    torch.save(a.state_dict(), checkpoint)
    checkpoint.seek(0)
    b.load_state_dict(torch.load(checkpoint, weights_only=True))
    batch = prepare_windows(next(windows(a, buf)), a.device, augment=False)
    la = a.chunk_loss(batch, torch.Generator().manual_seed(0))[0]
    lb = b.chunk_loss(batch, torch.Generator().manual_seed(0))[0]
    torch.testing.assert_close(la, lb)
    assert b.num_updates == 1 and b.state_dict()["config"] == a.state_dict()["config"]
    step = next(windows(a, buf))
    a.update(iter([step]))
    b.update(iter([step]))
    np.testing.assert_array_equal(a.act(obs(0.2)), b.act(obs(0.2)))  # same EMA weights, same draws


@both
def test_it_fits_a_fixed_batch(name: str):
    a = make(name, seed=0, lr=1e-3, noise_per_obs=8)
    batch = next(windows(a, demo_buffer()))
    a.update(iter([batch] * (a.cfg.norm_batches + 1)))
    fixed = prepare_windows(batch, a.device, augment=False)
    first = a.chunk_loss(fixed, torch.Generator().manual_seed(0))[0].item()
    for _ in range(300):
        a.update(iter([batch]))
    last = a.chunk_loss(fixed, torch.Generator().manual_seed(0))[0].item()
    assert last < 0.2 * first, (first, last)


@both
@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"act_horizon": 17}, "act_horizon"),
        ({"obs_horizon": 0}, "obs_horizon"),
        ({"noise_per_obs": 0}, "noise_per_obs"),
        ({"ema_decay": 1.0}, "ema_decay"),
        ({"time_dim": 7}, "time_dim"),
        ({"encoder": "vit"}, "encoder"),
    ],
)
def test_bad_config_values_are_named(name: str, override: dict, message: str):
    with pytest.raises(ValueError, match=message):
        agent_configs()[name](**override)


@both
def test_it_is_registered_as_an_offline_chunked_agent(name: str):
    cls = agent_class(name)
    assert issubclass(cls, ChunkedBCAgent) and cls.offline and agent_class(agent_configs()[name]()) is cls
    assert make(name).window == (2, 4)
    defaults = agent_configs()[name]()  # diffusion_policy's horizons
    assert (defaults.obs_horizon, defaults.chunk, defaults.act_horizon) == (2, 16, 8)


@pytest.mark.slow
@both
def test_robot_rl_train_smoke(tmp_path, name: str):
    """`robot-rl train agent=<name>` on pick_cube: the learner trains on windows, the actor acts in
    chunks on the shipped weights, and `robot-rl eval` reloads them."""
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    args = [
        f"agent={name}",
        "total_env_steps=300",
        f"run_dir={run}",
        "demos.num_episodes=2",
        "agent.hidden_dims=[64,64]",
        "agent.batch_size=32",
        "agent.norm_batches=2",
        "eval_every_steps=200",
        "eval_episodes=1",
        "final_eval_episodes=2",
        "weights_every_updates=20",
        "progress=false",
    ]
    cli = [sys.executable, "-m", "robot_rl.cli"]
    res = subprocess.run([*cli, "train", *args], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    result = json.loads((run / "eval.json").read_text())
    assert result["updates"] > 0 and result["episodes"] == 2
    policy = torch.load(run / "weights" / "policy.pt", map_location="cpu", weights_only=True)["policy"]
    assert bool(policy["normalizer.fitted"]) and "denoiser.net.net.0.weight" in policy
    res = subprocess.run([*cli, "eval", str(run), "--episodes", "1"], capture_output=True, text=True, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    assert json.loads(res.stdout.strip().splitlines()[-1])["episodes"] == 1
