"""Actor timing at 10 Hz while the learner trains at full speed on the same machine.

Runs the real `robot-rl train realtime=true` (the sim actor paced at env.control_hz like a
robot) twice, side by side: once with the learner saturated (UTD demand far above what the CPU
can do, so it never idles) and once with the learner idle (learning never starts). Reports the
control period's p50/p99 and its jitter against the nominal period, and policy inference
latency p50/p99, from the actor's own measurements (run_dir/actor_timing.json).

    python -m benchmarks.actor_timing [--seconds 60] [--hz 10]
"""

from __future__ import annotations

import argparse
import json
import sys

from benchmarks.common import BENCH_DIR, run_train, write_results

OUT = BENCH_DIR / "out" / "actor_timing"


def run(name: str, hz: float, seconds: float, extra: list[str]) -> dict:
    run_dir = OUT / name
    overrides = [
        "realtime=true",
        f"env.control_hz={hz}",
        f"total_env_steps={int(hz * seconds)}",
        "final_eval_episodes=0",
        "eval_episodes=0",
        "max_actor_lead_steps=null",
        *extra,
    ]
    evals = run_train(run_dir, overrides)
    timing = json.loads((run_dir / "actor_timing.json").read_text())
    timing["grad_steps"] = evals.get("grad_steps", 0)
    timing["train_time_s"] = evals["train_time_s"]
    return timing


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--hz", type=float, default=10.0)
    args = parser.parse_args()
    period = 1000.0 / args.hz
    cases = {
        "learner training at full speed": ["agent.utd=50", "learning_starts=64"],
        "learner idle": ["learning_starts=100000000"],
    }
    results = {
        name: run(name.replace(" ", "_"), args.hz, args.seconds, extra) for name, extra in cases.items()
    }
    rows = []
    for name, t in results.items():
        rows.append(
            f"| {name} | {t['period_ms_p50']:.1f} | {t['period_ms_p99']:.1f} | "
            f"{t['period_ms_p50'] - period:+.2f} | {t['period_ms_p99'] - period:+.2f} | "
            f"{t['inference_ms_p50']:.2f} | {t['inference_ms_p99']:.2f} | {t['ticks']} | "
            f"{t['grad_steps'] / max(t['train_time_s'], 1e-9):.0f} |"
        )
    table = "\n".join(
        [
            f"## Actor timing at {args.hz:g} Hz (nominal period {period:.0f} ms),"
            f" {args.seconds:g} s per case",
            "",
            "Sim actor paced like a robot (`realtime=true`); jitter = measured period - nominal period.",
            "",
            "| learner | period p50 ms | period p99 ms | jitter p50 ms | jitter p99 ms | inference p50 ms |"
            " inference p99 ms | ticks | learner gradient steps/s |",
            "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
            *rows,
        ]
    )
    cmd = "python -m benchmarks.actor_timing " + " ".join(sys.argv[1:])
    write_results(
        "actor_timing", {"hz": args.hz, "seconds": args.seconds, "cases": results}, table, cmd.strip()
    )
    print(table)


if __name__ == "__main__":
    main()
