"""reward=classifier in a run: the actor collects with the classifier's reward and episode end,
scripted demos are recorded with them too, and evaluation measures the env's own success."""

from __future__ import annotations

import queue
import threading

import numpy as np
import pytest
import torch

from robot_rl.agents.sac import SACConfig
from robot_rl.config import DemoConfig, SimEnvConfig, TrainConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.eval.rollout import run_episodes
from robot_rl.reward.classifier import Classifier, ClassifierSpec, SuccessClassifier, save_classifier
from robot_rl.reward.wrapper import RewardConfig
from robot_rl.runtime.actor import Actor, ActorShared
from robot_rl.runtime.demos import prepare_demos
from robot_rl.runtime.transport import LocalTransport

pytestmark = pytest.mark.usefixtures("needs_gl")


class StillAgent:
    """Stand-in agent: never moves, so the task never succeeds by itself."""

    def __init__(self, action_dim: int) -> None:
        self.action_dim = action_dim

    def reset(self) -> None: ...

    def act(self, obs, deterministic: bool = False) -> np.ndarray:
        return np.zeros(self.action_dim, np.float32)


def _cfg(tmp_path, demos: DemoConfig) -> TrainConfig:
    """pick_cube from two 16x16 cameras; a classifier whose every frame passes its threshold, so
    its verdict (success after 2 frames) is told apart from the task's own."""
    torch.manual_seed(0)
    spec = ClassifierSpec(("front", "wrist"), (16, 16), feature_dim=4, channels=2, hidden_dim=4)
    path = save_classifier(tmp_path / "c.pt", Classifier(SuccessClassifier(spec), threshold=1e-6))
    return TrainConfig(
        env=SimEnvConfig(
            task="pick_cube", cameras=("wrist", "front"), image_size=(16, 16), max_episode_steps=6
        ),
        agent=SACConfig(hidden_dims=[16]),
        demos=demos,
        reward=RewardConfig("classifier", str(path), debounce_frames=2),
        max_actor_lead_steps=None,
    )


def test_the_actor_collects_with_the_classifier_and_evaluates_with_the_task(tmp_path):
    cfg = _cfg(tmp_path, DemoConfig(source="none", num_episodes=0))
    shared = ActorShared(threading.Event(), None, queue.Queue())
    actor = Actor(cfg, tmp_path, LocalTransport(tmp_path / "weights.pt", 64), shared, next_seq=0)
    actor.agent = StillAgent(actor.env.action_space.shape[0])
    try:
        stats = actor.run_episode()
        assert (stats["length"], stats["return"], stats["success"]) == (2, 1.0, True)
        evaluated = run_episodes(actor.env, actor.agent, episodes=1, seed=0)
        assert evaluated["success_rate"] == 0.0
    finally:
        actor.train_env.close()


def test_scripted_demos_carry_the_classifiers_reward(tmp_path):
    cfg = _cfg(tmp_path, DemoConfig(source="scripted", num_episodes=2))
    assert prepare_demos(cfg, tmp_path, log=lambda _: None) == 2
    store = EpisodeStore(tmp_path / "demos.zarr", mode="r")
    assert store.episode_ends.tolist() == [2, 4]
    steps = store.steps(0, 4)
    assert steps["reward"].tolist() == [0, 1, 0, 1] and steps["terminated"].tolist() == [False, True] * 2
