"""BC with and without state normalisation (agent.normalize_state) on the hard tasks.

Why the option exists: the hard tasks are decided by millimetres, which are 0.001 of a raw
state entry in metres. Per task and seed, the scripted expert records --demos clean episodes
(sim/experts.py, privileged state, the learning default); agent=bc trains on them offline for
--updates gradient steps of batch 256, once on raw state and once with normalize_state=true (the
same demos, the same initialisation seed), and each policy is evaluated deterministically on
--episodes seeded episodes. IQM over seeds, 95% bootstrap interval.

    python -m benchmarks.state_norm                       # peg_insert and stack_cube, seeds 0-2
    python -m benchmarks.state_norm --tasks peg_insert --seeds 0 --demos 5 --updates 50 \\
        --episodes 2 --smoke                               # the path only, RESULTS.md untouched
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from benchmarks.common import write_results
from robot_rl.agents.bc import BCAgent, BCConfig
from robot_rl.eval.rollout import run_episodes
from robot_rl.eval.stats import bootstrap_ci, iqm
from robot_rl.transition import Batch
from sim.experts import expert_for
from sim.tasks import make_sim_env

VARIANTS = {"raw state": False, "normalize_state=true": True}


def record(task: str, episodes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """States [N, D] and actions [N, A] of `episodes` successful expert episodes."""
    env = make_sim_env(task, privileged=True)
    expert = expert_for(task)(env)
    states, actions, kept, attempt = [], [], 0, 0
    while kept < episodes:
        obs, _ = env.reset(seed=10_000 + 1_000 * seed + attempt)
        expert.reset()
        attempt += 1
        ep_s, ep_a, success = [], [], False
        while True:
            action = expert(obs)
            ep_s.append(obs["state"])
            ep_a.append(action)
            obs, _, terminated, truncated, info = env.step(action)
            success = success or bool(info["success"])
            if terminated or truncated:
                break
        if success:
            states += ep_s
            actions += ep_a
            kept += 1
    return np.asarray(states, np.float32), np.asarray(actions, np.float32)


def train_and_eval(task: str, normalize: bool, data: tuple[np.ndarray, np.ndarray], seed: int, args) -> float:
    env = make_sim_env(task, privileged=True)
    agent = BCAgent(env.observation_space, env.action_space, BCConfig(normalize_state=normalize), seed=seed)
    states, actions = data
    rng = np.random.default_rng(seed)

    def batches():
        while True:
            i = rng.integers(len(states), size=256)
            zeros = np.zeros(256, np.float32)
            yield Batch({"state": states[i]}, actions[i], zeros, {"state": states[i]}, zeros)

    stream = batches()
    for _ in range(args.updates):
        agent.update(stream)
    return float(run_episodes(env, agent, args.episodes, seed=50_000 + 1_000 * seed)["success_rate"])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="*", default=["peg_insert", "stack_cube"])
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--demos", type=int, default=100)
    parser.add_argument("--updates", type=int, default=5_000)
    parser.add_argument("--episodes", type=int, default=50)
    parser.add_argument("--smoke", action="store_true", help="write the JSON only, not RESULTS.md")
    args = parser.parse_args()
    torch.set_num_threads(1)
    results: dict = {}
    lines = [
        f"## state_norm: BC on {args.demos} clean expert demos, raw state vs normalised, seeds {args.seeds}",
        "",
        f"agent=bc, {args.updates:,} offline updates of batch 256 on the demos (privileged state), "
        f"then {args.episodes} deterministic evaluation episodes per seed; the two variants share "
        "demos and seeds. IQM over seeds, 95% bootstrap interval. Minutes: training and evaluation "
        "of one policy (median).",
        "",
        "| task | variant | success IQM | 95% CI | per seed | minutes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for task in args.tasks:
        results[task] = {}
        demos = {seed: record(task, args.demos, seed) for seed in args.seeds}
        for name, normalize in VARIANTS.items():
            rates, minutes = [], []
            for seed in args.seeds:
                start = time.perf_counter()
                rates.append(train_and_eval(task, normalize, demos[seed], seed, args))
                minutes.append((time.perf_counter() - start) / 60)
                print(f"{task} {name} seed {seed}: {rates[-1]:.2f}", flush=True)
            low, high = bootstrap_ci(rates) if len(rates) > 1 else (float("nan"), float("nan"))
            results[task][name] = {
                "success": rates,
                "iqm": iqm(rates),
                "ci95": [low, high],
                "minutes": minutes,
            }
            lines.append(
                f"| {task} | {name} | {iqm(rates):.2f} | [{low:.2f}, {high:.2f}] | "
                f"{', '.join(f'{r:.2f}' for r in rates)} | {np.median(minutes):.1f} |"
            )
    payload = {"args": vars(args), "results": results}
    command = "python -m benchmarks.state_norm " + " ".join(sys.argv[1:])
    name = "state_norm_smoke" if args.smoke else "state_norm"
    write_results(name, payload, "\n".join(lines), command.strip(), section=not args.smoke)


if __name__ == "__main__":
    main()
