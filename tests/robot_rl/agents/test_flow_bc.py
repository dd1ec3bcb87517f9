"""Flow-matching BC with action chunks: the flow's loss and Euler sampler, normalisation, and the
flow's config. What it shares with diffusion_bc (chunks across ticks and episodes, EMA acting
weights that ship weights-only, resuming, learning a tiny dataset, the CLI smoke) is checked on
both in test_chunking.py."""

from __future__ import annotations

import pytest
import torch

from robot_rl.agents.base import agent_class
from robot_rl.agents.flow_bc import FlowBCAgent, FlowBCConfig, euler_sample, flow_matching_loss
from robot_rl.nets.denoisers import ChunkDenoiser
from robot_rl.nets.normalize import DemoNormalizer
from tests.robot_rl.agents.test_chunking import A


class VelocityOracle(torch.nn.Module):
    """A velocity field that knows the clean chunks: from x at time t, straight to them,
    v = (x1 - x) / (1 - t), which is a - e on the path x_t = (1 - t) e + t a."""

    def __init__(self, clean: torch.Tensor) -> None:
        super().__init__()
        self.clean = clean

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        return (self.clean - x) / (1.0 - t)[:, None]


def test_shapes():
    denoiser = ChunkDenoiser(A, 4, 7, [8])
    assert denoiser(torch.zeros(5, 8), torch.rand(5), torch.zeros(5, 7)).shape == (5, 8)
    assert euler_sample(denoiser, torch.zeros(5, 7), torch.zeros(5, 8), 3).shape == (5, 8)


@pytest.mark.parametrize("steps", [1, 3, 10])
def test_euler_lands_on_the_clean_chunk_along_the_true_velocity_and_the_loss_is_zero_there(steps: int):
    g = torch.Generator().manual_seed(0)
    clean, noise = torch.rand(5, 8, generator=g) * 2 - 1, torch.randn(5, 8, generator=g)
    oracle = VelocityOracle(clean)
    torch.testing.assert_close(euler_sample(oracle, torch.zeros(5, 3), noise, steps), clean)
    loss, info = flow_matching_loss(
        oracle, torch.zeros(5, 3), clean, torch.rand(5, generator=g) * 0.99, noise
    )
    assert set(info) == {"flow_loss"} and loss.item() < 1e-10


def test_normalisation_round_trip_and_constant_dimensions():
    norm = DemoNormalizer(3, 2)
    x = torch.randn(100, 2)
    torch.testing.assert_close(norm.unaction(norm.action(x)), x)  # identity before fit
    state = torch.randn(500, 3) * torch.tensor([2.0, 0.1, 0.0]) + torch.tensor([1.0, -3.0, 7.0])
    action = torch.rand(500, 2) * torch.tensor([0.4, 0.0]) + torch.tensor([0.1, -1.0])
    norm.fit(state, action)
    z = norm.state(state)
    torch.testing.assert_close(z[:, :2].mean(0), torch.zeros(2), atol=1e-4, rtol=0)
    torch.testing.assert_close(z[:, :2].std(0, unbiased=False), torch.ones(2), atol=1e-4, rtol=0)
    assert torch.all(z[:, 2] == 0)  # a constant state dimension normalises to 0, not inf
    a = norm.action(action)
    torch.testing.assert_close(a[:, 0].min(), torch.tensor(-1.0))
    torch.testing.assert_close(a[:, 0].max(), torch.tensor(1.0))
    assert torch.all(a[:, 1] == 0)
    torch.testing.assert_close(norm.unaction(a), action)
    assert bool(norm.fitted)


def test_bad_flow_steps_are_named():
    with pytest.raises(ValueError, match="flow_steps"):
        FlowBCConfig(flow_steps=0)


def test_it_is_registered():
    assert agent_class("flow_bc") is FlowBCAgent and FlowBCAgent.offline
