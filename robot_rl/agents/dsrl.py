"""Latent-noise steering (DSRL, Wagenmakers et al. 2025): SAC acts in the initial-noise space of a
frozen flow_bc or diffusion_bc policy, which maps each noise to an action chunk through its
deterministic sampler (flow: Euler; diffusion: DDIM with eta = 0). The base is a black box: it is
never trained and no gradient goes through it.

Where the noise becomes actions: in the actor process, inside the env
(robot_rl/runtime/noise_env.py): the agent's action u in [-1, 1]^(T_act * A) is the noise
noise_bound * u, so |noise| <= noise_bound per entry, always. At a decision (an episode's first
tick, then every act_horizon ticks of the base) the env samples the base's chunk for that noise and
executes its first act_horizon actions, one per control tick; between decisions it ignores the
action. So env steps, budgets and evaluation count control ticks, as for any agent.

The critic is over whole decisions (Q-chunking, Li et al. 2025): every step stores the noise in
effect, so a decision is a run of equal stored actions, and the learner feeds chunk transitions
(robot_rl/data/windows.gather_chunks) from a decision's first observation and noise to the
observation after its last tick, with the chunk's discounted return and a gamma^ticks bootstrap.
A drawn tick stands for its decision; replay.n_step is not used. SAC's update runs on them
unchanged, best-of-N (agent.best_of_n: N noise draws ranked by the critic) included.

Version pin: as the residual agent's (robot_rl/agents/residual.PinnedBase), so the learner's
machine needs the base too (it reads its act_horizon and pins it). Demos and teleop
corrections are env actions, not noise, so agent=dsrl runs with demos=none and teleop=none.

Shapes: B batch, T_act the base's chunk, A the env's action size, W = T_act * A the noise size.
"""

from __future__ import annotations

from dataclasses import dataclass

import gymnasium as gym
import torch
from omegaconf import OmegaConf

from robot_rl.agents.residual import PinnedBase, base_config_file, base_identity, base_weights_file
from robot_rl.agents.sac import SACAgent, SACConfig


@dataclass
class DsrlConfig(SACConfig):
    """agent=dsrl: SAC's fields (inherited: nets, critics, UTD, learning rates, temperature,
    encoder, best_of_n) configure the noise policy and its critic; these say what it steers."""

    # The frozen base: a flow_bc or diffusion_bc run folder of this project, or a weights file in
    # one (its config.yaml beside or above it); its chunk, act_horizon and sampler are used as saved.
    base: str = ""
    # The noise's bound per entry: noise = noise_bound * u, u in [-1, 1]. 1.5 lets the policy reach
    # the 87% of a standard normal's draws that lie within 1.5 of 0 and keeps it off the tails the
    # base rarely saw in training.
    noise_bound: float = 1.5

    def __post_init__(self) -> None:
        super().__post_init__()
        if not self.base:
            raise ValueError("agent=dsrl needs agent.base=<a flow_bc or diffusion_bc run or its weights>")
        if not self.noise_bound > 0.0:
            raise ValueError(f"agent.noise_bound must be > 0, got {self.noise_bound}")
        if self.gripper != "continuous":
            raise ValueError("agent=dsrl needs agent.gripper=continuous: it acts in noise, not grips")


def base_act_horizon(spec: str) -> int:
    """The base run's act_horizon (ticks per decision), read from its config.yaml; a base that
    is not a chunked policy's run raises ValueError naming it."""
    weights = base_weights_file(spec)
    if weights is None:
        raise ValueError(
            f"agent.base={spec}: DSRL steers the noise of a flow_bc or diffusion_bc run; "
            "a module:Class has no noise to steer"
        )
    config = base_config_file(spec, weights)
    horizon = OmegaConf.load(config).get("agent", {}).get("act_horizon")
    if not isinstance(horizon, int) or horizon < 1:
        raise ValueError(
            f"agent.base={spec}: the agent in {config} is not a chunked policy (flow_bc, diffusion_bc) "
            "with an initial noise to steer"
        )
    return horizon


class DsrlAgent(PinnedBase, SACAgent):
    """DSRL implementing robot_rl.agents.base.Agent: SAC over the noise box [-1, 1]^W of an env
    built by robot_rl/runtime/noise_env.py, fed chunk transitions of `critic_chunk` ticks at most."""

    offline = False

    def __init__(
        self,
        obs_space: gym.spaces.Dict,
        action_space: gym.spaces.Box,
        cfg: DsrlConfig | None = None,
        device: str | torch.device = "cpu",
        seed: int | None = None,
    ) -> None:
        if not isinstance(cfg, DsrlConfig):
            raise ValueError("a DSRL agent needs a DsrlConfig naming its base (agent.base)")
        self.critic_chunk = base_act_horizon(cfg.base)  # the learner samples decisions this long
        super().__init__(obs_space, action_space, cfg, device, seed)
        self.cfg: DsrlConfig = cfg
        self.base_id = base_identity(cfg.base)
