"""Issue 13's figure: the grasp critic against the continuous gripper, on pick_cube and slide_to_mark.

Two rows per task, state observations, the same recipe and env-step budget, over seeds:
- sac (continuous gripper): SAC's default recipe (RLPD's 50/50 demo sampling), the gripper one
  dimension of the continuous action;
- sac_discrete (grasp critic): the same with `agent.gripper=discrete` (robot_rl/agents/grasp_critic.py):
  HIL-SERL's gripper as a discrete choice {open, stay, close} learned by its own Q-head with a
  penalty per toggle, while SAC's policy moves the arm.
The tasks:
- pick_cube: the learning benchmark's default (benchmarks/learning.py): 20 scripted demos, 10,000
  env steps; its runs in benchmarks/out/<name> (grasp_critic);
- slide_to_mark: the new task where SAC learns something from 10 noisy demos within 15,000 env
  steps (benchmarks/hard_tasks.py; on peg_insert and stack_cube it stays near 0, where a gripper
  comparison would read 0 against 0). Its rows are hard_tasks' `sac` and `sac_discrete`, run by its
  runner into its run folders (benchmarks/out/hard_tasks), so hard_tasks' finished sac runs are the
  continuous row: reused, never rerun here (not even with --rerun).
Each run is the real `robot-rl train` (benchmarks/learning.py's run_variant); the figure is its
final 50-episode deterministic evaluation: IQM over seeds with a 95% bootstrap interval, per-seed
success, wall minutes, the eval curves, and per task whether the two intervals overlap. A task left
out of --tasks that an earlier invocation measured (results/<name>.json, the same seeds) stays in
the section and the JSON with its figures and the command and date that measured them.

    python -m benchmarks.grasp_critic --jobs 2                        # both tasks, seeds 0 1 2
    python -m benchmarks.grasp_critic --seeds 0 --smoke    # the whole path at 300 env steps, runs and
                                                           # results in benchmarks/out/grasp_critic_smoke
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from benchmarks.common import BENCH_DIR, SMOKE_EVAL
from benchmarks.hard_tasks import (
    TABLE_TRAINED,
    TRAINED,
    check_budgets,
    collect_trained,
    plot_curves,
    publish,
    run_all,
    score_table,
)
from benchmarks.learning import VARIANTS

ROWS = ("sac", "sac_discrete")  # continuous gripper, grasp critic
LABELS = {"sac": "continuous gripper", "sac_discrete": "grasp critic (agent.gripper=discrete)"}
HARD_RUNS = BENCH_DIR / "out" / "hard_tasks"  # hard_tasks' run folders, shared
SMOKE_STEPS = 300
REMEDY = "a --smoke run's folder? give this run another --name; else --rerun replaces it"
HARD_REMEDY = "a run of hard_tasks' table, which this benchmark never replaces: see benchmarks/hard_tasks.py"


@dataclass(frozen=True)
class Setup:
    """One task's comparison: its demos in words, its budget, each row's overrides (on top of
    `env.task=<task> seed=<seed> total_env_steps=<budget>`), and whether its runs are hard_tasks'."""

    demos: str
    env_steps: int
    recipes: dict[str, list[str]]
    in_hard_tasks: bool


SETUPS = {
    "pick_cube": Setup(
        "20 scripted demos",
        10_000,  # benchmarks/learning.py's default budget
        {"sac": VARIANTS["default"], "sac_discrete": [*VARIANTS["default"], "agent.gripper=discrete"]},
        in_hard_tasks=False,
    ),
    "slide_to_mark": Setup("10 noisy demos", 15_000, {r: TRAINED[r] for r in ROWS}, in_hard_tasks=True),
}


def runs_of(task: str, name: str, smoke: bool) -> Path:
    """Where a task's runs live: a smoke run's in benchmarks/out/<name>, never hard_tasks'."""
    return HARD_RUNS if SETUPS[task].in_hard_tasks and not smoke else BENCH_DIR / "out" / name


def budget_of(task: str, smoke: bool) -> int:
    return SMOKE_STEPS if smoke else SETUPS[task].env_steps


def recipes_of(task: str, smoke: bool) -> dict[str, list[str]]:
    recipes = SETUPS[task].recipes
    return {row: [*o, *SMOKE_EVAL] for row, o in recipes.items()} if smoke else recipes


def train(tasks: list[str], seeds: list[int], name: str, smoke: bool, rerun: bool, jobs: int) -> None:
    """Train every missing run, task by task, `jobs` at a time; rerun replaces this benchmark's own
    runs, never a run of hard_tasks' table (slide_to_mark's sac), which only is trained if missing."""
    plans = []
    for task in tasks:
        out, budget = runs_of(task, name, smoke), budget_of(task, smoke)
        theirs = [r for r in ROWS if out == HARD_RUNS and r in TABLE_TRAINED]
        ours = [r for r in ROWS if r not in theirs]
        # before any training: a finished run of another budget stops the benchmark, not replaced
        check_budgets(out, [task], theirs, seeds, budget, HARD_REMEDY)
        if not rerun:
            check_budgets(out, [task], ours, seeds, budget, REMEDY)
        plans.append((task, out, budget, theirs, ours))
    for task, out, budget, theirs, ours in plans:
        for rows, again in ((theirs, False), (ours, rerun)):
            runs = [(task, row, seed) for row in rows for seed in seeds]
            run_all(out, runs, budget, again, jobs, recipes_of(task, smoke))


def verdict(task: str, rows: dict) -> str:
    """Whether the grasp critic's 95% interval and the continuous gripper's overlap on this task."""
    if not all(r in rows for r in ROWS):
        return f"{task}: needs both rows to compare."
    continuous, discrete = (rows[r] for r in ROWS)
    text = (
        f"{task}: success IQM {discrete['iqm']:.2f} with the grasp critic vs {continuous['iqm']:.2f} "
        "with the continuous gripper"
    )
    if np.isnan([*continuous["ci95"], *discrete["ci95"]]).any():
        return f"{text} (one seed: no interval to compare)."
    apart = discrete["ci95"][0] > continuous["ci95"][1] or continuous["ci95"][0] > discrete["ci95"][1]
    return f"{text}; the 95% intervals {'do not' if apart else 'do'} overlap."


def task_section(task: str, found: dict, seeds: list[int], budget: int, png: Path) -> tuple[dict, list[str]]:
    """One task's JSON figures and markdown: the table, the comparison, the picture."""
    payload, lines = score_table(
        f"### {task}: {SETUPS[task].demos}, {budget:,} env steps", found, LABELS, seeds
    )
    for row, r in found.items():
        payload[row]["run_dirs"] = [str(d.relative_to(BENCH_DIR.parent)) for d in r["run_dirs"]]
    missing = [LABELS[r] for r in ROWS if r not in found]
    if missing:
        lines += ["", f"Not run yet: {'; '.join(missing)}."]
    lines += ["", verdict(task, payload)]
    curves = {LABELS[row]: r["curves"] for row, r in found.items()}
    lines += plot_curves(curves, png, f"{task}: env steps", "eval success rate (10 episodes)")
    return payload, lines


def carried_tasks(path: Path, tasks: list[str], seeds: list[int]) -> dict[str, dict]:
    """The tasks an earlier run of this benchmark measured into results JSON `path`, at the same
    seeds, that this run does not measure: task -> {setup, rows, command, date}. Their run folders
    may be gone (a fresh checkout), so their figures come from the JSON, as that run wrote them."""
    if not path.exists():
        return {}
    earlier = json.loads(path.read_text())
    if earlier.get("smoke") or earlier.get("seeds") != seeds:
        return {}
    carried = {}
    for task, rows in earlier.get("tasks", {}).items():
        if task in tasks or task not in SETUPS:
            continue
        # a task that run itself carried keeps the command and date that measured it
        measured = earlier.get("carried", {}).get(task, {})
        carried[task] = {
            "setup": earlier["setups"][task],
            "rows": rows,
            "command": measured.get("command", earlier["command"]),
            "date": measured.get("date", earlier["machine"]["date"]),
        }
    return carried


def carried_section(task: str, earlier: dict, seeds: list[int]) -> tuple[dict, list[str]]:
    """One carried task's JSON figures and markdown, rebuilt from its earlier figures."""
    found = {
        row: {"success": r["success"], "minutes": r["train_minutes"], "seeds": r["seeds"], "jobs": r["jobs"]}
        for row, r in earlier["rows"].items()
    }
    budget = earlier["setup"]["env_steps"]
    payload, lines = score_table(
        f"### {task}: {SETUPS[task].demos}, {budget:,} env steps", found, LABELS, seeds
    )
    for row, r in earlier["rows"].items():
        payload[row]["run_dirs"] = r.get("run_dirs", [])
    lines += ["", verdict(task, payload)]
    png = BENCH_DIR / "results" / f"grasp_critic_{task}.png"
    if png.exists():
        lines += ["", f"Curves: `{png.relative_to(BENCH_DIR.parent)}`."]
    lines += [
        "",
        f"{task}: measured {earlier['date']} by `{earlier['command']}` (carried from that run's JSON).",
    ]
    return payload, lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", default=list(SETUPS), choices=list(SETUPS))
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each is an actor + a learner)")
    parser.add_argument(
        "--rerun", action="store_true", help="replace this benchmark's finished runs (never hard_tasks' sac)"
    )
    parser.add_argument(
        "--name",
        help="results name (JSON, RESULTS.md section, curves, pick_cube's run folders); "
        "default grasp_critic, with --smoke grasp_critic_smoke",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help=f"{SMOKE_STEPS} env steps per run; runs, table, JSON and curves into benchmarks/out/<name> only",
    )
    args = parser.parse_args()
    if args.jobs < 1:
        raise SystemExit(f"--jobs must be >= 1, got {args.jobs}")
    name = args.name or ("grasp_critic_smoke" if args.smoke else "grasp_critic")
    train(args.tasks, args.seeds, name, args.smoke, args.rerun, args.jobs)

    payload: dict = {"seeds": args.seeds, "smoke": args.smoke, "setups": {}, "tasks": {}}
    lines = [
        f"## Grasp critic: HIL-SERL's discrete gripper against the continuous one, seeds {args.seeds}",
        "",
        "State observations; per task both rows share the recipe, demos and env-step budget. Continuous "
        "gripper: SAC's default recipe (RLPD's 50/50 demo sampling), the gripper one dimension of the "
        "continuous action. Grasp critic: the same with `agent.gripper=discrete` (open, stay or close "
        "from its own double-DQN Q-heads with a 0.1 reward penalty per toggle and 10% random choices "
        "while collecting; SAC's policy moves the arm). Final evaluation: 50 deterministic episodes per "
        "run; IQM over seeds, 95% bootstrap interval. Wall minutes: training time of `robot-rl train` "
        "(actor + learner, without demo recording and the final evaluation), shared with other training "
        "runs. Curves: IQM over seeds of the periodic evaluation (10 deterministic episodes every 2,500 "
        "env steps). slide_to_mark's continuous row is benchmarks/hard_tasks.py's `sac` row, its runs.",
    ]
    if args.smoke:  # what differs from the text above
        lines += ["", f"Smoke run: {SMOKE_STEPS} env steps per run, overrides {SMOKE_EVAL}."]
    # a task measured by an earlier invocation (--tasks pick_cube, then --tasks slide_to_mark)
    # stays in the section and the JSON, with the command and date that measured it
    earlier = (
        {} if args.smoke else carried_tasks(BENCH_DIR / "results" / f"{name}.json", args.tasks, args.seeds)
    )
    payload["carried"] = {t: {"command": e["command"], "date": e["date"]} for t, e in earlier.items()}
    for task in [t for t in SETUPS if t in args.tasks or t in earlier]:
        if task in earlier:
            payload["setups"][task] = earlier[task]["setup"]
            payload["tasks"][task], task_lines = carried_section(task, earlier[task], args.seeds)
            lines += ["", *task_lines]
            continue
        out, budget = runs_of(task, name, args.smoke), budget_of(task, args.smoke)
        payload["setups"][task] = {
            "env_steps": budget,
            "overrides": recipes_of(task, args.smoke),
            "runs": str(out.relative_to(BENCH_DIR.parent)),
        }
        found = collect_trained(out, task, ROWS, args.seeds, budget)
        png = (BENCH_DIR / "out" / name if args.smoke else BENCH_DIR / "results") / f"{name}_{task}.png"
        payload["tasks"][task], task_lines = task_section(task, found, args.seeds, budget, png)
        lines += ["", *task_lines]
    publish("grasp_critic", name, BENCH_DIR / "out" / name if args.smoke else None, payload, lines)


if __name__ == "__main__":
    main()
