"""The actor process: observe, act, step, record, send. It never blocks on sending.

Weights are picked up whenever a newer version appears. The actor may pause while it is more
than `max_actor_lead_steps` ahead of what the learner has trained on (a pacing knob for
machine-independent learning curves). A stepped sim pauses anywhere, as its world is frozen
between steps; a robot, the twin or a realtime sim keeps moving, so there the actor pauses only
between episodes, before the reset.
"""

from __future__ import annotations

import json
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robot_rl.agents.base import Agent, make_agent
from robot_rl.config import SimEnvConfig, TrainConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.envs.factory import make_env
from robot_rl.envs.gym_adapter import reports_success
from robot_rl.eval.rollout import run_episodes
from robot_rl.hil.episode_help import EpisodeHelp
from robot_rl.hil.intervention import with_teleop
from robot_rl.reward.wrapper import with_reward
from robot_rl.runtime.demos import scripted_policy_factory
from robot_rl.runtime.process import post_status, set_torch_threads, supervisor_gone
from robot_rl.runtime.residual_base import with_base
from robot_rl.runtime.sender import TransitionSender
from robot_rl.runtime.transport import ActorTransport
from robot_rl.transition import obs_to_flat


@dataclass
class ActorShared:
    """State the actor shares with the other processes (all non-blocking)."""

    stop: Any  # mp.Event: finish the step, store the episode, exit
    trained_through: Any  # mp.Value('q'): env steps the learner's updates have caught up with
    status: Any  # mp.Queue for progress messages (put_nowait, dropped when full)
    parent_pid: int = 0  # the supervisor; if it dies the actor stops like on `stop`

    def stopping(self) -> bool:
        if self.stop.is_set():
            return True
        if self.parent_pid and supervisor_gone(self.parent_pid):
            self.stop.set()
            return True
        return False


class Actor:
    def __init__(
        self,
        cfg: TrainConfig,
        run_dir: Path,
        transport: ActorTransport,
        shared: ActorShared,
        next_seq: int,
        actor_id: int = 0,
    ) -> None:
        self.cfg = cfg
        self.shared = shared
        self.transport = transport
        self.store = EpisodeStore(run_dir / f"actor_{actor_id}" / "episodes.zarr", mode="a")
        self.sender = TransitionSender(
            transport, self.store, actor_id, next_seq, cfg.transport.chunk_steps, cfg.transport.live_steps
        )
        env_seed = cfg.seed + 1000 * (actor_id + 1) + self.store.n_episodes
        self.env = with_base(cfg.agent, make_env(cfg.env, seed=env_seed))
        # Collection goes through the teleop device when there is one, and takes its reward from
        # reward= (a learned classifier, or the env's own); evaluation does neither, so eval
        # success is the env's own success without help.
        collect_env = with_reward(with_expert_starts(self.env, cfg, env_seed), cfg.reward)
        self.train_env = collect_env if cfg.teleop is None else with_teleop(collect_env, cfg.teleop, env_seed)
        # each actor explores with noise of its own: the same seed would give every actor of a
        # fleet the same noise sequence (actor 0, the one of `robot-rl train`, keeps cfg.seed)
        own = cfg.seed + 1_000_000 * actor_id
        self.agent: Agent = make_agent(cfg.agent, self.env.observation_space, self.env.action_space, seed=own)
        self.rng = np.random.default_rng(own + 17 + self.store.n_episodes)
        self.policy_version = -1
        self.env_steps = self.store.n_steps  # a resumed actor continues its count
        self.next_eval = (self.env_steps // cfg.eval_every_steps + 1) * cfg.eval_every_steps
        self.run_dir = run_dir
        hz = cfg.env.control_hz if isinstance(cfg.env, SimEnvConfig) else None
        if cfg.realtime and hz is None:
            raise ValueError("realtime=true needs an env with a control rate (env=sim)")
        self.period_s = 1.0 / hz if cfg.realtime and hz else None
        # Pausing mid-episode on a clock-paced env would leave the arm and scene moving (then held
        # by the watchdog) while the actor sits on an old observation: transitions that never
        # happened. Such an actor waits for the learner between episodes instead.
        self.pause_mid_episode = not (cfg.realtime or cfg.env.kind == "robot")
        self.periods_ms: deque[float] = deque(maxlen=100_000)  # start-to-start of control ticks
        self.inference_ms: deque[float] = deque(maxlen=100_000)
        self._tick: float | None = None
        self.report: dict[str, Any] = {"env_steps": self.env_steps, "episodes": self.store.n_episodes}
        self.estop = ""  # what the teleop device's e-stop did to the arm, once pressed: the actor stops

    def _refresh_weights(self) -> None:
        update = self.transport.poll_weights()
        if update is not None:
            self.policy_version, state = update
            self.agent.load_policy_state(state)

    def _wait_for_learner(self) -> None:
        lead = self.cfg.max_actor_lead_steps
        if lead is None:
            return
        while self.env_steps - self.shared.trained_through.value > lead and not self.shared.stopping():
            self.sender.flush()  # use the pause to catch up on sending
            time.sleep(0.002)

    def _pace(self) -> None:
        """Start each control tick on the clock (realtime), and record the tick-to-tick period."""
        now = time.perf_counter()
        if self.period_s is not None and self._tick is not None:
            target = self._tick + self.period_s
            if target > now:
                time.sleep(target - now)
            now = time.perf_counter()
        if self._tick is not None:
            self.periods_ms.append((now - self._tick) * 1e3)
        self._tick = now

    def _policy_action(self, obs: dict[str, Any]) -> np.ndarray:
        if self.env_steps < self.cfg.random_steps:
            return self.rng.uniform(-1.0, 1.0, self.env.action_space.shape).astype(np.float32)
        t0 = time.perf_counter()
        action = self.agent.act(obs, deterministic=False)
        self.inference_ms.append((time.perf_counter() - t0) * 1e3)
        return action

    def timing(self) -> dict[str, float]:
        """Control period and inference latency percentiles, in milliseconds."""
        out: dict[str, float] = {}
        for name, values in (("period_ms", self.periods_ms), ("inference_ms", self.inference_ms)):
            if values:
                p50, p99 = np.percentile(np.fromiter(values, float), [50, 99])
                out |= {f"{name}_p50": float(p50), f"{name}_p99": float(p99)}
        return out

    def _wait_for_link(self) -> None:
        """when_lost=pause: hold still until the learner is back (act: carry on, spooling)."""
        if self.cfg.transport.when_lost != "pause":
            return
        while not self.transport.connected() and not self.shared.stopping():
            self.transport.raise_if_failed()
            time.sleep(0.05)

    def run_episode(self) -> dict[str, Any]:
        if not self.pause_mid_episode:
            self._wait_for_learner()
        obs, info = self.train_env.reset()
        self.agent.reset()  # a chunk or an observation history never crosses into this episode
        ret, length, success, helped = 0.0, 0, False, EpisodeHelp()
        self._tick = None  # a reset is not a control period
        while True:
            self.transport.raise_if_failed()  # a learner that refused us stops the run with its reason
            if self.pause_mid_episode:
                self._wait_for_learner()
            self._wait_for_link()
            self._pace()
            self._refresh_weights()
            t_obs = float(info.get("t_obs", time.time()))
            action = self._policy_action(obs)
            next_obs, reward, terminated, truncated, info = self.train_env.step(action)
            stopping = self.shared.stopping()
            truncated = truncated or (stopping and not terminated)  # a stop ends the episode cleanly
            executed = np.asarray(info.get("executed_action", action), np.float32)
            row = obs_to_flat(obs) | {
                "action": executed,
                "policy_action": np.asarray(action, np.float32),
                "reward": np.float32(reward),
                "terminated": np.bool_(terminated),
                "truncated": np.bool_(truncated),
                "intervened": np.bool_(info.get("intervened", False)),
                "policy_version": np.int64(self.policy_version),
                "t_obs": np.float64(t_obs),
            }
            done = terminated or truncated
            # a re-recorded episode is kept, flagged, and the learner trains on none of it
            self.sender.add_step(row, obs_to_flat(next_obs) if done else None, bool(info.get("rerecord")))
            self.env_steps += 1
            ret += reward
            length += 1
            success = success or bool(info.get("success", False))
            helped.add(bool(row["intervened"]))
            obs = next_obs
            if done:
                if info.get("estop"):  # the episode is stored as it ended; no further one starts
                    self.estop = str(info.get("estop_message") or "e-stop pressed on the teleop device")
                stats = {"return": ret, "length": length, "success": success, "intervened": helped.steps}
                if self.cfg.teleop is not None:  # takeovers and success without help
                    stats |= helped.stats(success, bool(info.get("rerecord")))
                if not reports_success(self.env):  # Hopper and the like: shown by their return
                    del stats["success"]
                    stats.pop("unaided_success", None)
                return stats

    def _start_weights(self) -> None:
        """A (re)started actor acts on the learner's current weights, never on fresh random ones."""
        timeout = self.cfg.transport.connect_timeout_s
        if not self.transport.wait_for_weights(timeout):
            raise TimeoutError(
                f"no weights from the learner within {timeout:.0f} s (transport.connect_timeout_s)"
            )
        self._refresh_weights()

    def run(self) -> None:
        self._start_weights()
        episodes = self.store.n_episodes
        successes: deque[float] = deque(maxlen=20)
        while self.env_steps < self.cfg.total_env_steps and not self.shared.stopping():
            stats = self.run_episode()
            episodes += 1
            if "success" in stats:
                successes.append(float(stats["success"]))
            self.report = {
                "env_steps": self.env_steps,
                "episodes": episodes,
                # NaN: the env reports no success; the learner then shows last_return
                "success_last20": float(np.mean(successes)) if successes else float("nan"),
                "last_return": stats["return"],
                "policy_version": self.policy_version,
                "backlog": self.sender.backlog + self.transport.pending(),
            }
            self.transport.report(self.report)
            post_status(
                self.shared.status,
                {
                    "source": "actor",
                    "kind": "episode",
                    "env_steps": self.env_steps,
                    "episode": episodes,
                    "policy_version": self.policy_version,
                    "backlog": self.sender.backlog,
                    "queue_depth": self.transport.depth(),
                    "queue_full_events": self.sender.full_events,
                    **{f"train/episode_{k}": float(v) for k, v in stats.items()},
                    **{f"actor/{k}": v for k, v in self.timing().items()},
                    **{f"transport/{k}": v for k, v in self.transport.stats().items()},
                },
            )
            if self.estop:  # no eval either: on a robot the arm node now refuses every command
                post_status(self.shared.status, {"source": "actor", "kind": "estop", "message": self.estop})
                break
            if self.env_steps >= self.next_eval and self.cfg.eval_episodes > 0:
                self.next_eval += self.cfg.eval_every_steps
                self._evaluate()
        self._drain()
        (self.run_dir / "actor_timing.json").write_text(
            json.dumps(
                {"realtime": self.period_s is not None, "ticks": len(self.periods_ms), **self.timing()},
                indent=2,
            )
        )

    def _evaluate(self) -> None:
        if self.policy_version < 0:
            return
        summary = run_episodes(self.env, self.agent, self.cfg.eval_episodes, seed=self.env_steps)
        post_status(
            self.shared.status,
            {
                "source": "actor",
                "kind": "eval",
                "env_steps": self.env_steps,
                "policy_version": self.policy_version,
                **{f"eval/{k}": v for k, v in summary.items()},
            },
        )

    def _drain(self) -> None:
        """Hand the backlog over before exiting; on a stop it stays in the store for a resume."""
        while (self.sender.backlog > 0 or self.transport.pending() > 0) and not self.shared.stopping():
            self.transport.raise_if_failed()
            self.sender.flush(whole=True)
            time.sleep(0.01)
        finished = self.env_steps >= self.cfg.total_env_steps  # a stop is not an end: a resume follows
        if finished and self.sender.backlog == 0 and self.transport.pending() == 0:
            self.transport.report({**self.report, "env_steps": self.env_steps, "done": True, "backlog": 0})
        post_status(
            self.shared.status,
            {"source": "actor", "kind": "done", "env_steps": self.env_steps, "backlog": self.sender.backlog},
        )


def with_expert_starts(env: Any, cfg: TrainConfig, seed: int) -> Any:
    """env, or env whose collected episodes start part-way (env.expert_starts > 0; sim only)."""
    if not isinstance(cfg.env, SimEnvConfig) or cfg.env.expert_starts == 0.0:
        return env
    from sim.expert_starts import ExpertStarts

    policy = scripted_policy_factory(cfg)(env)
    return ExpertStarts(env, policy, cfg.env.expert_starts, cfg.env.expert_start_max_steps, seed + 7)


def actor_main(
    cfg: TrainConfig,
    run_dir: str,
    transport: ActorTransport,
    shared: ActorShared,
    next_seq: int,
    actor_id: int = 0,
) -> None:
    """Entry point of the actor process."""
    set_torch_threads(cfg.torch_threads)
    actor = None
    try:
        actor = Actor(cfg, Path(run_dir), transport, shared, next_seq, actor_id)
        actor.run()
    except Exception as err:  # report, then fail the process so the supervisor stops the run
        post_status(shared.status, {"source": "actor", "kind": "error", "error": repr(err)})
        raise
    finally:
        if actor is not None:
            # a robot env's transport threads would otherwise keep the process alive; a teleop
            # device gives back what it took (the keyboard restores the terminal)
            actor.train_env.close()
