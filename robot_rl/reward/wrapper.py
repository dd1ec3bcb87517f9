"""`reward=classifier`: a success classifier as an env's reward and episode end.

ClassifierReward scores every observation's camera frames with the classifier; a success is
`debounce_frames` consecutive frames at or above the threshold (classifier.Debouncer). Then the
step's reward is 1 and the episode ends, terminated; every other step's reward is 0. What the env
itself says about success is replaced:
    - the env's success ending (terminated with info["success"]) does not end the episode: the
      project's sim tasks and RobotEnv run on past success, so the classifier decides when it ends;
    - any other end the env decides (truncated, or terminated without success, e.g. a fall) still
      ends the episode, terminated as the env says;
    - the episode is truncated at the env's own limit (env.unwrapped.max_episode_steps), which the
      sim tasks and RobotEnv skip while their own success holds.
info["success"] is the classifier's verdict (the run's success), info["env_success"] the env's own
(the ground truth in sim), info["classifier_score"] the frame's P(success).

The wrapper checks at construction that the env has the classifier's cameras at its image size,
so a mismatched classifier stops start-up with a message naming what differs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium import spaces

from robot_rl.reward.classifier import Classifier, check_fits, load_classifier

KINDS = ("ground_truth", "classifier")


@dataclass
class RewardConfig:
    """Where the reward and episode end of the collecting env come from (hydra group `reward=`).

    reward=ground_truth: the env's own (the default). reward=classifier reward.path=FILE: the
    classifier `robot-rl reward train` wrote. Evaluation always measures the env's own success.
    """

    kind: str = "ground_truth"  # ground_truth | classifier
    path: str | None = None  # the classifier file (reward=classifier)
    threshold: float | None = None  # P(success) of a positive frame; None: the one saved with it
    debounce_frames: int = 3  # consecutive positive frames that make a success
    device: str = "cpu"  # where the classifier runs (the actor's device)

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise ValueError(f"reward.kind must be one of {KINDS}, got {self.kind!r}")
        if self.kind == "classifier" and not self.path:
            raise ValueError("reward=classifier needs reward.path=<the file robot-rl reward train wrote>")
        if self.threshold is not None and not 0.0 < self.threshold < 1.0:
            raise ValueError(f"reward.threshold must be in (0, 1), got {self.threshold}")
        if self.debounce_frames < 1:
            raise ValueError(f"reward.debounce_frames must be >= 1, got {self.debounce_frames}")


def image_shapes(observation_space: gym.Space) -> dict[str, tuple[int, ...]]:
    """camera -> frame shape of an observation space in the project's format ({} without cameras)."""
    images = observation_space.spaces.get("images") if isinstance(observation_space, spaces.Dict) else None
    return {cam: tuple(space.shape) for cam, space in images.spaces.items()} if images is not None else {}


class ClassifierReward(gym.Wrapper):
    """The env with the classifier's reward and episode end (module docstring)."""

    def __init__(
        self, env: gym.Env, classifier: Classifier, threshold: float | None = None, debounce_frames: int = 3
    ) -> None:
        super().__init__(env)
        check_fits(classifier.spec, image_shapes(env.observation_space), "the env", classifier.path)
        self.classifier = classifier
        self.debouncer = classifier.debouncer(debounce_frames, threshold)
        self.reports_success = True  # robot_rl.envs.gym_adapter.reports_success
        self._limit: int | None = getattr(env.unwrapped, "max_episode_steps", None)
        self._steps = 0

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self.debouncer.reset()
        self._steps = 0
        return self.env.reset(seed=seed, options=options)

    def step(self, action: np.ndarray):
        obs, _, env_terminated, env_truncated, info = self.env.step(action)
        self._steps += 1
        score = self.classifier.model.score(obs["images"])
        success = self.debouncer.update(score)
        env_success = bool(info.get("success", False))
        terminated = success or (env_terminated and not env_success)
        at_limit = self._limit is not None and self._steps >= self._limit
        truncated = not terminated and (env_truncated or at_limit)
        info = {**info, "success": success, "env_success": env_success, "classifier_score": score}
        return obs, float(success), terminated, truncated, info


def load_reward_classifier(cfg: RewardConfig, observation_space: gym.Space) -> Classifier | None:
    """The classifier cfg names, checked against the env's cameras (None for ground truth)."""
    if cfg.kind == "ground_truth":
        return None
    assert cfg.path is not None  # RewardConfig checked it
    classifier = load_classifier(cfg.path, cfg.device)
    check_fits(classifier.spec, image_shapes(observation_space), "the env", classifier.path)
    return classifier


def with_reward(env: gym.Env, cfg: RewardConfig) -> gym.Env:
    """env with the reward cfg names: itself for ground truth, else wrapped in ClassifierReward."""
    classifier = load_reward_classifier(cfg, env.observation_space)
    if classifier is None:
        return env
    return ClassifierReward(env, classifier, cfg.threshold, cfg.debounce_frames)
