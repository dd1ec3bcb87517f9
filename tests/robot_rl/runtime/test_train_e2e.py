"""`robot-rl train` end to end, as a user runs it: separate actor and learner processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from robot_rl.data.episode_store import EpisodeStore

# Small enough for a 2-core CI box: tiny nets, few steps, few demos.
TINY = [
    "demos.num_episodes=2",
    "agent.hidden_dims=[64,64]",
    "agent.batch_size=32",
    "agent.utd=2",  # still a UTD loop, at half the default's cost
    "learning_starts=64",
    "eval_every_steps=200",
    "eval_episodes=1",
    "final_eval_episodes=2",
    "weights_every_updates=20",
    "checkpoint_every_updates=50",
]


def robot_rl(*args: str, timeout: float = 240) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "robot_rl.cli", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


def assert_exactly_once(run_dir: Path) -> int:
    """The learner holds every step the actor recorded, each once, in order."""
    actor = EpisodeStore(run_dir / "actor_0" / "episodes.zarr", mode="r")
    replay = EpisodeStore(run_dir / "replay.zarr", mode="r")
    seq = replay.steps(0, replay.n_steps)["seq"]
    np.testing.assert_array_equal(seq, np.arange(actor.n_steps))
    np.testing.assert_array_equal(replay.episode_ends, actor.episode_ends)
    np.testing.assert_array_equal(
        replay.steps(0, replay.n_steps)["action"], actor.steps(0, actor.n_steps)["action"]
    )
    return actor.n_steps


@pytest.mark.slow
def test_train_smoke_then_eval(tmp_path):
    run = tmp_path / "run"
    res = robot_rl("train", "total_env_steps=300", f"run_dir={run}", *TINY)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert "final eval: success" in res.stdout
    assert "updates" in res.stdout  # the progress line was shown
    for name in [
        "config.yaml",
        "demos.zarr",
        "weights/policy.pt",
        "checkpoints/learner.pt",
        "metrics.csv",
        "learning_curve.png",
        "eval.json",
    ]:
        assert (run / name).exists(), name
    assert EpisodeStore(run / "demos.zarr", mode="r").n_episodes == 2
    assert assert_exactly_once(run) >= 300
    result = json.loads((run / "eval.json").read_text())
    assert result["episodes"] == 2 and 0.0 <= result["success_rate"] <= 1.0
    assert result["updates"] > 0

    res = robot_rl("eval", str(run), "--episodes", "2")
    assert res.returncode == 0, res.stderr[-3000:]
    summary = json.loads(res.stdout.strip().splitlines()[-1])
    assert summary["episodes"] == 2 and summary["weights_version"] >= 1


@pytest.mark.slow
def test_learner_killed_mid_run_then_resumed_loses_nothing(tmp_path):
    run = tmp_path / "run"
    args = [
        "total_env_steps=1200",
        f"run_dir={run}",
        *TINY,
        "final_eval_episodes=0",
        "max_actor_lead_steps=50",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_rl.cli", "train", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=env,
    )
    try:
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:  # wait until the learner has trained and checkpointed
            if (run / "checkpoints" / "learner.pt").exists() and (run / "pids.json").exists():
                break
            time.sleep(0.5)
        else:
            pytest.fail("the run never checkpointed")
        os.kill(json.loads((run / "pids.json").read_text())["learner"], signal.SIGKILL)
        out, _ = proc.communicate(timeout=120)
    finally:
        proc.kill()
    assert proc.returncode != 0
    assert "resume with: robot-rl train resume=true" in out
    steps_before = EpisodeStore(run / "actor_0" / "episodes.zarr", mode="r").n_steps
    assert steps_before < 1200  # it was stopped mid-run

    res = robot_rl("train", "resume=true", f"run_dir={run}", timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert assert_exactly_once(run) >= 1200


@pytest.mark.slow
def test_gym_env_trains_through_config(tmp_path):
    run = tmp_path / "run"
    res = robot_rl(
        "train",
        "env=gym",
        "env.id=Hopper-v5",
        "demos=none",
        "total_env_steps=300",
        f"run_dir={run}",
        *TINY[1:],
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    assert assert_exactly_once(run) >= 300


def _egl_available() -> bool:
    probe = "import mujoco; r = mujoco.Renderer(mujoco.MjModel.from_xml_string('<mujoco/>'), 8, 8); r.close()"
    env = {**os.environ, "MUJOCO_GL": "egl"}
    return subprocess.run([sys.executable, "-c", probe], capture_output=True, env=env).returncode == 0


@pytest.mark.slow
@pytest.mark.timeout(600)  # software rendering and conv updates on a shared 2-core CPU; a hang bound
@pytest.mark.skipif(
    not _egl_available(), reason="no EGL renderer on this machine (apt: libegl1 libgl1-mesa-dri)"
)
def test_pixel_smoke_two_cameras(tmp_path):
    run = tmp_path / "run"
    os.environ["MUJOCO_GL"] = "egl"
    res = robot_rl(
        "train",
        "env=pick_cube_pixels",
        "env.image_size=[64,64]",
        "total_env_steps=200",
        f"run_dir={run}",
        *TINY,
        timeout=400,
    )
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    replay = EpisodeStore(run / "replay.zarr", mode="r")
    for cam in ("wrist", "front"):
        frames = replay.steps(0, 5)[f"image_{cam}"]
        assert frames.dtype == np.uint8 and frames.shape == (5, 64, 64, 3)
    assert assert_exactly_once(run) >= 200


@pytest.mark.parametrize(
    ("override", "names"),
    [
        ("no_such_key=1", "no_such_key"),
        ("total_env_steps=abc", "total_env_steps"),
        ("replay.demo_ratio=1.5", "demo_ratio"),
        ("agent.no_such_field=2", "no_such_field"),
    ],
)
def test_bad_config_fails_at_start_naming_it(tmp_path, override, names):
    res = robot_rl("train", override, f"run_dir={tmp_path / 'run'}", timeout=120)
    assert res.returncode != 0
    assert names in res.stdout + res.stderr
    assert not (tmp_path / "run" / "actor_0").exists()  # nothing started


def test_existing_run_is_not_overwritten(tmp_path):
    run = tmp_path / "run"
    (run / "actor_0").mkdir(parents=True)
    res = robot_rl("train", f"run_dir={run}", "total_env_steps=10", timeout=120)
    assert res.returncode != 0 and "resume=true" in res.stdout + res.stderr


def _actor_steps(run: Path) -> int:
    try:
        return EpisodeStore(run / "actor_0" / "episodes.zarr", mode="r").n_steps
    except (FileNotFoundError, ValueError):  # not created yet
        return 0


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie (exited, not yet reaped) counts as gone
    try:
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


@pytest.mark.slow
def test_actor_and_learner_stop_when_the_supervisor_is_killed(tmp_path):
    run = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "robot_rl.cli", "train", "total_env_steps=100000", f"run_dir={run}", *TINY],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 180
        while _actor_steps(run) == 0 and time.monotonic() < deadline:  # an episode is recorded
            time.sleep(0.5)
        pids = json.loads((run / "pids.json").read_text())
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=30)
        deadline = time.monotonic() + 120  # a bound on a hang, not a speed claim
        while any(_alive(p) for p in pids.values()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert not any(_alive(p) for p in pids.values()), "orphaned actor or learner kept running"
    finally:
        proc.kill()
    actor = EpisodeStore(run / "actor_0" / "episodes.zarr", mode="r")
    assert actor.n_steps > 0  # what the actor recorded is intact and readable


def test_corrupt_demo_store_is_a_clear_error(tmp_path):
    store = tmp_path / "demos.zarr"
    store.mkdir()
    (store / ".zgroup").write_text('{"zarr_format": 2}')  # a zarr group with no data or meta
    res = robot_rl("train", "demos=zarr", f"demos.path={store}", f"run_dir={tmp_path / 'run'}", timeout=120)
    assert res.returncode != 0
    assert "missing 'data' group" in res.stderr and "Traceback" not in res.stderr
    assert (store / ".zgroup").exists()  # the user's data is left as it was
