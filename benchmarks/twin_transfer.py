"""Cross-evaluation of twin_learning's policies: each direct-sim policy through the twin's ROS path,
and each ROS-path policy in the direct sim env, beside the success each had in its own env.

It tells a deployment gap (a policy good in one env and bad in the other) from a learning
failure (a policy bad in both). Run it after benchmarks.twin_learning, on that run's folders:

    python -m benchmarks.twin_transfer                   # the 10,000-step runs
    python -m benchmarks.twin_transfer --steps 7500
"""

from __future__ import annotations

import argparse
import json
import signal
import subprocess
import sys
from pathlib import Path

from benchmarks.common import free_port, write_results
from benchmarks.twin_learning import OUT, REPO, start_bringup


def evaluate(run_dir: Path, episodes: int, overrides: list[str]) -> float:
    cmd = [sys.executable, "-m", "robot_rl.cli", "eval", str(run_dir), "--episodes", str(episodes)]
    for override in overrides:
        cmd += ["--override", override]
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    return float(json.loads(done.stdout.strip().splitlines()[-1])["success_rate"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=10_000, help="which twin_learning budget's runs")
    parser.add_argument("--episodes", type=int, default=20)
    args = parser.parse_args()
    runs_dir = OUT / str(args.steps)
    runs = sorted(p for p in runs_dir.glob("*_s*") if (p / "weights" / "policy.pt").exists())
    if not runs:
        raise SystemExit(f"no twin_learning runs in {runs_dir}: run python -m benchmarks.twin_learning first")
    rows = []
    for run in runs:
        path, seed = run.name.rsplit("_s", 1)
        own = json.loads((run / "eval.json").read_text())["success_rate"]
        if path == "direct":  # through the twin: a bringup of its own, as in twin_learning
            port = free_port()
            node = start_bringup(port, int(seed), runs_dir / f"transfer_bringup_s{seed}.log")
            try:
                other = evaluate(
                    run, args.episodes, ["env=robot_twin", f"env.ros.connect=[tcp/127.0.0.1:{port}]"]
                )
            finally:
                node.send_signal(signal.SIGINT)
                node.wait(timeout=30)
        else:
            other = evaluate(run, args.episodes, ["env=sim"])
        rows.append({"trained": path, "seed": int(seed), "own_env": own, "other_env": other})
        print(f"  {run.name}: own env {own:.2f}, other env {other:.2f}", flush=True)
    table = [
        "| trained in | seed | success in its own env | success in the other env |",
        "| --- | --- | --- | --- |",
    ]
    names = {"direct": ("direct sim", "twin over ROS 2"), "ros": ("twin over ROS 2", "direct sim")}
    for r in rows:
        trained, other = names[r["trained"]]
        table.append(f"| {trained} | {r['seed']} | {r['own_env']:.2f} | {r['other_env']:.2f} ({other}) |")
    markdown = (
        f"## twin_transfer: twin_learning's {args.steps:,}-step policies, each evaluated in the other env\n\n"
        f"{args.episodes} deterministic episodes per policy in the other env; 'own env' is the run's "
        "final evaluation from twin_learning.\n\n" + "\n".join(table)
    )
    command = "python -m benchmarks.twin_transfer" + (
        "" if args.steps == 10_000 else f" --steps {args.steps}"
    )
    write_results(
        f"twin_transfer_{args.steps}",
        {"steps": args.steps, "episodes": args.episodes, "runs": rows},
        markdown,
        command,
    )


if __name__ == "__main__":
    main()
