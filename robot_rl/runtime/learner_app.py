"""`robot-rl learner`: the learner alone, serving actors on other machines over gRPC.

It prepares demos like `robot-rl train`, restores its replay store and checkpoint when resumed,
opens the port, and trains while it shows each actor's link and progress. It stops when every
actor that connected has finished and all their steps are trained on, or on Ctrl-C (after a
checkpoint). Restarted with `resume=true`, it continues, and the actors reconnect by themselves.
"""

from __future__ import annotations

import queue
import threading
import time
from pathlib import Path
from typing import Any

from robot_rl.config import TrainConfig
from robot_rl.envs.factory import make_env
from robot_rl.eval.metrics import MetricsLogger
from robot_rl.runtime.demos import check_demos_fit, prepare_demos
from robot_rl.runtime.learner import Learner, LearnerShared
from robot_rl.runtime.net.codec import spaces_json
from robot_rl.runtime.net.security import TOKEN_FILE, learner_token
from robot_rl.runtime.net.server import GrpcLearnerTransport
from robot_rl.runtime.process import set_torch_threads
from robot_rl.runtime.train import PrintClock, RunFailed, prepare_run_dir


class _TrainedThrough:
    """The learner writes `.value`; actors read it from their heartbeats (sim pacing)."""

    def __init__(self, transport: GrpcLearnerTransport) -> None:
        self._transport = transport

    @property
    def value(self) -> int:
        return self._transport.trained_through

    @value.setter
    def value(self, steps: int) -> None:
        self._transport.trained_through = steps


class _ActorsTotal:
    """Steps all actors produced, known once each has said it is done; -1 before."""

    def __init__(self, transport: GrpcLearnerTransport) -> None:
        self._transport = transport

    @property
    def value(self) -> int:
        return self._transport.finished_total()


class LearnerDisplay:
    """A learner line and one line per actor every few seconds; the same figures to metrics.csv."""

    def __init__(self, cfg: TrainConfig, run_dir: Path, transport: GrpcLearnerTransport) -> None:
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
            for key in ("env_steps", "episodes", "success_last20", "backlog", "connects", "backpressure"):
                if key in actor:
                    row[prefix + key] = actor[key]
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
            f" | partial episodes dropped on actor restarts: {s.get('forgotten_steps', 0)} steps",
            flush=True,
        )
        lost_after = self.cfg.transport.lost_after_s
        for a in actors:
            link = "done" if a.get("done") else "ok" if a["seen_s_ago"] < lost_after else "LOST"
            print(
                f"    actor {a['actor_id']} @ {a['host']}: env {a.get('env_steps', 0):,}"
                f" | episodes {a.get('episodes', 0)} | success(last 20) {a.get('success_last20', 0.0):.2f}"
                f" | backlog {a.get('backlog', 0)} | link {link} (seen {a['seen_s_ago']:.1f}s ago)"
                f" | connects {a['connects']} | back-pressure {a['backpressure']}"
                f" | duplicates dropped {a['duplicates']}",
                flush=True,
            )


def _drain(status: queue.Queue, display: LearnerDisplay) -> None:
    while True:
        try:
            display.handle(status.get_nowait())
        except queue.Empty:
            return


def serve(cfg: TrainConfig) -> dict[str, Any]:
    """Run (or resume) the learner until its actors are done or Ctrl-C; returns its last status."""
    if cfg.transport.kind != "grpc":
        raise ValueError("robot-rl learner serves actors over gRPC: transport.kind must be grpc")
    set_torch_threads(cfg.torch_threads)
    run_dir = prepare_run_dir(cfg, holds_run=("replay.zarr",))
    print(f"run folder: {run_dir}", flush=True)
    env = make_env(cfg.env, seed=cfg.seed)
    obs_space, action_space = env.observation_space, env.action_space
    env.close()
    n_demos = prepare_demos(cfg, run_dir)
    check_demos_fit(run_dir / "demos.zarr", obs_space, action_space)
    token = learner_token(cfg.transport, run_dir)
    transport = GrpcLearnerTransport(cfg.transport, run_dir, spaces_json(obs_space, action_space), token)
    status: queue.Queue = queue.Queue(maxsize=10_000)
    shared = LearnerShared(threading.Event(), _TrainedThrough(transport), _ActorsTotal(transport), status)
    learner = Learner(cfg, run_dir, transport, shared, obs_space, action_space)  # opens the port
    token_hint = (
        "transport.token" if cfg.transport.token else f"transport.token_file=<copy of {run_dir / TOKEN_FILE}>"
    )
    print(
        f"demos: {n_demos} episodes | listening on {cfg.transport.listen.rpartition(':')[0]}:{transport.port}"
        f" ({'TLS' if cfg.transport.tls_cert else 'no TLS'})\n"
        f"start each actor with: robot-rl actor --learner <this host>:{transport.port} {token_hint}"
        " actor_id=<0,1,...> (and the same env/agent overrides)",
        flush=True,
    )
    errors: list[BaseException] = []

    def run() -> None:
        try:
            learner.run()
        except BaseException as err:  # reported by the main thread
            errors.append(err)

    worker = threading.Thread(target=run, name="learner", daemon=True)
    worker.start()
    display = LearnerDisplay(cfg, run_dir, transport)
    try:
        while worker.is_alive():
            _drain(status, display)
            display.show()
            worker.join(timeout=0.1)
    except KeyboardInterrupt:
        print("stopping: saving a checkpoint", flush=True)
        shared.stop.set()
        worker.join(timeout=120)
    finally:
        transport.learner_done = True
        _drain(status, display)
        display.show(force=True)
        time.sleep(min(2 * cfg.transport.heartbeat_s, 2.0))  # let actors hear that the learner is done
        transport.close()
        display.logger.close()
    if errors:
        raise RunFailed(
            f"the learner failed: {errors[0]!r}; resume with: robot-rl learner resume=true run_dir={run_dir}"
        ) from errors[0]
    print(f"learner done: {run_dir}/ holds checkpoints/, weights/, replay.zarr, metrics.csv", flush=True)
    return display.state
