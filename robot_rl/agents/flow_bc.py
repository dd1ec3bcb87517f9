"""Flow-matching behaviour cloning with action chunks: rectified flow (Liu et al. 2023, Lipman et
al. 2023) over diffusion_policy's layout of an observation history and a chunk of future actions.

Training: for a demo chunk a (normalised) and noise e, x_t = (1 - t) e + t a with t ~ U(0, 1); the
network regresses the velocity a - e. Each observation window is encoded once and paired with K
noise draws (Mini-Diffuser's shared-encoding minibatch), so a pixel encoder costs 1/K per noise
sample. Acting: Euler-integrate from Gaussian noise in flow_steps steps, execute the chunk's first
act_horizon actions over as many control ticks (or, with temporal ensembling, sample every tick and
blend the overlapping chunks as ACT does), and start over at every episode (reset()). The windows,
chunks, EMA, normalisation and state are robot_rl/agents/chunking.py's; this module is the flow.

Shapes: N noise samples (windows x K), B chunks sampled, T_act = chunk, A action size, C the
encoded observation history (chunking.py).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from robot_rl.agents.chunking import ChunkedBCAgent, ChunkedBCConfig, encode_window, prepare_windows

__all__ = [
    "FlowBCAgent",
    "FlowBCConfig",
    "encode_window",
    "euler_sample",
    "flow_matching_loss",
    "prepare_windows",
]


@dataclass
class FlowBCConfig(ChunkedBCConfig):
    """Flow BC hyper-parameters; an OmegaConf structured config. The horizons, denoiser, EMA and
    encoder fields are ChunkedBCConfig's (robot_rl/agents/chunking.py); the flow adds:"""

    flow_steps: int = 10  # Euler steps from noise to a chunk when acting

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.flow_steps < 1:
            raise ValueError(f"flow_steps must be >= 1, got {self.flow_steps}")


# ---- pure functions: each shape in its docstring --------------------------------------------------


def flow_matching_loss(
    denoiser: nn.Module, cond: torch.Tensor, actions: torch.Tensor, t: torch.Tensor, noise: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """cond [N, C], normalised chunks actions [N, T_act * A], t [N], noise [N, T_act * A] ->
    mean squared error of the predicted velocity against a - e at x_t = (1 - t) e + t a."""
    x_t = torch.lerp(noise, actions, t[:, None])
    error = denoiser(x_t, t, cond) - (actions - noise)
    loss = error.square().mean()
    return loss, {"flow_loss": loss.detach()}


def euler_sample(denoiser: nn.Module, cond: torch.Tensor, noise: torch.Tensor, steps: int) -> torch.Tensor:
    """cond [B, C], noise [B, T_act * A] -> chunks [B, T_act * A]: x += v(x, t) / steps, t = 0 .. 1."""
    x, dt = noise, 1.0 / steps
    for k in range(steps):
        t = torch.full((len(x),), k * dt, device=x.device, dtype=x.dtype)
        x = x + dt * denoiser(x, t, cond)
    return x


# ---- agent ---------------------------------------------------------------------------------------


class FlowBCAgent(ChunkedBCAgent):
    """Flow-matching BC implementing robot_rl.agents.base.Agent (see ChunkedBCAgent)."""

    config_cls = FlowBCConfig
    cfg: FlowBCConfig

    def denoising_loss(
        self, denoiser: nn.Module, cond: torch.Tensor, actions: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Flow loss at t ~ U(0, 1) per sample (shapes: ChunkedBCAgent.denoising_loss)."""
        t = torch.rand(len(actions), device=actions.device, generator=generator)
        noise = torch.randn(actions.shape, device=actions.device, generator=generator)
        return flow_matching_loss(denoiser, cond, actions, t, noise)

    def denoise(
        self, denoiser: nn.Module, cond: torch.Tensor, noise: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """flow_steps Euler steps; deterministic given the noise."""
        return euler_sample(denoiser, cond, noise, self.cfg.flow_steps)
