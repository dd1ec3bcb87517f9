"""`robot-rl train`: demos, then an actor and a learner process, supervised until done.

The run folder holds everything: config.yaml, demos.zarr, actor_0/episodes.zarr (every step the
actor took), replay.zarr (every step the learner ingested), weights/, checkpoints/, metrics.csv,
TensorBoard logs, eval.json and learning_curve.png. A run stopped by Ctrl-C or a crash resumes
with `robot-rl train resume=true run_dir=<run>`.
"""

from __future__ import annotations

import json
import multiprocessing as mp
import os
import queue
import time
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from robot_rl.agents.base import make_agent
from robot_rl.config import TrainConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.envs.factory import make_env
from robot_rl.eval.metrics import MetricsLogger
from robot_rl.eval.plots import plot_learning_curve
from robot_rl.eval.rollout import run_episodes
from robot_rl.runtime.actor import ActorShared, actor_main
from robot_rl.runtime.demos import check_demos_fit, prepare_demos
from robot_rl.runtime.learner import LearnerShared, learner_main
from robot_rl.runtime.process import set_torch_threads
from robot_rl.runtime.transport import LocalTransport, load_weights

WEIGHTS_FILE = Path("weights") / "policy.pt"


class RunFailed(RuntimeError):
    """A process of the run died; the message says how to resume."""


def prepare_run_dir(cfg: TrainConfig, holds_run: tuple[str, ...] = ("replay.zarr", "actor_0")) -> Path:
    """Create run_dir, or check it for resume; holds_run: the entries that mark a run there."""
    run_dir = Path(cfg.run_dir)
    has_run = any((run_dir / name).exists() for name in holds_run)
    if has_run and not cfg.resume:
        raise FileExistsError(
            f"{run_dir} already holds a run: pass resume=true to continue it, or a new run_dir"
        )
    if cfg.resume and not has_run:
        raise FileNotFoundError(f"resume=true but {run_dir} holds no run to resume")
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(OmegaConf.to_yaml(OmegaConf.structured(cfg)))
    return run_dir


def _learner_cursor(run_dir: Path, actor_id: int = 0) -> int:
    """Steps of this actor the learner holds in its replay store: where sending resumes."""
    path = run_dir / "replay.zarr"
    if not path.exists():
        return 0
    store = EpisodeStore(path, mode="a")  # "a" repairs a tail left by a crash mid-append
    if store.n_steps == 0:
        return 0
    return int(np.count_nonzero(store.steps(0, store.n_steps)["actor_id"] == actor_id))


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


class Progress:
    """Merges status messages into metrics rows and a one-line display every few seconds."""

    def __init__(self, cfg: TrainConfig, run_dir: Path) -> None:
        self.cfg = cfg
        self.logger = MetricsLogger(run_dir)
        self.clock = PrintClock(cfg.progress)
        self.state: dict[str, Any] = {}
        self.recent_success: list[float] = []
        self.errors: list[str] = []

    def handle(self, msg: dict[str, Any]) -> None:
        kind = msg.get("kind")
        if kind == "error":
            self.errors.append(f"{msg['source']}: {msg['error']}")
            return
        self.state.update({k: v for k, v in msg.items() if k not in ("source", "kind")})
        if msg["source"] == "actor" and kind == "episode":
            self.recent_success = ([*self.recent_success, msg["train/episode_success"]])[-20:]
            row = {k: v for k, v in msg.items() if isinstance(v, (int, float)) and k != "episode"}
            row["train/success_last20"] = float(np.mean(self.recent_success))
            row |= {k: v for k, v in self.state.items() if k.startswith("learner/")}
            row["learner/updates"] = self.state.get("updates", 0)
            row["learner/updates_per_s"] = self.state.get("updates_per_s", 0.0)
            row["learner/utd_achieved"] = self.state.get("utd_achieved", 0.0)
            row["time_s"] = self.clock.elapsed_s()
            self.logger.log(row)
        elif kind == "eval":
            self.logger.log({k: v for k, v in msg.items() if isinstance(v, (int, float))})

    def show(self, force: bool = False) -> None:
        if not self.clock.due(force):
            return
        s = self.state
        success = f"{np.mean(self.recent_success):.2f}" if self.recent_success else "-"
        evals = f"{s['eval/success_rate']:.2f}" if "eval/success_rate" in s else "-"
        print(
            f"[{self.clock.elapsed_s():6.0f}s] env {s.get('env_steps', 0):,}/{self.cfg.total_env_steps:,}"
            f" | episodes {s.get('episode', 0)} | success(last 20) {success} | eval {evals}"
            f" | updates {s.get('updates', 0):,} @ {s.get('updates_per_s', 0.0):.0f}/s"
            f" | UTD {s.get('utd_achieved', 0.0):.2f} | queue {s.get('queue_depth', 0)}"
            f" backlog {s.get('backlog', 0)} | weights v{s.get('weights_version', 0)}",
            flush=True,
        )


def _drain(status: Any, progress: Progress) -> None:
    while True:
        try:
            progress.handle(status.get_nowait())
        except queue.Empty:
            return


def run_processes(cfg: TrainConfig, run_dir: Path, obs_space: Any, action_space: Any) -> Progress:
    ctx = mp.get_context("spawn")
    transport = LocalTransport(run_dir / WEIGHTS_FILE, cfg.transport.queue_chunks, ctx)
    status = ctx.Queue(maxsize=10_000)
    trained_through, actor_total = ctx.Value("q", 0), ctx.Value("q", -1)
    me = os.getpid()
    actor_shared = ActorShared(ctx.Event(), trained_through, status, parent_pid=me)
    learner_shared = LearnerShared(ctx.Event(), trained_through, actor_total, status, parent_pid=me)
    next_seq = _learner_cursor(run_dir)
    learner = ctx.Process(
        target=learner_main,
        name="learner",
        daemon=True,
        args=(cfg, str(run_dir), transport, learner_shared, obs_space, action_space),
    )
    actor = ctx.Process(
        target=actor_main,
        name="actor",
        daemon=True,
        args=(cfg, str(run_dir), transport, actor_shared, next_seq),
    )
    learner.start()
    actor.start()
    (run_dir / "pids.json").write_text(json.dumps({"learner": learner.pid, "actor": actor.pid}))
    progress = Progress(cfg, run_dir)
    try:
        while learner.is_alive():
            _drain(status, progress)
            progress.show()
            if not actor.is_alive() and actor_total.value < 0:
                if actor.exitcode != 0:
                    raise RunFailed(f"the actor process died (exit code {actor.exitcode})")
                actor_total.value = EpisodeStore(run_dir / "actor_0" / "episodes.zarr", mode="r").n_steps
            time.sleep(0.05)
        _drain(status, progress)
        if learner.exitcode != 0:
            raise RunFailed(f"the learner process died (exit code {learner.exitcode})")
    except (KeyboardInterrupt, RunFailed) as err:
        actor_shared.stop.set()  # the actor stores its episode in progress, then exits
        actor.join(timeout=30)
        learner_shared.stop.set()  # the learner checkpoints, then exits
        learner.join(timeout=60)
        for proc in (actor, learner):
            if proc.is_alive():
                proc.kill()
        _drain(status, progress)
        detail = "; ".join(progress.errors)
        how = f"resume with: robot-rl train resume=true run_dir={run_dir}"
        raise RunFailed(f"{err or 'stopped'}{': ' + detail if detail else ''}; {how}") from err
    actor.join(timeout=30)
    progress.show(force=True)
    return progress


def final_eval(cfg: TrainConfig, run_dir: Path, episodes: int) -> dict[str, Any]:
    env = make_env(cfg.env, seed=cfg.seed + 999_999)
    agent = make_agent(cfg.agent, env.observation_space, env.action_space, seed=cfg.seed)
    version, state = load_weights(run_dir / WEIGHTS_FILE)
    agent.load_policy_state(state)
    summary = run_episodes(env, agent, episodes, seed=cfg.seed + 999_999)
    env.close()
    return {"weights_version": version, **summary}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a training run; returns the final evaluation."""
    set_torch_threads(cfg.torch_threads)
    run_dir = prepare_run_dir(cfg)
    print(f"run folder: {run_dir}", flush=True)
    env = make_env(cfg.env, seed=cfg.seed)
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    n_demos = prepare_demos(cfg, run_dir)
    check_demos_fit(run_dir / "demos.zarr", obs_space, action_space)
    print(f"demos: {n_demos} episodes; training for {cfg.total_env_steps:,} env steps", flush=True)
    t0 = time.monotonic()
    progress = run_processes(cfg, run_dir, obs_space, action_space)
    train_s = time.monotonic() - t0
    result = {
        "train_time_s": train_s,
        "env_steps": progress.state.get("env_steps", 0),
        "updates": progress.state.get("updates", 0),
        "grad_steps": progress.state.get("grad_steps", 0),
    }
    if cfg.final_eval_episodes > 0:
        result |= final_eval(cfg, run_dir, cfg.final_eval_episodes)
        progress.logger.log(
            {"env_steps": result["env_steps"], "eval/final_success_rate": result["success_rate"]}
        )
        print(
            f"final eval: success {result['success_rate']:.2f} "
            f"[{result['success_ci_low']:.2f}, {result['success_ci_high']:.2f}]"
            f" over {result['episodes']} episodes"
            f" | length {result['episode_length']:.1f} | return {result['return']:.2f}",
            flush=True,
        )
    progress.logger.close()
    (run_dir / "eval.json").write_text(json.dumps(result, indent=2))
    curves = ("eval/success_rate", "train/success_last20")
    plot_learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png", ys=curves)
    print(
        f"done in {train_s:.0f}s: {run_dir}/ holds checkpoints/, weights/, metrics.csv, tb/, "
        "learning_curve.png, eval.json",
        flush=True,
    )
    return result
