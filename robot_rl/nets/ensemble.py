"""Vectorised ensemble of K Q-networks computed as one batched network.

Member k's layer i has weight W_i[k] of shape [in, out] and bias b_i[k] of shape [1, out]; a
layer for all members is one `torch.baddbmm` over [K, B, in] x [K, in, out], so K critics cost
one kernel per layer instead of K. This is what makes RLPD's 10-critic ensemble affordable.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from robot_rl.nets.mlp import MLP

# The hidden activation always acts on a fresh tensor that autograd does not keep, so ReLU can
# run in place (no extra [K, B, H] allocation).
_FUNCTIONAL_ACTS: dict[str, Callable[[torch.Tensor], torch.Tensor]] = {
    "relu": torch.relu_,
    "gelu": F.gelu,
    "elu": F.elu,
    "tanh": torch.tanh,
    "silu": F.silu,
}


class EnsembleMLP(nn.Module):
    """K MLPs with identical structure evaluated in one computation.

    forward(x): x [B, in] (broadcast to every member) or [K, B, in] -> [K, B, out]
    (or [K, B] when out_dim == 1 and squeeze_output). Hidden block: affine -> (LayerNorm) -> act,
    the same layout as robot_rl.nets.mlp.MLP, so `load_from_mlps` can copy K MLPs in exactly.
    """

    def __init__(
        self,
        in_dim: int,
        hidden_dims: Sequence[int],
        num_members: int,
        out_dim: int = 1,
        layer_norm: bool = False,
        act: str = "relu",
        squeeze_output: bool = True,
    ) -> None:
        super().__init__()
        if num_members < 1:
            raise ValueError(f"num_members must be >= 1, got {num_members}")
        if act not in _FUNCTIONAL_ACTS:
            raise ValueError(f"unknown activation {act!r}; choose one of {sorted(_FUNCTIONAL_ACTS)}")
        self.num_members = num_members
        self.layer_norm = layer_norm
        self.squeeze_output = squeeze_output and out_dim == 1
        self._act = _FUNCTIONAL_ACTS[act]
        dims = [in_dim, *hidden_dims, out_dim]
        self.weights = nn.ParameterList()
        self.biases = nn.ParameterList()
        for d_in, d_out in itertools.pairwise(dims):
            bound = math.sqrt(6.0 / (d_in + d_out))  # Xavier-uniform per member, as MLP
            self.weights.append(nn.Parameter(torch.empty(num_members, d_in, d_out).uniform_(-bound, bound)))
            self.biases.append(nn.Parameter(torch.zeros(num_members, 1, d_out)))
        self.ln_weights = nn.ParameterList()
        self.ln_biases = nn.ParameterList()
        if layer_norm:
            for h in hidden_dims:
                self.ln_weights.append(nn.Parameter(torch.ones(num_members, 1, h)))
                self.ln_biases.append(nn.Parameter(torch.zeros(num_members, 1, h)))
        # A unit weight makes CPU layer_norm take its fast affine kernel (the weight-less path
        # measured ~2x slower); the per-member affine follows as one addcmul.
        self.register_buffer("_ln_unit", torch.ones(max(hidden_dims, default=1)), persistent=False)

    def forward(
        self,
        x: torch.Tensor,
        members: torch.Tensor | None = None,
        detach_params: bool = False,
    ) -> torch.Tensor:
        """x: [B, in] or [K', B, in] -> [K', B(, out)].

        members: optional int64[K'] subset of member indices to evaluate (RLPD's min over a
        random subset only needs those, so the others are never computed); K' = K when None.
        detach_params: use the weights without recording their gradients; the actor loss
        differentiates through the critics w.r.t. the action only, so skipping the weight
        gradients saves a third of the critics' backward matmuls.
        """
        params = [*self.weights, *self.biases, *self.ln_weights, *self.ln_biases]
        if members is not None:
            params = [p.index_select(0, members) for p in params]
        if detach_params:
            params = [p.detach() for p in params]
        n = len(self.weights)
        ws, bs = params[:n], params[n : 2 * n]
        ln_ws, ln_bs = params[2 * n : 2 * n + n - 1], params[2 * n + n - 1 :]
        k = ws[0].shape[0]
        h = x if x.dim() == 3 else x.unsqueeze(0).expand(k, *x.shape)
        for i in range(n - 1):
            h = torch.baddbmm(bs[i], h, ws[i])
            if self.layer_norm:
                h = F.layer_norm(h, h.shape[-1:], self._ln_unit[: h.shape[-1]])
                h = torch.addcmul(ln_bs[i], h, ln_ws[i])
            h = self._act(h)
        if ws[-1].shape[-1] == 1:
            # A one-unit output layer as a batched matmul is a gemv, which CPU bmm runs ~6x slower
            # than this multiply-and-sum (and its backward, an outer product, ~10x slower).
            h = (h * ws[-1].transpose(1, 2)).sum(-1, keepdim=True) + bs[-1]
        else:
            h = torch.baddbmm(bs[-1], h, ws[-1])
        return h.squeeze(-1) if self.squeeze_output else h

    @torch.no_grad()
    def load_from_mlps(self, mlps: Sequence[MLP]) -> None:
        """Copy K separate robot_rl.nets.mlp.MLP networks (same sizes) into the members."""
        if len(mlps) != self.num_members:
            raise ValueError(f"expected {self.num_members} MLPs, got {len(mlps)}")
        for k, mlp in enumerate(mlps):
            linears = [m for m in mlp.modules() if isinstance(m, nn.Linear)]
            norms = [m for m in mlp.modules() if isinstance(m, nn.LayerNorm)]
            if len(linears) != len(self.weights) or len(norms) != len(self.ln_weights):
                raise ValueError("MLP structure does not match the ensemble")
            for i, lin in enumerate(linears):
                self.weights[i][k].copy_(lin.weight.T)
                self.biases[i][k, 0].copy_(lin.bias)
            for i, ln in enumerate(norms):
                self.ln_weights[i][k, 0].copy_(ln.weight)
                self.ln_biases[i][k, 0].copy_(ln.bias)
