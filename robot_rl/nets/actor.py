"""Tanh-squashed Gaussian policy head shared by SAC and BC."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.nets.mlp import MLP

# Soft bounds on log std (CleanRL's choice): a tanh rescale keeps gradients everywhere,
# where a hard clamp would zero them once the network leaves the range.
LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0
_LOG2 = math.log(2.0)
_HALF_LOG_2PI = 0.5 * math.log(2.0 * math.pi)


class TanhGaussianActor(nn.Module):
    """features [B, F] -> actions [B, A] in [-1, 1] and their log-probabilities [B].

    The MLP outputs a mean and a log std per action dimension; a = tanh(mean + std * eps).
    """

    def __init__(
        self, in_dim: int, action_dim: int, hidden_dims: Sequence[int], layer_norm: bool = False
    ) -> None:
        super().__init__()
        self.action_dim = action_dim
        self.net = MLP(in_dim, hidden_dims, 2 * action_dim, layer_norm=layer_norm)

    def mean_log_std(self, features: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """features [B, F] -> (mean [B, A], log_std [B, A]), pre-tanh."""
        mean, raw = self.net(features).chunk(2, dim=-1)
        log_std = LOG_STD_MIN + 0.5 * (LOG_STD_MAX - LOG_STD_MIN) * (torch.tanh(raw) + 1.0)
        return mean, log_std

    def forward(
        self,
        features: torch.Tensor,
        generator: torch.Generator | None = None,
        deterministic: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """features [B, F] -> (action [B, A], log_prob [B] or None when deterministic).

        Sampling is reparameterised, so the actor loss differentiates through the action.
        """
        mean, log_std = self.mean_log_std(features)
        if deterministic:
            return torch.tanh(mean), None
        eps = torch.randn(mean.shape, generator=generator, device=mean.device, dtype=mean.dtype)
        u = mean + log_std.exp() * eps
        # log N(u) - log|d tanh(u)/du|, with log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u))
        # written in the stable form so it stays finite where tanh saturates.
        per_dim = -0.5 * eps.square() - log_std - 2.0 * (_LOG2 - u - F.softplus(-2.0 * u))
        log_prob = per_dim.sum(-1) - self.action_dim * _HALF_LOG_2PI
        return torch.tanh(u), log_prob

    def log_prob(self, features: torch.Tensor, actions: torch.Tensor, eps: float = 1e-6) -> torch.Tensor:
        """log pi(actions | features): features [B, F], actions [B, A] in [-1, 1] -> [B].

        Used by BC's likelihood loss; actions are clipped just inside (-1, 1) so atanh is finite.
        """
        mean, log_std = self.mean_log_std(features)
        a = actions.clamp(-1.0 + eps, 1.0 - eps)
        u = torch.atanh(a)
        z = (u - mean) / log_std.exp()
        per_dim = -0.5 * z.square() - log_std - torch.log1p(-a.square() + eps)
        return per_dim.sum(-1) - self.action_dim * _HALF_LOG_2PI
