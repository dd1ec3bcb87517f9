"""`robot-rl train agent=residual` end to end, through the local transport and over gRPC: the frozen
base's action rides in every stored state and no executed action strays further from it than the
residual's scale."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from test_remote_e2e import actor_args, finish, free_port, learner_args, start, wait_for
from test_remote_e2e import assert_exactly_once as assert_exactly_once_remote
from test_train_e2e import TINY, assert_exactly_once, robot_rl

from robot_rl.data.episode_store import EpisodeStore

A, SCALE = 4, 0.3  # reach's action size; the residual's bound in these runs
RESIDUAL = ["env.task=reach", "agent=residual", "agent.base=sim.experts:ReachExpert", f"agent.scale={SCALE}"]


def assert_within_scale_of_the_base(store: Path) -> None:
    """Every step the policy acted (not a person) executed base + at most scale."""
    replay = EpisodeStore(store, mode="r")
    steps = replay.steps(0, replay.n_steps)
    assert steps["state"].shape[1] > A
    policy = ~steps["intervened"]
    moved = np.abs(steps["action"][policy] - steps["state"][policy, -A:])
    assert moved.max() <= SCALE + 1e-5


@pytest.mark.slow
def test_residual_trains_on_a_scripted_base_then_evaluates(tmp_path):
    run = tmp_path / "run"
    res = robot_rl("train", "total_env_steps=300", f"run_dir={run}", *TINY, *RESIDUAL)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "final eval: success" in res.stdout
    assert assert_exactly_once(run) >= 300
    assert_within_scale_of_the_base(run / "replay.zarr")
    demos = EpisodeStore(run / "demos.zarr", mode="r")
    steps = demos.steps(0, demos.n_steps)
    np.testing.assert_array_equal(steps["state"][:, -A:], steps["action"])  # the expert was base and demo

    res = robot_rl("eval", str(run), "--episodes", "2")
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


@pytest.mark.slow
def test_residual_over_grpc(tmp_path):
    port, learner_dir, actor_dir = free_port(), tmp_path / "learner", tmp_path / "actor"
    learner = start(*learner_args(learner_dir, port, 200), *RESIDUAL, log=tmp_path / "learner.log")
    wait_for("the token file", (learner_dir / "transport_token").exists)
    actor = start(*actor_args(actor_dir, learner_dir, port, 200), *RESIDUAL, log=tmp_path / "actor.log")
    finish(actor, tmp_path / "actor.log")
    finish(learner, tmp_path / "learner.log")
    assert assert_exactly_once_remote(learner_dir, actor_dir) >= 200
    assert_within_scale_of_the_base(learner_dir / "replay.zarr")


def test_a_bad_base_stops_the_command_naming_it(tmp_path):
    res = robot_rl(
        "train", "agent=residual", "agent.base=no/such/run", f"run_dir={tmp_path / 'run'}", timeout=120
    )
    assert res.returncode != 0
    assert "agent.base=no/such/run: no such run folder" in res.stdout + res.stderr
    assert not (tmp_path / "run").exists()
