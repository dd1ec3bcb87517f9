"""Learning on pick_cube: the default recipe and its ablations, over seeds.

Each run is the real `robot-rl train` (actor and learner processes) with the default config plus
one variant's overrides; the figure is the final 50-episode deterministic evaluation. Per variant
we report the interquartile mean over seeds with a 95% percentile-bootstrap interval, and the
training wall time. A random policy's success shows the task is not trivial.

    python -m benchmarks.learning                       # all variants, 3 seeds, 2 runs at a time
    python -m benchmarks.learning --variants default --seeds 0 1 2 3 4
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import BENCH_DIR, run_train, write_results
from robot_rl.eval.metrics import read_metrics
from robot_rl.eval.plots import plot_runs
from robot_rl.eval.stats import bootstrap_ci, iqm

VARIANTS: dict[str, list[str]] = {
    "default": [],
    "no demos": ["demos=none"],
    "no LayerNorm": ["agent.critic_layer_norm=false"],
    "UTD 1": ["agent.utd=1"],
    "BC (20 demos)": ["agent=bc", "total_env_steps=5000", "eval_every_steps=1000"],
}
OUT = BENCH_DIR / "out" / "learning"


def run_variant(
    name: str, overrides: list[str], seed: int, budget: int, rerun: bool, out: Path = OUT
) -> dict:
    run_dir = out / f"{name.replace(' ', '_').replace('(', '').replace(')', '')}_s{seed}"
    eval_path = run_dir / "eval.json"
    if eval_path.exists() and not rerun:
        return json.loads(eval_path.read_text()) | {"run_dir": str(run_dir)}
    t0 = time.monotonic()
    result = run_train(run_dir, [f"seed={seed}", f"total_env_steps={budget}", *overrides])
    print(
        f"  {name} seed {seed}: {result['stdout'].strip().splitlines()[-2]} ({time.monotonic() - t0:.0f}s)",
        flush=True,
    )
    return {k: v for k, v in result.items() if k != "stdout"}


def random_policy_success(seeds: list[int], episodes: int = 50) -> list[float]:
    from robot_rl.config import SimEnvConfig
    from robot_rl.envs.factory import make_env

    rates = []
    for seed in seeds:
        env = make_env(SimEnvConfig(), seed=seed)
        rng = np.random.default_rng(seed)
        wins = 0
        for _ in range(episodes):
            env.reset()
            done, success = False, False
            while not done:
                _, _, terminated, truncated, info = env.step(rng.uniform(-1, 1, env.action_space.shape))
                success = success or bool(info["success"])
                done = terminated or truncated
            wins += success
        rates.append(wins / episodes)
    return rates


def eval_curve(run_dir: str) -> tuple[np.ndarray, np.ndarray]:
    rows = [r for r in read_metrics(Path(run_dir) / "metrics.csv") if r.get("eval/success_rate") is not None]
    return np.array([r["env_steps"] for r in rows], float), np.array(
        [r["eval/success_rate"] for r in rows], float
    )


def score_row(name: str, success: list[float], minutes: list[float]) -> tuple[dict, str]:
    """One table row over seeds: IQM, 95% bootstrap interval (none for one seed), per-seed
    success and median minutes per run; returns (its JSON figures, its markdown row)."""
    low, high = bootstrap_ci(success) if len(success) > 1 else (float("nan"), float("nan"))
    stats = {
        "success": list(success),
        "iqm": iqm(success),
        "ci95": [low, high],
        "train_minutes": list(minutes),
    }
    row = (
        f"| {name} | {stats['iqm']:.2f} | [{low:.2f}, {high:.2f}] | "
        f"{', '.join(f'{s:.2f}' for s in success)} | {np.median(minutes):.1f} |"
    )
    return stats, row


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS))
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--env-steps", type=int, default=10_000)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each is an actor + a learner)")
    parser.add_argument(
        "--rerun", action="store_true", help="ignore finished runs in benchmarks/out/learning"
    )
    parser.add_argument(
        "--name",
        default="learning",
        help="results name (JSON, RESULTS.md section, curves, run folders); a subset of the variants "
        "under another name, e.g. a recheck of the default rows, leaves the full table as it is",
    )
    args = parser.parse_args()
    unknown = set(args.variants) - set(VARIANTS)
    if unknown:
        raise SystemExit(f"unknown variants {sorted(unknown)}; choose from {list(VARIANTS)}")

    jobs = [(name, seed) for seed in args.seeds for name in args.variants]
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {
            job: pool.submit(
                run_variant,
                job[0],
                VARIANTS[job[0]],
                job[1],
                args.env_steps,
                args.rerun,
                OUT.parent / args.name,
            )
            for job in jobs
        }
        results = {name: [futures[(name, s)].result() for s in args.seeds] for name in args.variants}
    random_rates = random_policy_success(args.seeds)

    rows, payload = [], {"seeds": args.seeds, "env_steps": args.env_steps, "variants": {}}
    for name, runs in results.items():
        stats, row = score_row(
            name, [r["success_rate"] for r in runs], [r["train_time_s"] / 60 for r in runs]
        )
        payload["variants"][name] = {"overrides": VARIANTS[name], **stats}
        rows.append(row)
    payload["random_policy"] = random_rates
    rows.append(
        f"| random policy | {iqm(random_rates):.2f} | - | {', '.join(f'{s:.2f}' for s in random_rates)} | - |"
    )

    curves = {name: [eval_curve(r["run_dir"]) for r in runs] for name, runs in results.items()}
    png = BENCH_DIR / "results" / f"{args.name}_pick_cube.png"
    png.parent.mkdir(exist_ok=True)
    plot_runs(curves, png, xlabel="env steps", ylabel="eval success rate (10 episodes)")

    table = "\n".join(
        [
            f"## Learning: pick_cube, state observations, {args.env_steps:,} env steps, seeds {args.seeds}",
            "",
            "Final evaluation: 50 deterministic episodes per run. IQM over seeds, 95% bootstrap interval.",
            "Training time is wall time of `robot-rl train` (actor + learner processes),"
            f" {args.jobs} runs at a time on this machine, so a lone run is faster.",
            "",
            "| variant | success IQM | 95% CI | per seed | train minutes (median) |",
            "| --- | --- | --- | --- | --- |",
            *rows,
            "",
            f"Curves: `benchmarks/results/{args.name}_pick_cube.png`.",
        ]
    )
    cmd = "python -m benchmarks.learning " + " ".join(sys.argv[1:])
    write_results(args.name, payload, table, cmd.strip())
    print(table)


if __name__ == "__main__":
    main()
