"""`robot-rl fleet`: a learner and N sim actors as Ray actors, over the usual gRPC transport.

On this machine by default (fleet.address=local starts a private Ray sized to what the fleet
asks for), or on a Ray cluster (auto, ray://HOST:PORT). The learner is `robot-rl learner`'s
serve() in one Ray actor; each worker is `robot-rl actor`'s run_actor() in another, with actor id
0..N-1, its own run folder <run_dir>/workers/<id> (its spool: actor_<id>/episodes.zarr) and the
learner's token. Steps and weights go over gRPC exactly as from a robot PC; Ray only places the
processes (fleet.*_cpus, *_gpus) and restarts a worker whose process dies (fleet.max_restarts). A
restarted worker resumes its own spool: the learner forgets the partial episode it died in and
takes the rest by sequence number, so no step is lost or ingested twice.

Ray places a restarted worker where it likes: on a cluster, run_dir must be on storage every node
sees (NFS) for the worker to find its spool again.
"""

from __future__ import annotations

import json
import math
import os
import socket
import sys
import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from robot_rl.config import FleetConfig, TrainConfig
from robot_rl.runtime.actor_app import run_actor
from robot_rl.runtime.learner_app import serve
from robot_rl.runtime.net.security import TOKEN_ENV, is_loopback, learner_token
from robot_rl.runtime.progress import final_eval_line
from robot_rl.runtime.run_folder import RunFailed, open_run_folder
from robot_rl.runtime.train import final_eval
from robot_rl.runtime.transport import write_atomically

LEARNER_HOLDS = ("replay.zarr",)  # what marks a run in the learner's folder (as `robot-rl learner`)
OBJECT_STORE_BYTES = 100 * 2**20  # a local Ray's shared memory: nothing but small results pass through it
STOP_TIMEOUT_S = 120.0  # on Ctrl-C: for the workers to store their episodes, the learner to checkpoint


def check_fleet(cfg: TrainConfig) -> None:
    """What the fleet needs of the whole config; ValueError naming what is wrong and what to do."""
    fleet, transport = cfg.fleet, cfg.transport
    if transport.kind != "grpc":
        raise ValueError("robot-rl fleet talks to its learner over gRPC: transport.kind must be grpc")
    if fleet.workers > transport.max_actors:
        raise ValueError(
            f"fleet.workers={fleet.workers} is more than the learner serves (transport.max_actors="
            f"{transport.max_actors}): set transport.max_actors={fleet.workers} or fewer workers"
        )
    if cfg.env.kind == "robot":
        raise ValueError(
            "robot-rl fleet runs sim workers; a robot's actor runs on its own PC: "
            "robot-rl actor --learner HOST:PORT"
        )
    if fleet.address != "local" and is_loopback(transport.listen):
        raise ValueError(
            f"fleet.address={fleet.address} may place workers on other machines but the learner would "
            f"listen on {transport.listen}: set transport.listen=0.0.0.0:PORT (and TLS: "
            "transport.tls_cert, tls_key, tls_ca)"
        )


def worker_config(cfg: TrainConfig, actor_id: int, learner: str) -> TrainConfig:
    """A worker's config: its id and folder, the learner's address; the token comes by TOKEN_ENV
    (so a worker on another node needs no copy of a token file). Workers print no progress lines
    (the learner's display shows them) and do not evaluate (the fleet evaluates the learner's
    final weights once)."""
    transport = replace(cfg.transport, learner=learner, token=None, token_file=None)
    folder = Path(cfg.run_dir) / "workers" / str(actor_id)
    return replace(
        cfg,
        actor_id=actor_id,
        run_dir=str(folder),
        transport=transport,
        progress=False,
        final_eval_episodes=0,
    )


class FleetLearner:
    """The learner's Ray actor: serve() until the workers are done, then the final evaluation.
    Runs with Ray's max_concurrency > 1, so address(), pid() and stop() answer while run() runs."""

    def __init__(self, cfg: TrainConfig) -> None:
        self.cfg = cfg
        self._stop = threading.Event()
        self._listening = threading.Event()
        self._port = 0
        self._failure: str | None = None

    def run(self) -> dict[str, Any]:
        t0 = time.monotonic()
        try:
            state = serve(self.cfg, self._stop, self._on_listening, expect_actors=self.cfg.fleet.workers)
        except BaseException as err:
            self._failure = str(err) or repr(err)
            self._listening.set()
            raise
        result: dict[str, Any] = {
            "train_time_s": time.monotonic() - t0,
            "workers": self.cfg.fleet.workers,
            "env_steps": int(state.get("env_steps_received", 0)),
            "env_steps_asked": self.cfg.total_env_steps * self.cfg.fleet.workers,
            "updates": int(state.get("updates", 0)),
            "grad_steps": int(state.get("grad_steps", 0)),
        }
        if self._stop.is_set():
            return result
        run_dir = Path(self.cfg.run_dir)
        if self.cfg.final_eval_episodes > 0:
            result |= final_eval(self.cfg, run_dir, self.cfg.final_eval_episodes)
        (run_dir / "eval.json").write_text(json.dumps(result, indent=2))
        return result

    def _on_listening(self, port: int) -> None:
        self._port = port
        self._listening.set()

    def address(self, timeout_s: float) -> tuple[str, str]:
        """(HOST:PORT the workers connect to, the token) once the learner listens."""
        if not self._listening.wait(timeout_s):
            raise TimeoutError(f"the learner did not listen within {timeout_s:.0f} s (fleet.start_timeout_s)")
        if self._failure is not None:
            raise RunFailed(f"the learner did not start: {self._failure}")
        host = self.cfg.transport.listen.rpartition(":")[0]
        if host in ("0.0.0.0", "::", "[::]"):  # all interfaces: the workers use this node's address
            import ray

            host = ray.util.get_node_ip_address()
        return f"{host}:{self._port}", learner_token(self.cfg.transport, Path(self.cfg.run_dir))

    def pid(self) -> int:
        return os.getpid()

    def stop(self) -> None:
        self._stop.set()


def write_worker_file(run_dir: Path) -> None:
    """workers/<id>.json beside the worker's run folder (workers/<id>, which run_actor makes and
    discards on a failed start): the host and pid of the process running the worker now (Ray
    restarts a dead one under a new pid), so a person or a test can find it. Written whole by a
    rename, so a reader never sees half of it."""
    process = {"host": socket.gethostname(), "pid": os.getpid()}
    write_atomically(run_dir.parent / f"{run_dir.name}.json", json.dumps(process).encode())


class FleetWorker:
    """One sim worker's Ray actor: run_actor() as `robot-rl actor` runs it. Runs with Ray's
    max_concurrency > 1, so stop() answers while run() runs; workers/<id>.json names its process."""

    def __init__(self, cfg: TrainConfig, actor_id: int, learner: str, token: str) -> None:
        self.cfg = worker_config(cfg, actor_id, learner)
        self._token = token
        self._stop = threading.Event()

    def run(self) -> dict[str, Any]:
        run_dir = Path(self.cfg.run_dir)
        # a folder that holds this actor's store was this worker's before Ray restarted it
        resume = (run_dir / f"actor_{self.cfg.actor_id}").exists()
        write_worker_file(run_dir)
        os.environ[TOKEN_ENV] = self._token  # this process is this worker's alone
        return run_actor(replace(self.cfg, resume=resume), self._stop)

    def stop(self) -> None:
        self._stop.set()


def import_ray() -> Any:
    try:
        import ray
    except ImportError as err:
        raise RunFailed("robot-rl fleet needs Ray: pip install 'robot-rl[fleet]' (or ray)") from err
    return ray


def start_ray(ray: Any, fleet: FleetConfig) -> None:
    """Join the cluster fleet.address names, or start a private one sized to the fleet's asks."""
    if not sys.stdout.isatty():  # a log file gets Ray's "(FleetWorker pid=N)" prefixes without colour codes
        os.environ.setdefault("RAY_COLOR_PREFIX", "0")
    if fleet.address != "local":
        ray.init(address=fleet.address, logging_level="WARNING")
        return
    cpus = math.ceil(fleet.learner_cpus + fleet.workers * fleet.worker_cpus)
    ray.init(
        num_cpus=max(cpus, 1),  # the fleet asked for it: placed even where cores are fewer
        include_dashboard=False,
        object_store_memory=OBJECT_STORE_BYTES,
        logging_level="WARNING",
    )
    gpus, here = fleet.learner_gpus + fleet.workers * fleet.worker_gpus, ray.cluster_resources().get("GPU", 0)
    if gpus > here:  # Ray would wait for them forever
        ray.shutdown()
        raise RunFailed(
            f"the fleet asks for {gpus:g} GPUs (fleet.learner_gpus + fleet.workers x fleet.worker_gpus)"
            f" but this machine has {here:g}"
        )


def _one_line(err: BaseException) -> str:
    """A Ray error's cause in one line (a worker's own exception, or why its process is gone)."""
    cause = getattr(err, "cause", None) or err
    text = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {text[-1] if text else ''}"


class Fleet:
    """A learner and its workers on Ray (ray.init already called): start(), then wait()."""

    def __init__(self, cfg: TrainConfig, ray: Any) -> None:
        self.cfg = cfg
        self.ray = ray
        self.learner: Any = None
        self.workers: list[Any] = []
        self._runs: dict[Any, str] = {}  # pending run() of each Ray actor -> its name

    def start(self) -> str:
        """The learner first, then (once it listens) the workers; returns the learner's HOST:PORT."""
        fleet = self.cfg.fleet
        learner_cls = self.ray.remote(FleetLearner).options(
            num_cpus=fleet.learner_cpus, num_gpus=fleet.learner_gpus, max_concurrency=4
        )
        self.learner = learner_cls.remote(self.cfg)
        self._runs[self.learner.run.remote()] = "the learner"
        try:
            address, token = self.ray.get(self.learner.address.remote(fleet.start_timeout_s))
        except Exception as err:
            self.ray.kill(self.learner)
            raise RunFailed(_one_line(err)) from err
        worker_cls = self.ray.remote(FleetWorker).options(
            num_cpus=fleet.worker_cpus,
            num_gpus=fleet.worker_gpus,
            max_concurrency=4,
            max_restarts=fleet.max_restarts,
            max_task_retries=fleet.max_restarts,  # the run() a dead process was in starts again
        )
        for actor_id in range(fleet.workers):
            worker = worker_cls.remote(self.cfg, actor_id, address, token)
            self.workers.append(worker)
            self._runs[worker.run.remote()] = f"worker {actor_id}"
        return address

    def wait(self) -> dict[str, Any]:
        """Until the learner is done (its workers finished, their steps trained on); a worker that
        failed for good, or Ctrl-C, stops the rest cleanly and raises RunFailed with how to resume."""
        results: dict[str, Any] = {}
        try:
            while self._runs:
                ready, _ = self.ray.wait(list(self._runs), num_returns=1, timeout=1.0)
                for ref in ready:
                    name = self._runs.pop(ref)
                    try:
                        results[name] = self.ray.get(ref)
                    except Exception as err:
                        raise RunFailed(f"{name} failed: {_one_line(err)}") from err
        except (KeyboardInterrupt, RunFailed) as err:
            self.stop()
            how = f"resume with: robot-rl fleet resume=true run_dir={self.cfg.run_dir}"
            raise RunFailed(f"{str(err) or 'stopped'}; {how}") from err
        return results["the learner"]

    def stop(self) -> None:
        """Workers store their episodes in progress, then the learner checkpoints."""
        for worker in self.workers:
            worker.stop.remote()
        workers = [ref for ref, name in self._runs.items() if name != "the learner"]
        self.ray.wait(workers, num_returns=len(workers), timeout=STOP_TIMEOUT_S)
        if self.learner is not None:
            self.learner.stop.remote()
            self.ray.wait(list(self._runs), num_returns=len(self._runs), timeout=STOP_TIMEOUT_S)


def run_fleet(cfg: TrainConfig) -> dict[str, Any]:
    """Check, make the run folder, start Ray and the fleet, and supervise it to the end."""
    check_fleet(cfg)
    ray = import_ray()
    folder = open_run_folder(cfg, holds_run=LEARNER_HOLDS)
    fleet = cfg.fleet
    print(
        f"run folder: {folder.path}; Ray at {fleet.address}: a learner ({fleet.learner_cpus:g} CPU,"
        f" {fleet.learner_gpus:g} GPU) and {fleet.workers} sim workers ({fleet.worker_cpus:g} CPU,"
        f" {fleet.worker_gpus:g} GPU each), {cfg.total_env_steps:,} env steps each",
        flush=True,
    )
    with folder.discard_on_failure():
        start_ray(ray, fleet)
    try:
        supervisor = Fleet(cfg, ray)
        with folder.discard_on_failure():
            address = supervisor.start()
        print(f"fleet: the learner listens on {address}; workers in {folder.path / 'workers'}", flush=True)
        result = supervisor.wait()
    finally:
        ray.shutdown()
    if "episodes" in result:  # printed here: Ray's log forwarding may drop a worker's last lines
        print(final_eval_line(result), flush=True)
    print(
        f"fleet done in {result['train_time_s']:.0f}s: {result['env_steps']:,} env steps from"
        f" {fleet.workers} workers, {result['updates']:,} updates; {folder.path}/ holds checkpoints/,"
        " weights/, replay.zarr, metrics.csv, eval.json, and workers/<id>/ each worker's spool",
        flush=True,
    )
    return result
