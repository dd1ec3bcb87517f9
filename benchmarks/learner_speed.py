"""Learner speed: gradient updates/s of our SAC vs Stable-Baselines3's SAC, one CPU thread.

Same configuration for both: 2 critics, batch 256, two 256-unit hidden layers, one update per
env step (UTD 1), state obs of 30 dims (pick_cube-sized), 4-dim actions, no LayerNorm (SB3 has
none). Ours is timed through agent.update on pre-sampled numpy batches, so the numpy -> torch
conversion is included; SB3 through model.train(gradient_steps=N), which samples its own buffer.
Matmul FLOPs per update are counted with torch.utils.flop_counter and compared with this
machine's single-thread fp32 matmul rate. Also: cost per critic of the vectorised ensemble at
K=10 vs K=2. Measures and reports only; asserts nothing.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator

import gymnasium as gym
import numpy as np
import torch
from torch.utils.flop_counter import FlopCounterMode

from benchmarks.common import write_results
from robot_rl.agents.sac import SACAgent, SACConfig
from robot_rl.transition import Batch

STATE_DIM, ACTION_DIM, BATCH, HIDDEN = 30, 4, 256, [256, 256]
N_UPDATES, REPEATS, WARMUP = 200, 7, 50


def spaces() -> tuple[gym.spaces.Dict, gym.spaces.Box]:
    state = gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)
    return gym.spaces.Dict({"state": state}), gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)


def random_batches(n: int, seed: int = 0) -> list[Batch]:
    rng = np.random.default_rng(seed)

    def one() -> Batch:
        return Batch(
            obs={"state": rng.standard_normal((BATCH, STATE_DIM), dtype=np.float32)},
            action=rng.uniform(-1, 1, (BATCH, ACTION_DIM)).astype(np.float32),
            reward=rng.standard_normal(BATCH, dtype=np.float32),
            next_obs={"state": rng.standard_normal((BATCH, STATE_DIM), dtype=np.float32)},
            discount=np.where(rng.random(BATCH) < 0.02, 0.0, 0.99).astype(np.float32),
        )

    return [one() for _ in range(n)]


def cycle(batches: list[Batch]) -> Iterator[Batch]:
    while True:
        yield from batches


def our_agent(num_critics: int = 2, num_min: int = 2, layer_norm: bool = False) -> SACAgent:
    cfg = SACConfig(
        hidden_dims=list(HIDDEN), num_critics=num_critics, num_min_critics=num_min,
        critic_layer_norm=layer_norm, batch_size=BATCH, utd=1,
    )  # fmt: skip
    obs_space, action_space = spaces()
    return SACAgent(obs_space, action_space, cfg, device="cpu", seed=0)


def our_runner(agent: SACAgent, batches: list[Batch]) -> Callable[[int], None]:
    it = cycle(batches)

    def run(n: int) -> None:
        for _ in range(n):
            agent.update(it)

    return run


def sb3_runner() -> tuple[Callable[[int], None], object]:
    from stable_baselines3 import SAC
    from stable_baselines3.common.logger import configure

    class Dummy(gym.Env):
        observation_space = gym.spaces.Box(-np.inf, np.inf, (STATE_DIM,), np.float32)
        action_space = gym.spaces.Box(-1.0, 1.0, (ACTION_DIM,), np.float32)

    model = SAC(
        "MlpPolicy", Dummy(), batch_size=BATCH, buffer_size=20_000, learning_starts=0,
        policy_kwargs={"net_arch": list(HIDDEN)}, device="cpu", seed=0,
    )  # fmt: skip
    model.set_logger(configure(None, []))
    rng = np.random.default_rng(1)
    buf = model.replay_buffer
    n = buf.buffer_size
    buf.observations[:] = rng.standard_normal(buf.observations.shape, dtype=np.float32)
    buf.next_observations[:] = rng.standard_normal(buf.next_observations.shape, dtype=np.float32)
    buf.actions[:] = rng.uniform(-1, 1, buf.actions.shape).astype(np.float32)
    buf.rewards[:] = rng.standard_normal(buf.rewards.shape, dtype=np.float32)
    buf.dones[:] = (rng.random(buf.dones.shape) < 0.02).astype(np.float32)
    buf.full, buf.pos = True, 0
    assert buf.size() == n

    def run(k: int) -> None:
        model.train(gradient_steps=k, batch_size=BATCH)

    return run, model


def updates_per_s(run: Callable[[int], None], n: int = N_UPDATES) -> float:
    t0 = time.perf_counter()
    run(n)
    return n / (time.perf_counter() - t0)


def interleaved(runners: dict[str, Callable[[int], None]]) -> dict[str, list[float]]:
    """Warm every runner, then alternate them repeat by repeat so load changes on this shared
    machine hit all of them alike; returns updates/s per repeat."""
    for run in runners.values():
        run(WARMUP)
    rates: dict[str, list[float]] = {k: [] for k in runners}
    for _ in range(REPEATS):
        for name, run in runners.items():
            rates[name].append(updates_per_s(run))
    return rates


def flops_of(run: Callable[[int], None]) -> int:
    """Matmul/conv FLOPs (forward + backward) of one update, counted by torch."""
    counter = FlopCounterMode(display=False)
    with counter:
        run(1)
    return int(counter.get_total_flops())


def matmul_rate() -> float:
    """Best single-thread fp32 matmul rate (FLOP/s) at this workload's shapes."""
    best = 0.0
    for m, k, n in ((256, 256, 256), (256, STATE_DIM + ACTION_DIM, 256), (256, 300, 256)):
        a, b = torch.randn(m, k), torch.randn(k, n)
        for _ in range(20):
            a @ b
        for _ in range(7):
            t0 = time.perf_counter()
            for _ in range(100):
                a @ b
            best = max(best, 2 * m * k * n * 100 / (time.perf_counter() - t0))
    return best


def critic_step_ms_per_critic(layer_norm: bool, batches: list[Batch]) -> dict[int, float]:
    """Median ms per critic of one critic step (target, loss, backward, Adam, Polyak) at K=2 and
    K=10, with all K members in the target so the work is proportional; K alternate per repeat."""
    from robot_rl.agents.common import prepare_batch

    agents = {k: our_agent(k, k, layer_norm=layer_norm) for k in (2, 10)}
    tb = [prepare_batch(b, torch.device("cpu"), False) for b in batches[:20]]
    for agent in agents.values():
        for b in tb:
            agent._critic_step(b)
    times: dict[int, list[float]] = {k: [] for k in agents}
    for _ in range(REPEATS):
        for k, agent in agents.items():
            t0 = time.perf_counter()
            for b in tb * 3:
                agent._critic_step(b)
            times[k].append((time.perf_counter() - t0) / (len(tb) * 3) / k * 1e3)
    return {k: statistics.median(v) for k, v in times.items()}


def main() -> None:
    torch.set_num_threads(1)
    batches = random_batches(64)
    ours, ours_ln = our_agent(), our_agent(layer_norm=True)
    sb3_run, _ = sb3_runner()
    runners = {
        "ours": our_runner(ours, batches),
        "sb3": sb3_run,
        "ours_layernorm": our_runner(ours_ln, batches),
    }
    rates = interleaved(runners)
    med = {k: statistics.median(v) for k, v in rates.items()}
    flops = {k: flops_of(run) for k, run in runners.items()}
    peak = matmul_rate()
    util = {k: med[k] * flops[k] / peak for k in runners}
    per_critic = {"no_layernorm": critic_step_ms_per_critic(False, batches)}
    per_critic["layernorm"] = critic_step_ms_per_critic(True, batches)
    speedup = med["ours"] / med["sb3"]

    payload = {
        "config": {"state_dim": STATE_DIM, "action_dim": ACTION_DIM, "batch": BATCH, "hidden": HIDDEN,
                   "critics": 2, "utd": 1, "updates_per_repeat": N_UPDATES, "repeats": REPEATS},
        "updates_per_s": rates,
        "updates_per_s_median": med,
        "matmul_flops_per_update": flops,
        "matmul_rate_flops_per_s": peak,
        "fraction_of_matmul_rate": util,
        "speedup_vs_sb3": speedup,
        "critic_step_ms_per_critic": per_critic,
    }  # fmt: skip
    rows = [
        f"| {name} | {med[name]:.0f} | {flops[name] / 1e6:.0f} | {med[name] * flops[name] / 1e9:.1f} | "
        f"{util[name]:.2f} |"
        for name in runners
    ]
    markdown = "\n".join(
        [
            "## Learner speed (SAC, CPU, 1 thread)",
            "",
            f"State {STATE_DIM}, action {ACTION_DIM}, batch {BATCH}, hidden {HIDDEN}, 2 critics, UTD 1; "
            f"median of {REPEATS} repeats of {N_UPDATES} updates, run interleaved. "
            "`ours_layernorm` is RLPD's critic LayerNorm (SB3 has no such option).",
            "",
            "| learner | updates/s | matmul MFLOP/update | GFLOP/s | fraction of matmul rate |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Ours / SB3: **{speedup:.2f}x**. Single-thread fp32 matmul rate: {peak / 1e9:.1f} GFLOP/s.",
            "Critic step with the vectorised ensemble, ms per critic (all K members in the target): "
            + "; ".join(f"{n}: K=2 {v[2]:.2f}, K=10 {v[10]:.2f}" for n, v in per_critic.items())
            + ".",
            "The machine is shared with other work, so absolute figures vary between runs; "
            "the interleaving keeps the ratios comparable.",
        ]
    )
    path = write_results("learner_speed", payload, markdown, "python -m benchmarks.learner_speed")
    print(markdown)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
