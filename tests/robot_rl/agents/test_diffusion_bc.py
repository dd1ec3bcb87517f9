"""Diffusion BC with action chunks: the cosine schedule, DDIM's limits with a denoiser that knows
the noise, the epsilon loss, chunks unnormalised with the demos' statistics, and the config. What
it shares with flow_bc (chunks across ticks and episodes, EMA acting weights that ship
weights-only, resuming, learning a tiny dataset, the CLI smoke) is checked on both in
test_chunking.py."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from robot_rl.agents.base import agent_class
from robot_rl.agents.diffusion_bc import (
    DiffusionBCAgent,
    DiffusionBCConfig,
    cosine_alpha_bars,
    ddim_sample,
    ddim_timesteps,
    diffusion_loss,
)
from robot_rl.nets.denoisers import ChunkDenoiser
from tests.robot_rl.agents.test_chunking import A, demo_buffer, make, obs, windows

T = 100


class NoiseOracle(torch.nn.Module):
    """A denoiser that knows the clean chunks, so it predicts the true noise of any x_t:
    e = (x_t - sqrt(ab_t) x0) / sqrt(1 - ab_t), with t read back from its time input t / T."""

    def __init__(self, clean: torch.Tensor, alpha_bars: torch.Tensor) -> None:
        super().__init__()
        self.clean, self.alpha_bars = clean, alpha_bars

    def forward(self, x: torch.Tensor, time: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        ab = self.alpha_bars[(time * len(self.alpha_bars)).round().long()][:, None]
        return (x - ab.sqrt() * self.clean) / (1.0 - ab).sqrt()


def test_the_cosine_schedule_runs_from_almost_clean_to_noise_alone():
    ab = cosine_alpha_bars(T)
    assert ab.shape == (T,) and ab.dtype == torch.float32
    assert torch.all(ab[1:] < ab[:-1]) and torch.all(ab > 0)
    assert ab[0] > 0.99 and ab[-1] < 1e-3
    betas = 1.0 - ab[1:] / ab[:-1]
    assert betas.max() <= 0.999 + 1e-6  # the cap on the last, infinite, step
    with pytest.raises(ValueError, match="timesteps"):
        cosine_alpha_bars(1)


def test_ddim_timesteps_start_at_noise_alone_and_descend():
    assert ddim_timesteps(T, 10) == [99, 89, 79, 69, 59, 49, 39, 29, 19, 9]
    assert ddim_timesteps(T, T) == list(range(T - 1, -1, -1))
    assert ddim_timesteps(T, 1) == [T - 1]
    for bad in (0, T + 1):
        with pytest.raises(ValueError, match="DDIM steps"):
            ddim_timesteps(T, bad)


@pytest.mark.parametrize(
    ("steps", "eta", "clip"), [(1, 0.0, True), (10, 0.0, False), (10, 1.0, True), (T, 0.5, True)]
)
def test_ddim_recovers_the_clean_chunk_when_the_noise_is_known(steps: int, eta: float, clip: bool):
    # float64: the first step divides by sqrt(ab_99) ~ 5e-4, which float32's rounding would show
    ab = cosine_alpha_bars(T)
    g = torch.Generator().manual_seed(0)
    clean = torch.rand(5, 8, generator=g, dtype=torch.float64) * 2 - 1  # B = 5 chunks of T_act * A = 8
    noise = torch.randn(5, 8, generator=g, dtype=torch.float64)
    oracle = NoiseOracle(clean, ab.double())
    out = ddim_sample(oracle, ab, torch.zeros(5, 3), noise, steps, eta, clip, g)
    assert out.shape == noise.shape
    torch.testing.assert_close(out, clean, atol=1e-6, rtol=0)


def test_eta_zero_is_deterministic_and_eta_one_draws_noise_on_the_way():
    ab = cosine_alpha_bars(T)
    denoiser = ChunkDenoiser(A, 4, 3, [16])
    cond, noise = torch.randn(2, 3), torch.randn(2, 8)

    def sample(eta: float, seed: int) -> torch.Tensor:
        return ddim_sample(denoiser, ab, cond, noise, 10, eta, True, torch.Generator().manual_seed(seed))

    torch.testing.assert_close(sample(0.0, 1), sample(0.0, 2), atol=0, rtol=0)
    assert not torch.allclose(sample(1.0, 1), sample(1.0, 2))


def test_the_loss_is_the_noise_prediction_error():
    ab = cosine_alpha_bars(T)
    g = torch.Generator().manual_seed(0)
    actions, noise = torch.rand(6, 8, generator=g) * 2 - 1, torch.randn(6, 8, generator=g)
    t = torch.randint(0, T, (6,), generator=g)
    oracle_loss, info = diffusion_loss(NoiseOracle(actions, ab), ab, torch.zeros(6, 3), actions, t, noise)
    assert set(info) == {"diffusion_loss"}
    assert oracle_loss.item() < 1e-8

    def silent(x: torch.Tensor, time: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return torch.zeros_like(x)

    torch.testing.assert_close(
        diffusion_loss(silent, ab, torch.zeros(6, 3), actions, t, noise)[0], noise.square().mean()
    )


def test_chunks_are_sampled_and_unnormalised_with_the_demos_statistics():
    a = make("diffusion_bc")
    buf = demo_buffer()
    a.update(windows(a, buf))
    held = torch.as_tensor(buf.action[buf.has_trans])
    normalised = a.normalizer.action(held)
    assert normalised.min() >= -1 - 1e-6 and normalised.max() <= 1 + 1e-6  # the demos' range -> [-1, 1]
    torch.testing.assert_close(a.normalizer.unaction(normalised), held)
    a.denoise = lambda denoiser, cond, noise, generator: torch.zeros_like(noise)  # the range's middle
    a.reset()
    a.act(obs(0.1))
    chunk = a.sample_chunk()
    np.testing.assert_allclose(
        chunk, np.broadcast_to(a.normalizer.action_center.numpy(), chunk.shape), atol=1e-6
    )


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"ddim_steps": 101}, "ddim_steps"),
        ({"ddim_steps": 0}, "ddim_steps"),
        ({"diffusion_steps": 1, "ddim_steps": 1}, "diffusion_steps"),
        ({"ddim_eta": 1.5}, "ddim_eta"),
    ],
)
def test_bad_config_values_are_named(override: dict, message: str):
    with pytest.raises(ValueError, match=message):
        DiffusionBCConfig(**override)


def test_it_is_registered_with_deterministic_ddim_by_default():
    assert agent_class("diffusion_bc") is DiffusionBCAgent and DiffusionBCAgent.offline
    defaults = DiffusionBCConfig()
    assert (defaults.diffusion_steps, defaults.ddim_steps, defaults.ddim_eta) == (100, 10, 0.0)
