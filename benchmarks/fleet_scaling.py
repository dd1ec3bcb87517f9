"""Fleet scaling on this machine: env steps/s and learner updates/s with 1, 2, 4 and 8 sim workers.

Each row is a real fleet (robot_rl/runtime/fleet.py on a local Ray: the learner and every worker
in a process of its own, gRPC on loopback), pick_cube with state observations and the default
agent. Workers are unpaced (max_actor_lead_steps=null), so they act as fast as they can and the
learner always owes updates: its update rate is its capacity. After a warm-up (every worker has
stored an episode and the learner is training, then --warmup-s), a window of --window-s seconds:
env steps/s = steps the workers stored in their spools, received/s = steps the learner took in,
updates/s = the learner's update() calls, learner CPU = its process's CPU seconds per wall second.

The learner's cost per received step (benchmarks/learner_ingest.py): the 1-worker row's spool
sent again at that row's pace to a GrpcLearnerTransport in this process (the CPU its receiving
takes, on gRPC's threads), then Ingest.add on the steps as they arrived (the replay buffers and the
replay.zarr append at episode ends, on the learner's intake thread, which shares the interpreter
with the training thread; wall and CPU time).

Workers one learner absorbs: with n workers of r env steps/s each, ingest takes n * r * c of the
learner's time (c: its cost per received step), so its update rate drops by 10% at n = 0.1 / (r * c),
with r from the 1-worker row. That is the learner's own limit, where each worker has a core of its
own (a cluster); on this 2-core machine the measured rows also share the cores between the workers
and the learner: the table splits the learner's CPU into what its received steps took and what
was left for its updates.

`--success` runs `robot-rl fleet fleet.workers=2 total_env_steps=5000` (10,000 env steps in all,
the default `robot-rl train` budget) per seed and sets its final evaluation beside
benchmarks/results/learning.json's default row.

    python -m benchmarks.fleet_scaling                      # 1, 2, 4, 8 workers
    python -m benchmarks.fleet_scaling --quick              # 1, 2 workers, short windows; JSON only
    python -m benchmarks.fleet_scaling --success --seeds 0  # the learning comparison (~10 min a seed)
    python -m benchmarks.fleet_scaling --acceptance 16      # 16 Ray workers at one learner
    python -m benchmarks.fleet_scaling --ingest-only        # the last rows, the learner's cost again
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import BENCH_DIR, run_train, write_results
from benchmarks.learner_ingest import learner_cost
from robot_rl.config import TrainConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.runtime.fleet import Fleet, import_ray, start_ray

OUT = BENCH_DIR / "out" / "fleet_scaling"
ROW_OVERRIDES = [
    "total_env_steps=50000",  # per worker: more than a window takes, so none finishes inside it
    "max_actor_lead_steps=null",
    "demos.num_episodes=5",  # the learner's speed does not depend on it; its start does
    "eval_episodes=0",
    "final_eval_episodes=0",
    "progress=false",
    "transport.listen=127.0.0.1:0",
    "transport.kind=grpc",
]


def compose(overrides: list[str]) -> TrainConfig:
    """The config `robot-rl fleet` would build from these overrides."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from robot_rl.cli import CONFIG_DIR, to_train_config
    from robot_rl.config import register_configs

    register_configs()
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return to_train_config(hydra_compose("train", overrides=overrides))


def learner_row(run: Path) -> dict[str, float]:
    """The learner's newest complete metrics.csv row ({} before its first)."""
    path = run / "metrics.csv"
    text = path.read_text() if path.exists() else ""
    lines = text.splitlines(keepends=True)
    if lines and not lines[-1].endswith("\n"):
        lines = lines[:-1]  # being written
    rows = list(csv.DictReader(io.StringIO("".join(lines))))
    return {k: float(v) for k, v in rows[-1].items() if v} if rows else {}


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def stored(spool: Path) -> int:
    try:
        return EpisodeStore(spool, mode="r").n_steps
    except (FileNotFoundError, ValueError, KeyError):
        return 0


def sample(run: Path, spools: list[Path], learner_pid: int) -> dict[str, float]:
    """Taken just as the learner logs a new row, so its figures are of that moment."""
    last = learner_row(run).get("updates")
    deadline = time.monotonic() + 10.0
    while (row := learner_row(run)).get("updates") == last and time.monotonic() < deadline:
        time.sleep(0.02)
    return {
        "t": time.monotonic(),
        "stored": sum(stored(s) for s in spools),
        "received": row.get("env_steps_received", 0.0),
        "updates": row.get("updates", 0.0),
        "learner_cpu_s": cpu_seconds(learner_pid),
    }


def measure_row(workers: int, warmup_s: float, window_s: float) -> dict[str, Any]:
    run = OUT / f"workers_{workers}"
    shutil.rmtree(run, ignore_errors=True)
    cfg = compose(
        [
            *ROW_OVERRIDES,
            f"fleet.workers={workers}",
            f"transport.max_actors={max(workers, 4)}",
            f"run_dir={run}",
        ]
    )
    ray = import_ray()
    start_ray(ray, cfg.fleet)
    try:
        fleet = Fleet(cfg, ray)
        fleet.start()
        learner_pid = ray.get(fleet.learner.pid.remote())
        spools = [run / "workers" / str(i) / f"actor_{i}" / "episodes.zarr" for i in range(workers)]
        deadline = time.monotonic() + 900
        while not (all(stored(s) for s in spools) and learner_row(run).get("updates", 0) > 0):
            if time.monotonic() > deadline:
                raise TimeoutError(f"{workers} workers: no steady state within 15 minutes")
            time.sleep(0.5)
        time.sleep(warmup_s)
        load = os.getloadavg()[0]  # other work on the machine, and the fleet's own
        a = sample(run, spools, learner_pid)
        time.sleep(window_s)
        b = sample(run, spools, learner_pid)
        fleet.stop()
    finally:
        ray.shutdown()
    dt = b["t"] - a["t"]
    rate = {k: (b[k] - a[k]) / dt for k in ("stored", "received", "updates", "learner_cpu_s")}
    return {
        "workers": workers,
        "window_s": dt,
        "env_steps_per_s": rate["stored"],
        "env_steps_per_s_per_worker": rate["stored"] / workers,
        "received_per_s": rate["received"],
        "updates_per_s": rate["updates"],
        "learner_cpu_cores": rate["learner_cpu_s"],
        "load_1min": load,
    }


def scaling_markdown(rows: list[dict[str, Any]], cost: dict[str, float]) -> tuple[list[str], dict[str, Any]]:
    """The section's text, and the figures derived from the rows and the learner's cost."""
    window_s = rows[0]["window_s"]
    r1, base = rows[0]["env_steps_per_s_per_worker"], rows[0]["updates_per_s"]
    absorb = {kind: 0.1 / (r1 * cost[f"total_{kind}_us"] * 1e-6) for kind in ("wall", "cpu")}
    dropped = [r["workers"] for r in rows if r["updates_per_s"] < 0.9 * base]
    md = [
        f"## Fleet scaling: pick_cube (state), default agent, {'/'.join(str(r['workers']) for r in rows)}"
        " sim workers",
        "",
        "`robot-rl fleet` on a local Ray (learner and workers each in a process of their own, gRPC on"
        f" loopback), workers unpaced; rates over {window_s:.0f} s once the fleet is warm. Learner CPU:"
        " its process's CPU seconds per second; on received steps: received/s x the CPU cost per step"
        " below; left: the difference, what its updates had. Load: the machine's 1-minute load average"
        " as the window opened (the fleet and other work).",
        "",
        "| workers | env steps/s (all) | per worker | received by the learner/s | learner updates/s"
        " | vs 1 worker | learner CPU (cores) | on received steps | left for updates | load (1 min) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        on_steps = r["received_per_s"] * cost["total_cpu_us"] * 1e-6
        md.append(
            f"| {r['workers']} | {r['env_steps_per_s']:.0f} | {r['env_steps_per_s_per_worker']:.0f}"
            f" | {r['received_per_s']:.0f} | {r['updates_per_s']:.1f} | {r['updates_per_s'] / base:.2f}"
            f" | {r['learner_cpu_cores']:.2f} | {on_steps:.2f} | {r['learner_cpu_cores'] - on_steps:.2f}"
            f" | {r['load_1min']:.1f} |"
        )
    left1 = rows[0]["learner_cpu_cores"] - rows[0]["received_per_s"] * cost["total_cpu_us"] * 1e-6
    md += [
        "",
        f"The learner's cost per received step, measured alone on the {cost['steps']:,} steps of the"
        f" 1-worker row's spool sent at its pace ({r1:.0f} steps/s: {cost['receive_chunk_steps']:.1f}"
        " steps per chunk), benchmarks/learner_ingest.py:",
        "",
        "| part | where | wall us/step | CPU us/step |",
        "| --- | --- | --- | --- |",
        f"| receiving: gRPC handler, decode, queue | gRPC threads | - | {cost['receive_cpu_us']:.0f} |",
        f"| Ingest.add: replay buffers | intake thread | {cost['buffers_wall_us']:.0f}"
        f" | {cost['buffers_cpu_us']:.0f} |",
        f"| Ingest.add: replay.zarr append at episode ends | intake thread | {cost['store_wall_us']:.0f}"
        f" | {cost['store_cpu_us']:.0f} |",
        f"| total (wall: ingest + receiving's CPU) | | {cost['total_wall_us']:.0f}"
        f" | {cost['total_cpu_us']:.0f} |",
        "",
        f"One worker steps {r1:.0f} env steps/s. Its received steps take 10% of a learner's time, and"
        " its update rate drops by 10%, at 0.1 / (steps/s per worker x cost per step) workers, each on"
        f" a core of its own: **{absorb['wall']:.1f} workers** by the wall cost (ingest runs on the"
        " intake thread and receiving on gRPC's, but both hold the interpreter the training thread"
        f" needs), {absorb['cpu']:.1f} by the CPU cost.",
        f"On this machine ({os.cpu_count()} cores, shared by the learner, every worker and other work)"
        " the measured update rate "
        + (
            f"fell below 90% of the 1-worker rate from {dropped[0]} workers on."
            if dropped
            else "stayed within 10% of the 1-worker rate in every row."
        )
        + " The learner's CPU is capped by the cores it shares, its received steps take their cost out"
        " of it, and what is left trains: about"
        f" {rows[0]['updates_per_s'] / max(left1, 1e-9):.0f} updates per CPU-second left in the"
        " 1-worker row.",
    ]
    return md, {"workers_absorbed_at_10pct": absorb, "dropped_10pct_at": dropped}


def scaling(args: argparse.Namespace) -> None:
    name = "fleet_scaling_quick" if args.quick else "fleet_scaling"
    if args.ingest_only:  # the rows of the last run, the learner's cost per step measured again
        rows = json.loads((BENCH_DIR / "results" / f"{name}.json").read_text())["rows"]
    else:
        rows = []
        for workers in args.workers:
            rows.append(measure_row(workers, args.warmup_s, args.window_s))
            print(json.dumps(rows[-1]), flush=True)
    cfg = compose([*ROW_OVERRIDES, "run_dir=/tmp/unused"])
    one = OUT / f"workers_{rows[0]['workers']}" / "workers" / "0" / "actor_0" / "episodes.zarr"
    cost = learner_cost(one, cfg, steps_per_s=rows[0]["env_steps_per_s_per_worker"])
    md, derived = scaling_markdown(rows, cost)
    command = "python -m benchmarks.fleet_scaling" + (" --quick" if args.quick else "")
    print(
        write_results(
            name,
            {"rows": rows, "learner_cost": cost, **derived},
            "\n".join(md),
            command,
            section=not args.quick,
        )
    )


def success(args: argparse.Namespace) -> None:
    learning = json.loads((BENCH_DIR / "results" / "learning.json").read_text())
    train = learning["variants"]["default"]
    rows = []
    for seed in args.seeds:
        overrides = [
            "fleet.workers=2",
            "total_env_steps=5000",
            f"seed={seed}",
            "transport.listen=127.0.0.1:0",
        ]
        out = run_train(OUT / f"success_seed{seed}", overrides, command="fleet")
        train_success = train["success"][learning["seeds"].index(seed)] if seed in learning["seeds"] else None
        rows.append(
            {
                "seed": seed,
                "success": out["success_rate"],
                "ci95": [out["success_ci_low"], out["success_ci_high"]],
                "train_success": train_success,
                "env_steps": out["env_steps"],
                "minutes": out["train_time_s"] / 60,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    md = [
        "## Fleet vs `robot-rl train`: pick_cube (state), 10,000 env steps",
        "",
        "`robot-rl fleet fleet.workers=2 total_env_steps=5000` (2 sim workers of 5,000 env steps, local"
        " Ray) against `robot-rl train`'s default (1 actor, 10,000 env steps;"
        " benchmarks/results/learning.json). Final evaluation of the learner's final weights:"
        " 50 deterministic episodes, the seeds train uses.",
        "",
        "| seed | fleet success | 95% Wilson CI | train success (same seed) | fleet env steps"
        " | fleet minutes |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for r in rows:
        ts = "-" if r["train_success"] is None else f"{r['train_success']:.2f}"
        md.append(
            f"| {r['seed']} | {r['success']:.2f} | [{r['ci95'][0]:.2f}, {r['ci95'][1]:.2f}] | {ts}"
            f" | {r['env_steps']:,} | {r['minutes']:.1f} |"
        )
    command = "python -m benchmarks.fleet_scaling --success --seeds " + " ".join(map(str, args.seeds))
    print(write_results("fleet_success", {"rows": rows}, "\n".join(md), command))


def acceptance(args: argparse.Namespace) -> None:
    """N Ray workers at one learner on small budgets: each actor id's steps in replay.zarr, once."""
    n = args.acceptance
    run = OUT / f"acceptance_{n}"
    small = [
        "total_env_steps=100", "demos.num_episodes=2", "agent.hidden_dims=[64,64]", "agent.batch_size=32",
        "agent.utd=2", "learning_starts=64", "eval_episodes=0", "final_eval_episodes=0",
    ]  # fmt: skip
    overrides = [f"fleet.workers={n}", f"transport.max_actors={n}", "transport.listen=127.0.0.1:0", *small]
    out = run_train(run, overrides, command="fleet")
    replay = EpisodeStore(run / "replay.zarr", mode="r")
    steps = replay.steps(0, replay.n_steps)
    actors = []
    for i in range(n):
        seq = steps["seq"][steps["actor_id"] == i]
        spool = EpisodeStore(run / "workers" / str(i) / f"actor_{i}" / "episodes.zarr", mode="r").n_steps
        actors.append(
            {
                "actor_id": i,
                "replay": len(seq),
                "spool": spool,
                "once": bool(np.array_equal(seq, np.arange(spool))),
            }
        )
    once = sum(a["once"] and a["replay"] == a["spool"] > 0 for a in actors)
    md = [
        f"## Fleet acceptance: {n} Ray workers at one learner",
        "",
        f"`robot-rl fleet fleet.workers={n} transport.max_actors={n} total_env_steps=100` (small nets):"
        f" {once} of {n} actor ids have every step of their spool in the learner's replay.zarr, once and"
        f" in order ({min(a['replay'] for a in actors)}-{max(a['replay'] for a in actors)} steps each);"
        f" {out['env_steps']:,} env steps in all, {out['train_time_s'] / 60:.1f} minutes with Ray's and"
        f" the {n} workers' start.",
    ]
    command = f"python -m benchmarks.fleet_scaling --acceptance {n}"
    payload = {"actors": actors, "env_steps": out["env_steps"], "train_time_s": out["train_time_s"]}
    print(write_results("fleet_acceptance", payload, "\n".join(md), command))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--warmup-s", type=float, default=15.0)
    parser.add_argument("--window-s", type=float, default=60.0)
    parser.add_argument("--quick", action="store_true", help="1 and 2 workers, short windows, JSON only")
    parser.add_argument("--success", action="store_true", help="the fleet vs robot-rl train learning run")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--acceptance", type=int, metavar="N", help="N Ray workers at one learner, small budgets"
    )
    parser.add_argument(
        "--ingest-only",
        action="store_true",
        help="keep the last run's rows, measure the learner's cost again",
    )
    args = parser.parse_args()
    if args.success:
        success(args)
        return
    if args.acceptance:
        acceptance(args)
        return
    if args.quick:
        args.workers, args.warmup_s, args.window_s = [1, 2], 5.0, 15.0
    if args.workers[0] != 1:
        parser.error("--workers must start with 1: the other rows are compared with it")
    scaling(args)


if __name__ == "__main__":
    main()
