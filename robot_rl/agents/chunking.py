"""What the chunked BC agents (flow_bc, diffusion_bc) share, so each algorithm module holds only
its own math: the config of horizons, denoiser, EMA and encoders; encoding each observation window
once for K noise draws (Mini-Diffuser's shared-encoding minibatch); fitting the demos'
normalisation; EMA acting weights; acting a chunk across control ticks (or ACT's temporal
ensembling) until reset(); the weights-only policy state and the resumable state.

An algorithm subclasses ChunkedBCAgent with its config class and two methods, both in the
normalised action space:
  denoising_loss(denoiser, cond [N, C], actions [N, T_act * A], generator) -> (loss, info)
  denoise(denoiser, cond [B, C], noise [B, T_act * A], generator) -> chunks [B, T_act * A]

Shapes: B windows, K noise draws per window, N = B * K, T_obs observation history, T_act = chunk,
A action size, D state size, F features per observation (ObsEncoder.out_dim), C = T_obs * F.
"""

from __future__ import annotations

import copy
from abc import ABC, abstractmethod
from collections import deque
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robot_rl.agents.common import build_obs_encoder, make_adam, pack_policy_state, unpack_policy_state
from robot_rl.data.windows import WindowBatch
from robot_rl.nets.denoisers import ChunkDenoiser
from robot_rl.nets.encoders import ObsEncoder, random_shift
from robot_rl.nets.normalize import DemoNormalizer
from robot_rl.transition import Obs


@dataclass
class ChunkedBCConfig:
    """The fields every chunked BC agent has; an algorithm's config adds its own. diffusion_policy's
    defaults for the horizons (2 observations, 16-step chunks, 8 executed)."""

    obs_horizon: int = 2  # T_obs: observations the policy sees, the current one last
    chunk: int = 16  # T_act: actions predicted per sample, from the current step on
    act_horizon: int = 8  # actions of each chunk executed before the next sample (<= chunk)
    noise_per_obs: int = 4  # K: noise levels drawn per encoded window (1: one per window)
    hidden_dims: list[int] = field(default_factory=lambda: [256, 256, 256])  # the denoiser's MLP
    time_dim: int = 32  # size of the denoiser's sinusoidal time embedding
    lr: float = 3e-4
    batch_size: int = 256  # windows per gradient step; the step sees batch_size * noise_per_obs samples
    ema_decay: float = 0.999  # acting weights; warmed up as min(ema_decay, (1 + n) / (10 + n))
    # Sample every tick and act on a weighted mean of every chunk's prediction for this tick,
    # weights exp(-ensemble_decay * i) with i = 0 the oldest prediction (ACT); act_horizon unused.
    temporal_ensembling: bool = False
    ensemble_decay: float = 0.01
    norm_batches: int = 16  # batches the first update() reads to fit the normalisation statistics
    encoder: str = "conv"  # "conv" | "resnet18": the same observation encoders as SAC's
    resnet_weights: str | None = None
    resnet_frozen: bool = False
    image_augment: bool = True  # DrQ random shifts on every frame of a window, training only
    feature_dim: int = 50  # image features per camera

    def __post_init__(self) -> None:
        if not self.hidden_dims or any(h < 1 for h in self.hidden_dims):
            raise ValueError(f"hidden_dims must be a non-empty list of positive ints, got {self.hidden_dims}")
        for name in ("obs_horizon", "chunk", "act_horizon", "noise_per_obs", "batch_size"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        for name in ("feature_dim", "norm_batches"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.act_horizon > self.chunk:
            raise ValueError(f"act_horizon ({self.act_horizon}) must be <= chunk ({self.chunk})")
        if self.time_dim < 2 or self.time_dim % 2:
            raise ValueError(f"time_dim must be an even number >= 2, got {self.time_dim}")
        if not self.lr > 0.0:
            raise ValueError(f"lr must be > 0, got {self.lr}")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay must be in [0, 1), got {self.ema_decay}")
        if not self.ensemble_decay >= 0.0:
            raise ValueError(f"ensemble_decay must be >= 0, got {self.ensemble_decay}")
        if self.encoder not in ("conv", "resnet18"):
            raise ValueError(f"encoder must be 'conv' or 'resnet18', got {self.encoder!r}")


# ---- pure functions: each shape in its docstring --------------------------------------------------


def encode_window(encoder: ObsEncoder, normalizer: DemoNormalizer, obs: Obs) -> torch.Tensor:
    """obs {"state": float[B, T_obs, D], "images": {cam: uint8[B, T_obs, H, W, 3]}} -> [B, C]:
    every frame of every window encoded in one call, state normalised first."""
    b = obs["state"].shape[0]
    flat: dict[str, Any] = {"state": normalizer.state(obs["state"].float()).flatten(0, 1)}
    if "images" in obs:
        flat["images"] = {c: v.flatten(0, 1) for c, v in obs["images"].items()}
    return encoder(flat).reshape(b, -1)


def prepare_windows(
    batch: WindowBatch, device: torch.device, augment: bool, generator: torch.Generator | None = None
) -> WindowBatch:
    """numpy WindowBatch -> torch on `device`, float state and actions, and (training only) a DrQ
    random shift drawn for every frame."""
    tb = batch.to_torch(device)
    tb.obs["state"] = tb.obs["state"].float()
    if augment and "images" in tb.obs:
        tb.obs["images"] = {
            c: random_shift(v.flatten(0, 1), generator=generator).view_as(v)
            for c, v in tb.obs["images"].items()
        }
    tb.action = tb.action.float()
    return tb


# ---- agent ---------------------------------------------------------------------------------------


class ChunkedBCAgent(ABC):
    """BC over an observation history and an action chunk, implementing robot_rl.agents.base.Agent,
    fed windows (WindowBatch) of `window` = (obs_horizon, chunk). act() keeps the observation
    history and the current chunk between calls; the runtime calls reset() at every episode start."""

    offline = True  # demos only: the learner samples the demo buffer alone
    config_cls: ClassVar[type[ChunkedBCConfig]]

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        action_space: gym.spaces.Box,
        cfg: ChunkedBCConfig | None = None,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ) -> None:
        self.cfg = cfg = cfg if cfg is not None else self.config_cls()
        self.device = torch.device(device)
        seed = seed if seed is not None else int(torch.seed() % 2**62)
        torch.manual_seed(seed)  # parameter initialisation
        # Training and acting draw from their own generators, so a fresh agent with the same seed
        # and weights acts exactly as the learner's would, whatever the learner has trained.
        self.generator = torch.Generator(self.device).manual_seed(seed)
        self.act_generator = torch.Generator(self.device).manual_seed(seed + 1)
        self.action_dim = int(np.prod(action_space.shape))
        self.window = (cfg.obs_horizon, cfg.chunk)  # the learner feeds window batches of this size
        self.encoder = build_obs_encoder(obs_space, cfg).to(self.device)
        self.denoiser = ChunkDenoiser(
            self.action_dim, cfg.chunk, cfg.obs_horizon * self.encoder.out_dim, cfg.hidden_dims, cfg.time_dim
        ).to(self.device)
        self.normalizer = DemoNormalizer(int(np.prod(obs_space["state"].shape)), self.action_dim).to(
            self.device
        )
        self.ema_encoder = copy.deepcopy(self.encoder).requires_grad_(False).eval()
        self.ema_denoiser = copy.deepcopy(self.denoiser).requires_grad_(False).eval()
        params = [p for m in (self.denoiser, self.encoder) for p in m.parameters() if p.requires_grad]
        self.opt = make_adam(params, cfg.lr, self.device)
        # Flat lists so the EMA update is one foreach kernel; buffers (BatchNorm statistics) are copied.
        self._online = [*self.denoiser.parameters(), *self.encoder.parameters()]
        self._ema = [*self.ema_denoiser.parameters(), *self.ema_encoder.parameters()]
        self.num_updates = 0
        self.reset()

    @property
    def updates_per_call(self) -> int:
        return 1

    # ---- the algorithm ---------------------------------------------------------------------------

    @abstractmethod
    def denoising_loss(
        self, denoiser: nn.Module, cond: torch.Tensor, actions: torch.Tensor, generator: torch.Generator
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """cond [N, C], normalised chunks actions [N, T_act * A] -> (loss, info); the noise levels
        and the noise are drawn from `generator`."""

    @abstractmethod
    def denoise(
        self, denoiser: nn.Module, cond: torch.Tensor, noise: torch.Tensor, generator: torch.Generator
    ) -> torch.Tensor:
        """cond [B, C], Gaussian noise [B, T_act * A] -> normalised chunks [B, T_act * A]; any
        further noise a sampler needs is drawn from `generator`."""

    # ---- acting ----------------------------------------------------------------------------------

    def reset(self) -> None:
        """A new episode: forget the observation history and the rest of the current chunk."""
        self._history: deque[Obs] = deque(maxlen=self.cfg.obs_horizon)
        self._queue: deque[np.ndarray] = deque()
        self._predictions: deque[np.ndarray] = deque(maxlen=self.cfg.chunk)  # newest last

    @torch.inference_mode()
    def act(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        """One unbatched Obs -> float32[A] in [-1, 1], the next action of the current chunk.

        A new chunk is sampled when the executed horizon is used up (every tick with temporal
        ensembling). Sampling is the policy itself, so `deterministic` changes nothing; the act
        generator is seeded, so a run reproduces.
        """
        self.observe(obs)
        if self.cfg.temporal_ensembling:
            self._predictions.append(self.sample_chunk())
            n = len(self._predictions)
            # the oldest prediction was made n - 1 ticks ago: its entry n - 1 is for this tick
            votes = np.stack([p[n - 1 - i] for i, p in enumerate(self._predictions)])  # oldest first
            weights = np.exp(-self.cfg.ensemble_decay * np.arange(n))
            action = (weights[:, None] * votes).sum(0) / weights.sum()
        else:
            if not self._queue:
                self._queue.extend(self.sample_chunk()[: self.cfg.act_horizon])
            action = self._queue.popleft()
        return np.clip(action, -1.0, 1.0).astype(np.float32)

    def observe(self, obs: Obs) -> None:
        """Add the newest observation to the history (act() does; DSRL's env, robot_rl/runtime/
        noise_env.py, does it for a base it samples with its own noise)."""
        if not self._history:  # the episode's first observation stands in for the ones before it
            self._history.extend([obs] * self.cfg.obs_horizon)
        else:
            self._history.append(obs)

    @torch.inference_mode()
    def sample_chunk(self, noise: np.ndarray | None = None) -> np.ndarray:
        """The EMA policy's chunk float32[T_act, A] (env units, clipped to [-1, 1]) for the history,
        from this initial noise float[T_act * A] (None: a standard normal draw). Deterministic given
        the noise when the sampler is (flow; DDIM with eta = 0)."""
        history = list(self._history)
        obs: dict[str, Any] = {"state": self._stack([o["state"] for o in history], torch.float32)}
        if history[0].get("images"):
            obs["images"] = {
                c: self._stack([o["images"][c] for o in history], torch.uint8) for c in history[0]["images"]
            }
        cond = encode_window(self.ema_encoder, self.normalizer, obs)
        if noise is None:
            x = torch.randn(
                1, self.denoiser.out_dim, device=self.device, generator=self.act_generator, dtype=cond.dtype
            )
        else:
            x = torch.as_tensor(noise, dtype=cond.dtype, device=self.device).reshape(1, self.denoiser.out_dim)
        chunk = self.denoise(self.ema_denoiser, cond, x, self.act_generator)
        chunk = self.normalizer.unaction(chunk.view(self.cfg.chunk, self.action_dim))
        return chunk.clamp(-1.0, 1.0).float().cpu().numpy()

    def _stack(self, frames: list[Any], dtype: torch.dtype) -> torch.Tensor:
        """T_obs frames -> [1, T_obs, ...] on the device."""
        return torch.as_tensor(np.stack(frames), dtype=dtype, device=self.device)[None]

    # ---- learning --------------------------------------------------------------------------------

    def update(self, batches: Iterator[WindowBatch]) -> dict[str, float]:
        """One gradient step on one window batch, then the EMA step. The first call fits the
        normalisation statistics on `norm_batches` batches before it."""
        if not bool(self.normalizer.fitted):
            self.fit_normalizer(batches)
        batch = prepare_windows(next(batches), self.device, self.cfg.image_augment, self.generator)
        loss, info = self.chunk_loss(batch)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        self._ema_step()
        self.num_updates += 1
        keys = sorted(info)
        return dict(zip(keys, torch.stack([info[k] for k in keys]).tolist(), strict=True))

    def fit_normalizer(self, batches: Iterator[WindowBatch]) -> None:
        """State and action statistics from the real (unpadded) entries of norm_batches batches."""
        states, actions = [], []
        for _ in range(self.cfg.norm_batches):
            b = next(batches)
            states.append(np.asarray(b.obs["state"])[np.asarray(b.obs_mask, bool)])
            actions.append(np.asarray(b.action)[np.asarray(b.action_mask, bool)])
        self.normalizer.fit(
            torch.as_tensor(np.concatenate(states), device=self.device),
            torch.as_tensor(np.concatenate(actions), device=self.device),
        )

    def chunk_loss(
        self, batch: WindowBatch, generator: torch.Generator | None = None
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """A torch WindowBatch (prepare_windows) -> the algorithm's loss over B windows x K noise
        draws, each window encoded once. generator: for the noise levels and the noise (the
        training generator when None)."""
        g = self.generator if generator is None else generator
        k = self.cfg.noise_per_obs
        cond = encode_window(self.encoder, self.normalizer, batch.obs).repeat_interleave(k, 0)  # [N, C]
        actions = self.normalizer.action(batch.action).flatten(1).repeat_interleave(k, 0)  # [N, T_act * A]
        return self.denoising_loss(self.denoiser, cond, actions, g)

    @torch.no_grad()
    def _ema_step(self) -> None:
        n = self.num_updates
        decay = min(self.cfg.ema_decay, (1 + n) / (10 + n))
        torch._foreach_lerp_(self._ema, self._online, 1.0 - decay)
        for online, ema in ((self.encoder, self.ema_encoder), (self.denoiser, self.ema_denoiser)):
            for b_ema, b in zip(ema.buffers(), online.buffers(), strict=True):
                b_ema.copy_(b)

    # ---- state ---------------------------------------------------------------------------------

    def _acting(self) -> dict[str, nn.Module]:
        return {"denoiser": self.ema_denoiser, "encoder": self.ema_encoder, "normalizer": self.normalizer}

    def policy_state(self) -> dict[str, torch.Tensor]:
        """Flat CPU tensor dict of what act() needs: the EMA "denoiser.*" and "encoder.*" weights
        and the "normalizer.*" statistics."""
        return pack_policy_state(self._acting())

    def load_policy_state(self, state: dict[str, torch.Tensor]) -> None:
        unpack_policy_state(state, self._acting())

    def state_dict(self) -> dict[str, Any]:
        """Online and EMA networks, statistics, optimiser, update counter and both RNGs."""
        return {
            "config": asdict(self.cfg),
            **{name: getattr(self, name).state_dict() for name in _MODULES},
            "opt": self.opt.state_dict(),
            "num_updates": self.num_updates,
            "rng": self.generator.get_state(),
            "act_rng": self.act_generator.get_state(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in _MODULES:
            getattr(self, name).load_state_dict(state[name])
        self.opt.load_state_dict(state["opt"])
        self.num_updates = int(state["num_updates"])
        self.generator.set_state(state["rng"].cpu())
        self.act_generator.set_state(state["act_rng"].cpu())


_MODULES = ("denoiser", "encoder", "ema_denoiser", "ema_encoder", "normalizer")
