"""The flags a person leaves reach training on the local path and after a learner restart: the real
actor, with the simulated person, sends through the local transport into the learner's Ingest.
The replay store holds `intervened`, the executed and the proposed action as the actor stored them;
the demo buffer holds exactly the intervened steps, with the executed action; a re-recorded
episode is in both stores, flagged, and in neither buffer. (The gRPC path:
tests/robot_rl/runtime/net/test_grpc_transport.py::test_intervention_flags_and_rerecords_cross_the_wire.)
"""

from __future__ import annotations

import queue
import threading
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from robot_rl.agents.sac import SACConfig
from robot_rl.config import SimEnvConfig, TrainConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.data.replay import ReplayBuffer
from robot_rl.hil.sim_human import SimHumanConfig
from robot_rl.runtime.actor import Actor, ActorShared
from robot_rl.runtime.ingest import Ingest
from robot_rl.runtime.transport import LocalTransport

EPISODES, RERECORDED = 3, 1  # the second episode is re-recorded


class RerecordSecond(gym.Wrapper):
    """Presses re-record at the end of the second episode (as the wrapper reports the button)."""

    def __init__(self, env: gym.Env) -> None:
        super().__init__(env)
        self.episode = -1

    def reset(self, **kwargs):
        self.episode += 1
        return self.env.reset(**kwargs)

    def step(self, action):
        obs, reward, terminated, truncated, info = self.env.step(action)
        if (terminated or truncated) and self.episode == RERECORDED:
            info = {**info, "rerecord": True}
        return obs, reward, terminated, truncated, info


def _ingest(run_dir: Path, obs_space: gym.Space) -> Ingest:
    spec = ReplayBuffer.obs_spec_from_space(obs_space)
    online, demo = ReplayBuffer(1000, spec, 4), ReplayBuffer(1000, spec, 4)
    return Ingest(online, demo, EpisodeStore(run_dir / "replay.zarr", mode="a"))


def _trained_on(store: EpisodeStore) -> dict[str, np.ndarray]:
    """The steps of the store's episodes that are not re-recorded, concatenated."""
    kept = [store.episode(i) for i in range(store.n_episodes) if not store.rerecorded(i)]
    return {k: np.concatenate([ep[k] for ep in kept]) for k in kept[0]}


def _assert_buffers_hold(ingest: Ingest, replay: EpisodeStore) -> None:
    kept = _trained_on(replay)
    person = kept["intervened"]
    assert len(ingest.online) == len(person)
    assert len(ingest.demo) == int(person.sum())
    demo = ingest.demo
    np.testing.assert_array_equal(demo.action[demo.has_trans], kept["action"][person])


@pytest.fixture(scope="module")
def collected(tmp_path_factory) -> tuple[EpisodeStore, Ingest, Path, gym.Space, list[dict]]:
    """Three episodes of the real actor with the simulated person, ingested over the local queue:
    (the actor's store, the learner's ingest, the run folder, the observation space, the
    actor's per-episode statistics)."""
    run_dir = tmp_path_factory.mktemp("run")
    cfg = TrainConfig(
        env=SimEnvConfig(task="pick_cube", max_episode_steps=12),
        agent=SACConfig(),
        teleop=SimHumanConfig(action_threshold=0.5, hold_steps=3, stall_steps=0),
        random_steps=1_000_000,  # random actions: no policy needed, and far from the expert's
    )
    shared = ActorShared(threading.Event(), type("Trained", (), {"value": 0})(), queue.Queue())
    transport = LocalTransport(run_dir / "weights.pt", 256)
    actor = Actor(cfg, run_dir, transport, shared, next_seq=0)
    actor.train_env = RerecordSecond(actor.train_env)
    ingest = _ingest(run_dir, actor.env.observation_space)
    stats = [actor.run_episode() for _ in range(EPISODES)]
    actor.train_env.close()
    for _ in range(100):  # the queue's feeder thread hands chunks over a few at a time
        for item in transport.receive(max_chunks=256, timeout_s=0.1):
            ingest.add(item)
        if ingest.env_steps == actor.store.n_steps:
            break
    return actor.store, ingest, run_dir, actor.env.observation_space, stats


def test_flags_reach_the_replay_store_and_the_demo_buffer_locally(collected):
    mine, ingest, _, _, _ = collected
    replay = ingest.store
    flagged = [i == RERECORDED for i in range(EPISODES)]
    assert [mine.rerecorded(i) for i in range(EPISODES)] == flagged
    assert [replay.rerecorded(i) for i in range(EPISODES)] == flagged
    sent, got = mine.steps(0, mine.n_steps), replay.steps(0, replay.n_steps)
    for key in ("intervened", "action", "policy_action"):
        np.testing.assert_array_equal(got[key], sent[key], err_msg=key)
    person = got["intervened"]
    assert 0 < person.sum() < len(person)
    assert np.any(got["action"][person] != got["policy_action"][person], axis=1).all()
    _assert_buffers_hold(ingest, replay)
    assert ingest.rerecorded_episodes == 1


def test_flags_reach_the_buffers_again_after_a_learner_restart(collected):
    mine, _, run_dir, obs_space, _ = collected
    restarted = _ingest(run_dir, obs_space)  # a learner restart re-reads replay.zarr
    _assert_buffers_hold(restarted, restarted.store)
    assert (restarted.rerecorded_episodes, restarted.committed_seq(0)) == (1, mine.n_steps)


def test_the_actors_episode_figures_count_what_it_stored(collected):
    """Per episode: intervened steps, takeovers (runs of intervened steps), re-record, and
    success without help, as the progress line and metrics.csv get them."""
    mine, _, _, _, stats = collected
    for i, figures in enumerate(stats):
        person = mine.episode(i)["intervened"].astype(int)
        segments = int(np.count_nonzero(np.diff(np.concatenate([[0], person])) == 1))
        assert (figures["intervened"], figures["takeovers"]) == (person.sum(), segments)
        assert figures["rerecorded"] == float(i == RERECORDED)
        assert figures["unaided_success"] == float(figures["success"] and person.sum() == 0)
    assert any(figures["takeovers"] > 1 for figures in stats)  # hold_steps=3 in 12-step episodes
