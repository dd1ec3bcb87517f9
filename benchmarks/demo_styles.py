"""A clean and a noisy (demos.style=noisy) demo of one task, side by side: the tool centre
point's x, y, z against the control tick, and the gripper command.

Run: python -m benchmarks.demo_styles [--task peg_insert] [--seed 0]
Writes benchmarks/results/demo_styles_<task>.png. The noisy demo is the first of the operator's
seed that succeeds, as demos.style=noisy keeps only successful ones.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from sim.experts import expert_for
from sim.human_style import NoisyOperator
from sim.tasks import TASKS, make_sim_env

RESULTS = Path(__file__).resolve().parent / "results"


def record(task: str, seed: int, noisy: bool) -> tuple[np.ndarray, np.ndarray, bool]:
    """(ee positions [T+1, 3], gripper commands [T], success) of one demo from reset seed `seed`."""
    env = make_sim_env(task)
    policy = expert_for(task)(env)
    if noisy:
        policy = NoisyOperator(policy, seed=seed)
    obs, _ = env.reset(seed=seed)
    policy.reset()
    ee, grip = [env.unwrapped.ee_position()], []
    while True:
        action = policy(obs)
        obs, _, terminated, truncated, info = env.step(action)
        ee.append(env.unwrapped.ee_position())
        grip.append(float(action[-1]))
        if terminated or truncated:
            return np.array(ee), np.array(grip), bool(info["success"])


def plot(task: str, seed: int) -> Path:
    clean = record(task, seed, noisy=False)
    for s in range(seed, seed + 20):  # the first successful noisy demo, as recording keeps
        noisy = record(task, s, noisy=True)
        if noisy[2]:
            break
    fig = Figure(figsize=(9, 6.5))
    FigureCanvasAgg(fig)
    axes = fig.subplots(4, 1, sharex=True, gridspec_kw={"height_ratios": [3, 3, 3, 1.5]})
    for (ee, grip, ok), style, label in [(clean, "-", "clean"), (noisy, "--", "noisy")]:
        for i, name in enumerate("xyz"):
            axes[i].plot(ee[:, i], style, lw=1.6, label=f"{label} ({'success' if ok else 'failed'})")
            axes[i].set_ylabel(f"ee {name} (m)")
        axes[3].step(np.arange(len(grip)), grip, style, where="post", lw=1.4, label=label)
    axes[3].set_ylabel("gripper")
    axes[3].set_yticks([-1, 1], ["open", "closed"])
    axes[3].set_xlabel("control tick (10 Hz)")
    axes[0].legend(loc="best", fontsize=9)
    axes[0].set_title(f"{task}: scripted demo, clean vs demos.style=noisy (seed {seed})")
    for ax in axes:
        ax.grid(alpha=0.3)
    RESULTS.mkdir(exist_ok=True)
    out = RESULTS / f"demo_styles_{task}.png"
    fig.savefig(out, dpi=110, bbox_inches="tight")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--task", default="peg_insert", choices=sorted(TASKS))
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print(plot(args.task, args.seed))


if __name__ == "__main__":
    main()
