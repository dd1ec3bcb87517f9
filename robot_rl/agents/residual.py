"""Residual RL on a frozen base policy (residual RL, Johannink et al. 2019; Policy Decorator, Yuan
et al. 2024): the executed action is clip(base + scale * r, -1, 1), where r in [-1, 1] is a
tanh-bounded residual; SAC (robot_rl/agents/sac.py: its critic ensemble, losses and UTD loop) trains
the residual actor and a critic that scores the executed action.

Where the base's action comes from: the base runs in the actor process, frozen, inside the env
(robot_rl/runtime/residual_base.py), which appends its action to every observation's state:
state = [env state (D) | base action (A)]. So every stored frame (online steps, interventions,
demos, an episode's final observation) carries the base's action; replay, transport, spool and
resume carry it with no new field, and a stochastic base (flow BC) is never re-sampled in the
learner. The encoder passes the state through first (nets/encoders.ObsEncoder), so the residual
actor and the critic read the observation and the base's action from their features.

Acting: the residual's last layer starts at zero, so at step 0 tanh(mean) = 0 and the
deterministic action is the base's. With progressive_steps > 0 (Policy Decorator's progressive
exploration) a collecting step executes base + residual with probability
min(1, update calls / progressive_steps) and the base's action otherwise; the learner ships its
update count with the weights. Entropy and the temperature are those of the residual.

Version pin: the base's identity (base_identity: the sha256 of its weights file, or module:Class
with the sha256 of the module's source) is in every policy_state and checkpoint; an actor,
`robot-rl eval` or a resumed learner whose base differs refuses, naming both. So the learner's
machine needs the base too (it pins it, and records or labels the demos with it).

Shapes: B batch, D env state size, A action size, F = D + A + image features.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import torch
from torch import nn

from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.imports import import_module
from robot_rl.nets.actor import TanhGaussianActor
from robot_rl.transition import Batch, Obs

_IMPORT_PATH = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_]\w*$")


@dataclass
class ResidualConfig(SACConfig):
    """agent=residual: SAC's fields (inherited: nets, critics, UTD, learning rates, temperature,
    encoder) configure the residual actor and the critic; these say what it corrects and how far."""

    # The frozen base: a run folder of this project (its weights/policy.pt), a weights file in one,
    # or module:Class (called with the env to make policy(obs) -> action, as demos.policy is).
    base: str = ""
    scale: float = 0.2  # the residual's bound: |executed - base| <= scale per action entry; (0, 1]
    # Policy Decorator's progressive exploration: over this many learner update calls (about the
    # env steps after learning starts) the chance that a collecting step adds the residual rises
    # linearly from 0 to 1; otherwise the base acts alone. 0: the residual always acts.
    progressive_steps: int = 0
    # The residual actor reads the base's action from the end of the features as it is
    # (ResidualActor), so the state goes in unnormalised.
    normalize_state: bool = False

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.normalize_state:
            raise ValueError(
                "agent=residual needs agent.normalize_state=false: the residual actor reads the "
                "base's action from the state as it is"
            )
        if not self.base:
            raise ValueError("agent=residual needs agent.base=<run folder | weights file | module:Class>")
        if not 0.0 < self.scale <= 1.0:
            raise ValueError(f"agent.scale must be in (0, 1], got {self.scale}")
        if self.progressive_steps < 0:
            raise ValueError(f"agent.progressive_steps must be >= 0, got {self.progressive_steps}")
        if self.gripper != "continuous":
            raise ValueError("agent=residual needs agent.gripper=continuous: it corrects every entry")


# ---- the base's identity -------------------------------------------------------------------------


def base_weights_file(spec: str) -> Path | None:
    """agent.base -> the weights file it names (<run>/weights/policy.pt for a run folder), or None
    for a module:Class import path. Raises ValueError naming the base when it is neither."""
    path = Path(spec).expanduser()
    if path.is_dir():
        weights = path / "weights" / "policy.pt"
        if not weights.is_file():
            raise ValueError(f"agent.base={spec}: {weights} not found; is it a robot-rl run folder?")
        return weights
    if path.is_file():
        return path
    if _IMPORT_PATH.match(spec):
        return None
    raise ValueError(
        f"agent.base={spec}: no such run folder or weights file, and not a module:Class import path"
    )


def base_config_file(spec: str, weights: Path) -> Path:
    """The base run's config.yaml (it names the run's agent and env): in the run folder that holds
    weights/, or beside the weights file. Raises ValueError naming the base."""
    for folder in (weights.parent.parent, weights.parent):
        if (folder / "config.yaml").is_file():
            return folder / "config.yaml"
    raise ValueError(
        f"agent.base={spec}: no config.yaml in {weights.parent.parent} or beside {weights}; the base's "
        "run config names its agent and env"
    )


def base_identity(spec: str) -> str:
    """What pins a base: the sha256 of its weights file (wherever it lies), or for module:Class the
    import path and the sha256 of the module's source file."""
    weights = base_weights_file(spec)
    if weights is not None:
        return f"weights sha256:{_sha256(weights)}"
    module = import_module(spec.partition(":")[0], "agent.base")
    source = getattr(module, "__file__", None)
    return f"{spec} sha256:{_sha256(Path(source))}" if source else spec


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _id_tensor(identity: str) -> torch.Tensor:
    return torch.tensor(list(identity.encode()), dtype=torch.uint8)


def _id_text(tensor: torch.Tensor) -> str:
    return bytes(tensor.tolist()).decode(errors="replace")


# ---- the residual actor --------------------------------------------------------------------------


def compose_action(base: torch.Tensor, residual: torch.Tensor, scale: float) -> torch.Tensor:
    """base [B, A] in [-1, 1], residual [B, A] in [-1, 1] -> executed clip(base + scale * residual)."""
    return (base + scale * residual).clamp(-1.0, 1.0)


class ResidualActor(nn.Module):
    """features [B, F] -> (executed action [B, A], log pi(residual) [B] or None), reading the base's
    action from features[:, base_at : base_at + A]; the same call signature as TanhGaussianActor, so
    SAC's update runs on it unchanged. The residual's last layer starts at zero."""

    def __init__(self, residual: TanhGaussianActor, base_at: int, scale: float) -> None:
        super().__init__()
        self.residual = residual
        self.base = slice(base_at, base_at + residual.action_dim)
        self.scale = scale
        last = [m for m in residual.modules() if isinstance(m, nn.Linear)][-1]
        nn.init.zeros_(last.weight)
        nn.init.zeros_(last.bias)

    def forward(
        self, features: torch.Tensor, generator: torch.Generator | None = None, deterministic: bool = False
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        residual, log_prob = self.residual(features, generator, deterministic)
        return compose_action(features[:, self.base], residual, self.scale), log_prob


# ---- agent ---------------------------------------------------------------------------------------


class PinnedBase:
    """Mixed in before SACAgent by agents over a frozen base (residual, dsrl): `base_id` (set in
    __init__ from base_identity) travels in the policy state and the checkpoint, and weights or a
    checkpoint made with another base are refused, naming both."""

    base_id: str
    cfg: Any

    def policy_state(self) -> dict[str, torch.Tensor]:
        return {**super().policy_state(), "base_id": _id_tensor(self.base_id)}  # type: ignore[misc]

    def load_policy_state(self, state: dict[str, torch.Tensor]) -> None:
        if "base_id" not in state:
            raise ValueError(f"these weights carry no base identity: they are not a {type(self).__name__}'s")
        self._check_base(_id_text(state["base_id"]), "the weights")
        super().load_policy_state(state)  # type: ignore[misc]

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "base_id": self.base_id}  # type: ignore[misc]

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self._check_base(str(state["base_id"]), "the checkpoint")
        super().load_state_dict(state)  # type: ignore[misc]

    def _check_base(self, theirs: str, where: str) -> None:
        if theirs != self.base_id:
            raise ValueError(
                f"agent.base={self.cfg.base} differs from the base {where} came from: here "
                f"'{self.base_id}', in {where} '{theirs}'; give every actor and the learner the same base"
            )


class ResidualAgent(PinnedBase, SACAgent):
    """Residual SAC implementing robot_rl.agents.base.Agent, on observations whose state ends with
    the frozen base's action (robot_rl/runtime/residual_base.with_base builds that env)."""

    offline = False

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        action_space: gym.spaces.Box,
        cfg: ResidualConfig | None = None,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ) -> None:
        if not isinstance(cfg, ResidualConfig):
            raise ValueError("a residual agent needs a ResidualConfig naming its base (agent.base)")
        super().__init__(obs_space, action_space, cfg, device, seed)
        self.cfg: ResidualConfig = cfg
        state_dim = int(np.prod(obs_space["state"].shape))
        if state_dim <= self.action_dim:
            raise ValueError(
                f"the residual agent's state ({state_dim}) must end with the base's action "
                f"({self.action_dim}); build its env with robot_rl.runtime.residual_base.with_base"
            )
        self.base_at = state_dim - self.action_dim  # the encoder passes the state through first
        # Same parameter tensors as SAC's actor, zeroed in place: its optimiser still holds them.
        self.actor = ResidualActor(self.actor, self.base_at, cfg.scale)
        self.base_id = base_identity(cfg.base)
        self.update_calls = 0  # the learner's; an actor gets it with the weights (progressive_steps)

    def residual_share(self) -> float:
        """Chance that a collecting step adds the residual (progressive exploration)."""
        steps = self.cfg.progressive_steps
        return 1.0 if steps == 0 else min(1.0, self.update_calls / steps)

    @torch.inference_mode()
    def act(self, obs: Obs, deterministic: bool = False) -> np.ndarray:
        """One unbatched Obs (state ending with the base's action) -> float32[A] executed action."""
        share = self.residual_share()
        if deterministic or share >= 1.0:
            return super().act(obs, deterministic)
        if float(torch.rand((), generator=self.generator, device=self.device)) < share:
            return super().act(obs, deterministic)
        return np.asarray(obs["state"], np.float32)[self.base_at :].copy()

    def update(self, batches: Iterator[Batch]) -> dict[str, float]:
        """SAC's update on the executed actions (see SACAgent.update)."""
        info = super().update(batches)
        self.update_calls += 1
        return info

    # ---- state ---------------------------------------------------------------------------------

    def policy_state(self) -> dict[str, torch.Tensor]:
        """SAC's "actor.*" / "encoder.*" weights, the base's identity and the update count."""
        return {**super().policy_state(), "update_calls": torch.tensor(self.update_calls, dtype=torch.int64)}

    def load_policy_state(self, state: dict[str, torch.Tensor]) -> None:
        super().load_policy_state(state)
        self.update_calls = int(state["update_calls"])

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "update_calls": self.update_calls}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self.update_calls = int(state["update_calls"])
