"""A user's own env package and expert, written into the test's folder as a user would have them."""

from __future__ import annotations

import sys
import textwrap
import uuid
from dataclasses import dataclass
from pathlib import Path

import pytest

_PACKAGE = '''
"""A third-party package that registers its gymnasium id when imported."""
import gymnasium as gym

gym.register(id="{name}/Reach-v0", entry_point="{name}.reach:ReachEnv", max_episode_steps=20)
'''

_ENV = '''
"""A point on a line moves to a goal: deterministic, its start drawn from the reset seed."""
import gymnasium as gym
import numpy as np


class ReachEnv(gym.Env):
    def __init__(self):
        self.observation_space = gym.spaces.Box(-2.0, 2.0, (2,), np.float32)
        self.action_space = gym.spaces.Box(-0.2, 0.2, (1,), np.float32)

    def _obs(self):
        return np.array([self.pos, self.goal], np.float32)

    def reset(self, *, seed=None, options=None):
        super().reset(seed=seed)
        self.pos, self.goal = (float(x) for x in self.np_random.uniform(-1.0, 1.0, 2))
        return self._obs(), {{}}

    def step(self, action):
        self.pos = float(np.clip(self.pos + float(action[0]), -2.0, 2.0))
        dist = abs(self.pos - self.goal)
        success = dist < 0.05
        return self._obs(), -dist, success, False, {{"success": success}}
'''

_EXPERT = '''
"""The user's oracle: built with the env, it reads the goal from the env's internals."""
import numpy as np


class Expert:
    def __init__(self, env):
        self.task = env.unwrapped

    def __call__(self, obs):
        step = (self.task.goal - self.task.pos) / 0.2  # actions in [-1, 1] move up to 0.2
        return np.clip([step], -1.0, 1.0).astype(np.float32)
'''


@dataclass
class UserProject:
    folder: Path  # holds <package>/ and <expert>.py, as the folder a user runs robot-rl from
    package: str  # registers <package>/Reach-v0 when imported
    expert: str  # module:Class of the scripted expert

    @property
    def env_id(self) -> str:
        return f"{self.package}/Reach-v0"


@pytest.fixture
def user_project(tmp_path, monkeypatch) -> UserProject:
    """A package and an expert module with names of their own (gymnasium's registry and
    sys.modules outlive a test), in a folder the test process does not import from until it
    chdirs there; sys.path is restored afterwards."""
    name = f"byo_{uuid.uuid4().hex[:8]}"
    folder = tmp_path / "project"
    (folder / name).mkdir(parents=True)
    (folder / name / "__init__.py").write_text(textwrap.dedent(_PACKAGE.format(name=name)))
    (folder / name / "reach.py").write_text(textwrap.dedent(_ENV.format()))
    (folder / f"{name}_expert.py").write_text(textwrap.dedent(_EXPERT))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", str(folder))])
    return UserProject(folder, name, f"{name}_expert:Expert")


@pytest.fixture
def bright_classifier():
    """make(cameras, image_size, threshold) -> a stand-in success classifier whose P(success) is
    set by the mean brightness of its first camera's frames (0.5 at 128, near 1 for white, near 0
    for black), so a test decides each verdict by the frames it shows it."""
    import torch

    from robot_rl.reward.classifier import Classifier, ClassifierSpec, SuccessClassifier

    class Brightness(SuccessClassifier):
        def forward(self, images):
            frames = images[self.spec.cameras[0]]
            return (frames.float().mean(dim=(1, 2, 3)) - 128.0) / 8.0

    def make(cameras=("front",), image_size=(16, 16), threshold=0.5) -> Classifier:
        torch.manual_seed(0)
        spec = ClassifierSpec(tuple(cameras), tuple(image_size), feature_dim=4, channels=2, hidden_dim=4)
        return Classifier(Brightness(spec), threshold, path="stand-in.pt")

    return make
