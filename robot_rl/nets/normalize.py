"""Normalisation of state and actions with statistics from the demos, kept as buffers so they
travel with the weights (a flat tensor dict, loadable with torch.load(weights_only=True)).

State: per dimension (x - mean) / std, as LeRobot normalises state. Actions: per dimension
min/max to [-1, 1], as diffusion_policy does, so a chunk's noise and its target share a scale.
Shapes: N rows, D state size, A action size; any leading dims are kept.
"""

from __future__ import annotations

import torch
from torch import nn

# Floors on std and half-range: a dimension the demos hold constant (a gripper never used, a
# fixed joint) normalises to 0 instead of dividing by 0.
_MIN_STD = 1e-3
_MIN_HALF_RANGE = 1e-2


class DemoNormalizer(nn.Module):
    """Identity until fit(); then state (x - mean) / std and actions min/max -> [-1, 1]."""

    def __init__(self, state_dim: int, action_dim: int) -> None:
        super().__init__()
        self.register_buffer("state_mean", torch.zeros(state_dim))
        self.register_buffer("state_std", torch.ones(state_dim))
        self.register_buffer("action_center", torch.zeros(action_dim))
        self.register_buffer("action_half_range", torch.ones(action_dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, state: torch.Tensor, action: torch.Tensor) -> None:
        """state [N, D], action [N, A] (float) -> statistics, stored in place."""
        state, action = state.float().flatten(0, -2), action.float().flatten(0, -2)
        if not len(state) or not len(action):
            raise ValueError("cannot fit normalisation statistics on no data")
        self.state_mean.copy_(state.mean(0))
        self.state_std.copy_(state.std(0, unbiased=False).clamp_min(_MIN_STD))
        low, high = action.min(0).values, action.max(0).values
        self.action_center.copy_((high + low) / 2)
        self.action_half_range.copy_(((high - low) / 2).clamp_min(_MIN_HALF_RANGE))
        self.fitted.fill_(True)

    def state(self, x: torch.Tensor) -> torch.Tensor:
        """[..., D] -> normalised [..., D]."""
        return (x - self.state_mean) / self.state_std

    def action(self, a: torch.Tensor) -> torch.Tensor:
        """[..., A] in env units -> [..., A], the demos' range mapped to [-1, 1]."""
        return (a - self.action_center) / self.action_half_range

    def unaction(self, a: torch.Tensor) -> torch.Tensor:
        """Inverse of action()."""
        return a * self.action_half_range + self.action_center
