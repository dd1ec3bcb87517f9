"""The learner process: ingest transitions, hold the UTD ratio, publish weights, checkpoint.

Transitions reach the buffers on the intake's thread (runtime/intake.py), so the training thread
only draws batches and trains. A restarted learner opens its port as soon as it knows from its
replay store's seq columns where each actor resumes, takes the actors' steps while the intake
re-reads the store into the buffers, and trains once it has.

UTD accounting: one agent.update() call per env step received after learning starts (the agent
runs its own UTD loop inside). The learner never runs ahead of the data; when it falls behind,
it reports the UTD it actually achieved.

Surviving a kill: agent, optimisers, counters and weight version are checkpointed every
`checkpoint_every_updates` updates and at least every `checkpoint_every_s` seconds; the state is
copied on the training thread (cheap) and written on a background one (write, fsync, rename).
A learner restarted from a checkpoint owes the updates for the steps received since, and makes
them up (the same UTD rule). One restarted without any checkpoint restores its replay but not
its networks; it makes up the updates owed for the restored steps too, as if learning had
started when it first could, and says so in one line.

Weights have an identity: versions continue past every version published in this run (the
checkpoint's, or the weights file's if newer), and each message names the run and this
learner's incarnation, so (run, version) names one network and actors adopt a restarted
learner's weights at once.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from robot_rl.agents.base import make_agent
from robot_rl.config import TrainConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.integrity import StoreDamaged
from robot_rl.data.mixer import DemoMixer
from robot_rl.data.replay import ReplayBuffer
from robot_rl.runtime.checkpoint import CheckpointWriter, load_checkpoint, snapshot
from robot_rl.runtime.ingest import Ingest
from robot_rl.runtime.intake import Intake
from robot_rl.runtime.process import (
    post_status,
    resolve_device,
    set_torch_threads,
    supervisor_gone,
)
from robot_rl.runtime.transport import LearnerTransport, WeightsId, published_version, run_id


@dataclass
class LearnerShared:
    stop: Any  # mp.Event: save and exit now
    trained_through: Any  # mp.Value('q'), written here: env steps the updates have caught up with
    actor_total: Any  # mp.Value('q'), -1 until the actors are done: the steps they produced in all
    status: Any  # mp.Queue for progress messages
    parent_pid: int = 0  # the supervisor; if it dies the learner checkpoints and exits

    def stopping(self) -> bool:
        return self.stop.is_set() or bool(self.parent_pid and supervisor_gone(self.parent_pid))


class Learner:
    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        transport: LearnerTransport,
        shared: LearnerShared,
        obs_space: gym.spaces.Dict,
        action_space: gym.spaces.Box,
    ) -> None:
        self.cfg = cfg
        self.run_dir = run_dir
        self.transport = transport
        self.shared = shared
        device = resolve_device(cfg.device)
        self.agent = make_agent(cfg.agent, obs_space, action_space, device=device, seed=cfg.seed)
        spec = ReplayBuffer.obs_spec_from_space(obs_space)
        act_dim = int(action_space.shape[0])
        rc = cfg.replay
        demos = EpisodeStore(run_dir / "demos.zarr", mode="r") if (run_dir / "demos.zarr").exists() else None
        # A run of N steps fills at most 2N frames (N steps + one final frame per episode), so a
        # short pixel run does not reserve memory for replay.capacity frames it will never use.
        actors = cfg.transport.max_actors if cfg.transport.kind == "grpc" else 1
        online_frames = min(rc.capacity, 2 * cfg.total_env_steps * actors + 2)
        demo_frames = min(rc.capacity, online_frames + (2 * demos.n_steps if demos else 0))
        self.online = ReplayBuffer(online_frames, spec, act_dim, rc.gamma, rc.n_step, seed=cfg.seed)
        self.demo = ReplayBuffer(demo_frames, spec, act_dim, rc.gamma, rc.n_step, seed=cfg.seed + 1)
        for steps, final_obs in demos.episodes() if demos else ():
            self.demo.add_episode(steps, final_obs)
        # the intake thread adds episodes to the buffers under this lock; batches are drawn under it
        buffers_lock = threading.Lock()
        replay = EpisodeStore(run_dir / "replay.zarr", mode="a")
        self.ingest = Ingest(self.online, self.demo, replay, refill=False, lock=buffers_lock)
        # an empty buffer gives its share to the other, so demos=none needs no special case
        ratio = 1.0 if self.agent.offline else rc.demo_ratio
        self.mixer = DemoMixer(self.online, self.demo, ratio, lock=buffers_lock)
        window = getattr(self.agent, "window", None)  # (obs_horizon, chunk) of a chunked policy
        ticks = getattr(self.agent, "critic_chunk", None)  # most ticks of one decision (DSRL)
        self.batches: Iterator[Any] = self.mixer.iterate(cfg.agent.batch_size)
        if window is not None:
            self.batches = self.mixer.iterate_windows(cfg.agent.batch_size, *window)
        elif ticks is not None:
            self.batches = self.mixer.iterate_chunks(cfg.agent.batch_size, ticks)
        self.calls = 0  # agent.update() calls
        self.grad_steps = 0
        self.start_point: int | None = None  # env steps when learning started
        self.weights_version = 0
        self.weights_id = WeightsId(run_id(run_dir), secrets.token_hex(4))
        self.ckpt_path = run_dir / "checkpoints" / "learner.pt"
        self.resumed = self._restore() if self.ckpt_path.exists() else self._restore_without_checkpoint()
        self.writer = CheckpointWriter(self.ckpt_path)
        self._last_ckpt = (time.monotonic(), self.calls)
        self.intake = Intake(self.ingest, transport, refill=self.ingest.refill)
        # actors send from what the replay store holds: nothing lost, nothing twice. The port
        # opens before the buffers are refilled from the store; training waits for the refill.
        self.transport.start({a: self.ingest.committed_seq(a) for a in self.ingest.streams})

    def _restore(self) -> str:
        state = load_checkpoint(self.ckpt_path)
        self.agent.load_state_dict(state["agent"])
        self.calls, self.grad_steps = int(state["calls"]), int(state["grad_steps"])
        self.start_point = None if int(state["start_point"]) < 0 else int(state["start_point"])
        self.weights_version = max(int(state["weights_version"]), self._published_version())
        return (
            f"learner resumed: checkpoint at {state.get('env_steps', '?')} env steps (updates {self.calls:,},"
            f" networks and optimisers restored), replay {self.ingest.env_steps:,} env steps; the"
            f" {max(self._owed(), 0):,} updates owed for steps since are made up; weights continue at"
            f" v{self.weights_version + 1}"
        )

    def _restore_without_checkpoint(self) -> str:
        self.weights_version = self._published_version()
        restored = self.ingest.env_steps
        if restored == 0:
            return ""
        # learning would have started once learning_starts transitions were held (demos count)
        self.start_point = min(restored, max(0, self.cfg.learning_starts - len(self.demo)))
        return (
            f"learner resumed WITHOUT a checkpoint ({self.ckpt_path} missing): restored the replay"
            f" ({restored:,} env steps), NOT the networks or optimisers (they start fresh); the"
            f" {self._owed():,} updates owed for the restored steps are made up before new ones;"
            f" weights continue at v{self.weights_version + 1}"
        )

    def _published_version(self) -> int:
        """The newest version this run published (the weights file may be newer than the checkpoint)."""
        return published_version(self.run_dir / "weights" / "policy.pt")

    def _state(self) -> dict[str, Any]:
        return {
            "agent": snapshot(self.agent.state_dict()),
            "calls": self.calls,
            "grad_steps": self.grad_steps,
            "start_point": -1 if self.start_point is None else self.start_point,
            "weights_version": self.weights_version,
            "env_steps": self.ingest.env_steps,
        }

    def checkpoint(self, wait: bool = False) -> None:
        """Hand a copy of the state to the background writer; wait=True until it is on disk."""
        self.writer.submit(self._state())
        self._last_ckpt = (time.monotonic(), self.calls)
        if wait:
            self.writer.flush()

    def _checkpoint_if_due(self) -> None:
        at, calls = self._last_ckpt
        if self.calls != calls and time.monotonic() - at >= self.cfg.checkpoint_every_s:
            self.checkpoint()

    def publish(self) -> None:
        self.weights_version += 1
        self.transport.publish_weights(self.weights_version, self.agent.policy_state(), self.weights_id)

    def _ready(self) -> bool:
        if self.agent.offline:
            return len(self.demo) > 0
        return len(self.online) + len(self.demo) >= self.cfg.learning_starts and len(self.online) > 0

    def _owed(self) -> int:
        """update() calls owed to hold the UTD against the env steps received."""
        if self.start_point is None:
            return 0
        return self.ingest.env_steps - self.start_point - self.calls

    def _train_for(self, budget_s: float) -> dict[str, float]:
        metrics: dict[str, float] = {}
        deadline = time.monotonic() + budget_s
        while self._owed() > 0 and time.monotonic() < deadline:
            metrics = self.agent.update(self.batches)
            self.calls += 1
            self.grad_steps += self.agent.updates_per_call
            if self.calls % self.cfg.weights_every_updates == 0:
                self.publish()
            if self.calls % self.cfg.checkpoint_every_updates == 0:
                self.checkpoint()
        self._checkpoint_if_due()
        return metrics

    def _finished(self) -> bool:
        total = self.shared.actor_total.value
        return total >= 0 and self.ingest.env_steps >= total and self._owed() <= 0

    def run(self) -> None:
        if self.resumed:
            print(self.resumed, flush=True)
        self.intake.start()
        self.publish()  # actors (also reconnecting ones) start from the learner's current weights
        try:
            metrics = self._loop()
        finally:
            self.intake.stop()
        self.publish()
        self.checkpoint(wait=True)
        self.writer.close()
        self.transport.flush()  # the final weights are on disk before the run is called done
        self._status(metrics, 0.0, kind="done")

    def _loop(self) -> dict[str, float]:
        """Train while the intake feeds the buffers, until done or stopped; the last metrics."""
        last_status, metrics, t0, calls0 = 0.0, {}, time.monotonic(), self.calls
        while not self.shared.stopping():
            self.intake.raise_if_failed()
            loaded = self.intake.loaded.is_set()
            if not loaded or self._owed() <= 0:
                self.intake.wait_for_steps(0.02)
            if loaded and self.start_point is None and self._ready():
                self.start_point = self.ingest.env_steps
            if loaded:
                metrics = self._train_for(0.05) or metrics
            held = self.ingest.env_steps if self.start_point is None else self.start_point + self.calls
            self.shared.trained_through.value = held
            now = time.monotonic()
            if now - last_status > 1.0:
                rate = (self.calls - calls0) / max(now - t0, 1e-9)
                self._status(metrics, rate)
                last_status = now
            if self._finished():
                break
        return metrics

    def _status(self, metrics: dict[str, float], updates_per_s: float, kind: str = "progress") -> None:
        env_steps = self.ingest.env_steps
        online = 0 if self.start_point is None else env_steps - self.start_point  # 0 is a valid start
        post_status(
            self.shared.status,
            {
                "source": "learner",
                "kind": kind,
                "env_steps_received": env_steps,
                "updates": self.calls,
                "grad_steps": self.grad_steps,
                "updates_per_s": updates_per_s,
                "utd_achieved": self.grad_steps / max(online, 1),
                "weights_version": self.weights_version,
                "checkpoints_written": self.writer.written,
                "refused_connections": int(getattr(self.transport, "refused_connections", 0)),
                "duplicates_dropped": self.ingest.duplicates_dropped,
                "forgotten_steps": self.ingest.forgotten,  # partial episodes of actors that restarted
                "rerecorded_episodes": self.ingest.rerecorded_episodes,  # stored, not trained on
                "rerecorded_steps": self.ingest.rerecorded_steps,
                "demo_transitions": len(self.demo),
                **{f"learner/{k}": float(v) for k, v in metrics.items()},
            },
        )


def learner_main(
    cfg: TrainConfig,
    run_dir: str,
    transport: LearnerTransport,
    shared: LearnerShared,
    obs_space: gym.spaces.Dict,
    action_space: gym.spaces.Box,
) -> None:
    """Entry point of the learner process."""
    set_torch_threads(cfg.torch_threads)
    torch.manual_seed(cfg.seed)
    try:
        Learner(cfg, Path(run_dir), transport, shared, obs_space, action_space).run()
    except StoreDamaged as err:  # one line says it all: no traceback
        post_status(shared.status, {"source": "learner", "kind": "error", "error": str(err)})
        raise SystemExit(2) from err
    except Exception as err:
        post_status(shared.status, {"source": "learner", "kind": "error", "error": repr(err)})
        raise
