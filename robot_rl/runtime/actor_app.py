"""`robot-rl actor --learner HOST:PORT`: the actor alone, on the robot PC (or a sim worker).

It fetches the learner's current weights before acting, then acts at the env's pace. Every step
goes to its own episode store first (actor_<id>/episodes.zarr, the spool), then over gRPC. When
the learner is lost it keeps acting on its latest weights (transport.when_lost=act) or holds still
(pause), reconnects with backoff, and uploads the spool when the learner is back. Ctrl-C stores
the episode in progress; `resume=true` continues from the store.
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
from robot_rl.envs.factory import make_env
from robot_rl.eval.rollout import run_episodes
from robot_rl.runtime.actor import Actor, ActorShared
from robot_rl.runtime.net.client import GrpcActorTransport
from robot_rl.runtime.net.codec import spaces_json
from robot_rl.runtime.net.security import actor_token
from robot_rl.runtime.process import set_torch_threads
from robot_rl.runtime.train import Progress, prepare_run_dir


class _LearnerTrainedThrough:
    """ActorShared.trained_through for a remote learner: the figure from its last heartbeat."""

    def __init__(self, transport: GrpcActorTransport) -> None:
        self._transport = transport

    @property
    def value(self) -> int:
        return self._transport.trained_through


class ActorDisplay(Progress):
    """Progress's metrics logging, with a line about the link instead of the learner's."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, transport: GrpcActorTransport) -> None:
        super().__init__(cfg, run_dir)
        self.transport = transport

    def show(self, force: bool = False) -> None:
        if not self.clock.due(force):
            return
        s, t = self.state, self.transport.stats()
        success = f"{sum(self.recent_success) / len(self.recent_success):.2f}" if self.recent_success else "-"
        evals = f"{s['eval/success_rate']:.2f}" if "eval/success_rate" in s else "-"
        link = "up" if t["link_up"] else "LOST, spooling"
        print(
            f"[{self.clock.elapsed_s():6.0f}s] actor {self.cfg.actor_id}: env {s.get('env_steps', 0):,}/"
            f"{self.cfg.total_env_steps:,} | episodes {s.get('episode', 0)} | success(last 20) {success}"
            f" | eval {evals} | weights v{s.get('policy_version', -1)} | link {link}"
            f" | unacked {int(t['unacked_steps'])} backlog {s.get('backlog', 0)}"
            f" | connects {int(t['connects'])} losses {int(t['losses'])}",
            flush=True,
        )


def run_actor(cfg: TrainConfig) -> dict[str, Any]:
    """Act until total_env_steps (or Ctrl-C), every step delivered; returns the final evaluation."""
    if cfg.transport.kind != "grpc":
        raise ValueError("robot-rl actor talks to a learner over gRPC: transport.kind must be grpc")
    set_torch_threads(cfg.torch_threads)
    run_dir = prepare_run_dir(cfg, holds_run=(f"actor_{cfg.actor_id}",))
    env = make_env(cfg.env, seed=cfg.seed)
    spaces = spaces_json(env.observation_space, env.action_space)
    env.close()
    store_path = run_dir / f"actor_{cfg.actor_id}" / "episodes.zarr"
    recorded = EpisodeStore(store_path, mode="r").n_steps if store_path.exists() else 0
    token = actor_token(cfg.transport, run_dir)
    transport = GrpcActorTransport(cfg.transport, cfg.actor_id, spaces, token, recorded_steps=recorded)
    status: queue.Queue = queue.Queue(maxsize=10_000)
    shared = ActorShared(threading.Event(), _LearnerTrainedThrough(transport), status)
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

    signal.signal(signal.SIGINT, stop_cleanly)
    signal.signal(signal.SIGTERM, stop_cleanly)

    def show() -> None:
        while not done.wait(0.2):
            while True:
                try:
                    display.handle(status.get_nowait())
                except queue.Empty:
                    break
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
        if shared.stop.is_set():
            print(
                f"stopped: the episode in progress is stored; continue with: robot-rl actor "
                f"--learner {cfg.transport.learner} resume=true run_dir={run_dir}",
                flush=True,
            )
    finally:
        transport.close()
        done.set()
        shower.join(timeout=2.0)
    display.show(force=True)
    result: dict[str, Any] = {"env_steps": actor.env_steps, "policy_version": actor.policy_version}
    if cfg.final_eval_episodes > 0 and not shared.stop.is_set():
        result |= run_episodes(actor.env, actor.agent, cfg.final_eval_episodes, seed=cfg.seed + 999_999)
        print(
            f"final eval (weights v{actor.policy_version}): success {result['success_rate']:.2f} "
            f"[{result['success_ci_low']:.2f}, {result['success_ci_high']:.2f}]"
            f" over {result['episodes']} episodes",
            flush=True,
        )
    actor.env.close()
    display.logger.close()
    (run_dir / f"actor_{cfg.actor_id}" / "result.json").write_text(json.dumps(result, indent=2))
    return result
