"""Scripted expert success rates (clean, and driven by sim/human_style.py's NoisyOperator for
the contact-rich tasks), random-policy success on pick_cube, and sim env step time.

Run: python -m benchmarks.sim_experts [--episodes 100]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

import numpy as np

from benchmarks.common import write_results
from sim.experts import expert_for
from sim.human_style import NoisyOperator
from sim.tasks import TASKS, make_sim_env

NOISY_TASKS = ("pick_cube", "peg_insert", "stack_cube", "slide_to_mark")


def run_policy(task: str, episodes: int, policy: str, seed0: int = 0, **env_kwargs: Any) -> dict[str, Any]:
    """Success rate and episode lengths of the scripted expert ("expert"), the expert driven as
    a person would ("noisy"), or a uniform random policy ("random")."""
    env = make_sim_env(task, **env_kwargs)
    expert = expert_for(task)(env) if policy in ("expert", "noisy") else None
    if policy == "noisy":
        expert = NoisyOperator(expert, seed=seed0)
    rng = np.random.default_rng(seed0)
    successes, lengths = 0, []
    for ep in range(episodes):
        obs, _ = env.reset(seed=seed0 + ep)
        steps = 0
        if expert is not None:
            expert.reset()
        while True:
            if expert is not None:
                action = expert(obs)
            else:
                action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
            obs, _, terminated, truncated, info = env.step(action)
            steps += 1
            if terminated or truncated:
                break
        successes += bool(info["success"])
        lengths.append(steps)
    return {
        "success_rate": successes / episodes,
        "episodes": episodes,
        "mean_len": float(np.mean(lengths)),
        "max_len": int(np.max(lengths)),
        "max_episode_steps": env.unwrapped.max_episode_steps,
    }


def step_time_ms(task: str, steps: int, **kwargs: Any) -> float:
    """Median wall time of env.step over a random-action rollout (resets excluded)."""
    env = make_sim_env(task, seed=0, **kwargs)
    rng = np.random.default_rng(0)
    times = []
    for _ in range(steps):
        action = rng.uniform(-1, 1, env.action_space.shape).astype(np.float32)
        t0 = time.perf_counter()
        *_, terminated, truncated, _ = env.step(action)
        times.append(time.perf_counter() - t0)
        if terminated or truncated:
            env.reset()
    return float(np.median(times) * 1e3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--episodes", type=int, default=100)
    parser.add_argument("--timing-steps", type=int, default=500)
    args = parser.parse_args()

    rows: dict[str, Any] = {}
    for task in TASKS:
        rows[f"{task} expert"] = run_policy(task, args.episodes, "expert")
    rotated = run_policy("peg_insert", args.episodes, "expert", rotation=True)
    rows["peg_insert expert, rotation=true"] = rotated
    for task in NOISY_TASKS:
        rows[f"{task} expert, noisy"] = run_policy(task, args.episodes, "noisy")
    rows["pick_cube random"] = run_policy("pick_cube", args.episodes, "random", seed0=10_000)
    timing = {
        "pick_cube state (privileged)": step_time_ms("pick_cube", args.timing_steps, privileged=True),
        "push state": step_time_ms("push", args.timing_steps),
        "peg_insert state": step_time_ms("peg_insert", args.timing_steps),
        "stack_cube state": step_time_ms("stack_cube", args.timing_steps),
        "slide_to_mark state": step_time_ms("slide_to_mark", args.timing_steps),
    }
    try:
        timing["pick_cube + wrist,front 64x64"] = step_time_ms(
            "pick_cube", args.timing_steps // 5, cameras=("wrist", "front")
        )
    except Exception as exc:  # no GL backend here: report it, keep the other figures
        timing["pick_cube + wrist,front 64x64"] = f"unavailable: {exc}"

    lines = [
        "### Sim: scripted experts and random policy",
        "",
        "noisy: the expert driven as a person with a SpaceMouse drives it (`demos.style=noisy`, "
        "sim/human_style.py); failed noisy demos are re-drawn when recording.",
        "",
        "| policy | success | mean length | max length | episode limit |",
        "|---|---|---|---|---|",
    ]
    for name, r in rows.items():
        lines.append(
            f"| {name} | {r['success_rate']:.2f} ({r['episodes']} eps) | {r['mean_len']:.1f} | "
            f"{r['max_len']} | {r['max_episode_steps']} |"
        )
    lines += ["", "| env step (10 Hz control, 500 Hz physics + IK, one core) | median ms |", "|---|---|"]
    for name, t in timing.items():
        lines.append(f"| {name} | {t:.2f} |" if isinstance(t, float) else f"| {name} | {t} |")
    write_results(
        name="sim_experts",
        payload={"policies": rows, "step_time_ms": timing},
        markdown="\n".join(lines),
        command="python -m benchmarks.sim_experts",
    )
    print("\n".join(lines))


if __name__ == "__main__":
    main()
