"""Bring your own env and expert (README "Your own env and expert"), end to end as a user runs it:
the `robot-rl` command from the folder holding their package and expert, with no PYTHONPATH
pointing there; and a run's seed fixes what it stores."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from robot_rl.data.episode_store import EpisodeStore

# The installed console script, not `python -m`, which would put the current folder on the path.
ROBOT_RL = Path(sys.executable).with_name("robot-rl")
TINY = [
    "agent.hidden_dims=[64,64]",
    "agent.batch_size=32",
    "agent.utd=2",
    "learning_starts=64",
    "weights_every_updates=20",
    "checkpoint_every_updates=50",
]

pytestmark = pytest.mark.skipif(not ROBOT_RL.exists(), reason=f"no robot-rl script at {ROBOT_RL}")


def robot_rl_in(folder: Path, *args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [str(ROBOT_RL), *args], cwd=folder, capture_output=True, text=True, timeout=timeout, env=env
    )


@pytest.mark.slow
def test_a_package_env_and_an_expert_from_the_current_folder_train(user_project):
    pkg = user_project.package
    res = robot_rl_in(
        user_project.folder,
        "train", "env=gym", f"env.id={pkg}:{user_project.env_id}", f"demos.policy={user_project.expert}",
        "demos.num_episodes=3", "total_env_steps=200", "eval_every_steps=200", "eval_episodes=1",
        "final_eval_episodes=2", *TINY,
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    (run,) = (user_project.folder / "runs").iterdir()
    assert run.name.endswith(f"_{pkg}-{pkg}-Reach-v0")  # no ':' or '/' from the id
    assert EpisodeStore(run / "demos.zarr", mode="r").n_episodes == 3
    result = json.loads((run / "eval.json").read_text())
    assert result["episodes"] == 2 and 0.0 <= result["success_rate"] <= 1.0  # this env reports success
    assert result["env_steps"] >= result["env_steps_asked"] == 200
    assert "final eval: success" in res.stdout and "env steps" in res.stdout


def _first_steps(project, seed: int, name: str) -> dict[str, np.ndarray]:
    """The steps a 20-step run stores, its first episodes: random warm-up actions, then the
    policy's sampled ones."""
    res = robot_rl_in(
        project.folder,
        "train", "env=gym", f"env.id={project.env_id}", f"env.imports=[{project.package}]",
        f"seed={seed}", f"run_dir={name}", "demos=none", "total_env_steps=20", "random_steps=5",
        "learning_starts=1000", "eval_episodes=0", "final_eval_episodes=0", "agent.hidden_dims=[32,32]",
    )  # fmt: skip
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    store = EpisodeStore(project.folder / name / "actor_0" / "episodes.zarr", mode="r")
    return store.steps(0, store.n_steps) | {"episode_ends": store.episode_ends}


@pytest.mark.slow
def test_the_seed_fixes_the_first_episodes(user_project):
    a, b, c = (_first_steps(user_project, seed, name) for seed, name in ((0, "a"), (0, "b"), (1, "c")))
    assert len(a["action"]) >= 20  # past the warm-up: the agent's sampling is seeded too
    for key in ("state", "action", "episode_ends"):
        np.testing.assert_array_equal(a[key], b[key])
    assert not np.array_equal(a["state"][0], c["state"][0])
