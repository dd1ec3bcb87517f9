"""pick_cube from two cameras at 128x128: success against env steps, and learner updates/s.

A GPU job: on a CPU, rendering two 128x128 cameras and the conv encoders make each env step and
each update tens of milliseconds. Runs the real `robot-rl train` with the pixel env (no object
pose in the state) and the device you name.

    MUJOCO_GL=egl python -m benchmarks.pixels --device cuda --env-steps 20000 --seeds 0 1 2
    MUJOCO_GL=egl python -m benchmarks.pixels --device cpu --env-steps 1000 --seeds 0   # a CPU look
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

from benchmarks.common import BENCH_DIR, run_train, write_results
from robot_rl.eval.metrics import read_metrics
from robot_rl.eval.stats import iqm

OUT = BENCH_DIR / "out" / "pixels"


def run(seed: int, device: str, env_steps: int, size: int, extra: list[str]) -> dict:
    run_dir = OUT / f"s{seed}_{device.replace(':', '')}"
    overrides = [
        "env=pick_cube_pixels",
        f"env.image_size=[{size},{size}]",
        f"device={device}",
        f"seed={seed}",
        f"total_env_steps={env_steps}",
        *extra,
    ]
    result = run_train(run_dir, overrides, env={"MUJOCO_GL": os.environ.get("MUJOCO_GL", "egl")})
    result.pop("stdout")
    rows = read_metrics(run_dir / "metrics.csv")
    ups = [r["learner/updates_per_s"] for r in rows if r.get("learner/updates_per_s")]
    result["learner_updates_per_s"] = float(np.median(ups)) if ups else 0.0
    result["env_steps_per_s"] = result["env_steps"] / max(result["train_time_s"], 1e-9)
    result["curve"] = [
        (r["env_steps"], r["eval/success_rate"]) for r in rows if r.get("eval/success_rate") is not None
    ]
    return result


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--env-steps", type=int, default=20_000)
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("overrides", nargs="*", help="extra robot-rl train overrides")
    args = parser.parse_args()
    runs = [run(s, args.device, args.env_steps, args.size, args.overrides) for s in args.seeds]
    success = [r["success_rate"] for r in runs]
    rows = [
        f"| {s} | {r['success_rate']:.2f} | {r['learner_updates_per_s']:.1f} | {r['env_steps_per_s']:.1f} | "
        f"{r['train_time_s'] / 60:.1f} |"
        for s, r in zip(args.seeds, runs, strict=True)
    ]
    table = "\n".join(
        [
            f"## Pixels: pick_cube from 2 cameras at {args.size}x{args.size}, {args.env_steps:,} env steps,"
            f" device {args.device}",
            "",
            f"Success IQM over seeds: {iqm(success):.2f} (final 50-episode evaluation per seed).",
            "",
            "| seed | success | learner updates/s | env steps/s | train minutes |",
            "| --- | --- | --- | --- | --- |",
            *rows,
        ]
    )
    cmd = "python -m benchmarks.pixels " + " ".join(sys.argv[1:])
    write_results(f"pixels_{args.device.split(':')[0]}", {"runs": runs, **vars(args)}, table, cmd.strip())
    print(table)


if __name__ == "__main__":
    main()
