"""Demos by hand: `robot-rl record-demos` drives an env with a teleop device and keeps the
successful episodes in a zarr episode store that `robot-rl train demos=zarr demos.path=...` trains on.

The env is any the train command takes (the sim, env=robot_twin, env=robot), wrapped in the
intervention wrapper (robot_rl/hil/intervention.py), so the device's buttons act as they do while
training: success ends the episode as a success, failure as a failure, re-record drops it, e-stop
holds the arm and stops the recording. There is no policy: while the person does not move the
device, the arm holds still (zero motion, the gripper as last commanded), and those steps are
stored as they happened, not intervened.

Nothing successful is ever lost: each successful episode is appended to the store the moment it
ends (an append is crash-safe, robot_rl/data/episode_store.py), and a store that exists is
appended to, so a session can be continued. Failed and re-recorded episodes are counted and
reported, not written. One status line per episode says what happened and where the count stands.
Where there is a display, a window shows each camera's latest frame and the episode's state
(robot_rl/hil/camera_window.py; --no-window turns it off).

A person needs the sim to move at the robot's pace: a stepped sim would run a 50-step episode in
a fraction of a second. So each step starts one control period after the last (StepPacer), the
period being what a step stands for in the env (step_period_s: a sim task's dt). RobotEnv (the
robot, the twin) waits for its control tick itself and is not paced twice; the simulated person
needs no time to react and runs unpaced unless realtime=true.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from drivers.teleop.base import TeleopError
from robot_rl.data.episode_store import EpisodeStore
from robot_rl.envs.robot_env import RobotEnv
from robot_rl.hil.camera_window import CameraWindow, WindowState, button_hints, motion_hints, open_window
from robot_rl.hil.episode_help import EpisodeHelp
from robot_rl.hil.intervention import TeleopEStop, with_teleop
from robot_rl.hil.sim_human import SimHumanConfig
from robot_rl.transition import obs_to_flat
from sim.task_spec import GRIPPER_OPEN


@dataclass
class RecordSummary:
    """What a recording session did."""

    store: Path
    asked: int
    saved: int = 0  # successful episodes written in this session
    failed: int = 0
    rerecorded: int = 0
    steps_saved: int = 0
    stopped: str = ""  # why the session ended before `asked` were saved ("" when they were)
    last: str = ""  # how the last episode ended

    @property
    def attempts(self) -> int:
        return self.saved + self.failed + self.rerecorded

    def text(self) -> str:
        head = (
            f"record-demos: {self.saved}/{self.asked} successful episodes saved to {self.store} "
            f"({self.steps_saved} steps); {self.failed} failed and {self.rerecorded} re-recorded "
            f"not saved, of {self.attempts} recorded"
        )
        return head + (f"; stopped: {self.stopped}" if self.stopped else "")


def camera_text(env: gym.Env) -> str:
    """The env's cameras as one line, e.g. "cameras: wrist 84x84, front 84x84" (or "no cameras")."""
    images = getattr(env.observation_space, "spaces", {}).get("images")
    if images is None:
        return "no cameras"
    return "cameras: " + ", ".join(f"{cam} {s.shape[1]}x{s.shape[0]}" for cam, s in images.spaces.items())


def _hold(action_space: gym.Space, gripper: float) -> np.ndarray:
    """Zero motion, gripper as last commanded: what runs while the person does not act."""
    action = np.zeros(action_space.shape, np.float32)
    action[-1] = gripper
    return action


class StepPacer:
    """Starts each env step one period after the previous one (or after the reset: restart()).
    A step that comes more than half a period late starts the clock anew rather than hurrying the
    next ones, so a slow frame never turns into a burst of steps. period_s None: no waiting.
    clock and sleep: time.monotonic and time.sleep, or a test's."""

    def __init__(
        self,
        period_s: float | None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        if period_s is not None and not period_s > 0:
            raise ValueError(f"a step period must be > 0 s, got {period_s}")
        self.period_s, self.clock, self.sleep = period_s, clock, sleep
        self.late = 0  # steps that started the clock anew
        self._next: float | None = None

    def restart(self) -> None:
        """The first step is one period from now (after a reset, which takes its own time)."""
        if self.period_s is not None:
            self._next = self.clock() + self.period_s

    def wait(self) -> None:
        """Sleep until this step's start."""
        if self.period_s is None:
            return
        now = self.clock()
        start = now if self._next is None else self._next
        if now > start + self.period_s / 2:
            self.late += 1
            start = now
        if start > now:
            self.sleep(start - now)
        self._next = start + self.period_s


def step_period_s(env: gym.Env) -> float | None:
    """What one step of `env` stands for in the world, where the env does not keep time itself: a
    sim task's or gymnasium env's dt, else 1 / its render_fps; None for RobotEnv (it waits for
    its control tick) or an env that says neither."""
    base = env.unwrapped
    if isinstance(base, RobotEnv):
        return None
    dt = getattr(base, "dt", None)
    if isinstance(dt, (int, float)) and dt > 0:
        return float(dt)
    fps = (getattr(base, "metadata", None) or {}).get("render_fps")
    return 1.0 / fps if isinstance(fps, (int, float)) and fps > 0 else None


StepView = Callable[[Any, int, bool], None]  # (observation, steps taken, the person acted)


def record_episode(
    env: gym.Env, view: StepView | None = None, pacer: StepPacer | None = None
) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray], dict[str, Any]]:
    """One episode driven by the device of `env` (an InterventionWrapper), in the store's form:
    (steps, final observation, outcome {"success", "rerecord", "label", "help"}). view: shown
    each observation (the camera window); pacer: waited on before each step."""
    pacer = pacer or StepPacer(None)
    obs, info = env.reset()
    if view is not None:
        view(obs, 0, False)
    pacer.restart()
    rows, gripper, helped, success = [], GRIPPER_OPEN, EpisodeHelp(), False
    while True:
        t_obs = float(info.get("t_obs", time.time()))
        hold = _hold(env.action_space, gripper)
        pacer.wait()  # the device is read in step(): what the person does up to its start
        next_obs, reward, terminated, truncated, info = env.step(hold)
        executed = np.asarray(info["executed_action"], np.float32)
        rows.append(
            obs_to_flat(obs)
            | {
                "action": executed,
                "policy_action": hold,
                "reward": np.float32(reward),
                "terminated": np.bool_(terminated),
                "truncated": np.bool_(truncated),
                "intervened": np.bool_(info["intervened"]),
                "policy_version": np.int64(-1),
                "t_obs": np.float64(t_obs),
            }
        )
        gripper = float(executed[-1])
        helped.add(bool(info["intervened"]))
        if view is not None:
            view(next_obs, len(rows), bool(info["intervened"]))
        success = success or bool(info.get("success", False))
        obs = next_obs
        if terminated or truncated:
            steps = {k: np.stack([r[k] for r in rows]) for k in rows[0]}
            label = info.get("label") or ("e-stop" if info.get("estop") else info.get("teleop_lost"))
            label = label or ("success" if success else "time limit")
            outcome = {
                "success": success,
                "rerecord": bool(info.get("rerecord")),
                "label": label,
                "help": helped,
            }
            return steps, obs_to_flat(obs), outcome


def record_demos(
    env: gym.Env,
    store: EpisodeStore,
    episodes: int,
    max_attempts: int | None = None,
    log: Callable[[str], None] = print,
    window: CameraWindow | None = None,
    pacer: StepPacer | None = None,
) -> RecordSummary:
    """Record until `episodes` successful episodes are saved (or max_attempts are recorded, the
    person presses e-stop, or Ctrl-C); env: wrapped with the teleop device (with_teleop); pacer:
    the steps' pace (None: as fast as the env steps)."""
    if episodes < 1:
        raise ValueError(f"--episodes must be >= 1, got {episodes}")
    summary = RecordSummary(store.path, episodes)
    view = None if window is None else _SessionView(window, summary)
    there = f"{store.n_episodes} there"
    pace = f"; {1 / pacer.period_s:g} steps/s" if pacer is not None and pacer.period_s else ""
    log(f"record-demos: {episodes} successful episodes to {store.path} ({there}); {camera_text(env)}{pace}")
    try:
        while summary.saved < episodes:
            if max_attempts is not None and summary.attempts >= max_attempts:
                summary.stopped = f"--max-attempts {max_attempts} reached"
                break
            steps, final_obs, outcome = record_episode(env, view, pacer)
            n = len(steps["reward"])
            if outcome["rerecord"]:
                summary.rerecorded += 1
                verdict = "re-recorded, not saved"
            elif outcome["success"]:
                store.append_episode(steps, final_obs)  # saved at once: a crash later loses none
                summary.saved += 1
                summary.steps_saved += n
                verdict = f"success, saved ({summary.saved}/{episodes})"
            else:
                summary.failed += 1
                verdict = f"{outcome['label']}, not saved"
            summary.last = verdict
            helped: EpisodeHelp = outcome["help"]
            log(
                f"episode {summary.attempts}: {verdict} | {n} steps, {helped.steps} by the person "
                f"({helped.takeovers} takeovers) | {summary.failed} failed, {summary.rerecorded} re-recorded"
            )
    except TeleopEStop as err:  # what it did to the arm (on a robot: the arm node's latch)
        summary.stopped = str(err)
    except TeleopError as err:  # a device that is gone and does not come back
        summary.stopped = f"teleop device: {err}"
    except KeyboardInterrupt:
        summary.stopped = "Ctrl-C"
    if view is not None and summary.stopped:
        view.stop()
    return summary


class _SessionView:
    """Shows each observation in the camera window with the session's counts (a StepView)."""

    def __init__(self, window: CameraWindow, summary: RecordSummary) -> None:
        self.window, self.summary = window, summary
        self.images: dict[str, np.ndarray] = {}
        self.episode, self.step = 1, 0

    def __call__(self, obs: Any, step: int, intervening: bool) -> None:
        self.images = obs.get("images", {}) if isinstance(obs, dict) else {}
        self.episode, self.step = self.summary.attempts + 1, step
        self._show(intervening, stopped=False)

    def stop(self) -> None:
        """The session ended early: the last frames, marked stopped."""
        self._show(False, stopped=True)

    def _show(self, intervening: bool, stopped: bool) -> None:
        s = self.summary
        state = WindowState(
            self.episode, self.step, intervening, s.saved, s.asked, s.failed, s.rerecorded, s.last, stopped
        )
        self.window.show(self.images, state)


def record_demos_to(
    cfg: Any,
    path: str | Path,
    episodes: int,
    max_attempts: int | None = None,
    log: Callable[[str], None] = print,
    window: bool = True,
) -> RecordSummary:
    """record_demos with the env and teleop device a TrainConfig names (cfg.env, cfg.teleop);
    window: show the cameras when there is a display. A person's device is paced at the env's
    control rate, the simulated person only with cfg.realtime."""
    from robot_rl.envs.factory import make_env

    if cfg.teleop is None:
        raise ValueError(
            "record-demos needs a teleop device: teleop=keyboard | spacemouse | gamepad | sim_human"
        )
    store = EpisodeStore(path, mode="a")  # an existing store is appended to: a session continues
    env = with_teleop(make_env(cfg.env, seed=cfg.seed), cfg.teleop, seed=cfg.seed)
    paced = cfg.realtime or not isinstance(cfg.teleop, SimHumanConfig)
    pacer = StepPacer(step_period_s(env) if paced else None)
    hints = "\n".join(filter(None, [motion_hints(cfg.teleop, env.rotation), button_hints(cfg.teleop)]))
    shown = open_window(f"robot-rl record-demos: {Path(path).name}", hints, window)
    try:
        return record_demos(env, store, episodes, max_attempts, log, shown, pacer)
    finally:
        env.close()  # gives the device back (the keyboard restores the terminal)
        if shown is not None:
            shown.close()
