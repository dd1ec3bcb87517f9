"""The learner process: ingest transitions, hold the UTD ratio, publish weights, checkpoint.

UTD accounting: one agent.update() call per env step received after learning starts (the agent
runs its own UTD loop inside). The learner never runs ahead of the data; when it falls behind,
it reports the UTD it actually achieved.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import torch

from robot_rl.agents.base import make_agent
from robot_rl.config import TrainConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.mixer import DemoMixer
from robot_rl.data.replay import ReplayBuffer
from robot_rl.runtime.checkpoint import load_checkpoint, save_checkpoint
from robot_rl.runtime.ingest import Ingest
from robot_rl.runtime.process import (
    post_status,
    resolve_device,
    set_torch_threads,
    supervisor_gone,
)
from robot_rl.runtime.transport import LearnerTransport


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
        self.ingest = Ingest(self.online, self.demo, EpisodeStore(run_dir / "replay.zarr", mode="a"))
        # an empty buffer gives its share to the other, so demos=none needs no special case
        self.mixer = DemoMixer(self.online, self.demo, 1.0 if self.agent.offline else rc.demo_ratio)
        self.batches = self.mixer.iterate(cfg.agent.batch_size)
        self.calls = 0  # agent.update() calls
        self.grad_steps = 0
        self.start_point: int | None = None  # env steps when learning started
        self.weights_version = 0
        self.ckpt_path = run_dir / "checkpoints" / "learner.pt"
        if self.ckpt_path.exists():
            self._restore()
        # actors send from what the replay store holds: nothing lost, nothing twice
        self.transport.start({a: self.ingest.committed_seq(a) for a in self.ingest.streams})

    def _restore(self) -> None:
        state = load_checkpoint(self.ckpt_path)
        self.agent.load_state_dict(state["agent"])
        self.calls, self.grad_steps = int(state["calls"]), int(state["grad_steps"])
        self.start_point = None if int(state["start_point"]) < 0 else int(state["start_point"])
        self.weights_version = int(state["weights_version"])

    def checkpoint(self) -> None:
        save_checkpoint(
            self.ckpt_path,
            {
                "agent": self.agent.state_dict(),
                "calls": self.calls,
                "grad_steps": self.grad_steps,
                "start_point": -1 if self.start_point is None else self.start_point,
                "weights_version": self.weights_version,
                "env_steps": self.ingest.env_steps,
            },
        )

    def publish(self) -> None:
        self.weights_version += 1
        self.transport.publish_weights(self.weights_version, self.agent.policy_state())

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
        return metrics

    def _finished(self) -> bool:
        total = self.shared.actor_total.value
        return total >= 0 and self.ingest.env_steps >= total and self._owed() <= 0

    def run(self) -> None:
        self.publish()  # actors (also reconnecting ones) start from the learner's current weights
        last_status, metrics, t0, calls0 = 0.0, {}, time.monotonic(), self.calls
        while not self.shared.stopping():
            owed = self._owed()
            for chunk in self.transport.receive(max_chunks=256, timeout_s=0.0 if owed > 0 else 0.02):
                self.ingest.add(chunk)
            if self.start_point is None and self._ready():
                self.start_point = self.ingest.env_steps
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
        self.publish()
        self.checkpoint()
        self._status(metrics, 0.0, kind="done")

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
                "duplicates_dropped": self.ingest.duplicates_dropped,
                "forgotten_steps": self.ingest.forgotten,  # partial episodes of actors that restarted
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
    except Exception as err:
        post_status(shared.status, {"source": "learner", "kind": "error", "error": repr(err)})
        raise
