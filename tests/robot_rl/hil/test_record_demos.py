"""Demos by hand: successful episodes are saved one by one, failed and re-recorded ones counted and
not saved, an e-stop or Ctrl-C ends the session keeping what was saved; `robot-rl record-demos`
with the simulated person writes a store that `robot-rl train demos=zarr` trains on."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

import robot_rl.hil.record_demos as record_demos_module
from drivers.teleop.base import Buttons, TeleopReading
from robot_rl.cli import main as cli_main
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.envs.robot_env import RobotEnv, RobotEnvConfig
from robot_rl.hil.intervention import InterventionWrapper
from robot_rl.hil.record_demos import RecordSummary, StepPacer, camera_text, record_demos, step_period_s
from sim.tasks import make_sim_env

MOVE = (0.5, 0.0, 0.0, 0.0, 0.0, 0.0)


class ScriptedPerson:
    """A device giving scripted readings (an exception is raised instead), then idle ones."""

    def __init__(self, readings: list) -> None:
        self.readings = list(readings)

    def start(self) -> None:
        pass

    def stop(self) -> None:
        pass

    def poll(self) -> TeleopReading:
        if not self.readings:
            return TeleopReading.idle(0.0)
        reading = self.readings.pop(0)
        if isinstance(reading, BaseException):
            raise reading
        return reading


def hand(twist=MOVE, active=True, **buttons) -> TeleopReading:
    return TeleopReading(np.array(twist, float), 1.0, Buttons(**buttons), active, 0.0)


def press(button: str) -> TeleopReading:
    return hand((0,) * 6, active=False, **{button: True})


def _session(tmp_path: Path, readings: list, episodes: int):
    env = InterventionWrapper(make_sim_env("reach", max_episode_steps=5, seed=0), ScriptedPerson(readings))
    store = EpisodeStore(tmp_path / "demos.zarr", mode="a")
    lines: list[str] = []
    summary = record_demos(env, store, episodes, log=lines.append)
    env.close()
    return summary, EpisodeStore(tmp_path / "demos.zarr", mode="r"), lines


def test_only_successful_episodes_are_saved_and_the_rest_counted(tmp_path):
    readings = [hand(), hand(), press("failure")]  # 1: the person calls it a failure
    readings += [hand(), press("rerecord")]  # 2: re-record
    readings += [hand(), press("success")]  # 3: saved
    readings += [hand((0,) * 6, active=False)] * 5  # 4: the arm held still until the time limit
    readings += [hand(), hand(), press("success")]  # 5: saved, and the session is done
    summary, store, lines = _session(tmp_path, readings, episodes=2)
    assert (summary.saved, summary.failed, summary.rerecorded, summary.stopped) == (2, 2, 1, "")
    assert store.n_episodes == 2 and store.episode_ends.tolist() == [2, 5]
    first = store.episode(0)
    assert first["intervened"].tolist() == [True, False]  # the person moved, then pressed success
    np.testing.assert_array_equal(first["action"][0], [0.5, 0.0, 0.0, 1.0])
    assert first["terminated"][-1] and first["reward"][-1] == 1.0 and store.final_obs(0) is not None
    assert [line.split(":")[1].split("|")[0].strip() for line in lines[1:]] == [
        "failure, not saved", "re-recorded, not saved", "success, saved (1/2)",
        "time limit, not saved", "success, saved (2/2)",
    ]  # fmt: skip
    text = summary.text()
    assert "2/2 successful episodes saved" in text and "2 failed and 1 re-recorded" in text


@pytest.mark.parametrize(
    ("stop", "why"), [(press("estop"), "e-stop pressed"), (KeyboardInterrupt(), "Ctrl-C")]
)
def test_an_e_stop_or_ctrl_c_ends_the_session_keeping_what_was_saved(tmp_path, stop, why):
    summary, store, _ = _session(tmp_path, [hand(), press("success"), hand(), stop], episodes=3)
    assert summary.saved == 1 and store.n_episodes == 1 and why in summary.stopped


class SpyWindow:
    """The camera window's show(), recorded."""

    def __init__(self) -> None:
        self.shown: list = []

    def show(self, images, state) -> None:
        self.shown.append((dict(images), state))


def test_the_window_shows_every_step_with_the_sessions_state(tmp_path):
    readings = [hand(), press("success"), hand(), press("estop")]
    env = InterventionWrapper(make_sim_env("reach", max_episode_steps=5, seed=0), ScriptedPerson(readings))
    window = SpyWindow()
    summary = record_demos(env, EpisodeStore(tmp_path / "d.zarr", mode="a"), 3, log=print, window=window)
    env.close()
    states = [state for _, state in window.shown]
    first = [(s.episode, s.step, s.intervening) for s in states[:3]]
    assert first == [(1, 0, False), (1, 1, True), (1, 2, False)]  # reset, the hand, the success press
    second = states[3]
    assert (second.episode, second.step, second.saved, second.last) == (2, 0, 1, "success, saved (1/3)")
    assert states[-1].stopped and not states[-2].stopped and summary.stopped.startswith("e-stop pressed")
    assert all(images == {} for images, _ in window.shown)  # reach has no cameras: the state alone


def test_a_second_session_appends(tmp_path):
    _session(tmp_path, [press("success")], episodes=1)
    summary, store, lines = _session(tmp_path, [press("success")], episodes=1)
    assert summary.saved == 1 and store.n_episodes == 2 and "(1 there)" in lines[0]


def test_cameras_are_named():
    assert camera_text(make_sim_env("reach", seed=0)) == "no cameras"
    pixels = make_sim_env("reach", seed=0, cameras=("wrist",), image_size=(32, 32))
    assert camera_text(pixels) == "cameras: wrist 32x32"


class FakeTime:
    """A clock that moves only when slept on or told to (work)."""

    def __init__(self) -> None:
        self.now, self.slept = 0.0, []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 9))
        self.now += seconds

    def work(self, seconds: float) -> None:
        self.now += seconds


def test_each_step_starts_one_period_after_the_last_and_a_late_one_restarts_the_clock():
    t = FakeTime()
    pacer = StepPacer(0.1, t.clock, t.sleep)
    pacer.restart()  # reset at 0: the first step starts at 0.1
    for work, slept in [(0.03, 0.07), (0.12, None), (0.05, 0.03), (0.4, None), (0.01, 0.09)]:
        before = len(t.slept)
        t.work(work)
        pacer.wait()
        assert t.slept[before:] == ([] if slept is None else [slept])
    # 0.22 was 0.02 late (under half a period): the next step still starts at 0.3, on the clock;
    # 0.7 was 0.3 late: the clock started anew there, with no burst of steps to catch up
    assert round(t.now, 9) == 0.8 and pacer.late == 1
    unpaced = StepPacer(None, t.clock, t.sleep)
    unpaced.restart()
    unpaced.wait()
    assert len(t.slept) == 3  # None: never waits
    with pytest.raises(ValueError, match="a step period must be > 0 s, got 0"):
        StepPacer(0)


def test_a_paced_session_waits_one_period_before_every_step(tmp_path):
    readings = [hand(), press("success"), hand(), hand(), press("success")]  # 2 + 3 steps
    env = InterventionWrapper(make_sim_env("reach", max_episode_steps=5, seed=0), ScriptedPerson(readings))
    t, lines = FakeTime(), []
    pacer = StepPacer(step_period_s(env), t.clock, t.sleep)
    summary = record_demos(env, EpisodeStore(tmp_path / "d.zarr", mode="a"), 2, log=lines.append, pacer=pacer)
    env.close()
    assert summary.saved == 2 and summary.steps_saved == 5
    assert t.slept == [0.1] * 5  # the sim takes no time on this clock: each step waits a whole period
    assert lines[0].endswith("; 10 steps/s")


class NoClockEnv(gym.Env):
    metadata = {}  # noqa: RUF012 (gymnasium's convention)
    observation_space = action_space = gym.spaces.Box(-1.0, 1.0, (1,))


def test_the_step_period_is_the_envs_own():
    assert step_period_s(make_sim_env("reach", seed=0, control_hz=20.0)) == pytest.approx(0.05)
    assert step_period_s(gym.make("Pendulum-v1")) == pytest.approx(0.05)  # its dt
    assert step_period_s(gym.make("CartPole-v1")) == pytest.approx(0.02)  # 1 / its render_fps
    assert step_period_s(RobotEnv(RobotEnvConfig())) is None  # waits for its control tick itself
    assert step_period_s(NoClockEnv()) is None


@pytest.mark.parametrize(
    ("teleop", "period_s"),
    [(["teleop=keyboard"], 0.1), (["teleop=sim_human"], None), (["teleop=sim_human", "realtime=true"], 0.1)],
)
def test_a_persons_device_is_paced_the_simulated_person_only_when_realtime(
    tmp_path, monkeypatch, teleop, period_s
):
    seen = []

    def record(env, store, episodes, max_attempts, log, window, pacer):
        seen.append(pacer.period_s)
        return RecordSummary(store.path, episodes, saved=episodes)

    monkeypatch.setattr(record_demos_module, "record_demos", record)
    cli_main(["record-demos", "-o", str(tmp_path / "d.zarr"), "--no-window", "env.task=reach", *teleop])
    assert seen == [period_s]


RECORD = ["env.task=pick_cube", "teleop=sim_human", "teleop.action_threshold=0.001"]
RECORD += ["teleop.hold_steps=1000", "teleop.stall_steps=0"]  # the simulated person drives it all


def test_record_demos_command_with_the_simulated_person(tmp_path, capsys):
    store = tmp_path / "demos.zarr"
    cli_main(["record-demos", "-o", str(store), "--episodes", "2", *RECORD])
    out = capsys.readouterr().out
    assert "2/2 successful episodes saved" in out and f"demos.path={store}" in out
    demos = EpisodeStore(store, mode="r")
    assert demos.n_episodes == 2
    for i in range(2):
        episode = demos.episode(i)
        assert episode["terminated"][-1] and episode["reward"][-1] == 1.0  # the task's own success
        assert episode["intervened"].all()


def test_record_demos_without_a_device_says_so(tmp_path):
    with pytest.raises(SystemExit, match="record-demos needs a teleop device"):
        cli_main(["record-demos", "-o", str(tmp_path / "d.zarr"), "env.task=reach"])
    with pytest.raises(SystemExit, match="record-demos needs a teleop device"):  # the flag is known
        cli_main(["record-demos", "-o", str(tmp_path / "d.zarr"), "--no-window", "env.task=reach"])
    with pytest.raises(SystemExit, match="config error"):
        cli_main(["record-demos", "-o", str(tmp_path / "d.zarr"), "teleop=joystick"])


@pytest.mark.slow
def test_demos_by_hand_then_train_on_them(tmp_path):
    """`robot-rl record-demos` then `robot-rl train demos=zarr demos.path=<that store>`."""
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    store, run = tmp_path / "demos.zarr", tmp_path / "run"

    def robot_rl(*args: str) -> subprocess.CompletedProcess:
        cmd = [sys.executable, "-m", "robot_rl.cli", *args]
        return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)

    res = robot_rl("record-demos", "-o", str(store), "--episodes", "3", *RECORD)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    tiny = ["agent.hidden_dims=[64,64]", "agent.batch_size=32", "learning_starts=32"]
    tiny += ["eval_every_steps=1000", "eval_episodes=1", "final_eval_episodes=1"]
    tiny += ["total_env_steps=100", f"run_dir={run}"]
    res = robot_rl("train", "demos=zarr", f"demos.path={store}", *tiny)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    recorded, used = EpisodeStore(store, mode="r"), EpisodeStore(run / "demos.zarr", mode="r")
    assert used.n_episodes == recorded.n_episodes == 3
    actions = [s.steps(0, s.n_steps)["action"] for s in (used, recorded)]
    np.testing.assert_array_equal(*actions)
    assert (run / "weights" / "policy.pt").exists() and "final eval" in res.stdout
