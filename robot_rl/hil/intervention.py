"""Interventions: a person (or the simulated one) overrides the policy through a teleop device.

InterventionWrapper(env, device) reads the device once per step. While the device says the
intervention is active, the person's command is the executed action: the twist is the action's
delta part as is (dx, dy, dz[, droll, dpitch, dyaw], the layout of sim/task_spec.py, clipped to
[-1, 1]: the same scaling as the policy's actions) and the gripper the device's command, or the
last executed one when the device gives none. Otherwise the policy's action is executed.

The executed action goes through env.step like the policy's, so it meets the same safety: the
task contract's workspace clip (step_target) on every env, and on a robot (RobotEnv) the arm
node's safety filter, which checks every target_pose it receives whoever asked for it.

info of every step, the actor's contract (robot_rl/runtime/actor.py stores them):
    intervened       bool: the person's command was executed
    policy_action    float32[A]: what the policy proposed
    executed_action  float32[A]: what was executed (stored as the transition's `action`)
Buttons act on a press (not while held):
    success    ends the episode: terminated, reward 1, info["success"] = True, label "success"
    failure    ends it: truncated, reward 0, label "failure". Truncated, not terminated: a failure
               seen by a person is not an absorbing state, so the critic keeps bootstrapping
    rerecord   ends it: truncated, info["rerecord"] = True (to be kept out of training)
    estop      on a robot (an env with estop(): RobotEnv) first latches the arm node's e-stop, so
               nothing after the press reaches the arm; then holds the arm this step (zero
               motion, gripper unchanged; on a latched arm node the hold is refused too), ends
               the episode (truncated, info["estop"] = True, info["estop_message"] = what
               happened to the arm); every later step or reset raises TeleopEStop with that text
A device that disconnects: the arm is held this step (never a jump to the policy's action),
the episode ends (truncated) with info["teleop_lost"] = the reason, and the next reset starts
the device again or raises TeleopError saying why it cannot.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import gymnasium as gym
import numpy as np

from drivers.teleop.base import (
    Buttons,
    TeleopDevice,
    TeleopDisconnected,
    TeleopError,
    TeleopReading,
)
from robot_rl.hil.devices import make_device
from sim.task_spec import GRIPPER_OPEN

ACTION_DIMS = {4: False, 7: True}  # action length -> with rotation (the task contract's layouts)


class TeleopEStop(TeleopError):
    """The person pressed the device's e-stop; the run stops."""


@runtime_checkable
class EStoppable(Protocol):
    """An env whose robot has an e-stop to latch (RobotEnv: the arm node's `estop` service)."""

    def estop(self) -> str:
        """Latch it; the robot's reply, or an exception saying why it could not."""


@runtime_checkable
class PolicyAwareDevice(TeleopDevice, Protocol):
    """A device that also sees the policy (the simulated person)."""

    def episode_start(self) -> None: ...

    def observe(self, obs: Any, policy_action: np.ndarray) -> None: ...


class InterventionWrapper(gym.Wrapper):
    def __init__(self, env: gym.Env, device: TeleopDevice) -> None:
        super().__init__(env)
        shape = env.action_space.shape
        if shape is None or len(shape) != 1 or shape[0] not in ACTION_DIMS:
            raise ValueError(
                f"teleop needs an env whose action is (dx, dy, dz[, droll, dpitch, dyaw], gripper) "
                f"(sim/task_spec.py); this env's action space is {env.action_space}"
            )
        self.device = device
        self.rotation = ACTION_DIMS[shape[0]]
        self._started = False
        self._estop: str | None = None  # what the e-stop did to the arm, once pressed
        self._gripper = GRIPPER_OPEN
        self._buttons = Buttons()
        self._obs: Any = None

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None):
        self._refuse_after_estop()
        if not self._started:
            self.device.start()  # TeleopError says what is missing (device, permission, terminal)
            self._started = True
        obs, info = self.env.reset(seed=seed, options=options)
        self._gripper, self._buttons, self._obs = GRIPPER_OPEN, Buttons(), obs
        if isinstance(self.device, PolicyAwareDevice):
            self.device.episode_start()
        return obs, info

    def step(self, action: np.ndarray):
        self._refuse_after_estop()
        policy_action = np.asarray(action, dtype=np.float32)
        if isinstance(self.device, PolicyAwareDevice):
            self.device.observe(self._obs, policy_action)
        lost = None
        try:
            reading = self.device.poll()
        except TeleopDisconnected as err:
            lost, reading = str(err), None
            self._started = False  # the next reset starts it again
        pressed = self._pressed(reading)
        if pressed.estop:
            self._estop = self._latch_estop()  # before the hold below: nothing after it reaches the arm
        intervened = reading is not None and reading.active and not pressed.estop
        if reading is None or pressed.estop:
            executed = self._hold_action()
        elif intervened:
            executed = self._person_action(reading)
        else:
            executed = np.clip(policy_action, -1.0, 1.0)
        obs, reward, terminated, truncated, info = self.env.step(executed)
        self._gripper, self._obs = float(executed[-1]), obs
        info = {**info, "intervened": intervened, "policy_action": policy_action, "executed_action": executed}
        if lost is not None:
            truncated, info["teleop_lost"] = True, lost
        if pressed.estop:
            truncated, info["estop"], info["estop_message"] = True, True, self._estop
        elif pressed.success:
            reward, terminated, info["success"], info["label"] = 1.0, True, True, "success"
        elif pressed.failure:
            reward, truncated, info["success"], info["label"] = 0.0, True, False, "failure"
        if pressed.rerecord:
            truncated, info["rerecord"] = True, True
        return obs, reward, terminated, truncated, info

    def close(self) -> None:
        try:
            self.device.stop()  # restores a terminal the keyboard changed
        finally:
            self._started = False
            super().close()

    def _pressed(self, reading: TeleopReading | None) -> Buttons:
        """The buttons that went down since the last step."""
        now = reading.buttons if reading is not None else Buttons()
        before, self._buttons = self._buttons, now
        return Buttons(**{k: getattr(now, k) and not getattr(before, k) for k in vars(now)})

    def _hold_action(self) -> np.ndarray:
        """Zero motion, gripper as last commanded: the arm stays where it was asked to be."""
        action = np.zeros(self.action_space.shape, dtype=np.float32)
        action[-1] = self._gripper
        return action

    def _person_action(self, reading: TeleopReading) -> np.ndarray:
        n = 6 if self.rotation else 3
        action = np.zeros(self.action_space.shape, dtype=np.float32)
        action[:n] = reading.twist[:n]
        action[-1] = self._gripper if reading.gripper is None else reading.gripper
        return np.clip(action, -1.0, 1.0)

    def _latch_estop(self) -> str:
        """What the e-stop did to the arm: latched the robot's e-stop, or (a sim) held it."""
        robot = self.env.unwrapped
        if not isinstance(robot, EStoppable):
            return "e-stop pressed on the teleop device: the arm was held"
        try:
            reply = robot.estop()
        except Exception as err:  # whatever failed, the episode still ends with the arm held
            return (
                "e-stop pressed on the teleop device: the arm was held, but the arm node's e-stop "
                f"could NOT be latched ({err}): use the robot's own e-stop"
            )
        return (
            f"e-stop pressed on the teleop device: the arm node's e-stop is latched ({reply}) and "
            "refuses every command until released there (ros2 service call /estop "
            "std_srvs/srv/SetBool '{data: false}', or restart the bringup)"
        )

    def _refuse_after_estop(self) -> None:
        if self._estop is not None:
            raise TeleopEStop(self._estop)


def with_teleop(env: gym.Env, cfg: Any, seed: int = 0) -> InterventionWrapper:
    """env wrapped so that the device cfg names can intervene."""
    return InterventionWrapper(env, make_device(cfg, env, seed))
