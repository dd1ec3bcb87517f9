"""Behaviour cloning baseline: regress demo actions with the same policy network SAC uses.

Shapes: B batch, F features, A action size.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch

from robot_rl.agents.common import (
    STATE_NORM_BATCHES,
    build_obs_encoder,
    check_cameras,
    fit_state_norm,
    make_adam,
    obs_to_torch,
    pack_policy_state,
    prepare_batch,
    unpack_policy_state,
)
from robot_rl.nets.actor import TanhGaussianActor
from robot_rl.transition import Batch, Obs


@dataclass
class BCConfig:
    """BC hyper-parameters; an OmegaConf structured config."""

    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    layer_norm: bool = False
    loss: str = "mse"  # "mse": squared error of tanh(mean); "gaussian": -log pi(a_demo | s)
    lr: float = 3e-4
    batch_size: int = 256
    encoder: str = "conv"  # "conv" | "resnet18"
    resnet_weights: str | None = None
    resnet_frozen: bool = False
    image_augment: bool = True
    feature_dim: int = 50
    # The cameras the policy reads, of those the env has (None: all; []: state alone). Cameras
    # it leaves out can still feed a learned reward (reward=classifier), as HIL-SERL splits them.
    cameras: list[str] | None = None
    # Normalise the state with the demos' per-dimension mean and std (fitted on the first
    # update's batches, then frozen; they travel with the weights), as SACConfig.normalize_state.
    normalize_state: bool = False

    def __post_init__(self) -> None:
        if not self.hidden_dims or any(h < 1 for h in self.hidden_dims):
            raise ValueError(f"hidden_dims must be a non-empty list of positive ints, got {self.hidden_dims}")
        if self.loss not in ("mse", "gaussian"):
            raise ValueError(f"loss must be 'mse' or 'gaussian', got {self.loss!r}")
        if not self.lr > 0.0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        for name in ("batch_size", "feature_dim"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.encoder not in ("conv", "resnet18"):
            raise ValueError(f"encoder must be 'conv' or 'resnet18', got {self.encoder!r}")
        check_cameras(self.cameras)


def bc_loss(
    actor: TanhGaussianActor, features: torch.Tensor, actions: torch.Tensor, kind: str
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """features [B, F], demo actions [B, A] -> loss; mse on tanh(mean) or Gaussian NLL."""
    mean, _ = actor.mean_log_std(features)
    mse = (torch.tanh(mean) - actions).square().mean()
    loss = mse if kind == "mse" else -actor.log_prob(features, actions).mean()
    return loss, {"bc_loss": loss.detach(), "action_mse": mse.detach()}


class BCAgent:
    """Behaviour cloning implementing robot_rl.agents.base.Agent; act() is always deterministic."""

    offline = True  # demos only: the learner samples the demo buffer alone

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        action_space: gym.spaces.Box,
        cfg: BCConfig | None = None,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ) -> None:
        self.cfg = cfg = cfg if cfg is not None else BCConfig()
        self.device = torch.device(device)
        self.generator = torch.Generator(self.device)
        self.generator.manual_seed(seed if seed is not None else int(torch.seed() % 2**62))
        if seed is not None:
            torch.manual_seed(seed)
        action_dim = int(np.prod(action_space.shape))
        self.encoder = build_obs_encoder(obs_space, cfg).to(self.device)
        self.actor = TanhGaussianActor(self.encoder.out_dim, action_dim, cfg.hidden_dims, cfg.layer_norm)
        self.actor.to(self.device)
        self.opt = make_adam([*self.actor.parameters(), *self.encoder.parameters()], cfg.lr, self.device)
        self.num_updates = 0

    @property
    def updates_per_call(self) -> int:
        return 1

    @torch.inference_mode()
    def act(self, obs: Obs, deterministic: bool = True) -> np.ndarray:
        """One unbatched Obs -> float32[A] = tanh(mean); BC never samples."""
        self.encoder.eval()
        obs_t = obs_to_torch(obs, self.device, add_batch_dim=True, cameras=self.encoder.cameras)
        features = self.encoder(obs_t)
        self.encoder.train()
        action, _ = self.actor(features, deterministic=True)
        return action[0].float().cpu().numpy()

    def reset(self) -> None:
        """Nothing to forget between episodes: act() reads the current observation alone."""

    def update(self, batches: Iterator[Batch]) -> dict[str, float]:
        """One gradient step on one batch (only obs and action are used); with normalize_state,
        the first call first fits the state statistics on STATE_NORM_BATCHES batches."""
        if self.encoder.needs_state_fit:
            fit_state_norm((self.encoder,), batches, STATE_NORM_BATCHES)
        batch = prepare_batch(
            next(batches), self.device, self.cfg.image_augment, self.generator, self.encoder.cameras
        )
        loss, info = bc_loss(self.actor, self.encoder(batch.obs), batch.action, self.cfg.loss)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self.num_updates += 1
        keys = sorted(info)
        return dict(zip(keys, torch.stack([info[k] for k in keys]).tolist(), strict=True))

    def policy_state(self) -> dict[str, torch.Tensor]:
        """Flat CPU tensor dict: "actor.*" and "encoder.*" weights."""
        return pack_policy_state({"actor": self.actor, "encoder": self.encoder})

    def load_policy_state(self, state: dict[str, torch.Tensor]) -> None:
        unpack_policy_state(state, {"actor": self.actor, "encoder": self.encoder})

    def state_dict(self) -> dict[str, Any]:
        return {
            "config": asdict(self.cfg),
            "actor": self.actor.state_dict(),
            "encoder": self.encoder.state_dict(),
            "opt": self.opt.state_dict(),
            "num_updates": self.num_updates,
            "rng": self.generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.actor.load_state_dict(state["actor"])
        self.encoder.load_state_dict(state["encoder"])
        self.opt.load_state_dict(state["opt"])
        self.num_updates = int(state["num_updates"])
        self.generator.set_state(state["rng"].cpu())
