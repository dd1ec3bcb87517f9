"""`robot-rl train agent=dsrl` and best-of-N end to end on a flow_bc base: every stored decision is
a run of at most act_horizon equal noise actions in [-1, 1], the run evaluates, and a residual with
best-of-N trains over the same chunked base."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_noise_env import BASES, HORIZON
from test_residual_base import policy_run
from test_train_e2e import TINY, assert_exactly_once, robot_rl

from robot_rl.data.episode_store import EpisodeStore


def flow_base(tmp_path: Path) -> Path:
    return policy_run(tmp_path / "flow", BASES["flow_bc"])[0]


def decision_lengths(store: Path) -> list[int]:
    """Lengths of the runs of equal stored actions within each episode."""
    replay = EpisodeStore(store, mode="r")
    lengths = []
    for i in range(replay.n_episodes):
        action = replay.episode(i)["action"]
        starts = np.flatnonzero(np.r_[True, np.any(action[1:] != action[:-1], axis=1)])
        lengths += np.diff(np.r_[starts, len(action)]).tolist()
    return lengths


@pytest.mark.slow
def test_dsrl_with_best_of_n_trains_on_a_flow_base_then_evaluates(tmp_path):
    run = tmp_path / "run"
    args = [
        "env.task=reach",
        "agent=dsrl",
        f"agent.base={flow_base(tmp_path)}",
        "agent.best_of_n=2",
        "demos=none",
    ]
    res = robot_rl("train", "total_env_steps=300", f"run_dir={run}", *TINY[1:], *args)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "final eval: success" in res.stdout
    assert assert_exactly_once(run) >= 300
    lengths = decision_lengths(run / "replay.zarr")
    assert max(lengths) == HORIZON and sum(lengths) >= 300
    steps = EpisodeStore(run / "replay.zarr", mode="r").steps(0, 300)
    assert steps["action"].shape[1] == 16 and np.abs(steps["action"]).max() <= 1.0

    res = robot_rl("eval", str(run), "--episodes", "2")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


@pytest.mark.slow
def test_a_residual_with_best_of_n_trains_on_a_chunked_base(tmp_path):
    run = tmp_path / "run"
    args = ["env.task=reach", "agent=residual", f"agent.base={flow_base(tmp_path)}", "agent.best_of_n=4"]
    res = robot_rl("train", "total_env_steps=300", f"run_dir={run}", *TINY, *args)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "final eval: success" in res.stdout
    assert assert_exactly_once(run) >= 300


def test_a_bad_dsrl_base_stops_the_command_naming_it(tmp_path):
    res = robot_rl(
        "train", "agent=dsrl", "agent.base=sim.experts:ReachExpert", "demos=none", f"run_dir={tmp_path / 'r'}"
    )
    assert res.returncode != 0
    assert "agent.base=sim.experts:ReachExpert: DSRL steers the noise" in res.stdout + res.stderr
    assert not (tmp_path / "r").exists()
