"""Diffusion behaviour cloning with action chunks: DDPM training with epsilon prediction (Ho et al.
2020) on a cosine noise schedule (Nichol & Dhariwal 2021), DDIM sampling (Song et al. 2021), over
diffusion_policy's layout (Chi et al. 2023) of an observation history and a chunk of future actions.

Training: for a demo chunk a (normalised) and noise e, x_t = sqrt(ab_t) a + sqrt(1 - ab_t) e at a
timestep t ~ U{0 .. T-1}; the network regresses e. Each observation window is encoded once and
paired with K timesteps and noise draws (Mini-Diffuser's shared-encoding minibatch). Acting: a few
DDIM steps from Gaussian noise (eta = 0: deterministic given that noise), the chunk then executed
across control ticks as flow_bc's is. The windows, chunks, EMA, normalisation and state are
robot_rl/agents/chunking.py's; this module is the schedule, the loss and the sampler.

Shapes: N noise samples (windows x K), B chunks sampled, T_act = chunk, A action size, C the
encoded observation history (chunking.py), T the schedule's timesteps, S the DDIM steps.
The denoiser's time input is t / T in [0, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import cached_property

import torch
from torch import nn

from robot_rl.agents.chunking import ChunkedBCAgent, ChunkedBCConfig


@dataclass
class DiffusionBCConfig(ChunkedBCConfig):
    """Diffusion BC hyper-parameters; an OmegaConf structured config. The horizons, denoiser, EMA
    and encoder fields are ChunkedBCConfig's (robot_rl/agents/chunking.py); diffusion adds:"""

    diffusion_steps: int = 100  # T: timesteps of the cosine schedule trained on (diffusion_policy's 100)
    ddim_steps: int = 10  # S: DDIM steps from noise to a chunk when acting (<= diffusion_steps)
    ddim_eta: float = 0.0  # 0: deterministic DDIM given the initial noise; 1: as stochastic as DDPM
    clip_sample: bool = True  # clip each step's predicted clean chunk to the demos' range [-1, 1]

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.diffusion_steps < 2:
            raise ValueError(f"diffusion_steps must be >= 2, got {self.diffusion_steps}")
        if not 1 <= self.ddim_steps <= self.diffusion_steps:
            raise ValueError(
                f"ddim_steps must be in [1, diffusion_steps={self.diffusion_steps}], got {self.ddim_steps}"
            )
        if not 0.0 <= self.ddim_eta <= 1.0:
            raise ValueError(f"ddim_eta must be in [0, 1], got {self.ddim_eta}")


# ---- pure functions: each shape in its docstring --------------------------------------------------


def cosine_alpha_bars(steps: int, s: float = 0.008, max_beta: float = 0.999) -> torch.Tensor:
    """T -> float32[T], ab_t = prod_{i <= t} (1 - beta_i) with beta_t = min(1 - f(t + 1) / f(t),
    max_beta), f(t) = cos(((t / T + s) / (1 + s)) pi / 2)^2: ab_0 just under 1 (barely noised),
    ab_{T-1} near 0 (noise alone). diffusers' "squaredcos_cap_v2", as diffusion_policy uses."""
    if steps < 2:
        raise ValueError(f"a noise schedule needs >= 2 timesteps, got {steps}")
    f = torch.cos((torch.arange(steps + 1, dtype=torch.float64) / steps + s) / (1 + s) * math.pi / 2) ** 2
    betas = (1.0 - f[1:] / f[:-1]).clamp(max=max_beta)
    return torch.cumprod(1.0 - betas, 0).float()


def diffusion_loss(
    denoiser: nn.Module,
    alpha_bars: torch.Tensor,
    cond: torch.Tensor,
    actions: torch.Tensor,
    t: torch.Tensor,
    noise: torch.Tensor,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """alpha_bars [T], cond [N, C], normalised chunks actions [N, T_act * A], timesteps t int64[N],
    noise [N, T_act * A] -> mean squared error of the predicted noise against e at
    x_t = sqrt(ab_t) a + sqrt(1 - ab_t) e."""
    ab = alpha_bars[t][:, None]
    x_t = ab.sqrt() * actions + (1.0 - ab).sqrt() * noise
    loss = (denoiser(x_t, t.float() / len(alpha_bars), cond) - noise).square().mean()
    return loss, {"diffusion_loss": loss.detach()}


def ddim_timesteps(train_steps: int, steps: int) -> list[int]:
    """T, S -> S timesteps, the noisiest first, spaced T / S apart and ending T / S - 1 above 0
    ("trailing" spacing: the first step starts at T - 1, where the schedule is noise alone, as the
    initial Gaussian noise is; Lin et al. 2024). S = T gives T - 1 .. 0."""
    if not 1 <= steps <= train_steps:
        raise ValueError(f"DDIM steps must be in [1, {train_steps}], got {steps}")
    return [round(train_steps - i * train_steps / steps) - 1 for i in range(steps)]


def ddim_sample(
    denoiser: nn.Module,
    alpha_bars: torch.Tensor,
    cond: torch.Tensor,
    noise: torch.Tensor,
    steps: int,
    eta: float = 0.0,
    clip: bool = True,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """alpha_bars [T], cond [B, C], noise [B, T_act * A] -> chunks [B, T_act * A] in S = steps
    DDIM steps. Each step predicts the clean chunk x0 from the noise prediction (clipped to
    [-1, 1] when `clip`), then moves to the next timestep's noise level; the last lands on x0.
    eta = 0 adds no noise on the way (deterministic); eta > 0 draws it from `generator`."""
    ab = alpha_bars.tolist()  # python floats: each step's coefficients are scalars, not kernels
    ts = ddim_timesteps(len(ab), steps)
    x = noise
    for i, t in enumerate(ts):
        ab_t, ab_prev = ab[t], ab[ts[i + 1]] if i + 1 < len(ts) else 1.0
        time = torch.full((len(x),), t / len(ab), device=x.device, dtype=x.dtype)
        eps = denoiser(x, time, cond)
        x0 = (x - math.sqrt(1.0 - ab_t) * eps) / math.sqrt(ab_t)
        if clip:  # and the noise that the clipped x0 implies, so the step stays consistent
            x0 = x0.clamp(-1.0, 1.0)
            eps = (x - math.sqrt(ab_t) * x0) / math.sqrt(1.0 - ab_t)
        sigma = eta * math.sqrt((1.0 - ab_prev) / (1.0 - ab_t) * (1.0 - ab_t / ab_prev))
        x = math.sqrt(ab_prev) * x0 + math.sqrt(max(1.0 - ab_prev - sigma**2, 0.0)) * eps
        if sigma > 0.0:
            x = x + sigma * torch.randn(x.shape, device=x.device, dtype=x.dtype, generator=generator)
    return x


# ---- agent ---------------------------------------------------------------------------------------


class DiffusionBCAgent(ChunkedBCAgent):
    """Diffusion BC implementing robot_rl.agents.base.Agent (see ChunkedBCAgent)."""

    config_cls = DiffusionBCConfig
    cfg: DiffusionBCConfig

    @cached_property
    def alpha_bars(self) -> torch.Tensor:
        """The schedule, float32[T] on the host (the sampler reads it as numbers, with no copy from
        a GPU per chunk); a function of the config, so not in the weights."""
        return cosine_alpha_bars(self.cfg.diffusion_steps)

    @cached_property
    def _alpha_bars_on_device(self) -> torch.Tensor:
        return self.alpha_bars.to(self.device)

    def denoising_loss(
        self, denoiser: nn.Module, cond: torch.Tensor, actions: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Epsilon loss at t ~ U{0 .. T-1} per sample (shapes: ChunkedBCAgent.denoising_loss)."""
        n, device = len(actions), actions.device
        t = torch.randint(0, self.cfg.diffusion_steps, (n,), device=device, generator=generator)
        noise = torch.randn(actions.shape, device=device, generator=generator)
        return diffusion_loss(denoiser, self._alpha_bars_on_device, cond, actions, t, noise)

    def denoise(
        self, denoiser: nn.Module, cond: torch.Tensor, noise: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """ddim_steps DDIM steps with ddim_eta and clip_sample."""
        cfg = self.cfg
        return ddim_sample(
            denoiser, self.alpha_bars, cond, noise, cfg.ddim_steps, cfg.ddim_eta, cfg.clip_sample, generator
        )
