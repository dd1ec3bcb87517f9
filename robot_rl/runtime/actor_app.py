"""`robot-rl actor --learner HOST:PORT`: the actor alone, on the robot PC (or a sim worker).

It fetches the learner's current weights before acting, then acts at the env's pace. Every step
goes to its own episode store first (actor_<id>/episodes.zarr, the spool), then over gRPC. When
the learner is lost it keeps acting on its latest weights (transport.when_lost=act) or holds still
(pause), reconnects with backoff, and uploads the spool when the learner is back. Ctrl-C stores
the episode in progress; `resume=true` continues from the store. A supervisor (`robot-rl fleet`)
runs the same run_actor() with its own stop event instead of the signal handlers.
"""

from __future__ import annotations

import json
import queue
import signal
import threading
from pathlib import Path
from typing import Any

from robot_rl.config import TrainConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.eval.rollout import run_episodes
from robot_rl.runtime.actor import Actor, ActorShared
from robot_rl.runtime.net.client import GrpcActorTransport
from robot_rl.runtime.net.codec import spaces_json
from robot_rl.runtime.net.security import actor_token
from robot_rl.runtime.process import set_torch_threads
from robot_rl.runtime.progress import ActorDisplay, budget_row, budget_text, drain, final_eval_line
from robot_rl.runtime.run_folder import open_run_folder


class _LearnerTrainedThrough:
    """ActorShared.trained_through for a remote learner: the figure from its last heartbeat."""

    def __init__(self, transport: GrpcActorTransport) -> None:
        self._transport = transport

    @property
    def value(self) -> int:
        return self._transport.trained_through


def run_actor(cfg: TrainConfig, stop: threading.Event | None = None) -> dict[str, Any]:
    """Act until total_env_steps (or Ctrl-C), every step delivered; returns the final evaluation.

    stop: a supervisor's event, set to stop like a first Ctrl-C does; given, no signal handler is
    installed (the supervisor owns the signals, and may call this off the main thread)."""
    if cfg.transport.kind != "grpc":
        raise ValueError("robot-rl actor talks to a learner over gRPC: transport.kind must be grpc")
    set_torch_threads(cfg.torch_threads)
    token = actor_token(cfg.transport, Path(cfg.run_dir))  # a missing token fails before the folder is made
    folder = open_run_folder(cfg, holds_run=(f"actor_{cfg.actor_id}",), demos=False)
    run_dir = folder.path
    spaces = spaces_json(folder.obs_space, folder.action_space)
    # Read only: the store is created once the learner has accepted this actor, so a refused
    # actor leaves nothing that blocks the corrected retry.
    store_path = run_dir / f"actor_{cfg.actor_id}" / "episodes.zarr"
    recorded = EpisodeStore(store_path, mode="r").n_steps if store_path.exists() else 0
    transport = GrpcActorTransport(cfg.transport, cfg.actor_id, spaces, token, recorded_steps=recorded)
    status: queue.Queue = queue.Queue(maxsize=10_000)
    shared = ActorShared(stop or threading.Event(), _LearnerTrainedThrough(transport), status)
    print(
        f"actor {cfg.actor_id}: run folder {run_dir}; waiting for weights from the learner at "
        f"{cfg.transport.learner} (up to {cfg.transport.connect_timeout_s:.0f} s)",
        flush=True,
    )
    display = ActorDisplay(cfg, run_dir, transport)
    done = threading.Event()

    def stop_cleanly(signum: int, frame: Any) -> None:
        """First Ctrl-C: finish the step and store the episode; a second one aborts."""
        if shared.stop.is_set():
            raise KeyboardInterrupt
        shared.stop.set()
        print("stopping after this step (Ctrl-C again to abort)", flush=True)

    if stop is None:
        signal.signal(signal.SIGINT, stop_cleanly)
        signal.signal(signal.SIGTERM, stop_cleanly)

    def show() -> None:
        while not done.wait(0.2):
            drain(status, display)
            display.show()

    shower = threading.Thread(target=show, name="display", daemon=True)
    shower.start()
    # the store is made once the learner accepted this actor: a refused one leaves nothing behind
    # that would block the corrected command
    timeout = cfg.transport.connect_timeout_s
    if not transport.wait_for_weights(timeout):
        raise TimeoutError(f"no weights from the learner at {cfg.transport.learner} within {timeout:.0f} s")
    # the sender starts at 0; the learner's Welcome rewinds it to the first step it lacks
    actor = Actor(cfg, run_dir, transport, shared, next_seq=0, actor_id=cfg.actor_id)
    try:
        actor.run()
        stopped = "stopped: the episode in progress is stored" if shared.stop.is_set() else ""
        stopped = f"{actor.estop}; the episodes so far are stored" if actor.estop else stopped
        if stopped:
            print(
                f"{stopped}; continue with: robot-rl actor "
                f"--learner {cfg.transport.learner} resume=true run_dir={run_dir}",
                flush=True,
            )
    finally:
        transport.close()
        done.set()
        shower.join(timeout=2.0)
    display.show(force=True)
    display.logger.log(budget_row(actor.env_steps, cfg.total_env_steps))
    print(f"actor {cfg.actor_id}: {budget_text(actor.env_steps, cfg.total_env_steps)}", flush=True)
    result: dict[str, Any] = {
        "env_steps": actor.env_steps,
        "env_steps_asked": cfg.total_env_steps,
        "policy_version": actor.policy_version,
    }
    if cfg.final_eval_episodes > 0 and not (shared.stop.is_set() or actor.estop):
        result |= run_episodes(actor.env, actor.agent, cfg.final_eval_episodes, seed=cfg.seed + 999_999)
        print(final_eval_line(result, actor.policy_version), flush=True)
    actor.env.close()
    display.logger.close()
    (run_dir / f"actor_{cfg.actor_id}" / "result.json").write_text(json.dumps(result, indent=2))
    return result
