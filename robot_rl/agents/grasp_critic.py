"""HIL-SERL's discrete grasp critic: the gripper as a discrete action {open, stay, close} learned by
its own Q-head (double DQN, Polyak target), while SAC's continuous policy moves the arm
(`agent.gripper=discrete`, robot_rl.agents.sac).

What a discrete choice means. The env's gripper command is absolute (-1 open .. +1 closed,
sim/task_spec.py), so "stay" needs to know what the gripper is doing now. We read that from the
measured gripper width in the state (index GRIPPER_WIDTH_INDEX of the task state layout):
the gripper is "open" when width >= open_width_m, "closed" otherwise (closing, closed, or holding
an object). Then
    open  -> command -1,   close -> command +1,   stay -> the command that matches the measured
    state (-1 when open, +1 when closed).
Why the measured state and not the agent's own previous command: the replay holds the executed
actions and the states, not the agent's memory, so the training label of a stored step must be
computable from the step alone; a person's intervention or a demo can also change the gripper
behind the agent's back. With the measured state, act() and the label are exact inverses: at
10 Hz the sim's gripper fully opens or closes within one env step, so the width at step t shows
the command of step t-1. open_width_m must lie between the widest grasped object and the fully
open width (default 0.07 m: Panda hand 0.08 m open, pick_cube's cube 0.04 m).

Label of a stored step (executed gripper command c, measured width w at its observation):
    c > 0 is a close command, c <= 0 an open command (a continuous demo's intermediate command
    counts by the side it moves the gripper to);
    the command agrees with the measured state -> STAY; else the toggle it makes (OPEN / CLOSE).
The toggle penalty `grasp_penalty` is subtracted from the reward exactly when the label is not
STAY. With n-step returns only the first step's toggle is penalised (later steps' labels are not
in the batch).

Shapes: B batch, F features, K grasp critics, G = 3 gripper choices.
"""

from __future__ import annotations

import copy
from typing import Any

import torch
from torch import nn

from robot_rl.agents.common import make_adam
from robot_rl.nets.ensemble import EnsembleMLP
from robot_rl.transition import Batch

OPEN, STAY, CLOSE = 0, 1, 2
NUM_CHOICES = 3
GRIPPER_WIDTH_INDEX = 7  # state: ee_pos (3) | ee_quat (4) | gripper_width (1) | ...
GRIPPER_MODES = ("continuous", "discrete")


def validate_grasp_config(cfg: Any) -> None:
    """The grasp fields of SACConfig; raises ValueError naming the bad field."""
    if cfg.gripper not in GRIPPER_MODES:
        raise ValueError(f"gripper must be one of {GRIPPER_MODES}, got {cfg.gripper!r}")
    if cfg.grasp_penalty < 0.0:
        raise ValueError(f"grasp_penalty must be >= 0, got {cfg.grasp_penalty}")
    if not cfg.grasp_lr > 0.0:
        raise ValueError(f"grasp_lr must be > 0, got {cfg.grasp_lr}")
    if cfg.grasp_num_critics < 1:
        raise ValueError(f"grasp_num_critics must be >= 1, got {cfg.grasp_num_critics}")
    if not 0.0 <= cfg.grasp_epsilon <= 1.0:
        raise ValueError(f"grasp_epsilon must be in [0, 1], got {cfg.grasp_epsilon}")
    if not cfg.grasp_open_width_m > 0.0:
        raise ValueError(f"grasp_open_width_m must be > 0, got {cfg.grasp_open_width_m}")


def check_arm_task(action_dim: int, state_dim: int) -> None:
    """A discrete gripper needs (arm..., gripper) actions and the gripper width in the state."""
    if action_dim < 2 or state_dim <= GRIPPER_WIDTH_INDEX:
        raise ValueError(
            f"agent.gripper=discrete needs an arm task ((arm..., gripper) actions, the gripper width "
            f"at state[{GRIPPER_WIDTH_INDEX}]); got {action_dim} actions, {state_dim} state dims: "
            "use agent.gripper=continuous"
        )


def gripper_is_open(state: torch.Tensor, open_width_m: float) -> torch.Tensor:
    """state: [B, D] raw task state -> bool[B]: the measured width says the gripper is open."""
    return state[:, GRIPPER_WIDTH_INDEX] >= open_width_m


def gripper_labels(command: torch.Tensor, is_open: torch.Tensor) -> torch.Tensor:
    """command: [B] executed gripper command in [-1, 1], is_open: bool[B] -> int64[B] in {OPEN,
    STAY, CLOSE}: STAY where the command agrees with the measured state, else the toggle."""
    closing = command > 0.0
    toggled = closing == is_open  # close while open, or open while closed
    toggle_label = torch.where(closing, CLOSE, OPEN)
    return torch.where(toggled, toggle_label, torch.full_like(toggle_label, STAY))


def gripper_commands(choice: torch.Tensor, is_open: torch.Tensor) -> torch.Tensor:
    """choice: int64[B], is_open: bool[B] -> float32[B] absolute commands; inverse of gripper_labels."""
    stay = torch.where(is_open, -1.0, 1.0)
    return torch.where(choice == OPEN, -1.0, torch.where(choice == CLOSE, 1.0, stay)).float()


def grasp_td_target(
    reward: torch.Tensor,
    discount: torch.Tensor,
    toggled: torch.Tensor,
    penalty: float,
    next_q_online: torch.Tensor,
    next_q_target: torch.Tensor,
) -> torch.Tensor:
    """Double DQN: y = r - penalty * toggled + discount * min_k Q'_k(s', argmax_g mean_k Q_k(s', g)).

    reward, discount: [B]; toggled: bool[B]; next_q_online, next_q_target: [K, B, G].
    """
    best = next_q_online.mean(0).argmax(-1)  # [B]
    index = best.view(1, -1, 1).expand(next_q_target.shape[0], -1, 1)
    next_v = next_q_target.gather(-1, index).squeeze(-1).min(0).values
    return reward - penalty * toggled.float() + discount * next_v


def grasp_loss(
    q: torch.Tensor, labels: torch.Tensor, target: torch.Tensor
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """q: [K, B, G], labels: int64[B], target: [B]; squared TD error of the taken choice."""
    q_taken = q.gather(-1, labels.view(1, -1, 1).expand(q.shape[0], -1, 1)).squeeze(-1)  # [K, B]
    loss = (q_taken - target).square().mean()
    return loss, {"grasp_loss": loss.detach(), "grasp_q_mean": q_taken.detach().mean()}


class GraspCritic:
    """K Q-heads over the gripper choices on the SAC encoder's (detached) features, with a target."""

    def __init__(self, feature_dim: int, cfg: Any, device: torch.device) -> None:
        self.cfg = cfg
        self.net = EnsembleMLP(
            feature_dim, cfg.hidden_dims, cfg.grasp_num_critics, out_dim=NUM_CHOICES,
            layer_norm=cfg.critic_layer_norm,
        ).to(device)  # fmt: skip
        self.target = copy.deepcopy(self.net).requires_grad_(False)
        self.opt = make_adam(self.net.parameters(), cfg.grasp_lr, device)

    def choose(
        self, features: torch.Tensor, state: torch.Tensor, explore: bool, generator: torch.Generator
    ) -> torch.Tensor:
        """features: [B, F], state: [B, D] -> float32[B] gripper commands: argmax of the ensemble
        mean, or with explore a uniformly random choice with probability grasp_epsilon."""
        choice = self.net(features).mean(0).argmax(-1)
        if explore and self.cfg.grasp_epsilon > 0.0:
            b = choice.shape[0]
            coin = torch.rand(b, device=choice.device, generator=generator) < self.cfg.grasp_epsilon
            rand = torch.randint(NUM_CHOICES, (b,), device=choice.device, generator=generator)
            choice = torch.where(coin, rand, choice)
        return gripper_commands(choice, gripper_is_open(state, self.cfg.grasp_open_width_m))

    def update(self, batch: Batch, features: torch.Tensor, next_encoder: nn.Module) -> dict[str, Any]:
        """One gradient step and Polyak update. features: [B, F] detached; next_encoder gives
        the next observations' features for the target."""
        labels = gripper_labels(
            batch.action[:, -1], gripper_is_open(batch.obs["state"], self.cfg.grasp_open_width_m)
        )
        with torch.no_grad():
            next_features = next_encoder(batch.next_obs)
            target = grasp_td_target(
                batch.reward, batch.discount, labels != STAY, self.cfg.grasp_penalty,
                self.net(next_features), self.target(next_features),
            )  # fmt: skip
        loss, info = grasp_loss(self.net(features), labels, target)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(list(self.target.parameters()), list(self.net.parameters()), self.cfg.tau)
        info["grasp_toggle_rate"] = (labels != STAY).float().mean()
        return info

    def state_dict(self) -> dict[str, Any]:
        nets = {"net": self.net, "target": self.target, "opt": self.opt}
        return {name: part.state_dict() for name, part in nets.items()}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.net.load_state_dict(state["net"])
        self.target.load_state_dict(state["target"])
        self.opt.load_state_dict(state["opt"])
