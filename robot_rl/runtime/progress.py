"""What the three apps show while they run, and the same figures as metrics.csv rows.

`robot-rl train`'s supervisor (Progress), `robot-rl actor` (ActorDisplay) and `robot-rl learner`
(LearnerDisplay) read the status messages the actor and the learner post
(runtime/process.post_status) and print one line every few seconds. An env with a success
signal (the sim tasks, the robot, a gymnasium env whose info carries `success` or `is_success`)
shows its success rate; one without (Hopper, HalfCheetah) shows its mean episode return, since
a success rate of 0.00 there says nothing. An actor's episode message carries
`train/episode_success` only when its env reports success (envs/gym_adapter.reports_success).

With a teleop device (teleop=...), the line and metrics.csv also say how much the person helped
(HelpWindow: the intervention rate, takeovers and success without help over recent episodes,
and the episodes re-recorded); a run without one shows exactly what it showed before.
"""

from __future__ import annotations

import math
import queue
import time
from collections import deque
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from robot_rl.config import TrainConfig
from robot_rl.eval.metrics import MetricsLogger

WINDOW = 20  # episodes in the running success rate or return
# a remote actor's heartbeat figures the learner logs, as actor<id>/<key>
ACTOR_COLUMNS = (
    "env_steps", "episodes", "success_last20", "last_return", "backlog", "connects", "backpressure",
)  # fmt: skip


class PrintClock:
    """When a progress line is due: every few seconds while enabled, or when forced at the end."""

    def __init__(self, enabled: bool, period_s: float = 3.0) -> None:
        self.enabled = enabled
        self.period_s = period_s
        self.t0 = time.monotonic()
        self._last = 0.0

    def due(self, force: bool = False) -> bool:
        now = time.monotonic()
        if not self.enabled or (not force and now - self._last < self.period_s):
            return False
        self._last = now
        return True

    def elapsed_s(self) -> float:
        return time.monotonic() - self.t0


def outcome_text(successes: Sequence[float], returns: Sequence[float]) -> str:
    """The recent episodes in a few words: their success rate, or their mean return when the env
    reports no success (no successes recorded but returns are)."""
    if successes:
        return f"success(last {WINDOW}) {np.mean(successes):.2f}"
    if returns:
        return f"return(last {WINDOW}) {np.mean(returns):.1f}"
    return f"success(last {WINDOW}) -"


class HelpWindow:
    """How much a person helped over the last WINDOW episodes, from the actor's episode messages
    (train/episode_intervened, _takeovers, _unaided_success, _rerecorded, _length:
    robot_rl/hil/episode_help.py)."""

    def __init__(self) -> None:
        self.intervened: deque[float] = deque(maxlen=WINDOW)
        self.lengths: deque[float] = deque(maxlen=WINDOW)
        self.takeovers: deque[float] = deque(maxlen=WINDOW)
        self.unaided: deque[float] = deque(maxlen=WINDOW)
        self.total_steps = 0  # the person's effort over the whole run, in env steps
        self.rerecorded = 0  # episodes the person re-recorded, over the whole run

    def add(self, msg: Mapping[str, Any]) -> None:
        steps = float(msg.get("train/episode_intervened", 0.0))
        self.total_steps += int(steps)
        self.intervened.append(steps)
        self.lengths.append(float(msg.get("train/episode_length", 0.0)))
        self.takeovers.append(float(msg.get("train/episode_takeovers", 0.0)))
        self.rerecorded += int(msg.get("train/episode_rerecorded", 0))
        if "train/episode_unaided_success" in msg:
            self.unaided.append(float(msg["train/episode_unaided_success"]))

    def rate(self) -> float:
        """Intervened steps per env step over the window."""
        return sum(self.intervened) / max(sum(self.lengths), 1.0)

    def row(self) -> dict[str, float]:
        """metrics.csv columns (and TensorBoard scalars)."""
        row = {
            "train/intervention_rate_last20": self.rate(),
            "train/takeovers_last20": float(np.mean(self.takeovers)) if self.takeovers else 0.0,
            "train/intervention_steps_total": float(self.total_steps),
            "train/rerecorded_total": float(self.rerecorded),
        }
        if self.unaided:
            row["train/unaided_success_last20"] = float(np.mean(self.unaided))
        return row

    def text(self) -> str:
        """The progress line's part, e.g. "help 0.25 of steps, 1.5 takeovers/ep, unaided 0.40"."""
        if not self.lengths:
            return "help -"
        out = f"help {self.rate():.2f} of steps, {np.mean(self.takeovers):.1f} takeovers/ep"
        if self.unaided:
            out += f", unaided {np.mean(self.unaided):.2f}"
        return out + (f", {self.rerecorded} re-recorded" if self.rerecorded else "")


def eval_text(state: Mapping[str, Any]) -> str:
    """The latest evaluation: its success rate, else its mean return, else '-'."""
    if "eval/success_rate" in state:
        return f"eval {state['eval/success_rate']:.2f}"
    if "eval/return" in state:
        return f"eval return {state['eval/return']:.1f}"
    return "eval -"


def eval_summary_text(result: Mapping[str, Any]) -> str:
    """An evaluation (run_episodes' summary) in one line: success with its 95% Wilson interval,
    or the mean return with its spread for an env that reports no success."""
    if "success_rate" in result:
        return (
            f"success {result['success_rate']:.2f} "
            f"[{result['success_ci_low']:.2f}, {result['success_ci_high']:.2f}]"
            f" over {result['episodes']} episodes"
            f" | length {result['episode_length']:.1f} | return {result['return']:.2f}"
        )
    return (
        f"return {result['return']:.2f} +- {result['return_std']:.2f}"
        f" over {result['episodes']} episodes (this env reports no success)"
        f" | length {result['episode_length']:.1f}"
    )


def final_eval_line(result: Mapping[str, Any], weights_version: int | None = None) -> str:
    """The closing line of a run: its final evaluation, and the weights evaluated if given."""
    head = "final eval" if weights_version is None else f"final eval (weights v{weights_version})"
    return f"{head}: {eval_summary_text(result)}"


def budget_text(env_steps: int, asked: int) -> str:
    """Env steps taken against the budget; the last episode is always finished, so a run may
    end a few steps past it, and this says so rather than report the budget as met exactly."""
    if env_steps > asked:
        over = env_steps - asked
        return f"{env_steps:,} env steps ({asked:,} asked; {over:,} more to finish the last episode)"
    return f"{env_steps:,} env steps"


def budget_row(env_steps: int, asked: int) -> dict[str, int]:
    """The budget as metrics.csv columns: asked, taken, and the overshoot of the last episode."""
    over = max(0, env_steps - asked)
    return {"env_steps": env_steps, "budget/env_steps_asked": asked, "budget/env_steps_over": over}


class Display(Protocol):
    def handle(self, msg: dict[str, Any]) -> None: ...


def drain(status: Any, display: Display) -> None:
    """Hand every waiting status message to the display, without blocking."""
    while True:
        try:
            display.handle(status.get_nowait())
        except queue.Empty:
            return


class Progress:
    """`robot-rl train`: merges the actor's and the learner's messages into metrics rows and a
    one-line display every few seconds."""

    def __init__(self, cfg: TrainConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.logger = MetricsLogger(run_dir)
        self.clock = PrintClock(cfg.progress)
        self.state: dict[str, Any] = {}
        self.recent_success: deque[float] = deque(maxlen=WINDOW)
        self.recent_return: deque[float] = deque(maxlen=WINDOW)
        self.help = HelpWindow() if cfg.teleop is not None else None  # only a run with a person
        self.errors: list[str] = []
        self.estop = ""  # the actor's e-stop message: the run stops

    def handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("kind")
        if kind == "error":
            self.errors.append(f"{msg['source']}: {msg['error']}")
            return
        if kind == "estop":
            self.estop = str(msg["message"])
            return
        self.state.update({k: v for k, v in msg.items() if k not in ("source", "kind")})
        if msg["source"] == "actor" and kind == "episode":
            self.logger.log(self._episode_row(msg))
        elif kind == "eval":
            self.logger.log({k: v for k, v in msg.items() if isinstance(v, (int, float))})

    def _episode_row(self, msg: dict[str, Any]) -> dict[str, Any]:
        row = {k: v for k, v in msg.items() if isinstance(v, (int, float)) and k != "episode"}
        self.recent_return.append(float(msg.get("train/episode_return", 0.0)))
        if "train/episode_success" in msg:
            self.recent_success.append(msg["train/episode_success"])
            row["train/success_last20"] = float(np.mean(self.recent_success))
        else:
            row["train/return_last20"] = float(np.mean(self.recent_return))
        if self.help is not None:
            self.help.add(msg)
            row |= self.help.row()
        row |= {k: v for k, v in self.state.items() if k.startswith("learner/")}
        row["learner/updates"] = self.state.get("updates", 0)
        row["learner/updates_per_s"] = self.state.get("updates_per_s", 0.0)
        row["learner/utd_achieved"] = self.state.get("utd_achieved", 0.0)
        row["time_s"] = self.clock.elapsed_s()
        return row

    def outcome(self) -> str:
        """Recent success (or return), and with a person how much they helped."""
        text = outcome_text(self.recent_success, self.recent_return)
        if self.help is None:
            return text
        return f"{text} | {self.help.text()}"

    def show(self, force: bool = False) -> None:
        if not self.clock.due(force):
            return
        s = self.state
        print(
            f"[{self.clock.elapsed_s():6.0f}s] env {s.get('env_steps', 0):,}/{self.cfg.total_env_steps:,}"
            f" | episodes {s.get('episode', 0)} | {self.outcome()} | {eval_text(s)}"
            f" | updates {s.get('updates', 0):,} @ {s.get('updates_per_s', 0.0):.0f}/s"
            f" | UTD {s.get('utd_achieved', 0.0):.2f} | queue {s.get('queue_depth', 0)}"
            f" backlog {s.get('backlog', 0)} | weights v{s.get('weights_version', 0)}",
            flush=True,
        )


class ActorDisplay(Progress):
    """`robot-rl actor`: Progress's metrics logging, with a line about the link to the learner
    instead of the learner's own figures. transport: anything with GrpcActorTransport's stats()."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, transport: Any) -> None:
        super().__init__(cfg, run_dir)
        self.transport = transport

    def show(self, force: bool = False) -> None:
        if not self.clock.due(force):
            return
        s, t = self.state, self.transport.stats()
        link = "up" if t["link_up"] else "LOST, spooling"
        print(
            f"[{self.clock.elapsed_s():6.0f}s] actor {self.cfg.actor_id}: env {s.get('env_steps', 0):,}/"
            f"{self.cfg.total_env_steps:,} | episodes {s.get('episode', 0)} | {self.outcome()}"
            f" | {eval_text(s)} | weights v{s.get('policy_version', -1)} | link {link}"
            f" | unacked {int(t['unacked_steps'])} backlog {s.get('backlog', 0)}"
            f" | connects {int(t['connects'])} losses {int(t['losses'])}",
            flush=True,
        )


def actor_outcome_text(actor: Mapping[str, Any]) -> str:
    """A remote actor's heartbeat figures: success_last20 is NaN when its env reports no success
    (Actor.run), and then its last episode's return is shown instead."""
    success = float(actor.get("success_last20", 0.0))
    if math.isnan(success):
        return f"return(last) {float(actor.get('last_return', 0.0)):.1f}"
    return f"success(last {WINDOW}) {success:.2f}"


def rerecorded_text(episodes: int) -> str:
    """The learner line's note on re-recorded episodes; nothing when there are none."""
    return f" | re-recorded (stored, not trained on): {episodes} episodes" if episodes else ""


def id_ranges(ids: Sequence[int]) -> str:
    """Actor ids in short form: [0, 1, 2, 3, 7] -> "0-3,7"."""
    runs: list[list[int]] = []
    for i in sorted(ids):
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ",".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def link_state(actor: Mapping[str, Any], lost_after_s: float) -> str:
    """done, ok, or LOST (no heartbeat for lost_after_s) for a remote actor."""
    return "done" if actor.get("done") else "ok" if actor["seen_s_ago"] < lost_after_s else "LOST"


def actor_group_line(host: str, actors: Sequence[Mapping[str, Any]], lost_after_s: float) -> str:
    """One line for the actors on one host (a fleet's workers): their ids, summed steps and
    backlog, mean recent success (or return), and which link is in which state."""
    states: dict[str, list[int]] = {}
    for a in actors:
        states.setdefault(link_state(a, lost_after_s), []).append(int(a["actor_id"]))
    successes = [float(a.get("success_last20", math.nan)) for a in actors]
    successes = [s for s in successes if not math.isnan(s)]
    outcome = (
        f"success(last {WINDOW}) mean {np.mean(successes):.2f}"
        if successes
        else f"return(last) mean {np.mean([float(a.get('last_return', 0.0)) for a in actors]):.1f}"
    )
    links = ", ".join(f"{state} {len(ids)} ({id_ranges(ids)})" for state, ids in sorted(states.items()))
    return (
        f"    {len(actors)} actors @ {host} ({id_ranges([int(a['actor_id']) for a in actors])}):"
        f" env {sum(int(a.get('env_steps', 0)) for a in actors):,}"
        f" | episodes {sum(int(a.get('episodes', 0)) for a in actors)} | {outcome}"
        f" | backlog {sum(int(a.get('backlog', 0)) for a in actors)} | links {links}"
        f" | connects {sum(int(a['connects']) for a in actors)}"
        f" | back-pressure {sum(int(a['backpressure']) for a in actors)}"
        f" | duplicates dropped {sum(int(a['duplicates']) for a in actors)}"
    )


class LearnerDisplay:
    """`robot-rl learner`: a learner line and one line per actor every few seconds (with more
    than GROUP_OVER actors, a fleet's, one line per host instead); the same figures to
    metrics.csv; refused connections at once. transport: anything with GrpcLearnerTransport's
    actors(), depth() and take_refusals()."""

    GROUP_OVER = 4

    def __init__(self, cfg: TrainConfig, run_dir: Path, transport: Any) -> None:
        self.cfg = cfg
        self.transport = transport
        self.logger = MetricsLogger(run_dir)
        self.state: dict[str, Any] = {}
        self.errors: list[str] = []
        self.clock = PrintClock(cfg.progress)

    def handle(self, msg: dict[str, Any]) -> None:
        if msg.get("kind") == "error":
            self.errors.append(str(msg["error"]))
            return
        self.state.update(msg)
        row = {k: v for k, v in msg.items() if isinstance(v, (int, float)) and not isinstance(v, bool)}
        row["env_steps"] = msg.get("env_steps_received", 0)
        row["learner/queue_depth"] = self.transport.depth()
        for actor in self.transport.actors():
            prefix = f"actor{actor['actor_id']}/"
            for key in ACTOR_COLUMNS:
                value = actor.get(key)
                if value is not None and not (isinstance(value, float) and math.isnan(value)):
                    row[prefix + key] = value
        self.logger.log(row)

    def show(self, force: bool = False) -> None:
        for line in self.transport.take_refusals():  # at once, progress display or not
            print(f"learner: {line}", flush=True)
        if not self.clock.due(force):
            return
        s = self.state
        actors = self.transport.actors()
        print(
            f"[{self.clock.elapsed_s():6.0f}s] learner: received {s.get('env_steps_received', 0):,}"
            f" | updates {s.get('updates', 0):,} @ {s.get('updates_per_s', 0.0):.0f}/s"
            f" | UTD {s.get('utd_achieved', 0.0):.2f} | queue {self.transport.depth()}"
            f" | weights v{s.get('weights_version', 0)} | actors {len(actors)}"
            f" | partial episodes dropped on actor restarts: {s.get('forgotten_steps', 0)} steps"
            + rerecorded_text(int(s.get("rerecorded_episodes", 0))),
            flush=True,
        )
        lost_after = self.cfg.transport.lost_after_s
        if len(actors) > self.GROUP_OVER:
            hosts: dict[str, list[dict[str, Any]]] = {}
            for a in actors:
                hosts.setdefault(str(a["host"]), []).append(a)
            for host, group in sorted(hosts.items()):
                print(actor_group_line(host, group, lost_after), flush=True)
            return
        for a in actors:
            link = link_state(a, lost_after)
            print(
                f"    actor {a['actor_id']} @ {a['host']}: env {a.get('env_steps', 0):,}"
                f" | episodes {a.get('episodes', 0)} | {actor_outcome_text(a)}"
                f" | backlog {a.get('backlog', 0)} | link {link} (seen {a['seen_s_ago']:.1f}s ago)"
                f" | connects {a['connects']} | back-pressure {a['backpressure']}"
                f" | duplicates dropped {a['duplicates']}",
                flush=True,
            )
