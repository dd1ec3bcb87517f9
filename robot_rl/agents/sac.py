"""SAC with RLPD's recipe (Ball et al. 2023): critic ensemble with LayerNorm, TD target from the
minimum over a random subset of target critics, high update-to-data ratio.

Shapes: B batch, D state size, F feature size (state + image features), A action size,
K ensemble size, M = num_min_critics. The discount comes with each batch (gamma^n, or 0 where
the episode terminated), so there is no gamma here.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

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
from robot_rl.agents.grasp_critic import GraspCritic, check_arm_task, validate_grasp_config
from robot_rl.nets.actor import TanhGaussianActor
from robot_rl.nets.ensemble import EnsembleMLP
from robot_rl.transition import Batch, Obs


@dataclass
class SACConfig:
    """SAC hyper-parameters; an OmegaConf structured config. RLPD: num_critics=10, utd=20."""

    hidden_dims: list[int] = field(default_factory=lambda: [256, 256])
    num_critics: int = 2  # ensemble size K
    num_min_critics: int = 2  # TD target = min over a random subset of this size
    critic_layer_norm: bool = True
    actor_layer_norm: bool = False
    # Sized for a 2-core CPU (benchmarks/learning.py): 4 critic updates of 128 per env step cost about
    # as much as 2 of 256 and learned pick_cube where UTD 2 x 256 did not; RLPD on a GPU: agent=sac_gpu.
    utd: int = 4  # critic updates per update() call, each on its own batch
    batch_size: int = 128
    tau: float = 0.005
    actor_lr: float = 3e-4
    critic_lr: float = 3e-4
    temp_lr: float = 3e-4
    init_temperature: float = 0.01  # 1.0 drowns a sparse reward of 1 in entropy bonus for ~10k steps
    target_entropy: float | None = None  # None: -A / 2, as RLPD
    backup_entropy: bool = True
    encoder: str = "conv"  # "conv" | "resnet18"
    resnet_weights: str | None = None
    resnet_frozen: bool = False
    image_augment: bool = True
    feature_dim: int = 50  # image features per camera
    # The cameras the policy reads, of those the env has (None: all; []: state alone). Cameras
    # it leaves out can still feed a learned reward (reward=classifier), as HIL-SERL splits them.
    cameras: list[str] | None = None
    compile: bool = False  # torch.compile the networks (off: compile time dominates short runs)
    gripper: str = "continuous"  # "discrete": a grasp critic picks the last action entry (grasp_critic.py)
    grasp_penalty: float = 0.1  # subtracted from the grasp critic's reward per gripper toggle
    grasp_lr: float = 3e-4
    grasp_num_critics: int = 2
    grasp_epsilon: float = 0.1  # random gripper choice while collecting
    grasp_open_width_m: float = 0.07  # measured width at or above this: the gripper is open
    # Best-of-N (EXPO, PA-RL, IDQL act so): draw N actions from the actor, act with the one the
    # critic ranks highest, and back up the TD target through the same max. 1: plain SAC. N > 1
    # ships the critic with the policy weights, as acting needs it.
    best_of_n: int = 1
    # Behaviour-cloning term on the demo rows of each batch (Nair et al. 2018; TD3+BC): the actor
    # loss adds bc_weight * mean squared error of tanh(mean) to the demo action. It keeps the
    # actor on the demos' states while the critic is still wrong about sparse long-horizon tasks
    # (stack_cube: without it the actor drifts away from the cubes and no episode succeeds).
    # 0: plain SAC. Needs batches that mark their demo rows (the demo mixer's).
    bc_weight: float = 0.0
    # Normalise the state with per-dimension mean and std fitted on the first update's batches
    # (demos and the first episodes), then frozen; they travel with the policy weights.
    # Millimetres matter on peg_insert and stack_cube and are 0.001 of a raw input.
    normalize_state: bool = False
    # Critic-only warm-up (ResFiT's): no actor or temperature step until this many critic updates
    # have been made. A young critic's argmax pulls a policy that already works (a residual on a
    # good base, a fine-tuned BC actor) away from it. 0: the actor learns from the first update.
    actor_warmup_updates: int = 0

    def __post_init__(self) -> None:
        if not self.hidden_dims or any(h < 1 for h in self.hidden_dims):
            raise ValueError(f"hidden_dims must be a non-empty list of positive ints, got {self.hidden_dims}")
        if self.num_critics < 1:
            raise ValueError(f"num_critics must be >= 1, got {self.num_critics}")
        if not 1 <= self.num_min_critics <= self.num_critics:
            raise ValueError(
                f"num_min_critics must be in [1, num_critics={self.num_critics}], got {self.num_min_critics}"
            )
        for name in ("utd", "batch_size", "feature_dim", "best_of_n"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.actor_warmup_updates < 0:
            raise ValueError(f"actor_warmup_updates must be >= 0, got {self.actor_warmup_updates}")
        if not 0.0 < self.tau <= 1.0:
            raise ValueError(f"tau must be in (0, 1], got {self.tau}")
        for name in ("actor_lr", "critic_lr", "temp_lr", "init_temperature"):
            if not getattr(self, name) > 0.0:
                raise ValueError(f"{name} must be > 0, got {getattr(self, name)}")
        if not (math.isfinite(self.bc_weight) and self.bc_weight >= 0.0):
            raise ValueError(f"bc_weight must be a finite number >= 0, got {self.bc_weight}")
        if self.encoder not in ("conv", "resnet18"):
            raise ValueError(f"encoder must be 'conv' or 'resnet18', got {self.encoder!r}")
        check_cameras(self.cameras)
        validate_grasp_config(self)


# ---- losses: small pure functions, each returns (loss, info) -------------------------------------


def td_target(
    reward: torch.Tensor,
    discount: torch.Tensor,
    next_q: torch.Tensor,
    next_log_prob: torch.Tensor,
    alpha: torch.Tensor,
    backup_entropy: bool,
) -> torch.Tensor:
    """y = r + discount * (min_m Q'_m(s', a') - alpha * log pi(a'|s')).

    reward, discount, next_log_prob: [B]; next_q: [M, B] from the chosen target critics.
    """
    next_v = next_q.min(dim=0).values
    if backup_entropy:
        next_v = next_v - alpha * next_log_prob
    return reward + discount * next_v


def critic_loss(q: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """q: [K, B], target: [B]; squared TD error averaged over members and batch (as RLPD)."""
    loss = (q - target).square().mean()
    return loss, {"critic_loss": loss.detach(), "q_mean": q.detach().mean()}


def actor_loss(
    q_pi: torch.Tensor, log_prob: torch.Tensor, alpha: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """q_pi: [K, B] critics at the policy's action, log_prob: [B]; RLPD uses the ensemble mean."""
    loss = (alpha * log_prob - q_pi.mean(dim=0)).mean()
    return loss, {"actor_loss": loss.detach(), "entropy": -log_prob.detach().mean()}


def demo_bc_loss(
    mode: torch.Tensor, action: torch.Tensor, demo: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """mode: [B, A] the actor's tanh(mean), action: [B, A] executed, demo: bool[B]; mean squared
    error over the demo rows (0 when there are none)."""
    weight = demo.float()
    per_row = (mode - action).square().mean(dim=-1)
    loss = (per_row * weight).sum() / weight.sum().clamp_min(1.0)
    return loss, {"bc_loss": loss.detach()}


def temperature_loss(
    log_alpha: torch.Tensor, log_prob: torch.Tensor, target_entropy: float
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """alpha * (entropy - target_entropy): raises alpha while entropy is below target."""
    alpha = log_alpha.exp()
    loss = alpha * (-log_prob.detach().mean() - target_entropy)
    return loss, {"temperature_loss": loss.detach(), "alpha": alpha.detach()}


def pick_best(candidates: torch.Tensor, score: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """candidates [N, B, A], score [N, B] -> (the highest-scored candidate per row [B, A], its
    index int64[B]); ties go to the first."""
    index = score.argmax(dim=0)
    return candidates[index, torch.arange(candidates.shape[1], device=candidates.device)], index


# ---- agent ---------------------------------------------------------------------------------------


class SACAgent:
    """RLPD-style SAC implementing robot_rl.agents.base.Agent.

    With cameras, the encoder belongs to the critic and is trained by the critic loss; the actor
    reads its features detached (DrQ/RLPD), and the target critic has its own target encoder.
    """

    offline = False  # learns from the actors' transitions and the demos

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        action_space: gym.spaces.Box,
        cfg: SACConfig | None = None,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ) -> None:
        self.cfg = cfg = cfg if cfg is not None else SACConfig()
        self.device = torch.device(device)
        self.action_dim = int(np.prod(action_space.shape))
        discrete = cfg.gripper == "discrete"
        if discrete:
            check_arm_task(self.action_dim, obs_space["state"].shape[0])
        self.arm_dim = self.action_dim - 1 if discrete else self.action_dim  # what actor and critic see
        self.target_entropy = cfg.target_entropy if cfg.target_entropy is not None else -self.arm_dim / 2
        self.generator = torch.Generator(self.device)
        self.generator.manual_seed(seed if seed is not None else int(torch.seed() % 2**62))
        if seed is not None:
            torch.manual_seed(seed)  # parameter initialisation

        self.encoder = build_obs_encoder(obs_space, cfg).to(self.device)
        feat = self.encoder.out_dim
        self.actor = TanhGaussianActor(feat, self.arm_dim, cfg.hidden_dims, cfg.actor_layer_norm).to(
            self.device
        )
        self.critic = EnsembleMLP(
            feat + self.arm_dim, cfg.hidden_dims, cfg.num_critics, layer_norm=cfg.critic_layer_norm
        ).to(self.device)
        self.target_encoder = copy.deepcopy(self.encoder).requires_grad_(False)
        self.target_critic = copy.deepcopy(self.critic).requires_grad_(False)
        self.log_alpha = torch.tensor(
            float(np.log(cfg.init_temperature)), device=self.device, requires_grad=True
        )

        critic_params = [
            *self.critic.parameters(),
            *(p for p in self.encoder.parameters() if p.requires_grad),
        ]
        self.critic_opt = make_adam(critic_params, cfg.critic_lr, self.device)
        self.actor_opt = make_adam(self.actor.parameters(), cfg.actor_lr, self.device)
        self.temp_opt = make_adam([self.log_alpha], cfg.temp_lr, self.device)
        # Flat lists so the Polyak update is one foreach kernel over every target tensor.
        self._online = [*self.critic.parameters(), *self.encoder.parameters()]
        self._target = [*self.target_critic.parameters(), *self.target_encoder.parameters()]
        self.num_updates = 0
        self._critic_fn: nn.Module = torch.compile(self.critic) if cfg.compile else self.critic  # type: ignore[assignment]
        self._target_fn: nn.Module = torch.compile(self.target_critic) if cfg.compile else self.target_critic  # type: ignore[assignment]
        self.grasp = GraspCritic(feat, cfg, self.device) if discrete else None  # built last: same draws

    @property
    def updates_per_call(self) -> int:
        return self.cfg.utd

    @torch.inference_mode()
    def act(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        """One unbatched Obs (numpy) -> float32[A] in [-1, 1]; deterministic gives tanh(mean)."""
        self.encoder.eval()
        obs_t = obs_to_torch(obs, self.device, add_batch_dim=True, cameras=self.encoder.cameras)
        features = self.encoder(obs_t)
        self.encoder.train()
        action, _ = self._propose(features, features, lambda x: self._critic_fn(x).mean(0), deterministic)
        if self.grasp is not None:
            gripper = self.grasp.choose(features, obs_t["state"].float(), not deterministic, self.generator)
            action = torch.cat([action, gripper[:, None]], -1)
        return action[0].float().cpu().numpy()

    def reset(self) -> None:
        """Nothing to forget between episodes: act() reads the current observation alone."""

    def update(self, batches: Iterator[Batch]) -> dict[str, float]:
        """utd critic steps, each on its own batch, then one actor and temperature step on the last.

        Metrics stay on the device until one read at the end (no per-step host sync). With
        normalize_state, the first call first fits the state statistics on STATE_NORM_BATCHES
        batches.
        """
        if self.encoder.needs_state_fit:
            fit_state_norm((self.encoder, self.target_encoder), batches, STATE_NORM_BATCHES)
        critic_losses = []
        for _ in range(self.cfg.utd):
            batch = prepare_batch(
                next(batches), self.device, self.cfg.image_augment, self.generator, self.encoder.cameras
            )
            features, info = self._critic_step(batch)
            critic_losses.append(info["critic_loss"])
            if self.grasp is not None:  # the target critic's encoder, as the critic's TD target
                next_encoder = self.target_encoder if self.encoder.has_images else self.encoder
                info.update(self.grasp.update(batch, features, next_encoder))
        info.update(self._actor_temperature_step(features, batch))
        info["critic_loss"] = torch.stack(critic_losses).mean()
        self.num_updates += self.cfg.utd
        keys = sorted(info)
        values = torch.stack([info[k].float() for k in keys]).tolist()
        return dict(zip(keys, values, strict=True))

    def _critic_step(self, batch: Batch) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """One critic (+ encoder) gradient step and Polyak update; returns detached obs features [B, F]."""
        cfg = self.cfg
        alpha = self.log_alpha.detach().exp()
        with torch.no_grad():
            actor_features = self.encoder(batch.next_obs)
            next_features = self.target_encoder(batch.next_obs) if self.encoder.has_images else actor_features
            members = None
            if cfg.num_min_critics < cfg.num_critics:  # only the chosen members are evaluated
                perm = torch.randperm(cfg.num_critics, device=self.device, generator=self.generator)
                members = perm[: cfg.num_min_critics]
            next_action, next_log_prob = self._propose(
                actor_features, next_features, lambda x: self._target_fn(x, members).min(0).values
            )
            next_q = self._target_fn(torch.cat([next_features, next_action], -1), members)
            target = td_target(batch.reward, batch.discount, next_q, next_log_prob, alpha, cfg.backup_entropy)
        features = self.encoder(batch.obs)
        q = self._critic_fn(torch.cat([features, batch.action[:, : self.arm_dim]], -1))
        loss, info = critic_loss(q, target)
        self.critic_opt.zero_grad(set_to_none=True)
        loss.backward()
        self.critic_opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(self._target, self._online, cfg.tau)
        # The actor step reuses these features: one encoder step stale, but saves a pixel pass.
        return features.detach(), info

    def _propose(
        self,
        actor_features: torch.Tensor,
        critic_features: torch.Tensor,
        score: Callable[[torch.Tensor], torch.Tensor],
        deterministic: bool = False,
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The actor's action [B, A] and its log-prob [B] (None when deterministic) for features
        [B, F]; with best_of_n = N, the best of N draws by score([N * B, F + A]) -> [N * B]
        (deterministic: the first draw is tanh(mean))."""
        n = self.cfg.best_of_n
        if n == 1:
            return self.actor(actor_features, self.generator, deterministic)
        b = len(actor_features)
        action, log_prob = self.actor(actor_features.repeat(n, 1), self.generator)
        if deterministic:
            action[:b] = self.actor(actor_features, self.generator, True)[0]
        candidates = action.view(n, b, -1)
        scores = score(torch.cat([critic_features.repeat(n, 1), action], -1)).view(n, b)
        best, index = pick_best(candidates, scores)
        rows = torch.arange(b, device=best.device)
        return best, None if deterministic else log_prob.view(n, b)[index, rows]

    def _actor_temperature_step(self, features: torch.Tensor, batch: Batch) -> dict[str, torch.Tensor]:
        """features: [B, F] of batch.obs, detached, so the actor loss never trains the encoder.
        Before actor_warmup_updates critic updates the losses are computed and logged, not stepped."""
        alpha = self.log_alpha.detach().exp()
        action, log_prob = self.actor(features, self.generator)
        assert log_prob is not None
        q_pi = self._critic_fn(torch.cat([features, action], -1), detach_params=True)
        loss, info = actor_loss(q_pi, log_prob, alpha)
        if self.cfg.bc_weight > 0.0:
            if batch.demo is None:
                raise ValueError("agent.bc_weight > 0 needs batches that mark their demo rows (DemoMixer's)")
            mode, _ = self.actor(features, self.generator, deterministic=True)
            bc, bc_info = demo_bc_loss(mode, batch.action[:, : self.arm_dim], batch.demo)
            loss = loss + self.cfg.bc_weight * bc
            info.update(bc_info)
        t_loss, t_info = temperature_loss(self.log_alpha, log_prob, self.target_entropy)
        if self.num_updates < self.cfg.actor_warmup_updates:  # warm-up: the losses are logged only
            return {**info, **t_info}
        self.actor_opt.zero_grad(set_to_none=True)
        self.temp_opt.zero_grad(set_to_none=True)
        # One backward pass for both: the actor loss sees alpha detached and the temperature loss
        # sees log_prob detached, so each parameter gets exactly its own loss's gradient.
        (loss + t_loss).backward()
        self.actor_opt.step()
        self.temp_opt.step()
        return {**info, **t_info}

    # ---- state ---------------------------------------------------------------------------------

    def policy_state(self) -> dict[str, torch.Tensor]:
        """Flat CPU tensor dict of what act() needs: "actor.*" and "encoder.*" weights."""
        return pack_policy_state(self._policy_modules())

    def load_policy_state(self, state: dict[str, torch.Tensor]) -> None:
        unpack_policy_state(state, self._policy_modules())

    def _policy_modules(self) -> dict[str, nn.Module]:
        """What act() runs: actor and encoder, with a discrete gripper the grasp Q-heads, with
        best-of-N the critic that ranks the draws."""
        grasp = {"grasp": self.grasp.net} if self.grasp is not None else {}
        critic = {"critic": self.critic} if self.cfg.best_of_n > 1 else {}  # best-of-N acts with it
        return {"actor": self.actor, "encoder": self.encoder, **grasp, **critic}

    def state_dict(self) -> dict[str, Any]:
        """Networks, targets, optimisers, log-temperature, update counter and the sampling RNG."""
        return {
            "config": asdict(self.cfg),
            "actor": self.actor.state_dict(),
            "critic": self.critic.state_dict(),
            "encoder": self.encoder.state_dict(),
            "target_critic": self.target_critic.state_dict(),
            "target_encoder": self.target_encoder.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "temp_opt": self.temp_opt.state_dict(),
            "log_alpha": self.log_alpha.detach().clone(),
            "num_updates": self.num_updates,
            "rng": self.generator.get_state(),
            **({"grasp": self.grasp.state_dict()} if self.grasp is not None else {}),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        for name in ("actor", "critic", "encoder", "target_critic", "target_encoder"):
            getattr(self, name).load_state_dict(state[name])
        for name in ("actor_opt", "critic_opt", "temp_opt"):
            getattr(self, name).load_state_dict(state[name])
        with torch.no_grad():
            self.log_alpha.copy_(state["log_alpha"])
        self.num_updates = int(state["num_updates"])
        self.generator.set_state(state["rng"].cpu())
        if self.grasp is not None:
            self.grasp.load_state_dict(state["grasp"])
