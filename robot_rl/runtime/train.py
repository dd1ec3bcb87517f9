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
import time
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.agents.base import make_agent
from robot_rl.config import TrainConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.envs.factory import make_env
from robot_rl.eval.plots import plot_learning_curve
from robot_rl.eval.rollout import run_episodes
from robot_rl.runtime.actor import ActorShared, actor_main
from robot_rl.runtime.demos import check_demos_fit, prepare_demos
from robot_rl.runtime.learner import LearnerShared, learner_main
from robot_rl.runtime.process import resolve_device, set_torch_threads
from robot_rl.runtime.progress import Progress, budget_row, budget_text, drain, final_eval_line
from robot_rl.runtime.residual_base import with_base
from robot_rl.runtime.run_folder import RunFailed, open_run_folder
from robot_rl.runtime.transport import LocalTransport, load_weights

WEIGHTS_FILE = Path("weights") / "policy.pt"


def _learner_cursor(run_dir: Path, actor_id: int = 0) -> int:
    """Steps of this actor the learner holds in its replay store: where sending resumes."""
    path = run_dir / "replay.zarr"
    if not path.exists():
        return 0
    store = EpisodeStore(path, mode="a")  # "a" repairs a tail left by a crash mid-append
    if store.n_steps == 0:
        return 0
    return int(np.count_nonzero(store.steps(0, store.n_steps)["actor_id"] == actor_id))


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
            drain(status, progress)
            progress.show()
            if progress.estop:  # the person stopped the run; what was recorded is in the stores
                raise RunFailed(f"{progress.estop}; the episodes so far are stored")
            if not actor.is_alive() and actor_total.value < 0:
                if actor.exitcode != 0:
                    raise RunFailed(f"the actor process died (exit code {actor.exitcode})")
                actor_total.value = EpisodeStore(run_dir / "actor_0" / "episodes.zarr", mode="r").n_steps
            time.sleep(0.05)
        drain(status, progress)
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
        drain(status, progress)
        detail = "; ".join(progress.errors)
        how = f"resume with: robot-rl train resume=true run_dir={run_dir}"
        raise RunFailed(f"{err or 'stopped'}{': ' + detail if detail else ''}; {how}") from err
    actor.join(timeout=30)
    progress.show(force=True)
    return progress


def final_eval(cfg: TrainConfig, run_dir: Path, episodes: int) -> dict[str, Any]:
    env = with_base(cfg.agent, make_env(cfg.env, seed=cfg.seed + 999_999))
    agent = make_agent(cfg.agent, env.observation_space, env.action_space, seed=cfg.seed)
    version, state = load_weights(run_dir / WEIGHTS_FILE)
    agent.load_policy_state(state)
    summary = run_episodes(env, agent, episodes, seed=cfg.seed + 999_999)
    env.close()
    return {"weights_version": version, **summary}


def train(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) a training run; returns the final evaluation."""
    set_torch_threads(cfg.torch_threads)
    device = resolve_device(cfg.device)  # device=cuda on a box without one stops here, before the run folder
    folder = open_run_folder(cfg)
    run_dir, obs_space, action_space = folder.path, folder.obs_space, folder.action_space
    print(f"run folder: {run_dir}; learner on {device}", flush=True)
    with folder.discard_on_failure():
        n_demos = prepare_demos(cfg, run_dir)
        check_demos_fit(run_dir / "demos.zarr", obs_space, action_space)
    print(f"demos: {n_demos} episodes; training for {cfg.total_env_steps:,} env steps", flush=True)
    t0 = time.monotonic()
    progress = run_processes(cfg, run_dir, obs_space, action_space)
    train_s = time.monotonic() - t0
    env_steps = progress.state.get("env_steps", 0)
    result = {
        "train_time_s": train_s,
        "env_steps": env_steps,
        "env_steps_asked": cfg.total_env_steps,
        "learner_device": device,
        "updates": progress.state.get("updates", 0),
        "grad_steps": progress.state.get("grad_steps", 0),
        # the demo buffer at the end: demos plus the steps a person acted on (HIL-SERL)
        "demo_transitions": progress.state.get("demo_transitions", 0),
    }
    progress.logger.log(budget_row(env_steps, cfg.total_env_steps))
    if cfg.final_eval_episodes > 0:
        result |= final_eval(cfg, run_dir, cfg.final_eval_episodes)
        final = {"eval/final_success_rate": result["success_rate"]} if "success_rate" in result else {}
        progress.logger.log({"env_steps": env_steps, **final, "eval/final_return": result["return"]})
        print(final_eval_line(result), flush=True)
    progress.logger.close()
    (run_dir / "eval.json").write_text(json.dumps(result, indent=2))
    if "success_rate" in result or progress.recent_success:
        curves = ("eval/success_rate", "train/success_last20")
    else:  # an env with no success signal: its return
        curves = ("eval/return", "train/return_last20")
    plot_learning_curve(run_dir / "metrics.csv", run_dir / "learning_curve.png", ys=curves)
    print(
        f"done in {train_s:.0f}s, {budget_text(env_steps, cfg.total_env_steps)}: {run_dir}/ holds "
        "checkpoints/, weights/, metrics.csv, tb/, learning_curve.png, eval.json",
        flush=True,
    )
    return result
