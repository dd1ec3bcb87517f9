"""The twin behind `robot-rl bringup`, in its own process, over zenoh on loopback.

This is the real pipeline with MuJoCo drivers in place of hardware: bringup process (arm node,
task node) <-zenoh-> RobotEnv, and with `robot-rl train env=robot_twin` the actor and learner
processes too. No ROS install is needed.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from robot_rl.envs.robot_env import ObservationTimeout, RobotEnv, RobotEnvConfig
from robot_rl.ros.connect import RosConfig

REPO = Path(__file__).resolve().parents[3]
TWIN = REPO / "configs" / "bringup" / "twin.yaml"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start_bringup(port: int, *overrides: str) -> subprocess.Popen[str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_rl.ros.bringup", str(TWIN), f"ros.listen=[tcp/127.0.0.1:{port}]",
         "status_every_s=0", *overrides, "--seconds", "300"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, cwd=REPO, env=env,
    )  # fmt: skip
    lines = []
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        lines.append(line)
        if "READY" in line:
            return proc
        if not line and proc.poll() is not None:
            break
    proc.kill()
    raise AssertionError("bringup did not start:\n" + "".join(lines))


@pytest.fixture
def bringup() -> Iterator[tuple[subprocess.Popen[str], int]]:
    port = _free_port()
    proc = _start_bringup(port)
    yield proc, port
    if proc.poll() is None:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()


def _env(port: int) -> RobotEnv:
    ros = RosConfig(connect=[f"tcp/127.0.0.1:{port}"], listen=["tcp/127.0.0.1:0"])
    return RobotEnv(RobotEnvConfig(ros=ros, max_episode_steps=15), seed=0)


@pytest.mark.timeout(180)  # a killed bringup gives an error, not a hang
def test_episodes_over_zenoh_then_a_killed_bringup_is_a_safe_stop(bringup) -> None:
    proc, port = bringup
    env = _env(port)
    try:
        for _ in range(2):
            obs, info = env.reset()
            assert obs["state"].shape == (32,)
            start = obs["state"][:3].copy()
            for _ in range(15):
                obs, _reward, terminated, truncated, info = env.step(
                    np.array([0.0, 0.5, 0.0, -1.0], np.float32)
                )
                assert max(info["obs_age_s"].values()) < env.cfg.max_obs_age_s
                if terminated or truncated:
                    break
            assert truncated and obs["state"][1] - start[1] > 0.05  # moved +y across processes
        proc.kill()  # SIGKILL: the nodes vanish mid-episode
        proc.wait(timeout=10)
        with pytest.raises(ObservationTimeout, match="joint_states"):
            for _ in range(50):
                env.step(np.zeros(4, np.float32))
        assert env.counters["safe_stops"] >= 1
    finally:
        env.close()


def test_training_runs_through_the_twin_ros_path(bringup, tmp_path: Path) -> None:
    """The whole pipeline: bringup process, actor (RobotEnv over zenoh) and learner processes."""
    _proc, port = bringup
    run_dir = tmp_path / "run"
    cmd = [
        sys.executable, "-m", "robot_rl.cli", "train", "env=robot_twin",
        f"env.ros.connect=[tcp/127.0.0.1:{port}]", "env.max_episode_steps=20",
        f"run_dir={run_dir}", "total_env_steps=60", "learning_starts=32", "demos.num_episodes=2",
        "eval_episodes=0", "final_eval_episodes=1", "progress=false",
    ]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    result = json.loads((run_dir / "eval.json").read_text())
    assert result["env_steps"] >= 60 and result["episodes"] == 1
    assert result["weights_version"] >= 1  # the learner trained and the final eval used its weights
    # `robot-rl eval` of the run through the twin ends (it once hung on the open zenoh session)
    cmd = [sys.executable, "-m", "robot_rl.cli", "eval", str(run_dir), "--episodes", "1"]
    done = subprocess.run(cmd, cwd=REPO, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert json.loads(done.stdout.strip().splitlines()[-1])["episodes"] == 1
