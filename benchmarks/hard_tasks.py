"""Learning on the contact-rich tasks (peg_insert, stack_cube, slide_to_mark) from 10 noisy demos.

Per task, state observations, rows over seeds:
- expert: the scripted expert, clean and driven as a person would (sim/human_style.py), run
  directly with no training (benchmarks/sim_experts.py's run_policy), --expert-episodes per seed;
- bc: `agent=bc` on 10 noisy demos (`demos.style=noisy demos.num_episodes=10`) with the learning
  benchmark's BC budget (benchmarks/learning.py, "BC (20 demos)": 5,000 env steps, an eval every
  1,000). BC is offline: the learner makes one gradient step per env step the actor runs with the
  BC policy, so its budget is ~5,000 updates of batch 256 on the demos, not --env-steps;
- sac: the default recipe (SAC, RLPD's 50/50 demo sampling) on the same 10 noisy demos,
  --env-steps env steps;
- sac_nodemos: the default SAC with `demos=none`, --env-steps env steps.
The other rows of TRAINED are other benchmarks', laid out the same way and run by the same runner
(run_all) into their folders: sac_human and sac_norm_bc(_human), the simulated person intervening
(`teleop=sim_human`, benchmarks/hil_learning.py); sac_discrete, the grasp critic
(`agent.gripper=discrete`, benchmarks/grasp_critic.py); flow_bc and the rows on its frozen base,
residual, dsrl and dsrl_best_of_n (benchmarks/residual_learning.py). A row that fixes its own
`total_env_steps` (the offline BC rows) keeps it whatever --env-steps says.
Each training run is the real `robot-rl train` (benchmarks/learning.py's run_variant); the figure
is its final 50-episode deterministic evaluation. IQM over seeds with a 95% bootstrap interval.

Runs land in benchmarks/out/<name>/ and a finished run is reused unless --rerun, so the benchmark
can be run in parts; the table is assembled from every finished run and names the rows not run.

    python -m benchmarks.hard_tasks --rows expert bc --jobs 1           # the cheap rows
    python -m benchmarks.hard_tasks --rows sac sac_nodemos --jobs 2     # the long ones (15,000 env steps)
    python -m benchmarks.hard_tasks --tasks peg_insert --rows sac --seeds 0 --env-steps 300 \\
        --name hard_tasks_smoke --smoke                                  # the SAC path, results untouched
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from benchmarks.common import BENCH_DIR, machine, write_results
from benchmarks.learning import VARIANTS, eval_curve, run_variant, score_row
from benchmarks.sim_experts import run_policy
from robot_rl.eval.plots import Curve, plot_runs

TASKS = ("peg_insert", "stack_cube", "slide_to_mark")
NOISY_DEMOS = ["demos.style=noisy", "demos.num_episodes=10"]
NORM_BC = ["agent.normalize_state=true", "agent.bc_weight=2"]
CLEAN_DEMOS = ["demos.num_episodes=100"]  # the scripted expert's, clean (demos.style's default)


def base(row: str) -> str:
    """The override naming a row's frozen base, the same task and seed's `row` run (run_trained
    fills in the placeholders)."""
    return f"agent.base={{runs}}/{{task}}_{row}_s{{seed}}"


def base_row(recipe: Sequence[str]) -> str | None:
    """The row of TRAINED whose run is a recipe's frozen base (named by base() above), else None."""
    return next((row for row in TRAINED if base(row) in recipe), None)


BASE = base("flow_bc")
BASE_CLEAN = base("flow_bc_clean")
# Training rows: the overrides on top of `env.task=<task> seed=<seed> total_env_steps=<budget>`.
TRAINED: dict[str, list[str]] = {
    "bc": [*VARIANTS["BC (20 demos)"], *NOISY_DEMOS],
    "sac": NOISY_DEMOS,
    "sac_nodemos": ["demos=none"],
    "sac_human": [*NOISY_DEMOS, "teleop=sim_human"],  # benchmarks/hil_learning.py's row
    "sac_discrete": [*NOISY_DEMOS, "agent.gripper=discrete"],  # benchmarks/grasp_critic.py's row
    # benchmarks/hil_learning.py --recipe norm_bc's rows: normalised state and the BC term on demo rows
    "sac_norm_bc": [*NOISY_DEMOS, *NORM_BC],
    "sac_norm_bc_human": [*NOISY_DEMOS, *NORM_BC, "teleop=sim_human"],
    # benchmarks/residual_learning.py's rows (issue 14): flow BC, offline with BC's budget, is the
    # frozen base of the others; BASE names the same task and seed's flow_bc run (run_trained fills it)
    "flow_bc": ["agent=flow_bc", *VARIANTS["BC (20 demos)"][1:], *NOISY_DEMOS],
    "residual": ["agent=residual", BASE, *NOISY_DEMOS],
    "dsrl": ["agent=dsrl", BASE, "demos=none"],
    "dsrl_best_of_n": ["agent=dsrl", BASE, "demos=none", "agent.best_of_n=8"],
    # the same on a stronger base, flow BC on 100 clean demos, with the residual recipe that keeps
    # such a base (configs/agent/residual_anchored.yaml), DSRL, and SAC from scratch on the demos
    "flow_bc_clean": ["agent=flow_bc", *VARIANTS["BC (20 demos)"][1:], *CLEAN_DEMOS],
    "sac_clean": CLEAN_DEMOS,
    "residual_clean": ["agent=residual_anchored", BASE_CLEAN, *CLEAN_DEMOS],
    "dsrl_clean": ["agent=dsrl", BASE_CLEAN, "demos=none"],
}
ROWS = ("expert", *TRAINED)
TABLE_TRAINED = ("bc", "sac", "sac_nodemos")  # this benchmark's table and default rows, with expert
TABLE_ROWS = ("expert", *TABLE_TRAINED)
LABELS = {
    "expert clean": "scripted expert, clean (no training)",
    "expert noisy": "scripted expert, noisy operator (no training)",
    "bc": "BC on 10 noisy demos (5,000 updates)",
    "sac": "SAC, default recipe, 10 noisy demos",
    "sac_nodemos": "SAC, no demos",
    "sac_human": "SAC + simulated person (teleop=sim_human), 10 noisy demos",
    "sac_discrete": "SAC + grasp critic (agent.gripper=discrete), 10 noisy demos",
    "sac_norm_bc": "SAC + normalize_state + bc_weight=2, 10 noisy demos",
    "sac_norm_bc_human": (
        "SAC + normalize_state + bc_weight=2 + simulated person (teleop=sim_human), 10 noisy demos"
    ),
    "flow_bc": "flow BC on 10 noisy demos (5,000 updates; the base)",
    "residual": "residual SAC on the flow BC base, 10 noisy demos",
    "dsrl": "DSRL: SAC steering the flow BC base's noise",
    "dsrl_best_of_n": "DSRL + best-of-8 by the critic",
    "flow_bc_clean": "flow BC on 100 clean demos (5,000 updates; the base)",
    "sac_clean": "SAC, default recipe, 100 clean demos",
    "residual_clean": "residual SAC (agent=residual_anchored) on that base, 100 clean demos",
    "dsrl_clean": "DSRL: SAC steering that base's noise",
}


def own_budget(row: str) -> int | None:
    """The env-step budget a row fixes itself (the offline BC rows), else None: --env-steps."""
    fixed = [int(o.split("=", 1)[1]) for o in TRAINED.get(row, []) if o.startswith("total_env_steps=")]
    return fixed[-1] if fixed else None


def budget_of(row: str, env_steps: int) -> int:
    budget = own_budget(row)
    return env_steps if budget is None else budget


BC_ENV_STEPS = budget_of("bc", 0)


def trained_on() -> dict:
    """What names this machine in a run's bench.json: its CPU, cores and GPU."""
    return {k: v for k, v in machine().items() if k in ("cpu", "cores", "gpu")}


def _run_dir(out: Path, task: str, row: str, seed: int) -> Path:
    return out / f"{task}_{row}_s{seed}"  # run_variant's folder for the name f"{task}_{row}"


def _finished(run_dir: Path, env_steps: int) -> dict | None:
    """The run's eval.json if it finished with this env-step budget, else None."""
    path = run_dir / "eval.json"
    if not path.exists():
        return None
    result = json.loads(path.read_text())
    return result if result.get("env_steps_asked") == env_steps else None


def run_expert(out: Path, task: str, seed: int, episodes: int, rerun: bool) -> None:
    """Clean and noisy expert success over `episodes` seeded episodes, kept as a JSON per seed."""
    path = out / f"{task}_expert_s{seed}.json"
    if path.exists() and not rerun and json.loads(path.read_text())["episodes"] == episodes:
        return
    result: dict = {"episodes": episodes}
    for style, policy in (("clean", "expert"), ("noisy", "noisy")):
        t0 = time.monotonic()
        r = run_policy(task, episodes, policy, seed0=10_000 * seed)
        result[style] = r | {"minutes": (time.monotonic() - t0) / 60}
        print(f"  {task} expert {style} seed {seed}: success {r['success_rate']:.2f}", flush=True)
    out.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2))


def run_trained(
    out: Path,
    task: str,
    row: str,
    seed: int,
    env_steps: int,
    rerun: bool,
    jobs: int,
    recipes: Mapping[str, list[str]] = TRAINED,
) -> None:
    """Train one (task, row, seed) run with the row's overrides from recipes (TRAINED: this
    benchmark's rows; another benchmark may pass its own rows, laid out the same way)."""
    budget = budget_of(row, env_steps)
    run_dir = _run_dir(out, task, row, seed)
    fresh = rerun or _finished(run_dir, budget) is None
    under = base_row(recipes[row])
    if under is not None and _finished(_run_dir(out, task, under, seed), budget_of(under, 0)) is None:
        raise RuntimeError(
            f"{task} {row} seed {seed} needs its base, the {under} run in "
            f"{_run_dir(out, task, under, seed)}, finished first (benchmarks/residual_learning.py "
            "runs the bases first)"
        )
    # base()'s placeholders; no other override holds braces
    overrides = [o.format(runs=out, task=task, seed=seed) for o in recipes[row]]
    run_variant(f"{task}_{row}", [f"env.task={task}", *overrides], seed, budget, fresh, out)
    if fresh:  # how many runs shared the machine: the wall time depends on it
        (run_dir / "bench.json").write_text(json.dumps({"jobs": jobs, "machine": trained_on()}))


def check_budgets(
    out: Path,
    tasks: list[str],
    rows: list[str],
    seeds: list[int],
    env_steps: int,
    remedy: str = "pass --env-steps {asked} to report it, or --rerun to replace it",
) -> None:
    """Refuse to replace a finished run of another budget (run_trained reruns a run whose eval.json
    asked another budget, deleting it): those runs are hours of training. The offline BC rows keep
    their own budget.
    remedy: what the caller's user can do, in the message; `{asked}` is the run's budget."""
    for task in tasks:
        for row in rows:
            if row not in TRAINED or own_budget(row) is not None:
                continue
            for seed in seeds:
                path = _run_dir(out, task, row, seed) / "eval.json"
                asked = json.loads(path.read_text()).get("env_steps_asked") if path.exists() else None
                if asked is not None and asked != env_steps:
                    raise SystemExit(
                        f"{path.parent} holds a finished run of {asked:,} env steps, not the "
                        f"{env_steps:,} asked: {remedy.format(asked=asked)}"
                    )


def run_all(
    out: Path,
    runs: list[tuple[str, str, int]],
    env_steps: int,
    rerun: bool,
    jobs: int,
    recipes: Mapping[str, list[str]] = TRAINED,
) -> None:
    """Train the (task, row, seed) runs, `jobs` at a time; a finished run is reused unless rerun."""
    with ThreadPoolExecutor(max_workers=jobs) as pool:
        futures = [
            pool.submit(run_trained, out, t, r, s, env_steps, rerun, jobs, recipes) for t, r, s in runs
        ]
        for f in futures:
            f.result()


def collect(out: Path, task: str, seeds: list[int], env_steps: int, episodes: int) -> dict:
    """Every finished row of the table for one task at these seeds: label -> per-seed success,
    minutes, curves."""
    rows: dict[str, dict] = {}
    paths = {s: out / f"{task}_expert_s{s}.json" for s in seeds}
    experts = {s: json.loads(p.read_text()) for s, p in paths.items() if p.exists()}
    experts = {s: e for s, e in experts.items() if e["episodes"] == episodes}
    for style in ("clean", "noisy"):
        if experts:
            rates = [e[style]["success_rate"] for e in experts.values()]
            rows[f"expert {style}"] = {
                "success": rates,
                "minutes": [e[style]["minutes"] for e in experts.values()],
                "jobs": None,
                "seeds": list(experts),
                "curves": [(np.array([0.0, env_steps]), np.full(2, rate)) for rate in rates],
            }
    return rows | collect_trained(out, task, TABLE_TRAINED, seeds, env_steps)


def collect_trained(out: Path, task: str, rows: Sequence[str], seeds: list[int], env_steps: int) -> dict:
    """These training rows' finished runs of one task at these seeds: row -> per-seed success,
    minutes, run folders, curves; a row with no finished run is left out."""
    found: dict[str, dict] = {}
    for row in rows:
        budget = budget_of(row, env_steps)
        dirs = [_run_dir(out, task, row, s) for s in seeds]
        done = [(d, r) for d in dirs if (r := _finished(d, budget)) is not None]
        if not done:
            continue
        bench = [
            json.loads((d / "bench.json").read_text()) if (d / "bench.json").exists() else {} for d, _ in done
        ]
        found[row] = {
            "success": [r["success_rate"] for _, r in done],
            "minutes": [r["train_time_s"] / 60 for _, r in done],
            "jobs": sorted({b.get("jobs") for b in bench} - {None}),
            # the machines that ran them (bench.json's; absent in runs from before it was kept)
            "machines": sorted({json.dumps(b["machine"], sort_keys=True) for b in bench if "machine" in b}),
            "learner_devices": sorted({r.get("learner_device", "cpu") for _, r in done}),
            "seeds": [int(d.name.rsplit("_s", 1)[1]) for d, _ in done],
            "run_dirs": [d for d, _ in done],
            "curves": [eval_curve(str(d)) for d, _ in done],
        }
    return found


def score_table(
    heading: str, rows: dict, labels: Mapping[str, str], seeds: list[int]
) -> tuple[dict, list[str]]:
    """A task's table of measured rows (collect's or collect_trained's) under a heading: per row its
    JSON figures (score_row's, its seeds and runs at a time) and markdown line, which names its seeds
    when they are not all those asked."""
    payload: dict = {}
    lines = [
        heading,
        "",
        "| row | success IQM | 95% CI | per seed | wall minutes per run (median) |",
        "| --- | --- | --- | --- | --- |",
    ]
    for key, r in rows.items():
        label = labels[key] + (f" (seeds {r['seeds']} only)" if r["seeds"] != seeds else "")
        stats, line = score_row(label, r["success"], r["minutes"])
        payload[key] = stats | {"seeds": r["seeds"], "jobs": r["jobs"]}
        lines.append(line)
    return payload, lines


def task_section(task: str, rows: dict, seeds: list[int], png: Path) -> tuple[dict, list[str]]:
    """One task's JSON figures and markdown: the table of measured rows, the rows not run, the picture."""
    payload, lines = score_table(f"### {task}", rows, LABELS, seeds)
    missing = [k for k in ("expert clean", "expert noisy", *TABLE_TRAINED) if k not in rows]
    if missing:
        keys = dict.fromkeys(k.split()[0] for k in missing)
        lines += [
            "",
            f"Not run yet: {'; '.join(LABELS[k] for k in missing)} "
            f"(`python -m benchmarks.hard_tasks --tasks {task} --rows {' '.join(keys)}`).",
        ]
    curves = {LABELS[k]: r["curves"] for k, r in rows.items()}
    lines += plot_curves(curves, png, f"{task}: env steps", "eval success rate (10 episodes; expert: flat)")
    return payload, lines


def plot_curves(curves: Mapping[str, list[Curve]], png: Path, xlabel: str, ylabel: str) -> list[str]:
    """Draw label -> per-seed (env steps, eval success) curves into png, IQM over seeds; the
    markdown lines naming the picture, none when no run has a periodic evaluation to draw."""
    # a run shorter than eval_every_steps has no periodic evaluation to draw
    drawn = {label: [c for c in runs if c[0].size] for label, runs in curves.items()}
    drawn = {label: runs for label, runs in drawn.items() if runs}
    if not drawn:
        return []
    png.parent.mkdir(parents=True, exist_ok=True)
    plot_runs(drawn, png, xlabel=xlabel, ylabel=ylabel)
    return ["", f"Curves: `{png.relative_to(BENCH_DIR.parent)}`."]


def publish(
    script: str,
    name: str,
    smoke_dir: Path | None,
    payload: dict,
    lines: list[str],
    tables: Sequence[dict] | None = None,
) -> None:
    """End the section with the runs at a time, print it, and keep it: a smoke run's in
    smoke_dir/summary.json, else results/<name>.json and its RESULTS.md section.
    tables: the per-task tables (row -> figures) whose runs it counts; payload["tasks"]'s by default."""
    tables = list(payload["tasks"].values()) if tables is None else tables
    jobs = sorted({j for t in tables for r in t.values() for j in (r["jobs"] or [])})
    lines = [*lines, "", f"Training runs at a time while measured: {jobs or '-'} (`--jobs`)."]
    cmd = (f"python -m benchmarks.{script} " + " ".join(sys.argv[1:])).strip()
    if smoke_dir is not None:
        (smoke_dir / "summary.json").write_text(json.dumps({"command": cmd, **payload}, indent=2))
    else:
        write_results(name, payload, "\n".join(lines), cmd)
    print("\n".join(lines))


def _bc_gap(tasks: dict[str, dict]) -> str:
    """Issue 12's bar: BC on 10 noisy demos at or below 0.5 where the clean expert is >= 0.95."""
    measured = {t: r for t, r in tasks.items() if "bc" in r and "expert clean" in r}
    if not measured:
        return "BC vs expert: not measured yet."
    meets = [t for t, r in measured.items() if r["bc"]["iqm"] <= 0.5 and r["expert clean"]["iqm"] >= 0.95]
    return (
        f"BC on 10 noisy demos <= 0.5 with the clean expert >= 0.95 (IQM): {', '.join(meets) or 'none'} "
        f"of the {len(measured)} measured tasks."
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument(
        "--rows",
        nargs="+",
        default=list(TABLE_ROWS),
        choices=ROWS,
        help="sac_human: hil_learning's row; sac_discrete: grasp_critic's",
    )
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--env-steps", type=int, default=15_000, help="budget of the SAC rows")
    parser.add_argument("--expert-episodes", type=int, default=100, help="episodes per seed")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each is an actor + a learner)")
    parser.add_argument("--rerun", action="store_true", help="ignore finished runs in benchmarks/out/<name>")
    parser.add_argument(
        "--name", default="hard_tasks", help="results name (JSON, RESULTS.md section, curves, run folders)"
    )
    parser.add_argument(
        "--smoke", action="store_true", help="table, JSON and curves into benchmarks/out/<name> only"
    )
    args = parser.parse_args()
    out = BENCH_DIR / "out" / args.name

    if "expert" in args.rows:
        for task in args.tasks:
            for seed in args.seeds:
                run_expert(out, task, seed, args.expert_episodes, args.rerun)
    if not args.rerun:
        check_budgets(out, args.tasks, args.rows, args.seeds, args.env_steps)
    trained = [(t, r, s) for t in args.tasks for r in args.rows if r in TRAINED for s in args.seeds]
    run_all(out, trained, args.env_steps, args.rerun, args.jobs)

    payload: dict = {
        "seeds": args.seeds,
        "env_steps": args.env_steps,
        "bc_env_steps": BC_ENV_STEPS,
        "expert_episodes": args.expert_episodes,
        "overrides": {r: TRAINED[r] for r in TABLE_TRAINED},
        "tasks": {},
    }
    lines = [
        f"## Hard tasks: learning from 10 noisy demos, state observations, seeds {args.seeds}",
        "",
        f"SAC rows: {args.env_steps:,} env steps. BC: offline, the learning benchmark's BC budget "
        f"({BC_ENV_STEPS:,} env steps run with the BC policy, one gradient step each: ~{BC_ENV_STEPS:,} "
        "updates of batch 256 on the demos). Expert rows: the scripted expert itself, "
        f"{args.expert_episodes} episodes per seed. Trained rows: final evaluation of 50 deterministic "
        "episodes per run; IQM over seeds, 95% bootstrap interval. Wall minutes: training time of "
        "`robot-rl train` (actor + learner, without demo recording and the final evaluation; for the "
        "experts, the episodes) on this 2-core box, which was shared with other training runs. "
        "The table is assembled from the finished runs in `benchmarks/out/" + args.name + "`.",
    ]
    for task in TASKS:
        rows = collect(out, task, args.seeds, args.env_steps, args.expert_episodes)
        if not rows:
            lines += ["", f"### {task}", "", "Not run yet."]
            continue
        png = (out if args.smoke else BENCH_DIR / "results") / f"{args.name}_{task}.png"
        payload["tasks"][task], task_lines = task_section(task, rows, args.seeds, png)
        lines += ["", *task_lines]
    lines += ["", _bc_gap(payload["tasks"])]
    publish("hard_tasks", args.name, out if args.smoke else None, payload, lines)


if __name__ == "__main__":
    main()
