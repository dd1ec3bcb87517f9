"""Issue 13's figure: SAC from 10 noisy demos, alone and with a simulated person intervening.

On the two hardest new tasks (peg_insert, stack_cube), state observations, the same env-step
budget, over seeds; two rows of benchmarks/hard_tasks.py, run by its runner into its run folders
(benchmarks/out/hard_tasks), so a finished `sac` run of that benchmark is reused here, not rerun:
- sac: SAC's default recipe (RLPD's 50/50 demo sampling) on 10 noisy demos;
- sac_human: the same, with the simulated person (`teleop=sim_human`, robot_rl/hil/sim_human.py
  with its defaults) taking the arm while it trains; the steps it acted on also go to the demo
  buffer, as in HIL-SERL.

Per run, from its metrics.csv and eval.json:
- env steps to 0.9: the first periodic evaluation (10 deterministic episodes every 2,500 env
  steps) at or above 0.9 success, or "not reached" within the budget;
- final success without help: the final 50-episode deterministic evaluation. Both evaluations run
  on the env alone, never through the teleop device (runtime/actor.py, runtime/train.py);
- the person's effort: env steps the person's command was executed, summed over the training
  episodes (train/episode_intervened), and their share of the env steps run;
- the intervention rate curve: intervened steps per env step over the last 20 episodes
  (train/intervention_rate_last20), drawn with both rows' eval success curves.
IQM over seeds with a 95% bootstrap interval. A seed that did not reach 0.9 counts at the budget,
so env steps to 0.9 is then a lower bound (shown "≥").

    python -m benchmarks.hil_learning --jobs 2                          # both tasks, seeds 0 1 2
    python -m benchmarks.hil_learning --recipe norm_bc --jobs 2         # both rows with normalised
                                                  # state and bc_weight=2; section hil_learning_norm_bc
    python -m benchmarks.hil_learning --tasks peg_insert --seeds 0 --env-steps 300 \\
        --name hil_learning_smoke --smoke       # the whole path; runs and results in benchmarks/out/<name>
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from benchmarks.common import BENCH_DIR
from benchmarks.hard_tasks import (
    LABELS,
    TRAINED,
    check_budgets,
    collect_trained,
    plot_curves,
    publish,
    run_all,
)
from robot_rl.eval.metrics import read_metrics
from robot_rl.eval.stats import bootstrap_ci, iqm

TASKS = ("peg_insert", "stack_cube")  # the hardest: BC and SAC from the demos stay near 0 (hard_tasks)
ROWS = ("sac", "sac_human")
# --recipe: the SAC recipe both rows share (hard_tasks' rows): the default, or normalised state
# with the BC term on the demo rows (agent.normalize_state=true agent.bc_weight=2)
RECIPES = {"default": ROWS, "norm_bc": ("sac_norm_bc", "sac_norm_bc_human")}
TARGET = 0.9  # the eval success whose first crossing is reported
RUNS = BENCH_DIR / "out" / "hard_tasks"  # hard_tasks' run folders, shared


def steps_to(curve: tuple[np.ndarray, np.ndarray], target: float = TARGET) -> int | None:
    """Env steps of the first evaluation at or above target; None when none got there."""
    steps, success = curve
    hits = np.flatnonzero(success >= target)
    return int(steps[hits[0]]) if hits.size else None


def help_of(run_dir: Path) -> tuple[int, float, tuple[np.ndarray, np.ndarray]]:
    """The person's steps over the run (0 without a person), their share of the env steps run,
    and the intervention rate curve (empty without a person: only a teleop device writes it)."""
    episodes = [r for r in read_metrics(run_dir / "metrics.csv") if "train/episode_intervened" in r]
    total = int(sum(r["train/episode_intervened"] for r in episodes))
    share = total / episodes[-1]["env_steps"] if episodes else 0.0  # the last episode overshoots
    rated = [r for r in episodes if "train/intervention_rate_last20" in r]
    curve = (
        np.array([r["env_steps"] for r in rated], float),
        np.array([r["train/intervention_rate_last20"] for r in rated], float),
    )
    return total, share, curve


def summary(values: list[float]) -> dict:
    """IQM over seeds with its 95% bootstrap interval (none for one seed)."""
    low, high = bootstrap_ci(values) if len(values) > 1 else (float("nan"), float("nan"))
    return {"per_seed": list(values), "iqm": iqm(values), "ci95": [low, high]}


def row_figures(found: dict, env_steps: int) -> dict:
    """One row of one task: per seed and over seeds, the issue's four figures and wall minutes."""
    reached = [steps_to(c) for c in found["curves"]]
    helps = [help_of(d) for d in found["run_dirs"]]
    return {
        "seeds": found["seeds"],
        "jobs": found["jobs"],
        "final_success": summary(found["success"]),
        # a seed that never reached it counts at the budget: a lower bound then
        "steps_to_target": summary([env_steps if s is None else s for s in reached]) | {"reached": reached},
        "intervention_steps": summary([float(total) for total, _, _ in helps]),
        "intervention_share": [share for _, share, _ in helps],
        "train_minutes": found["minutes"],
        "intervention_rate": [np.stack(curve).T.round(4).tolist() for _, _, curve in helps],
        "run_dirs": [str(d.relative_to(BENCH_DIR.parent)) for d in found["run_dirs"]],
    }


def _cell(stats: dict, fmt: str, bound: bool = False) -> str:
    low, high = stats["ci95"]
    return f"{'≥ ' if bound else ''}{stats['iqm']:{fmt}} [{low:{fmt}}, {high:{fmt}}]"


def table_line(row: str, f: dict) -> str:
    reached = f["steps_to_target"]["reached"]
    if all(s is None for s in reached):
        steps = "not reached"
    else:  # a seed that did not reach it counted at the budget: a lower bound
        steps = _cell(f["steps_to_target"], ",.0f", bound=None in reached)
    help_share = f"{np.median(f['intervention_share']):.1%}"
    cells = [
        LABELS[row],
        _cell(f["final_success"], ".2f"),
        ", ".join(f"{s:.2f}" for s in f["final_success"]["per_seed"]),
        steps,
        ", ".join("-" if s is None else f"{s:,}" for s in reached),
        _cell(f["intervention_steps"], ",.0f") + f" ({help_share})",
        f"{np.median(f['train_minutes']):.1f}",
    ]
    return "| " + " | ".join(cells) + " |"


def verdict(task: str, rows: dict, names: tuple[str, str] = ROWS) -> str:
    """HIL-SERL's claim on this task: does the person's help move final success past SAC alone?
    names: the (alone, with the person) rows."""
    if not all(r in rows for r in names):
        return f"{task}: needs both rows to compare."
    alone, helped = (rows[r]["final_success"] for r in names)
    text = (
        f"{task}: final success without help {helped['iqm']:.2f} trained with the person vs "
        f"{alone['iqm']:.2f} alone"
    )
    if np.isnan([*alone["ci95"], *helped["ci95"]]).any():
        return f"{text} (one seed: no interval to compare)."
    apart = helped["ci95"][0] > alone["ci95"][1] or alone["ci95"][0] > helped["ci95"][1]
    return f"{text}; the 95% intervals {'do not' if apart else 'do'} overlap."


def task_section(
    task: str, found: dict, env_steps: int, png: Path, names: tuple[str, str] = ROWS
) -> tuple[dict, list[str]]:
    """One task's JSON figures and markdown: the table, the comparison, the picture."""
    rows = {row: row_figures(found[row], env_steps) for row in names if row in found}
    lines = [
        f"### {task}",
        "",
        "| row | final success without help, IQM [95% CI] | per seed | env steps to 0.9, IQM [95% CI] | "
        "per seed | person's steps, IQM [95% CI] (median share of env steps) | "
        "wall minutes per run (median) |",
        "| --- | --- | --- | --- | --- | --- | --- |",
        *(table_line(row, f) for row, f in rows.items()),
    ]
    missing = [row for row in names if row not in found]
    if missing:
        lines += ["", f"Not run yet: {'; '.join(LABELS[r] for r in missing)}."]
    lines += ["", verdict(task, rows, names)]
    curves = {f"{row}: eval success": found[row]["curves"] for row in rows}
    for row, f in rows.items():  # the rate as stored: [[env steps, rate], ...] per seed
        points = [np.array(pts, float).reshape(-1, 2).T for pts in f["intervention_rate"]]
        curves[f"{row}: intervention rate"] = [(x, y) for x, y in points]
    # a run without a person has no rate: plot_curves leaves empty curves out
    lines += plot_curves(curves, png, f"{task}: env steps", "eval success / intervened share of steps")
    return rows, lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--env-steps", type=int, default=15_000, help="budget of both rows")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each is an actor + a learner)")
    parser.add_argument("--rerun", action="store_true", help="replace finished runs instead of reusing them")
    parser.add_argument(
        "--recipe", default="default", choices=sorted(RECIPES), help="the SAC recipe of both rows"
    )
    parser.add_argument(
        "--name",
        default=None,
        help="results name (JSON, RESULTS.md section, curves); default hil_learning[_<recipe>]",
    )
    parser.add_argument(
        "--smoke",
        action="store_true",
        help="runs, table, JSON and curves into benchmarks/out/<name> only (not hard_tasks' runs)",
    )
    args = parser.parse_args()
    names = RECIPES[args.recipe]
    args.name = args.name or ("hil_learning" if args.recipe == "default" else f"hil_learning_{args.recipe}")
    out = BENCH_DIR / "out" / args.name if args.smoke else RUNS
    if not args.rerun:
        check_budgets(out, args.tasks, list(names), args.seeds, args.env_steps)

    runs = [(t, r, s) for t in args.tasks for r in names for s in args.seeds]
    run_all(out, runs, args.env_steps, args.rerun, args.jobs)

    payload: dict = {
        "seeds": args.seeds,
        "env_steps": args.env_steps,
        "target": TARGET,
        "overrides": {r: TRAINED[r] for r in names},
        "tasks": {},
    }
    recipe = (
        "the default recipe"
        if args.recipe == "default"
        else f"SAC with `{' '.join(o for o in TRAINED[names[0]] if o.startswith('agent.'))}`"
    )
    lines = [
        f"## Human in the loop: SAC ({args.recipe} recipe) from 10 noisy demos, alone and with a "
        f"simulated person, seeds {args.seeds}",
        "",
        f"State observations, {args.env_steps:,} env steps per run. {names[0]}: {recipe} on 10 noisy "
        f"demos (hard_tasks' row, its runs); {names[1]}: the same with `teleop=sim_human` (the scripted "
        "expert takes the arm for 10 steps when the policy's action is more than 1.0 from its own or the "
        "gripper stalls for 20 steps; its steps also go to the demo buffer). Success is always measured "
        "without the person: env steps to 0.9 from the periodic evaluation (10 deterministic episodes "
        "every 2,500 env steps; ≥: a seed that never reached it counted at the budget), final success "
        "from 50 deterministic episodes. Person's steps: env steps the simulated person's command was "
        "executed, over the run. IQM over seeds, 95% bootstrap interval. Wall minutes: training time of "
        "`robot-rl train` on this 2-core box, shared with other training runs. Curves: IQM over seeds "
        "of eval success and of the intervention rate (intervened share of the steps of the last 20 "
        f"episodes). Runs: `{out.relative_to(BENCH_DIR.parent)}`.",
    ]
    for task in args.tasks:
        found = collect_trained(out, task, list(names), args.seeds, args.env_steps)
        if not found:
            lines += ["", f"### {task}", "", "Not run yet."]
            continue
        png = (out if args.smoke else BENCH_DIR / "results") / f"{args.name}_{task}.png"
        payload["tasks"][task], task_lines = task_section(task, found, args.env_steps, png, names)
        lines += ["", *task_lines]
    publish("hil_learning", args.name, out if args.smoke else None, payload, lines)


if __name__ == "__main__":
    main()
