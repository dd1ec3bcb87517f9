"""Issue 14's learning figure: RL on top of a flow BC policy against the policy alone, on peg_insert
and stack_cube, state observations, over seeds, in two settings (SETTINGS).

The issue's setting, 10 noisy demos (benchmarks/hard_tasks.py's TRAINED holds the overrides; run
folders and runner are its):
- flow_bc: `agent=flow_bc` on the 10 noisy demos, offline with BC's budget (5,000 updates): the
  frozen base of the three RL-on-a-base rows, each seed's own;
- bc: the MLP BC (`agent=bc`), the same demos and budget;
- sac: SAC with demos from scratch, the default recipe (RLPD's 50/50 demo sampling);
- residual: `agent=residual agent.base=<the flow_bc run>` with the same demos: SAC trains a bounded
  residual (agent.scale 0.2) on the frozen base's action;
- dsrl: `agent=dsrl agent.base=<the flow_bc run> demos=none`: SAC steers the base's initial noise;
- dsrl_best_of_n: the same acting with the best of 8 noise draws by the critic (EXPO / PA-RL /
  IDQL's selection; with a chunked base, N chunks of the flow policy ranked by the chunk critic).
A stronger base, 100 clean demos (that base ends near 0.04 on 10 noisy demos, leaving the RL rows
no success to build on):
- flow_bc_clean: `agent=flow_bc` on the scripted expert's 100 clean demos, BC's budget;
- sac_clean: SAC with demos from scratch on the same 100 demos;
- residual_clean: `agent=residual_anchored` (configs/agent/residual_anchored.yaml: the BC term,
  a critic-only warm-up, progressive exploration, bound 0.1) on the flow_bc_clean run;
- dsrl_clean: DSRL on the flow_bc_clean run, as dsrl.
Every RL row has the same --env-steps budget (15,000, as hard_tasks' and hil_learning's). The figure
is each run's final 50-episode deterministic evaluation: IQM over seeds with a 95% bootstrap
interval. Per setting and task, the section also checks the issue's bars: each row on the base
against the base, the residual also against SAC, and per seed the residual's lowest periodic
evaluation against its base's final success (it must never fall more than 0.1 below it; the
periodic evaluation is 10 episodes, so one episode is 0.1).

    python -m benchmarks.residual_learning --jobs 2                   # both settings and tasks, seeds 0 1 2
    python -m benchmarks.residual_learning --rows flow_bc_clean sac_clean residual_clean dsrl_clean
    python -m benchmarks.residual_learning --tasks peg_insert --seeds 0 --env-steps 300 --smoke
        # the whole path (flow BC at its budget, the RL rows at 300 env steps) into
        # benchmarks/out/residual_learning_smoke, results untouched

Base rows run first: an RL-on-a-base run needs its seed's base run finished. --rows picks what to
train; the section always shows every row with finished runs (a row short of seeds says which),
so the benchmark can be run in parts. `--report` trains nothing and writes the section.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import dataclass

import numpy as np

from benchmarks.common import BENCH_DIR, SMOKE_EVAL
from benchmarks.hard_tasks import (
    LABELS,
    TRAINED,
    budget_of,
    check_budgets,
    collect_trained,
    plot_curves,
    publish,
    run_all,
    score_table,
    trained_on,
)

TASKS = ("peg_insert", "stack_cube")


@dataclass(frozen=True)
class Setting:
    """One setting's rows: the offline ones (its base first) train before the rest."""

    title: str  # what the demos are, in the section's headings
    offline: tuple[str, ...]  # offline BC rows; offline[0] is the frozen base of on_base
    sac: str  # SAC with demos from scratch, the residual's other peer
    on_base: tuple[str, ...]  # RL rows on the base; on_base[0] is the residual
    png: str  # the curves' file name suffix

    @property
    def base(self) -> str:
        return self.offline[0]

    @property
    def residual(self) -> str:
        return self.on_base[0]

    @property
    def rows(self) -> tuple[str, ...]:
        return (*self.offline, self.sac, *self.on_base)


SETTINGS = (
    Setting("10 noisy demos", ("flow_bc", "bc"), "sac", ("residual", "dsrl", "dsrl_best_of_n"), ""),
    Setting("100 clean demos", ("flow_bc_clean",), "sac_clean", ("residual_clean", "dsrl_clean"), "_clean"),
)
ROWS = tuple(r for s in SETTINGS for r in s.rows)
OFFLINE = tuple(r for s in SETTINGS for r in s.offline)
# the bars' names (the table's labels are LABELS)
SHORT = {
    "flow_bc": "the flow BC base",
    "flow_bc_clean": "the flow BC base",
    "sac": "SAC from scratch",
    "sac_clean": "SAC from scratch",
    "residual": "residual",
    "residual_clean": "residual (anchored)",
    "dsrl": "DSRL",
    "dsrl_best_of_n": "DSRL + best-of-8",
    "dsrl_clean": "DSRL",
}
MAX_DROP = 0.1  # the bar: the residual's evaluations never more than this below its base


def _where(m: dict) -> str:
    return f"{m['cpu']} ({m['cores']} cores)" + (f", GPU {m['gpu']}" if m.get("gpu") else "")


def _against(rows: dict, row: str, peer: str) -> str:
    """One bar as a markdown line: row's IQM against peer's, "beats" only when row's 95% interval
    lies wholly above peer's."""
    r, p = rows[row]["stats"], rows[peer]["stats"]
    low, high = r["ci95"][0], p["ci95"][1]
    above = r["iqm"] > p["iqm"]
    if np.isnan(low) or np.isnan(high):
        verdict = "one seed: no intervals"
    elif above and low > high:
        verdict = "beats it: the 95% intervals are apart"
    else:
        verdict = "does not beat it" + (", IQM above but the 95% intervals overlap" if above else "")
    return f"- {SHORT[row]} against {SHORT[peer]}: {r['iqm']:.2f} vs {p['iqm']:.2f}, {verdict}."


def base_bars(rows: dict, setting: Setting) -> list[str]:
    """The issue's bars, as markdown lines: every row on the base against the base; the residual
    also against SAC from scratch, and per seed its lowest periodic evaluation against its own
    base's final success."""
    if setting.base not in rows:
        return []
    lines = [_against(rows, row, setting.base) for row in setting.on_base if row in rows]
    if setting.residual not in rows:
        return lines
    if setting.sac in rows:
        lines.append(_against(rows, setting.residual, setting.sac))
    res, base = rows[setting.residual], rows[setting.base]
    base_of = dict(zip(base["seeds"], base["success"], strict=True))
    drops = []
    for seed, (_, evals) in zip(res["seeds"], res["curves"], strict=True):
        if seed in base_of and evals.size:
            drops.append((seed, float(evals.min()) - base_of[seed]))
    if drops:
        worst = min(d for _, d in drops)
        held = "held" if worst >= -MAX_DROP - 1e-9 else "not held"
        per_seed = ", ".join(f"seed {s}: {d:+.2f}" for s, d in drops)
        lines.append(
            f"- {SHORT[setting.residual]}'s lowest periodic evaluation minus its base's final success: "
            f"{per_seed} (never more than {MAX_DROP} below: {held})."
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tasks", nargs="+", default=list(TASKS), choices=TASKS)
    parser.add_argument("--rows", nargs="+", default=list(ROWS), choices=ROWS)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--env-steps", type=int, default=15_000, help="budget of the RL rows")
    parser.add_argument("--jobs", type=int, default=2, help="runs at a time (each is an actor + a learner)")
    parser.add_argument("--rerun", action="store_true", help="ignore finished runs in benchmarks/out/<name>")
    parser.add_argument(
        "--report", action="store_true", help="train nothing: the section from the runs already finished"
    )
    parser.add_argument("--name", default="residual_learning", help="results name and run folders")
    parser.add_argument(
        "--smoke", action="store_true", help="table, JSON and curves into benchmarks/out only"
    )
    args = parser.parse_args()
    name = f"{args.name}_smoke" if args.smoke and args.name == "residual_learning" else args.name
    out = BENCH_DIR / "out" / name
    recipes = {r: [*TRAINED[r], *SMOKE_EVAL] if args.smoke else TRAINED[r] for r in ROWS}
    if not args.rerun:
        check_budgets(out, args.tasks, args.rows, args.seeds, args.env_steps)
    # the bases first, then the rest in the order asked (a pool of --jobs runs each)
    for stage in (
        []
        if args.report
        else ([r for r in args.rows if r in OFFLINE], [r for r in args.rows if r not in OFFLINE])
    ):
        runs = [(t, r, s) for r in stage for t in args.tasks for s in args.seeds]
        run_all(out, runs, args.env_steps, args.rerun, args.jobs, recipes)

    payload: dict = {
        "seeds": args.seeds,
        "env_steps": args.env_steps,
        "budgets": {r: budget_of(r, args.env_steps) for r in ROWS},
        "overrides": {r: TRAINED[r] for r in ROWS},
        # setting title -> "tasks": task -> row -> figures; "bars": task -> the bars' markdown
        # lines; "curves": task -> row -> per seed [env steps, eval success]
        "settings": {},
    }
    lines = [
        f"## Residual and DSRL on a flow BC base, state observations, seeds {args.seeds}",
        "",
        f"RL rows: {args.env_steps:,} env steps each. flow BC and MLP BC: offline, "
        f"{budget_of('flow_bc', 0):,} updates on the demos (batch 256). The residual, DSRL and "
        "best-of-N rows use the same seed's flow BC run as their frozen base (`agent.base=<its run "
        "folder>`). Final evaluation of 50 deterministic episodes per run; IQM over seeds, 95% "
        "bootstrap interval. Wall minutes: training time of `robot-rl train` on this 2-core box, "
        f"shared with other training runs. Runs: `benchmarks/out/{name}`.",
    ]
    here = json.dumps(trained_on(), sort_keys=True)
    elsewhere: set[str] = set()
    for setting in SETTINGS:
        figures: dict = {"tasks": {}, "bars": {}, "curves": {}}
        for task in args.tasks:
            heading = f"### {task}, {setting.title}"
            # every row of the setting run so far
            rows = collect_trained(out, task, list(setting.rows), args.seeds, args.env_steps)
            if not rows:
                lines += ["", heading, "", "Not run yet."]
                continue
            task_payload, task_lines = score_table(heading, rows, LABELS, args.seeds)
            for row, r in rows.items():
                r["stats"] = task_payload[row]
                where = {f"{LABELS[row]}: {_where(json.loads(m))}" for m in r["machines"] if m != here}
                elsewhere |= {f"{w}, learner on {'/'.join(r['learner_devices'])}" for w in where}
            missing = [r for r in setting.rows if r not in rows]
            if missing:
                task_lines += [
                    "",
                    f"Not run yet: {'; '.join(LABELS[r] for r in missing)} "
                    f"(`python -m benchmarks.residual_learning --tasks {task} --rows {' '.join(missing)}`).",
                ]
            bars = base_bars(rows, setting)
            png = (out if args.smoke else BENCH_DIR / "results") / f"{name}_{task}{setting.png}.png"
            curves = {LABELS[k]: r["curves"] for k, r in rows.items()}
            lines += ["", *task_lines, *(["", *bars] if bars else [])]
            lines += plot_curves(
                curves, png, f"{task}, {setting.title}: env steps", "eval success rate (10 episodes)"
            )
            figures["tasks"][task] = task_payload
            figures["bars"][task] = bars
            figures["curves"][task] = {
                k: [[x.tolist(), y.tolist()] for x, y in r["curves"]] for k, r in rows.items()
            }
        payload["settings"][setting.title] = figures
    if elsewhere:
        lines += [
            "",
            "Rows trained on another machine than this section's (their wall minutes are that machine's): "
            + "; ".join(sorted(elsewhere))
            + ".",
        ]
    tables = [t for f in payload["settings"].values() for t in f["tasks"].values()]
    publish("residual_learning", name, out if args.smoke else None, payload, lines, tables)


if __name__ == "__main__":
    main()
