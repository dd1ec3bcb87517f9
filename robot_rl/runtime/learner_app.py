"""`robot-rl learner`: the learner alone, serving actors on other machines over gRPC.

It prepares demos like `robot-rl train`, restores its replay store and checkpoint when resumed,
opens the port, and trains while it shows each actor's link and progress. It stops when every
actor that connected has finished and all their steps are trained on, or on Ctrl-C (after a
checkpoint). Restarted with `resume=true`, it continues, and the actors reconnect by themselves.
A supervisor (`robot-rl fleet`) runs the same serve() with its own stop event, hears the port
once it is open, and tells it how many actors to wait for before it may finish.
"""

from __future__ import annotations

import queue
import threading
import time
from collections.abc import Callable
from typing import Any

from robot_rl.config import TrainConfig
from robot_rl.runtime.demos import check_demos_fit, prepare_demos
from robot_rl.runtime.learner import Learner, LearnerShared
from robot_rl.runtime.net.codec import spaces_json
from robot_rl.runtime.net.security import TOKEN_FILE, learner_token
from robot_rl.runtime.net.server import GrpcLearnerTransport
from robot_rl.runtime.process import set_torch_threads
from robot_rl.runtime.progress import LearnerDisplay, drain
from robot_rl.runtime.run_folder import RunFailed, open_run_folder


class _TrainedThrough:
    """The learner writes `.value`, the env steps (all actors) its updates have caught up with;
    actors read it from their heartbeats and wait while their own steps run more than
    max_actor_lead_steps ahead of it (sim pacing). With several actors it is sent in one actor's
    terms: the running actors' mean step count less what the learner owes in all, so an actor at
    the mean pace waits exactly while the learner owes more than max_actor_lead_steps updates, as
    the one actor of `robot-rl train` does (not while each actor alone is that far ahead)."""

    def __init__(self, transport: GrpcLearnerTransport) -> None:
        self._transport = transport

    @property
    def value(self) -> int:
        return self._transport.trained_through

    @value.setter
    def value(self, steps: int) -> None:
        actors = self._transport.actors()
        running = [a for a in actors if not a.get("done")]
        if len(actors) > 1 and running:
            owed = sum(int(a["next_seq"]) for a in actors) - steps
            steps = sum(int(a["next_seq"]) for a in running) // len(running) - owed
        self._transport.trained_through = steps


class _ActorsTotal:
    """Steps all actors produced, known once each has said it is done (and at least `expect`
    have connected: one that finishes early must not end a fleet whose others are starting); -1 before."""

    def __init__(self, transport: GrpcLearnerTransport, expect: int = 0) -> None:
        self._transport = transport
        self._expect = expect

    @property
    def value(self) -> int:
        if self._expect and len(self._transport.actors()) < self._expect:
            return -1
        return self._transport.finished_total()


def serve(
    cfg: TrainConfig,
    stop: threading.Event | None = None,
    on_listening: Callable[[int], None] | None = None,
    expect_actors: int = 0,
) -> dict[str, Any]:
    """Run (or resume) the learner until its actors are done or Ctrl-C; returns its last status.

    stop: set by a supervisor to stop like Ctrl-C does (after a checkpoint). on_listening(port):
    called once the port is open. expect_actors: do not finish before this many have connected.
    """
    if cfg.transport.kind != "grpc":
        raise ValueError("robot-rl learner serves actors over gRPC: transport.kind must be grpc")
    set_torch_threads(cfg.torch_threads)
    folder = open_run_folder(cfg, holds_run=("replay.zarr",))
    run_dir, obs_space, action_space = folder.path, folder.obs_space, folder.action_space
    print(f"run folder: {run_dir}", flush=True)
    with folder.discard_on_failure():
        n_demos = prepare_demos(cfg, run_dir)
        check_demos_fit(run_dir / "demos.zarr", obs_space, action_space)
    token = learner_token(cfg.transport, run_dir)
    transport = GrpcLearnerTransport(cfg.transport, run_dir, spaces_json(obs_space, action_space), token)
    status: queue.Queue = queue.Queue(maxsize=10_000)
    total = _ActorsTotal(transport, expect_actors)
    shared = LearnerShared(stop or threading.Event(), _TrainedThrough(transport), total, status)
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
    if on_listening is not None:
        on_listening(transport.port)
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
            drain(status, display)
            display.show()
            worker.join(timeout=0.1)
    except KeyboardInterrupt:
        print("stopping: saving a checkpoint", flush=True)
        shared.stop.set()
        worker.join(timeout=120)
    finally:
        transport.learner_done = True
        drain(status, display)
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
