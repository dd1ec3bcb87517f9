"""Velocity / noise networks over a flattened action chunk, for flow and diffusion policies.

Shapes: B batch, T_act chunk length, A action size, C conditioning size (the encoded observation
history, T_obs * F).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn

from robot_rl.nets.mlp import MLP


def sinusoidal_embedding(t: torch.Tensor, dim: int, max_period: float = 10_000.0) -> torch.Tensor:
    """t: [B] in [0, 1] -> [B, dim] sines and cosines at geometric frequencies (as DDPM's, with t
    scaled by 1000 so the [0, 1] range of a flow's time spans as many periods as 1000 steps do)."""
    if dim < 2 or dim % 2:
        raise ValueError(f"the time embedding size must be an even number >= 2, got {dim}")
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    angles = 1000.0 * t.float()[:, None] * freqs[None]
    return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ChunkDenoiser(nn.Module):
    """v(x_t, t, cond): x [B, T_act * A], t [B], cond [B, C] -> [B, T_act * A].

    An MLP over the concatenation of the noisy chunk, an embedding of t (sinusoidal, then a small
    MLP) and the conditioning; LayerNorm + SiLU hidden blocks. For state and low-dimensional
    image features this matches a 1-D conv U-Net at a fraction of the cost per step, which is what
    a control-rate inference budget needs.
    """

    def __init__(
        self,
        action_dim: int,
        chunk: int,
        cond_dim: int,
        hidden_dims: Sequence[int] = (256, 256, 256),
        time_dim: int = 32,
    ) -> None:
        super().__init__()
        self.action_dim, self.chunk, self.cond_dim = action_dim, chunk, cond_dim
        self.out_dim = action_dim * chunk
        self.time_dim = time_dim
        self.time_mlp = MLP(time_dim, [2 * time_dim], time_dim, act="silu")
        self.net = MLP(
            self.out_dim + time_dim + cond_dim, hidden_dims, self.out_dim, layer_norm=True, act="silu"
        )

    def forward(self, x: torch.Tensor, t: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.out_dim or cond.shape[-1] != self.cond_dim:
            raise ValueError(
                f"expected x [B, {self.out_dim}] and cond [B, {self.cond_dim}], got {tuple(x.shape)} and "
                f"{tuple(cond.shape)}"
            )
        temb = self.time_mlp(sinusoidal_embedding(t, self.time_dim))
        return self.net(torch.cat([x, temb, cond], dim=-1))
