"""pick_cube through the twin-backed ROS path vs the direct sim env, same env-step budget, over seeds.

Direct: `robot-rl train` on env=sim (the MuJoCo task stepped in the actor's process).
ROS path: `robot-rl bringup configs/bringup/twin.yaml` in its own process (arm and task nodes on
the MuJoCo twin, physics on the wall clock) and `robot-rl train env=robot_twin`: the actor's
RobotEnv reads joint_states / current_pose / gripper / object_pose / task/success over zenoh and
commands target_pose and gripper/command through the arm node's safety filter, at 10 Hz real time.
Both use the same recipe (20 scripted demos recorded in the sim task, SAC, the actor waiting for
the learner beyond max_actor_lead_steps: between any two steps in the stepped sim, between
episodes on the twin, whose world keeps moving) and are evaluated in their own env. Reported: final
success per run, IQM over seeds with a 95% bootstrap interval.

    python -m benchmarks.twin_learning                      # 3 seeds, 10,000 env steps
    python -m benchmarks.twin_learning --steps 7500          # its own section in RESULTS.md

Each budget writes its own section (twin_learning_<steps>) and results/twin_learning_<steps>.json.
The ROS rows also give the actor's control period and the arm node's counters from the bringup.
"""

from __future__ import annotations

import argparse
import ast
import json
import signal
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from benchmarks.common import BENCH_DIR, free_port, run_train, write_results
from robot_rl.eval.stats import bootstrap_ci, iqm

OUT = BENCH_DIR / "out" / "twin_learning"
REPO = BENCH_DIR.parent


def start_bringup(port: int, seed: int, log: Path) -> subprocess.Popen:
    cmd = [
        sys.executable, "-m", "robot_rl.ros.bringup", str(REPO / "configs/bringup/twin.yaml"),
        f"ros.listen=[tcp/127.0.0.1:{port}]", f"seed={seed}", "status_every_s=60",
    ]  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=REPO)
    deadline = time.monotonic() + 120
    while "READY" not in log.read_text():
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError(f"bringup did not start: {log.read_text()[-2000:]}")
        time.sleep(0.2)
    return proc


def _arm_counters(log: Path) -> dict[str, int]:
    """The arm node's counters from the bringup's last status line."""
    lines = [line for line in log.read_text().splitlines() if line.startswith("bringup:") and "{" in line]
    return ast.literal_eval(lines[-1][lines[-1].index("{") :])["arm"] if lines else {}


def run_one(path: str, seed: int, steps: int, eval_episodes: int) -> dict:
    out = OUT / str(steps)
    run_dir = out / f"{path}_s{seed}"
    common = [f"seed={seed}", f"total_env_steps={steps}", f"final_eval_episodes={eval_episodes}"]
    t0 = time.monotonic()
    if path == "direct":
        result = run_train(run_dir, common)
    else:
        out.mkdir(parents=True, exist_ok=True)
        port = free_port()
        bringup_log = out / f"bringup_s{seed}.log"
        node = start_bringup(port, seed, bringup_log)
        try:
            result = run_train(
                run_dir, [*common, "env=robot_twin", f"env.ros.connect=[tcp/127.0.0.1:{port}]"]
            )
        finally:
            node.send_signal(signal.SIGINT)
            node.wait(timeout=30)
    minutes = (time.monotonic() - t0) / 60
    print(f"  {path} seed {seed}: success {result['success_rate']:.2f} ({minutes:.1f} min)", flush=True)
    row = {"success": result["success_rate"], "minutes": minutes, "env_steps": result["env_steps"]}
    if path == "ros":
        timing = json.loads((run_dir / "actor_timing.json").read_text())
        row |= {"period_ms_p50": timing["period_ms_p50"], "period_ms_p99": timing["period_ms_p99"]}
        row["arm_counters"] = _arm_counters(bringup_log)
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--steps", type=int, default=10_000)
    parser.add_argument("--eval-episodes", type=int, default=20)
    parser.add_argument("--paths", nargs="+", default=["ros", "direct"], choices=["ros", "direct"])
    parser.add_argument("--jobs", type=int, default=3, help="runs at a time")
    parser.add_argument("--smoke", action="store_true", help="writes JSON only, not RESULTS.md")
    args = parser.parse_args()
    runs: dict[str, list[dict]] = {}
    for path in args.paths:  # one path at a time: the ROS runs are paced by the wall clock
        print(f"{path}: seeds {args.seeds}, {args.steps:,} env steps", flush=True)
        with ThreadPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_one, path, s, args.steps, args.eval_episodes) for s in args.seeds]
            runs[path] = [f.result() for f in futures]
    summary = {}
    for path, results in runs.items():
        success = [r["success"] for r in results]
        summary[path] = {
            "success": success,
            "iqm": iqm(success),
            "ci95": list(bootstrap_ci(success, iqm)),
            "minutes": [r["minutes"] for r in results],
            "runs": results,
        }
    rows = [
        "| path | success IQM | 95% CI | per seed | wall minutes per run (median) |",
        "| --- | --- | --- | --- | --- |",
    ]
    labels = {
        "ros": "twin over ROS 2 (bringup + RobotEnv over zenoh, 10 Hz real time)",
        "direct": "direct sim env",
    }
    for path, s in summary.items():
        per_seed = ", ".join(f"{x:.2f}" for x in s["success"])
        minutes = sorted(s["minutes"])[len(s["minutes"]) // 2]
        ci = f"[{s['ci95'][0]:.2f}, {s['ci95'][1]:.2f}]"
        rows.append(f"| {labels[path]} | {s['iqm']:.2f} | {ci} | {per_seed} | {minutes:.1f} |")
    pipeline = ""
    if "ros" in runs:
        ros = runs["ros"]
        totals = {
            k: sum(r["arm_counters"].get(k, 0) for r in ros) for k in ("passed", "clipped", "watchdog_holds")
        }
        p50 = ", ".join(f"{r['period_ms_p50']:.1f}" for r in ros)
        p99 = ", ".join(f"{r['period_ms_p99']:.1f}" for r in ros)
        pipeline = (
            f"\n\nROS path, per run: the actor's control period p50 {p50} ms, p99 {p99} ms; "
            f"over all runs the arm node passed {totals['passed']:,} pose commands, clipped "
            f"{totals['clipped']:,} to the safety filter's step limit, and its watchdog held the arm "
            f"{totals['watchdog_holds']:,} times (the actor waiting for the learner between episodes, "
            "and the end of each run)."
        )
    markdown = (
        f"## twin_learning: pick_cube through the twin's ROS path vs the direct sim env\n\n"
        f"{args.steps:,} env steps per run, seeds {args.seeds}, default recipe (20 scripted demos, SAC, "
        f"max_actor_lead_steps=200, the ROS actor pausing only between episodes); final evaluation: "
        f"{args.eval_episodes} deterministic episodes per run in the run's own env (the ROS runs are "
        f"evaluated through the twin). IQM over seeds, 95% bootstrap "
        f"interval. {args.jobs} runs at a time on this machine.\n\n" + "\n".join(rows) + pipeline
    )
    payload = {
        "seeds": args.seeds,
        "env_steps": args.steps,
        "eval_episodes": args.eval_episodes,
        "paths": summary,
    }
    command = "python -m benchmarks.twin_learning" + (
        "" if args.steps == 10_000 else f" --steps {args.steps}"
    )
    write_results(f"twin_learning_{args.steps}", payload, markdown, command, section=not args.smoke)
    print(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
