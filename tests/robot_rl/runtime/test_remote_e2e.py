"""`robot-rl learner` and `robot-rl actor --learner HOST:PORT` as separate processes on loopback.

Faults are the real ones: SIGKILL of the learner or of the actor mid-run, then a restart with
resume=true. Each test counts steps by sequence number: the learner's replay store must hold
every step the actor's store holds, each once, in order.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.data.episode_store import EpisodeStore

TINY = [
    "demos.num_episodes=2",
    "agent.hidden_dims=[64,64]",
    "agent.batch_size=32",
    "agent.utd=2",
    "learning_starts=64",
    "eval_episodes=0",
    "final_eval_episodes=0",
    "weights_every_updates=10",
    "checkpoint_every_updates=30",
    "transport.heartbeat_s=0.25",
    "transport.lost_after_s=1.0",
    "transport.reconnect_max_s=0.5",
    "transport.connect_timeout_s=120",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start(*args: str, log: Path) -> subprocess.Popen:
    out = open(log, "a")  # noqa: SIM115 - the process owns it until it exits
    return subprocess.Popen(
        [sys.executable, "-m", "robot_rl.cli", *args],
        stdout=out,
        stderr=subprocess.STDOUT,
        text=True,
        env=ENV,
    )


def wait_for(what: str, check, timeout_s: float = 180) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for {what}")
        time.sleep(0.2)


def stored_steps(path: Path) -> int:
    try:
        return EpisodeStore(path, mode="r").n_steps
    except (FileNotFoundError, ValueError, KeyError):  # not created yet
        return 0


def assert_exactly_once(learner_dir: Path, actor_dir: Path, actor_id: int = 0) -> int:
    actor = EpisodeStore(actor_dir / f"actor_{actor_id}" / "episodes.zarr", mode="r")
    replay = EpisodeStore(learner_dir / "replay.zarr", mode="r")
    steps = replay.steps(0, replay.n_steps)
    mine = steps["actor_id"] == actor_id
    np.testing.assert_array_equal(steps["seq"][mine], np.arange(actor.n_steps))
    np.testing.assert_array_equal(steps["action"][mine], actor.steps(0, actor.n_steps)["action"])
    return actor.n_steps


def finish(proc: subprocess.Popen, log: Path, timeout_s: float = 240) -> str:
    try:
        proc.wait(timeout=timeout_s)
    finally:
        proc.kill()
    text = log.read_text()
    assert proc.returncode == 0, text[-4000:]
    return text


def learner_args(run: Path, port: int, steps: int) -> list[str]:
    return ["learner", "--listen", f"127.0.0.1:{port}", f"run_dir={run}", f"total_env_steps={steps}", *TINY]


def actor_args(run: Path, learner: Path, port: int, steps: int, *extra: str) -> list[str]:
    token = f"transport.token_file={learner / 'transport_token'}"
    return [
        "actor",
        "--learner",
        f"127.0.0.1:{port}",
        f"run_dir={run}",
        f"total_env_steps={steps}",
        token,
        *TINY,
        *extra,
    ]


@pytest.mark.slow
def test_learner_and_two_actors_over_grpc(tmp_path):
    port, L = free_port(), tmp_path / "learner"
    learner = start(*learner_args(L, port, 300), log=tmp_path / "learner.log")
    wait_for("the token file", (L / "transport_token").exists)
    actors = [
        start(*actor_args(tmp_path / f"a{i}", L, port, 300, f"actor_id={i}"), log=tmp_path / f"a{i}.log")
        for i in range(2)
    ]
    for i, proc in enumerate(actors):
        finish(proc, tmp_path / f"a{i}.log")
    out = finish(learner, tmp_path / "learner.log")
    for i in range(2):
        assert assert_exactly_once(L, tmp_path / f"a{i}", actor_id=i) >= 300
    assert "actor 0 @" in out and "actor 1 @" in out  # each actor shown in the learner's display
    assert (L / "weights" / "policy.pt").exists() and (L / "checkpoints" / "learner.pt").exists()


@pytest.mark.slow
def test_learner_killed_and_restarted_actor_reconnects_by_itself(tmp_path):
    port, L, A = free_port(), tmp_path / "learner", tmp_path / "actor"
    learner = start(*learner_args(L, port, 1200), log=tmp_path / "learner.log")
    wait_for("the token file", (L / "transport_token").exists)
    # no pacing: the actor must keep acting (and spooling) while the learner is down
    actor = start(*actor_args(A, L, port, 1200, "max_actor_lead_steps=null"), log=tmp_path / "actor.log")
    wait_for("a learner checkpoint", (L / "checkpoints" / "learner.pt").exists)
    learner.send_signal(signal.SIGKILL)
    learner.wait(timeout=30)
    spooled_from = stored_steps(A / "actor_0" / "episodes.zarr")
    wait_for(
        "the actor to act on without the learner",
        lambda: stored_steps(A / "actor_0" / "episodes.zarr") > spooled_from,
    )
    learner = start("learner", "resume=true", f"run_dir={L}", log=tmp_path / "learner.log")
    actor_out = finish(actor, tmp_path / "actor.log")
    finish(learner, tmp_path / "learner.log")
    assert assert_exactly_once(L, A) >= 1200
    assert "LOST" in actor_out  # the actor saw the learner go, and carried on
    result = json.loads((A / "actor_0" / "result.json").read_text())
    assert result["policy_version"] > 1  # it got the restarted learner's weights
    # versions continue across the restart: policy_version never goes back in either store
    for store in (A / "actor_0" / "episodes.zarr", L / "replay.zarr"):
        versions = EpisodeStore(store, mode="r").steps(0, 1200)["policy_version"]
        assert np.all(np.diff(versions) >= 0), store
    assert "learner resumed: checkpoint" in (tmp_path / "learner.log").read_text()


@pytest.mark.slow
def test_actor_killed_mid_episode_then_restarted(tmp_path):
    port, L, A = free_port(), tmp_path / "learner", tmp_path / "actor"
    learner = start(*learner_args(L, port, 600), log=tmp_path / "learner.log")
    wait_for("the token file", (L / "transport_token").exists)
    actor = start(*actor_args(A, L, port, 600, "max_actor_lead_steps=null"), log=tmp_path / "actor.log")
    wait_for("a stored episode", lambda: stored_steps(A / "actor_0" / "episodes.zarr") > 0, timeout_s=180)
    time.sleep(1.0)  # into the next episode
    actor.send_signal(signal.SIGKILL)
    actor.wait(timeout=30)
    actor = start("actor", "resume=true", f"run_dir={A}", log=tmp_path / "actor.log")
    finish(actor, tmp_path / "actor.log")
    finish(learner, tmp_path / "learner.log")
    assert assert_exactly_once(L, A) >= 600
    steps = EpisodeStore(A / "actor_0" / "episodes.zarr", mode="r")
    # every step, before and after the restart, acted on the learner's weights, never random ones
    assert (steps.steps(0, steps.n_steps)["policy_version"] >= 1).all()


def test_actor_with_a_wrong_token_gets_a_clear_error(tmp_path):
    port, L = free_port(), tmp_path / "learner"
    learner = start(*learner_args(L, port, 100), log=tmp_path / "learner.log")
    try:
        wait_for("the token file", (L / "transport_token").exists)
        res = subprocess.run(
            [
                sys.executable,
                "-m",
                "robot_rl.cli",
                *actor_args(tmp_path / "a", L, port, 100, "transport.token=nope"),
            ],
            capture_output=True,
            text=True,
            timeout=120,
            env=ENV,
        )
        assert res.returncode != 0
        assert "wrong or missing transport token" in res.stdout + res.stderr
        assert learner.poll() is None  # and the learner still serves
        # the refused actor left nothing behind: the corrected command runs in the same run_dir
        actor = start(*actor_args(tmp_path / "a", L, port, 100), log=tmp_path / "actor.log")
        finish(actor, tmp_path / "actor.log")
        finish(learner, tmp_path / "learner.log")
        assert "refused actor 0 from " in (tmp_path / "learner.log").read_text()  # in the open
        metrics = (L / "metrics.csv").read_text().splitlines()
        column = metrics[0].split(",").index("refused_connections")
        assert max(float(row.split(",")[column] or 0) for row in metrics[1:]) >= 1
    finally:
        learner.kill()
        learner.wait(timeout=30)
