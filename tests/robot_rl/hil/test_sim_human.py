"""The simulated person: its gates (action distance, no progress), the k-step hold, the decaying
takeover rate, reproducibility from a seed, and its flags in the actor's store."""

from __future__ import annotations

import csv
import json
import os
import queue
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from robot_rl.agents.sac import SACConfig
from robot_rl.config import SimEnvConfig, TrainConfig
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.envs.robot_env import RobotEnv, RobotEnvConfig, RobotEnvError
from robot_rl.hil.intervention import InterventionWrapper
from robot_rl.hil.sim_human import SimHuman, SimHumanConfig
from robot_rl.runtime.actor import Actor, ActorShared
from robot_rl.runtime.transport import LocalTransport
from sim.tasks import make_sim_env


def rollout(cfg: SimHumanConfig, seed: int, policy, steps: int = 40) -> tuple[list[bool], np.ndarray]:
    env = make_sim_env("pick_cube", max_episode_steps=steps, seed=0)
    wrapper = InterventionWrapper(env, SimHuman(cfg, env, seed=seed))
    rng = np.random.default_rng(123)  # the same policy actions for every seed
    wrapper.reset(seed=0)
    flags, executed = [], []
    for _ in range(steps):
        _, _, terminated, truncated, info = wrapper.step(policy(rng))
        flags.append(info["intervened"])
        executed.append(info["executed_action"])
        if terminated or truncated:
            break
    wrapper.close()
    return flags, np.array(executed)


def random_policy(rng: np.random.Generator) -> np.ndarray:
    return rng.uniform(-1, 1, 4).astype(np.float32)


def test_a_drifting_policy_is_taken_over_for_hold_steps():
    flags, _ = rollout(
        SimHumanConfig(action_threshold=0.5, hold_steps=5, stall_steps=0), 0, random_policy, 12
    )
    assert flags[:5] == [True] * 5  # the random action is far from the expert's at once
    assert any(flags[5:])  # and again once the hold ends


def test_a_stalled_task_is_taken_over():
    still = SimHumanConfig(action_threshold=100.0, stall_steps=6, stall_m=0.005, hold_steps=3)
    flags, _ = rollout(still, 0, lambda rng: np.array([0, 0, 0, -1], np.float32), 12)
    assert not any(flags[:6])  # the policy holds the arm still: no progress for 6 steps...
    assert flags[6:9] == [True] * 3  # ...then the person takes over for 3


def test_the_same_seed_gives_the_same_takeovers():
    cfg = SimHumanConfig(action_threshold=0.8, takeover_prob=0.3, hold_steps=3, noise=0.1)
    first, second, other = (rollout(cfg, seed, random_policy) for seed in (7, 7, 8))
    assert first[0] == second[0] and np.array_equal(first[1], second[1])
    assert first[0] != other[0] or not np.array_equal(first[1], other[1])


def test_the_takeover_rate_halves_every_decay_steps():
    env = make_sim_env("reach", seed=0)
    human = SimHuman(SimHumanConfig(takeover_prob=0.8, decay_steps=100), env)
    assert human.takeover_probability() == 0.8
    human.steps = 200
    assert human.takeover_probability() == pytest.approx(0.2)
    env.close()


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"action_threshold": 0.0}, "action_threshold"),
        ({"hold_steps": 0}, "hold_steps"),
        ({"takeover_prob": 1.5}, "takeover_prob"),
        ({"decay_steps": -1}, "decay_steps"),
    ],
)
def test_bad_config_names_the_field(kwargs, match):
    with pytest.raises(ValueError, match=match):
        SimHumanConfig(**kwargs)


def test_a_robot_env_has_no_simulated_person():
    env = RobotEnv(RobotEnvConfig())  # touches no robot until reset
    with pytest.raises(ValueError, match="teleop=sim_human needs a sim task"):
        SimHuman(SimHumanConfig(), env)
    with pytest.raises(ValueError, match=r"env=robot_twin env\.in_process_twin=true"):
        SimHuman(SimHumanConfig(), env)  # the message says how to run it through the twin
    with pytest.raises(RobotEnvError, match="in_process_twin=false"):
        env.sim_task()
    env.close()


def test_the_simulated_person_reads_the_twin_in_this_process():
    """Through the twin's real nodes (in-process bus): the person's takeovers execute its
    expert's action, read from the twin's true poses, and move the arm towards the cube."""
    cfg = RobotEnvConfig(in_process_twin=True, max_episode_steps=12, connect_timeout_s=10.0)
    env = RobotEnv(cfg, seed=0)
    human = SimHuman(SimHumanConfig(action_threshold=0.5, hold_steps=12, stall_steps=0), env)
    wrapper = InterventionWrapper(env, human)
    try:
        obs, _ = wrapper.reset()
        with env.sim_task() as task:
            cube = task.object_pose()[0].copy()
        start = float(np.linalg.norm(obs["state"][:2] - cube[:2]))
        flags = []
        for _ in range(8):
            obs, _, _, _, info = wrapper.step(np.array([-1.0, -1.0, 1.0, 1.0], np.float32))  # away, closed
            flags.append(info["intervened"])
        assert all(flags) and human.takeovers == 1
        assert float(np.linalg.norm(obs["state"][:2] - cube[:2])) < start - 0.02  # towards the cube
    finally:
        wrapper.close()


def test_flags_survive_to_the_actors_store(tmp_path):
    """The actor's rows: intervened steps executed the person's action, not the policy's."""
    cfg = TrainConfig(
        env=SimEnvConfig(task="pick_cube", max_episode_steps=15),
        agent=SACConfig(),
        teleop=SimHumanConfig(action_threshold=0.5, hold_steps=4),
        random_steps=1_000_000,  # random actions: no policy needed, and far from the expert's
    )
    shared = ActorShared(threading.Event(), type("Trained", (), {"value": 0})(), queue.Queue())
    actor = Actor(cfg, tmp_path, LocalTransport(tmp_path / "weights.pt", 64), shared, next_seq=0)
    counted = sum(actor.run_episode()["intervened"] for _ in range(2))
    actor.train_env.close()
    steps = actor.store.steps(0, actor.store.n_steps)
    intervened = steps["intervened"]
    assert actor.store.n_episodes == 2 and 0 < counted == int(intervened.sum()) < len(intervened)
    differs = np.any(steps["action"] != steps["policy_action"], axis=1)
    assert differs[intervened].all()  # the person's action was stored as the executed one
    assert not differs[~intervened].any()  # the policy's own steps: executed == proposed


def _train_with_the_person(run: Path, *overrides: str) -> None:
    """`robot-rl train teleop=sim_human`, small, into run."""
    train = [sys.executable, "-m", "robot_rl.cli", "train", "teleop=sim_human", "teleop.hold_steps=3"]
    tiny = ["agent.hidden_dims=[64,64]", "agent.batch_size=32", "learning_starts=64", "progress=false"]
    res = subprocess.run(
        [*train, f"run_dir={run}", *tiny, *overrides],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]


@pytest.mark.slow
def test_train_with_the_simulated_person(tmp_path):
    """`robot-rl train teleop=sim_human` on the sim: the learner's replay store holds the actor's
    intervened steps, flagged, with the person's action."""
    run = tmp_path / "run"
    _train_with_the_person(
        run, "demos.num_episodes=2", "eval_every_steps=1000", "eval_episodes=1", "final_eval_episodes=1",
        "total_env_steps=150",
    )  # fmt: skip
    actor, replay = (EpisodeStore(run / path, mode="r") for path in ("actor_0/episodes.zarr", "replay.zarr"))
    actor, replay = actor.steps(0, actor.n_steps), replay.steps(0, replay.n_steps)
    assert 0 < actor["intervened"].sum() < len(actor["intervened"])
    np.testing.assert_array_equal(replay["intervened"], actor["intervened"])
    np.testing.assert_array_equal(replay["policy_action"], actor["policy_action"])
    person = actor["intervened"]
    assert np.any(actor["action"][person] != actor["policy_action"][person], axis=1).all()


@pytest.mark.slow
def test_train_with_the_simulated_person_through_the_twin(tmp_path):
    """`robot-rl train env=robot_twin env.in_process_twin=true teleop=sim_human`, a few hundred
    steps through the twin's real nodes (~70 s: the twin runs on the wall clock): every step the
    person took reaches the learner's replay store flagged, the demo buffer holds exactly those
    (demos=none), and metrics.csv counts them."""
    run = tmp_path / "run"
    _train_with_the_person(
        run, "env=robot_twin", "env.in_process_twin=true", "demos=none", "eval_episodes=0",
        "final_eval_episodes=0", "total_env_steps=200",
    )  # fmt: skip
    actor, replay = (EpisodeStore(run / path, mode="r") for path in ("actor_0/episodes.zarr", "replay.zarr"))
    actor, replay = actor.steps(0, actor.n_steps), replay.steps(0, replay.n_steps)
    person = actor["intervened"]
    assert len(person) >= 200 and 0 < person.sum() < len(person)
    np.testing.assert_array_equal(replay["intervened"], person)
    assert np.any(actor["action"][person] != actor["policy_action"][person], axis=1).all()
    assert json.loads((run / "eval.json").read_text())["demo_transitions"] == person.sum()
    with open(run / "metrics.csv") as f:
        counted = [r["train/intervention_steps_total"] for r in csv.DictReader(f)]
    assert max(float(c) for c in counted if c) == person.sum()  # episode rows carry the count
