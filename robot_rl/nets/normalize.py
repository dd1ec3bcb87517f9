"""Normalisation of state and actions with statistics from the demos, kept as buffers so they
travel with the weights (a flat tensor dict, loadable with torch.load(weights_only=True)).

State: per dimension (x - mean) / std, as LeRobot normalises state. Actions: per dimension
min/max to [-1, 1], as diffusion_policy does, so a chunk's noise and its target share a scale.
Shapes: N rows, D state size, A action size; any leading dims are kept.

StateNormalizer is the state half on its own, for the observation encoder of SAC and BC: in
metres a millimetre is 0.001 of input, which an MLP does not resolve; in demo standard
deviations it is about 0.05 (BC on 100 clean demos, benchmarks/state_norm.py: peg_insert
0.01 raw, 0.31 normalised; stack_cube 0.07 and 0.54).
"""

from __future__ import annotations

import torch
from torch import nn

# Floors on std and half-range: a dimension the demos hold constant (a gripper never used, a
# fixed joint) normalises to 0 instead of dividing by 0.
_MIN_STD = 1e-3
_MIN_HALF_RANGE = 1e-2


def state_stats(state: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """state [N, D] (float) -> per-dimension mean [D] and std [D], the std floored at _MIN_STD."""
    if not len(state):
        raise ValueError("cannot fit normalisation statistics on no data")
    return state.mean(0), state.std(0, unbiased=False).clamp_min(_MIN_STD)


class StateNormalizer(nn.Module):
    """Identity until fit(); then (x - mean) / std per dimension, clipped to +-clip (an online
    state far outside the fitted data stays a bounded input). Fitted once, then frozen.

    Weights saved before this module existed load as an identity that counts as fitted, so a
    policy trained on raw state keeps reading raw state.
    """

    def __init__(self, state_dim: int, clip: float = 10.0) -> None:
        super().__init__()
        if not clip > 0:
            raise ValueError(f"clip must be > 0, got {clip}")
        self.clip = clip
        self.register_buffer("mean", torch.zeros(state_dim))
        self.register_buffer("std", torch.ones(state_dim))
        self.register_buffer("fitted", torch.zeros((), dtype=torch.bool))

    @torch.no_grad()
    def fit(self, state: torch.Tensor) -> None:
        """state [N, D] -> statistics, stored in place."""
        mean, std = state_stats(state.float().flatten(0, -2))
        self.mean.copy_(mean)
        self.std.copy_(std)
        self.fitted.fill_(True)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """[..., D] -> normalised [..., D]."""
        return ((x.float() - self.mean) / self.std).clamp(-self.clip, self.clip)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        if not any(k.startswith(prefix) for k in state_dict):  # weights from before: raw state
            state_dict[prefix + "mean"] = torch.zeros_like(self.mean)
            state_dict[prefix + "std"] = torch.ones_like(self.std)
            state_dict[prefix + "fitted"] = torch.ones((), dtype=torch.bool)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


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
        if not len(action):
            raise ValueError("cannot fit normalisation statistics on no data")
        mean, std = state_stats(state)
        self.state_mean.copy_(mean)
        self.state_std.copy_(std)
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
