"""The actor and evaluation tell the agent where episodes start (agent.reset()), so an action chunk
or an observation history never runs from one episode into the next."""

from __future__ import annotations

import queue
import threading

import numpy as np

from drivers.teleop.base import Buttons, TeleopReading
from robot_rl.agents.sac import SACConfig
from robot_rl.config import SimEnvConfig, TrainConfig
from robot_rl.eval.rollout import run_episodes
from robot_rl.hil.intervention import InterventionWrapper
from robot_rl.runtime.actor import Actor, ActorShared
from robot_rl.runtime.transport import LocalTransport


class CountingAgent:
    """Stand-in agent: records each act() call and reset() as a log of events."""

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim
        self.events: list[str] = []

    def reset(self) -> None:
        self.events.append("reset")

    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        self.events.append("act")
        return np.zeros(self.action_dim, np.float32)


def test_the_actor_and_evaluation_reset_the_agent_before_each_episode(tmp_path):
    cfg = TrainConfig(
        env=SimEnvConfig(task="pick_cube", max_episode_steps=3),
        agent=SACConfig(hidden_dims=[16]),
        max_actor_lead_steps=None,
    )
    shared = ActorShared(threading.Event(), None, queue.Queue())
    actor = Actor(cfg, tmp_path, LocalTransport(tmp_path / "weights.pt", 64), shared, next_seq=0)
    stand_in = CountingAgent(actor.env.action_space.shape[0])
    actor.agent = stand_in
    for _ in range(2):
        actor.run_episode()
    assert stand_in.events == ["reset", "act", "act", "act"] * 2
    stand_in.events.clear()
    run_episodes(actor.env, stand_in, episodes=2, seed=0)
    assert stand_in.events == ["reset", "act", "act", "act"] * 2
    actor.env.close()


class EStopAt:
    """A teleop device that stays idle until its e-stop is pressed at poll number `at`."""

    def __init__(self, at: int) -> None:
        self.at, self.polls = at, 0

    def start(self) -> None: ...

    def stop(self) -> None: ...

    def poll(self) -> TeleopReading:
        self.polls += 1
        return TeleopReading(np.zeros(6), None, Buttons(estop=self.polls == self.at), False, 0.0)


def test_an_estop_stores_the_episode_and_stops_the_run_with_its_message(tmp_path):
    cfg = TrainConfig(
        env=SimEnvConfig(task="pick_cube", max_episode_steps=10),
        agent=SACConfig(hidden_dims=[16]),
        max_actor_lead_steps=None,
        total_env_steps=1000,
    )
    status: queue.Queue = queue.Queue()
    shared = ActorShared(threading.Event(), type("Trained", (), {"value": 0})(), status)
    transport = LocalTransport(tmp_path / "weights.pt", 64)
    actor = Actor(cfg, tmp_path, transport, shared, next_seq=0)
    actor.train_env = InterventionWrapper(actor.env, EStopAt(13))  # in the second episode
    transport.publish_weights(0, actor.agent.policy_state())
    actor.run()  # returns: no third episode, no eval
    actor.train_env.close()
    assert actor.env_steps == 13 and actor.store.n_episodes == 2 and actor.store.n_steps == 13
    assert actor.store.episode(1)["truncated"][-1]  # the pressed step ended the stored episode
    messages = [status.get_nowait() for _ in range(status.qsize())]
    estops = [m for m in messages if m["kind"] == "estop"]
    assert [m["message"] for m in estops] == ["e-stop pressed on the teleop device: the arm was held"]
    assert not any(m["kind"] == "eval" for m in messages)


def test_each_actor_explores_with_noise_of_its_own(tmp_path):
    cfg = TrainConfig(
        env=SimEnvConfig(task="pick_cube"), agent=SACConfig(hidden_dims=[16]), max_actor_lead_steps=None
    )
    shared = ActorShared(threading.Event(), None, queue.Queue())
    actors = [
        Actor(cfg, tmp_path / str(i), LocalTransport(tmp_path / "weights.pt", 64), shared, 0, actor_id=i)
        for i in (0, 1)
    ]
    actors[1].agent.load_policy_state(actors[0].agent.policy_state())  # the same weights, as a fleet's
    obs, _ = actors[0].env.reset(seed=0)
    noisy = [a.agent.act(obs, deterministic=False) for a in actors]
    assert not np.allclose(noisy[0], noisy[1])  # the same policy and observation, other noise
    np.testing.assert_allclose(actors[0].agent.act(obs, True), actors[1].agent.act(obs, True))
    for actor in actors:
        actor.env.close()
