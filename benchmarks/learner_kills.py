"""A learner SIGKILLed at random times on pick_cube, against the same seeds uninterrupted.

Each row is the real `robot-rl learner` and `robot-rl actor` as separate processes over gRPC on
loopback (the default recipe, state observations). In the killed rows the learner gets kill -9 at
random points of the run (seeded: uniform over 5-95% of the env steps) and is restarted at once
with `resume=true` on the same run_dir; the actor reconnects by itself. The uninterrupted rows run
the same pair with no kills, so only the kills differ. `robot-rl train` is not the vehicle: its
supervisor ends the run when the learner dies, it does not restart it.

Per kill, updates lost = the learner's update count in its last status row before the kill (the
kill follows that row's appearance within milliseconds; the learner posts one a second) minus the
count it restored (its one-line "learner resumed ..." message; 0 when it had no checkpoint yet).
Per row: the final evaluation of the learner's final weights (`robot-rl eval`, 50 episodes, the
seeds `robot-rl train` uses), whether policy_version is monotone in step order in both stores
(the actor's episodes.zarr and the learner's replay.zarr), whether every step reached the replay
store exactly once, and the wall time.

    python -m benchmarks.learner_kills --seeds 0 1 2 --kills 10 --env-steps 10000 --jobs 2
    python -m benchmarks.learner_kills --seeds 0 --kills 3 --env-steps 1500 --name learner_kills_smoke --smoke
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import re
import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np

from benchmarks.common import BENCH_DIR, free_port, write_results
from robot_rl.config import TrainConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.eval.stats import summarize_runs

ARMS = ("uninterrupted", "killed")
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
RESUMED = re.compile(r"learner resumed: checkpoint at .*? env steps \(updates ([\d,]+),")
POLL_S = 0.02


def launch(args: list[str], log: Path) -> subprocess.Popen:
    out = open(log, "a")  # noqa: SIM115 - the process owns it until it exits
    cmd = [sys.executable, "-m", "robot_rl.cli", *args]
    return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, text=True, env=ENV)


def status_rows(run: Path) -> list[dict[str, str]]:
    """The learner's complete metrics.csv rows (a row being written is left out)."""
    path = run / "metrics.csv"
    text = path.read_text() if path.exists() else ""
    text = text[: text.rfind("\n") + 1]
    return [row for row in csv.DictReader(io.StringIO(text)) if row.get("updates")]


def restored_updates(log: Path) -> tuple[int, str]:
    """Updates the resumed learner restored, and how (checkpoint / no checkpoint / nothing held)."""
    text = log.read_text()
    found = RESUMED.findall(text)
    if found:
        return int(found[-1].replace(",", "")), "checkpoint"
    return 0, "no checkpoint" if "learner resumed WITHOUT a checkpoint" in text else "nothing to resume"


def check_alive(proc: subprocess.Popen, log: Path, what: str) -> None:
    if proc.poll() not in (None, 0):
        raise RuntimeError(f"the {what} exited with {proc.returncode}; {log}:\n{log.read_text()[-3000:]}")


def new_row(run: Path, seen: int, procs: dict[str, tuple[subprocess.Popen, Path]]) -> dict | None:
    """Wait for the first status row after the first `seen`; None if the learner finished first."""
    while True:
        rows = status_rows(run)
        if len(rows) > seen:
            return rows[seen] | {"index": seen}
        learner = procs["learner"][0]
        if learner.poll() == 0:
            return None
        for what, (proc, log) in procs.items():
            check_alive(proc, log, what)
        time.sleep(POLL_S)


def kill_learner(row_dir: Path, point: float, k: int, procs: dict) -> dict[str, Any] | None:
    """At the first fresh status row at or past `point` env steps, kill -9 the learner and restart it."""
    L = row_dir / "learner"
    seen = len(status_rows(L))
    while (row := new_row(L, seen, procs)) is not None and float(row["env_steps"]) < point:
        seen = row["index"] + 1
    if row is None:
        return None  # the run ended before this point
    learner, _ = procs["learner"]
    learner.kill()
    t_kill = time.monotonic()
    learner.wait(timeout=60)
    log = row_dir / f"learner{k}.log"
    procs["learner"] = (launch(["learner", "resume=true", f"run_dir={L}"], log), log)
    back = new_row(L, len(status_rows(L)), procs)
    restored, how = restored_updates(log)
    held, rate = int(float(row["updates"])), float(row.get("updates_per_s") or 0.0)
    return {
        "at_env_steps": int(float(row["env_steps"])),
        "updates_held": held,
        "updates_restored": restored,
        "restored_from": how,
        "updates_lost": held - restored,
        # at the rate this learner trained at: the figure to set against checkpoint_every_s
        "training_s_lost": (held - restored) / rate if rate > 0 else float("nan"),
        "down_s": time.monotonic() - t_kill if back is not None else float("nan"),
    }


def versions_monotone(store: Path, actor_id: int = 0) -> bool:
    steps = EpisodeStore(store, mode="r")
    rows = steps.steps(0, steps.n_steps)
    versions = rows["policy_version"]
    if "actor_id" in rows:  # the learner's replay: one actor's steps, in the order it took them
        mine = rows["actor_id"] == actor_id
        versions = versions[mine][np.argsort(rows["seq"][mine], kind="stable")]
    return bool(np.all(np.diff(versions) >= 0))


def steps_exactly_once(row_dir: Path) -> dict[str, Any]:
    actor = EpisodeStore(row_dir / "actor" / "actor_0" / "episodes.zarr", mode="r")
    replay = EpisodeStore(row_dir / "learner" / "replay.zarr", mode="r")
    seq = np.sort(replay.steps(0, replay.n_steps)["seq"])
    return {
        "actor_store": actor.n_steps,
        "replay_store": replay.n_steps,
        "exactly_once": bool(np.array_equal(seq, np.arange(actor.n_steps))),
    }


def evaluate(run: Path, seed: int, episodes: int) -> dict[str, Any]:
    """The learner's final weights, evaluated like `robot-rl train`'s final evaluation."""
    cmd = [sys.executable, "-m", "robot_rl.cli", "eval", str(run), "--episodes", str(episodes)]
    res = subprocess.run([*cmd, "--seed", str(seed + 999_999)], capture_output=True, text=True, env=ENV)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd)} failed:\n{res.stdout[-2000:]}\n{res.stderr[-2000:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def run_row(arm: str, seed: int, args: argparse.Namespace, out: Path) -> dict[str, Any]:
    row_dir = out / f"{arm}_s{seed}"
    done = row_dir / "row.json"
    if done.exists() and not args.rerun:
        return json.loads(done.read_text())
    shutil.rmtree(row_dir, ignore_errors=True)
    row_dir.mkdir(parents=True)
    L, A, port = row_dir / "learner", row_dir / "actor", free_port()
    common = [f"seed={seed}", f"total_env_steps={args.env_steps}", "final_eval_episodes=0", "progress=false"]
    t0 = time.monotonic()
    learner_log, actor_log = row_dir / "learner0.log", row_dir / "actor.log"
    learner = launch(["learner", "--listen", f"127.0.0.1:{port}", f"run_dir={L}", *common], learner_log)
    while not (L / "transport_token").exists():
        check_alive(learner, learner_log, "learner")
        time.sleep(0.2)
    token = f"transport.token_file={L / 'transport_token'}"
    actor = launch(["actor", "--learner", f"127.0.0.1:{port}", f"run_dir={A}", token, *common], actor_log)
    procs = {"learner": (learner, learner_log), "actor": (actor, actor_log)}
    kills: list[dict[str, Any]] = []
    if arm == "killed":
        rng = np.random.default_rng(seed)
        for k, point in enumerate(np.sort(rng.uniform(0.05, 0.95, args.kills)) * args.env_steps, start=1):
            if (kill := kill_learner(row_dir, float(point), k, procs)) is None:
                break
            kills.append(kill)
            print(
                f"  {arm} seed {seed}: kill {k} at {kill['at_env_steps']:,} env steps, "
                f"{kill['updates_lost']:,} updates lost",
                flush=True,
            )
    for what, (proc, log) in procs.items():
        proc.wait()
        check_alive(proc, log, what)
    wall_s = time.monotonic() - t0
    final = evaluate(L, seed, args.eval_episodes)
    result = {
        "arm": arm,
        "seed": seed,
        "success_rate": final["success_rate"],
        "weights_version": final["weights_version"],
        "updates": int(float(status_rows(L)[-1]["updates"])),
        "wall_s": wall_s,
        "kills": kills,
        "monotone": {
            "actor_store": versions_monotone(A / "actor_0" / "episodes.zarr"),
            "replay_store": versions_monotone(L / "replay.zarr"),
        },
        "steps": steps_exactly_once(row_dir),
    }
    done.write_text(json.dumps(result, indent=2))
    print(f"  {arm} seed {seed}: success {result['success_rate']:.2f} in {wall_s / 60:.1f} min", flush=True)
    return result


def summarize(results: dict[str, list[dict[str, Any]]], cfg: TrainConfig) -> dict[str, Any]:
    summary: dict[str, Any] = {}
    for arm, rows in results.items():
        kills = [k for r in rows for k in r["kills"]]
        lost = [k["updates_lost"] for k in kills]
        lost_s = [k["training_s_lost"] for k in kills if np.isfinite(k["training_s_lost"])]
        summary[arm] = {
            "success": summarize_runs([r["success_rate"] for r in rows]),
            "kills": len(lost),
            "updates_lost_p50": float(np.median(lost)) if lost else None,
            "updates_lost_max": max(lost) if lost else None,
            "training_s_lost_p50": float(np.median(lost_s)) if lost_s else None,
            "training_s_lost_max": max(lost_s) if lost_s else None,
            "restored_from_checkpoint": sum(k["restored_from"] == "checkpoint" for k in kills),
            "versions_monotone": all(all(r["monotone"].values()) for r in rows),
            "steps_exactly_once": all(r["steps"]["exactly_once"] for r in rows),
            "wall_min": [r["wall_s"] / 60 for r in rows],
        }
    summary["checkpoint_every"] = {"updates": cfg.checkpoint_every_updates, "s": cfg.checkpoint_every_s}
    return summary


def markdown(summary: dict[str, Any], results: dict[str, list[dict]], args: argparse.Namespace) -> str:
    every = summary["checkpoint_every"]
    lines = [
        f"## Learner kills: pick_cube, state, {args.env_steps:,} env steps, {args.kills} learner SIGKILLs"
        f" per killed run, seeds {args.seeds}",
        "",
        "`robot-rl learner` + `robot-rl actor` over gRPC on loopback, default recipe; the killed runs get"
        " kill -9 at seeded random points and an immediate `resume=true` restart. Final evaluation: the"
        f" learner's final weights, {args.eval_episodes} episodes; IQM over seeds with a 95% bootstrap"
        f" interval. Checkpoints every {every['updates']:,} updates and at least every {every['s']:.0f} s.",
        "",
        "| run | success IQM | 95% CI | per seed | kills (from a checkpoint) | updates lost per kill"
        " p50 / max | training s lost p50 / max | versions monotone (both stores) | steps exactly once"
        " | wall minutes per seed |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for arm, rows in results.items():
        s = summary[arm]
        lost = f"{s['updates_lost_p50']:,.0f} / {s['updates_lost_max']:,}" if s["kills"] else "-"
        lost_s = "-"
        if s["training_s_lost_p50"] is not None:
            lost_s = f"{s['training_s_lost_p50']:.0f} / {s['training_s_lost_max']:.0f}"
        ci = f"[{s['success']['ci_low']:.2f}, {s['success']['ci_high']:.2f}]"
        per_seed = ", ".join(f"{r['success_rate']:.2f}" for r in rows)
        minutes = ", ".join(f"{m:.1f}" for m in s["wall_min"])
        yes = {True: "yes", False: "NO"}
        lines.append(
            f"| {arm} | {s['success']['iqm']:.2f} | {ci} | {per_seed} | {s['kills']}"
            f" ({s['restored_from_checkpoint']}) | {lost} | {lost_s}"
            f" | {yes[s['versions_monotone']]} | {yes[s['steps_exactly_once']]} | {minutes} |"
        )
    lines += [
        "",
        "Updates lost per kill: the learner's update count in its last status row before the kill (one a"
        " second; the kill follows the row within milliseconds) minus the count it restored from its"
        " checkpoint (its `learner resumed` line; 0 if it had none yet); training s lost: the same at that"
        " learner's update rate, to set against the checkpoint period. The updates owed for the steps"
        " since are made up after the restart, so the lost ones cost time, not final updates. Wall time"
        f" is learner start to both processes' exit, {args.jobs} runs at a time on this machine.",
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    parser.add_argument("--env-steps", type=int, default=10_000)
    parser.add_argument("--kills", type=int, default=10, help="learner SIGKILLs per killed run")
    parser.add_argument("--eval-episodes", type=int, default=50)
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each is a learner + an actor)")
    parser.add_argument("--rerun", action="store_true", help="ignore finished rows in benchmarks/out/<name>")
    parser.add_argument(
        "--name", default="learner_kills", help="results name (JSON, RESULTS.md section, runs)"
    )
    parser.add_argument("--smoke", action="store_true", help="write the JSON only, not a RESULTS.md section")
    args = parser.parse_args()
    if args.kills < 1 or not args.seeds:
        raise SystemExit("need --kills >= 1 and at least one seed")
    out = BENCH_DIR / "out" / args.name
    with ThreadPoolExecutor(max_workers=args.jobs) as pool:
        futures = {(a, s): pool.submit(run_row, a, s, args, out) for s in args.seeds for a in ARMS}
        results = {a: [futures[(a, s)].result() for s in args.seeds] for a in ARMS}
    summary = summarize(results, TrainConfig())
    table = markdown(summary, results, args)
    payload = {
        "seeds": args.seeds,
        "env_steps": args.env_steps,
        "kills_asked": args.kills,
        "summary": summary,
        "rows": results,
    }
    cmd = "python -m benchmarks.learner_kills " + " ".join(sys.argv[1:])
    write_results(args.name, payload, table, cmd.strip(), section=not args.smoke)
    print(table)


if __name__ == "__main__":
    main()
