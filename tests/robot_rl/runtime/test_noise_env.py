"""DSRL's env: the agent's action is a flow_bc or diffusion_bc base's initial noise, bounded, mapped
to a chunk by the base's deterministic sampler and executed over control ticks; a bad base stops
start-up by name."""

from __future__ import annotations

from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest
import torch
from test_residual_base import REACH, A, bc_run, policy_run

from robot_rl.agents.chunking import encode_window
from robot_rl.agents.diffusion_bc import DiffusionBCConfig, ddim_sample
from robot_rl.agents.dsrl import DsrlConfig
from robot_rl.agents.flow_bc import FlowBCConfig, euler_sample
from robot_rl.agents.residual import ResidualConfig
from robot_rl.config import DemoConfig, SimEnvConfig, TrainConfig
from robot_rl.envs.factory import make_env
from robot_rl.runtime.noise_env import NoiseChunkEnv
from robot_rl.runtime.residual_base import with_base
from robot_rl.runtime.run_folder import open_run_folder

CHUNK, HORIZON = 4, 2  # the bases' chunk and executed horizon
SMALL = {"hidden_dims": [32], "chunk": CHUNK, "act_horizon": HORIZON, "obs_horizon": 2}
BASES = {
    "flow_bc": FlowBCConfig(**SMALL, flow_steps=3),
    "diffusion_bc": DiffusionBCConfig(**SMALL, diffusion_steps=20, ddim_steps=3),
}
both = pytest.mark.parametrize("name", list(BASES))


def dsrl(base: str | Path, **fields) -> DsrlConfig:
    return DsrlConfig(base=str(base), hidden_dims=[32, 32], **fields)


def noise_env(tmp_path: Path, name: str = "flow_bc", **fields) -> NoiseChunkEnv:
    run, _ = policy_run(tmp_path / name, BASES[name])
    env = with_base(dsrl(run, **fields), make_env(REACH, seed=0))
    assert isinstance(env, NoiseChunkEnv)
    return env


class Recorder(gym.Wrapper):
    """Remembers every action the env below it executes."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.actions: list[np.ndarray] = []

    def step(self, action):
        self.actions.append(np.asarray(action).copy())
        return self.env.step(action)


def expected_chunk(base, name: str, history: list[dict], noise: np.ndarray) -> np.ndarray:
    """The base's sampler run by hand: its EMA nets, its normalisation, this noise."""
    state = torch.as_tensor(np.stack([o["state"] for o in history]))[None]
    cond = encode_window(base.ema_encoder, base.normalizer, {"state": state})
    x = torch.as_tensor(noise, dtype=torch.float32)[None]
    if name == "flow_bc":
        out = euler_sample(base.ema_denoiser, cond, x, base.cfg.flow_steps)
    else:
        out = ddim_sample(base.ema_denoiser, base.alpha_bars, cond, x, base.cfg.ddim_steps, 0.0, True)
    return base.normalizer.unaction(out.view(CHUNK, A)).clamp(-1, 1).detach().numpy()[:HORIZON]


@both
def test_the_noise_maps_to_the_chunk_of_the_bases_own_deterministic_sampler(tmp_path, name):
    env = noise_env(tmp_path, name, noise_bound=1.5)
    recorder = Recorder(env.env)
    env.env = recorder
    assert env.action_space.shape == (CHUNK * A,)
    rng = np.random.default_rng(0)
    obs, _ = env.reset(seed=0)
    history = [obs, obs]  # the first observation stands in for the one before it
    for _ in range(3):  # three decisions of HORIZON ticks each
        u = rng.uniform(-1, 1, CHUNK * A).astype(np.float32)
        want = expected_chunk(env.base, name, history[-2:], 1.5 * u)
        for tick in range(HORIZON):
            obs, _, terminated, truncated, info = env.step(u if tick == 0 else -u)  # ignored mid-chunk
            history.append(obs)
            np.testing.assert_array_equal(info["executed_action"], u)  # the noise in effect is stored
            assert not (terminated or truncated)
        np.testing.assert_allclose(np.stack(recorder.actions[-HORIZON:]), want, atol=1e-6)
    env.close()


def test_no_noise_entry_ever_exceeds_the_bound(tmp_path):
    env = noise_env(tmp_path, noise_bound=0.7)
    seen: list[np.ndarray] = []
    sample = env.base.sample_chunk
    env.base.sample_chunk = lambda noise=None: seen.append(np.asarray(noise)) or sample(noise)
    rng = np.random.default_rng(0)
    env.reset(seed=0)
    for _ in range(40):  # actions far outside [-1, 1] too, as a broken policy might send
        _, _, terminated, truncated, _ = env.step((rng.normal(size=CHUNK * A) * 5).astype(np.float32))
        if terminated or truncated:
            env.reset()
    assert len(seen) >= 20
    assert max(float(np.abs(n).max()) for n in seen) <= 0.7
    assert max(float(np.abs(n).max()) for n in seen) == pytest.approx(0.7)  # the bound is reached
    with pytest.raises(ValueError, match="not finite"):
        env.step(np.full(CHUNK * A, np.nan, np.float32))
    env.close()


def test_an_episode_end_cuts_the_chunk_and_the_next_episode_starts_a_decision(tmp_path):
    run, _ = policy_run(tmp_path / "flow", BASES["flow_bc"])
    env = with_base(dsrl(run), make_env(SimEnvConfig(task="reach", max_episode_steps=3), seed=0))
    env.reset(seed=0)
    u1, u2 = np.full(CHUNK * A, 0.5, np.float32), np.full(CHUNK * A, -0.5, np.float32)
    held = [env.step(u1)[4]["executed_action"][0], env.step(u2)[4]["executed_action"][0]]
    *_, truncated, info = env.step(u2)  # tick 3: a new decision, cut by the time limit
    assert truncated and held == [0.5, 0.5] and info["executed_action"][0] == -0.5
    env.reset(seed=1)
    assert env.step(u1)[4]["executed_action"][0] == 0.5  # not the rest of the cut chunk
    env.close()


@pytest.mark.parametrize(
    ("base", "says"),
    [
        ("no/such/run", "agent.base=no/such/run: no such run folder"),
        ("sim.experts:ReachExpert", "agent.base=sim.experts:ReachExpert: DSRL steers the noise"),
        ("bc_run", "is not a chunked policy"),
        ("pick_cube_flow", "was trained on state"),
        ("stochastic_ddim", "ddim_eta=0.5; DSRL needs a sampler that is deterministic"),
        ("dsrl_run", "is not a chunked policy"),
    ],
)
def test_a_bad_base_stops_start_up_naming_it(tmp_path, base, says):
    if base == "bc_run":
        base = str(bc_run(tmp_path / base)[0])
    elif base == "pick_cube_flow":
        base = str(policy_run(tmp_path / base, BASES["flow_bc"], SimEnvConfig(task="pick_cube"))[0])
    elif base == "stochastic_ddim":
        base = str(
            policy_run(tmp_path / base, DiffusionBCConfig(**SMALL, diffusion_steps=20, ddim_eta=0.5))[0]
        )
    elif base == "dsrl_run":
        base = str(dsrl_run(tmp_path))
    cfg = TrainConfig(
        env=REACH, agent=dsrl(base), demos=DemoConfig(source="none"), run_dir=str(tmp_path / "run")
    )
    with pytest.raises(ValueError, match=says):
        open_run_folder(cfg)
    assert not (tmp_path / "run").exists()


def dsrl_run(tmp_path: Path) -> Path:
    """A DSRL run folder over a flow_bc run."""
    flow = policy_run(tmp_path / "flow", BASES["flow_bc"])[0]
    return policy_run(tmp_path / "dsrl_run", dsrl(flow))[0]


def test_a_dsrl_run_is_no_residual_base_either(tmp_path):
    with pytest.raises(ValueError, match="is a dsrl run; a base must be a policy of its own"):
        with_base(ResidualConfig(base=str(dsrl_run(tmp_path))), make_env(REACH))


def test_dsrl_runs_without_demos_and_teleop(tmp_path):
    with pytest.raises(ValueError, match=r"agent=dsrl acts in its base's noise space.*demos=scripted"):
        TrainConfig(env=REACH, agent=dsrl("x"), demos=DemoConfig())
