"""reward=classifier: the classifier's debounced verdict is the env's reward and episode end; the
env's own success no longer ends an episode, its other ends still do; a classifier that does not
fit the env's cameras stops the start."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from robot_rl.reward.classifier import (
    Classifier,
    ClassifierError,
    ClassifierSpec,
    SuccessClassifier,
    save_classifier,
)
from robot_rl.reward.wrapper import ClassifierReward, RewardConfig, with_reward

WHITE, BLACK = 255, 0


class ScriptedEnv(gym.Env):
    """A front camera showing `brightness[t]` after step t, the env's own success `success[t]`
    (which ends its episode, as the sim tasks' does), and a failure end at `fall_at`."""

    def __init__(self, brightness, success=None, fall_at=None, max_episode_steps=10, size=(16, 16)):
        self.brightness, self.fall_at = brightness, fall_at
        self.success = success or [False] * len(brightness)
        self.max_episode_steps, self.size = max_episode_steps, size
        image = gym.spaces.Box(0, 255, (*size, 3), np.uint8)
        self.observation_space = gym.spaces.Dict(
            {"state": gym.spaces.Box(-1, 1, (1,), np.float32), "images": gym.spaces.Dict({"front": image})}
        )
        self.action_space = gym.spaces.Box(-1, 1, (4,), np.float32)

    def _obs(self, value: int):
        return {
            "state": np.zeros(1, np.float32),
            "images": {"front": np.full((*self.size, 3), value, np.uint8)},
        }

    def reset(self, *, seed=None, options=None):
        self.t = 0
        return self._obs(BLACK), {"success": False}

    def step(self, action):
        value, success = self.brightness[self.t], self.success[self.t]
        self.t += 1
        fell = self.t == self.fall_at
        truncated = self.t >= self.max_episode_steps and not success
        return self._obs(value), float(success), success or fell, truncated, {"success": success}


def run(env: gym.Env) -> list[tuple[float, bool, bool, dict]]:
    env.reset()
    steps = []
    while True:
        _, reward, terminated, truncated, info = env.step(np.zeros(4, np.float32))
        steps.append((reward, terminated, truncated, info))
        if terminated or truncated:
            return steps


def test_debounced_frames_are_the_success_reward_and_end(bright_classifier):
    env = ClassifierReward(
        ScriptedEnv([BLACK, WHITE, BLACK, WHITE, WHITE, WHITE, BLACK]), bright_classifier(), None, 3
    )
    steps = run(env)
    assert [r for r, *_ in steps] == [0, 0, 0, 0, 0, 1]
    assert steps[-1][1:3] == (True, False) and steps[-1][3]["success"]
    assert not any(info["success"] for *_, info in steps[:-1])
    assert steps[1][3]["classifier_score"] > 0.99 > 0.01 > steps[0][3]["classifier_score"]


def test_the_envs_own_success_is_stepped_over_and_the_limit_still_ends_it(bright_classifier):
    scripted = ScriptedEnv([BLACK] * 10, success=[False, True, *[True] * 8], max_episode_steps=10)
    steps = run(ClassifierReward(scripted, bright_classifier(), None, 2))
    assert len(steps) == 10 and steps[-1][1:3] == (False, True)  # truncated at the env's limit
    assert sum(r for r, *_ in steps) == 0 and steps[1][3]["env_success"] and not steps[1][3]["success"]


def test_an_end_the_env_decides_otherwise_stays_an_end(bright_classifier):
    steps = run(ClassifierReward(ScriptedEnv([BLACK] * 10, fall_at=4), bright_classifier(), None, 2))
    assert len(steps) == 4 and steps[-1][:3] == (0.0, True, False)


def test_a_threshold_set_in_the_config_replaces_the_classifiers(bright_classifier):
    grey = 140  # P(success) ~0.82: over a threshold of 0.5, under one of 0.9
    assert (
        len(run(ClassifierReward(ScriptedEnv([grey] * 10), bright_classifier(threshold=0.5), None, 1))) == 1
    )
    assert (
        len(run(ClassifierReward(ScriptedEnv([grey] * 10), bright_classifier(threshold=0.5), 0.9, 1))) == 10
    )


def test_a_new_episode_starts_its_debounce_afresh(bright_classifier):
    env = ClassifierReward(ScriptedEnv([WHITE] * 10), bright_classifier(), None, 2)
    env.reset()
    env.step(np.zeros(4, np.float32))  # one positive frame, then a new episode
    assert len(run(env)) == 2


@pytest.mark.parametrize(
    ("cameras", "size", "says"),
    [
        (("wrist",), (16, 16), r"missing \['wrist'\]"),
        (("front",), (32, 32), "32x32 images, but camera 'front'"),
    ],
)
def test_a_classifier_that_does_not_fit_the_env_stops_the_start(bright_classifier, cameras, size, says):
    with pytest.raises(ClassifierError, match=says):
        ClassifierReward(ScriptedEnv([BLACK]), bright_classifier(cameras, size), None, 1)


def test_ground_truth_leaves_the_env_alone_and_a_missing_file_is_named(tmp_path):
    env = ScriptedEnv([BLACK])
    assert with_reward(env, RewardConfig()) is env
    with pytest.raises(ClassifierError, match="not found"):
        with_reward(env, RewardConfig("classifier", str(tmp_path / "none.pt")))
    with pytest.raises(ValueError, match=r"reward\.path"):
        RewardConfig("classifier")


@pytest.mark.usefixtures("needs_gl")
def test_a_classifier_file_ends_a_sim_episode_on_its_verdict_not_the_tasks(tmp_path):
    """pick_cube with two 16x16 cameras, its expert, and a classifier file: at a threshold every
    frame passes, it ends after the debounce; at one none passes, it runs to the task's limit
    although the task succeeds on the way."""
    from sim.experts import expert_for
    from sim.tasks import make_sim_env

    torch.manual_seed(0)
    spec = ClassifierSpec(("front", "wrist"), (16, 16), feature_dim=8, channels=4, hidden_dim=8)
    path = save_classifier(tmp_path / "c.pt", Classifier(SuccessClassifier(spec), 0.5))
    for threshold, length in ((1e-6, 3), (1 - 1e-6, 50)):
        cfg = RewardConfig("classifier", str(path), threshold=threshold, debounce_frames=3)
        env = with_reward(make_sim_env("pick_cube", cameras=("wrist", "front"), image_size=(16, 16)), cfg)
        expert = expert_for("pick_cube")(env)
        obs, _ = env.reset(seed=0)
        steps, env_success = 0, False
        while True:
            obs, reward, terminated, truncated, info = env.step(expert(obs))
            steps, env_success = steps + 1, env_success or info["env_success"]
            if terminated or truncated:
                break
        env.close()
        assert steps == length and info["success"] == (length == 3) and reward == float(length == 3)
        assert env_success == (length == 50)  # the expert lifts the cube within 20 steps


def test_the_threshold_calibrated_in_training_is_saved_and_used_by_reward_classifier(tmp_path):
    from robot_rl.reward.dataset import Frames
    from robot_rl.reward.train import TrainSettings, train_classifier

    # front-camera frames of one grey level each: success is a bright scene, failure a dark one
    rng = np.random.default_rng(0)
    labels = rng.random(160) < 0.3
    levels = np.where(labels, rng.integers(180, 256, 160), rng.integers(0, 80, 160)).astype(np.uint8)
    images = np.broadcast_to(levels[:, None, None, None], (160, 16, 16, 3)).copy()
    frames = Frames({"front": images}, labels, np.repeat(np.arange(16), 10))
    settings = TrainSettings(steps=60, batch_size=16, lr=3e-3, fpr_target=0.01, log_every=60)
    spec = {"feature_dim": 4, "channels": 4, "hidden_dim": 8}
    trained = train_classifier(frames, settings, spec, log=lambda _: None)
    assert trained.metrics["validation"]["false_positive_rate"] <= 0.01
    path = save_classifier(tmp_path / "c.pt", trained)

    env = with_reward(ScriptedEnv([BLACK, WHITE, WHITE, WHITE]), RewardConfig("classifier", str(path)))
    assert env.debouncer.threshold == trained.threshold  # the saved one, not a default
    steps = run(env)
    scores = [info["classifier_score"] for *_, info in steps]
    assert scores[0] < trained.threshold <= min(scores[1:])  # dark below it, bright at or over it
    assert [info["success"] for *_, info in steps] == [False, False, False, True]
