"""Plain multilayer perceptron used by actors, BC policies and single critics."""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

_ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "gelu": nn.GELU,
    "elu": nn.ELU,
    "tanh": nn.Tanh,
    "silu": nn.SiLU,
}


def activation(name: str) -> nn.Module:
    """Activation module by name ("relu", "gelu", "elu", "tanh", "silu")."""
    if name not in _ACTIVATIONS:
        raise ValueError(f"unknown activation {name!r}; choose one of {sorted(_ACTIVATIONS)}")
    return _ACTIVATIONS[name]()


class MLP(nn.Module):
    """x: [..., in_dim] -> [..., out_dim].

    Hidden block: Linear -> (LayerNorm) -> activation. The output layer is a bare Linear, or
    absent when `out_dim` is None (then the output is the last hidden activation).
    Weights use Xavier-uniform and zero biases, as RLPD does, so the vectorised ensemble
    (robot_rl.nets.ensemble) initialises the same way.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dims: Sequence[int],
        out_dim: int | None,
        layer_norm: bool = False,
        act: str = "relu",
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        dim = in_dim
        for h in hidden_dims:
            layers.append(nn.Linear(dim, h))
            if layer_norm:
                layers.append(nn.LayerNorm(h))
            layers.append(activation(act))
            dim = h
        if out_dim is not None:
            layers.append(nn.Linear(dim, out_dim))
            dim = out_dim
        self.net = nn.Sequential(*layers)
        self.out_dim = dim
        for m in self.modules():
            if isinstance(m, nn.Linear):
                nn.init.xavier_uniform_(m.weight)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
