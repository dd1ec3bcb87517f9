"""The MuJoCo twin behind the Arm protocol: the project's sim arm (sim/assets.py) driven like a real one.

The same node code then runs against the twin and the hardware. Cartesian commands go through
sim/controller.py's DiffIKController at physics rate; joint targets go straight to the position
servos. Physics advances either when told (advance(seconds): deterministic, for tests and
lock-step use) or, with realtime=True, on a background thread that keeps sim time in step with
the wall clock. State only: nothing here renders, so it needs no GL (sim/sim_camera.py
renders a camera of the same model and data).

A twist is integrated into the Cartesian target each physics step and, like the real drivers'
velocity timeouts, stops after twist_timeout_s of sim time without a new twist.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import mujoco
import numpy as np

from drivers.arm import (
    ArmError,
    ArmReading,
    check_gripper,
    check_joint_target,
    check_pose_command,
    check_twist_command,
    reading,
)
from drivers.rotations import integrate_angular_velocity
from drivers.safety import PoseCommand, TwistCommand
from sim.assets import FINGER_JOINTS, HOME_QPOS, build_model
from sim.controller import DiffIKController
from sim.task_spec import gripper_actuator


@dataclass
class SimArmConfig:
    physics_hz: float = 500.0  # only used when the twin builds its own model
    realtime: bool = False  # True: a thread steps physics against the wall clock
    twist_timeout_s: float = 0.2  # sim seconds a twist lasts without a new one
    max_joint_step_rad: float = 0.5  # a joint target farther than this from the joints is refused
    max_catch_up_steps: int = 50  # realtime: most physics steps per wake-up when behind

    def __post_init__(self) -> None:
        for name in ("physics_hz", "twist_timeout_s", "max_joint_step_rad"):
            value = getattr(self, name)
            if not (isinstance(value, (int, float)) and value > 0):
                raise ValueError(f"SimArmConfig.{name} must be a number > 0, got {value!r}")


class SimArm:
    """The twin arm. Give it a task env's model and data to drive that scene, or neither for a
    bare table scene with the arm at its home posture.

    clock: where state stamps come from; None stamps with sim time (data.time), so a safety filter
    fed by this arm must use sim time for `now` too.
    """

    def __init__(
        self,
        config: SimArmConfig | None = None,
        model: mujoco.MjModel | None = None,
        data: mujoco.MjData | None = None,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self.cfg = config or SimArmConfig()
        if (model is None) != (data is None):
            raise ValueError("give both model and data (a task env's), or neither")
        if model is None:
            model = build_model(physics_hz=self.cfg.physics_hz)
            data = mujoco.MjData(model)
        self.model, self.data = model, data
        self.ctrl = DiffIKController(model)
        self._clock = clock
        self._lock = threading.RLock()
        self._finger_qpos = [model.joint(j).qposadr[0] for j in FINGER_JOINTS]
        grip = model.actuator("gripper")
        self._gripper_act = grip.id
        self._gripper_lo, self._gripper_hi = model.actuator_ctrlrange[grip.id]
        self._mode = "pose"
        self._twist = (np.zeros(3), np.zeros(3))
        self._twist_since = 0.0
        self._thread: threading.Thread | None = None
        self._running = threading.Event()
        if self.data.time == 0.0 and not np.any(self.data.qpos[self.ctrl.qpos_slice]):
            self._home()
        self.hold()
        if self.cfg.realtime:
            self._start_thread()

    def _home(self) -> None:
        """Home posture, servos on it, gripper open: a fresh bare model starts here."""
        d = self.data
        d.qpos[self.ctrl.qpos_slice] = HOME_QPOS
        d.ctrl[self.ctrl.act_slice] = HOME_QPOS
        d.qpos[self._finger_qpos] = self._gripper_hi
        d.ctrl[self._gripper_act] = self._gripper_hi
        mujoco.mj_forward(self.model, d)

    @property
    def lock(self) -> threading.RLock:
        """Held while physics steps; hold it to read data consistently (SimCamera does)."""
        return self._lock

    # ---- physics --------------------------------------------------------------------------
    @property
    def dt(self) -> float:
        return float(self.model.opt.timestep)

    def advance(self, seconds: float) -> None:
        """Step physics for `seconds` of sim time (rounded to whole steps)."""
        if self._thread is not None:
            raise RuntimeError("advance() is for realtime=False; the realtime thread steps this twin")
        self._step(max(1, round(seconds / self.dt)))

    def _step(self, n: int) -> None:
        m, d = self.model, self.data
        with self._lock:
            for _ in range(n):
                mujoco.mj_step1(m, d)  # fresh kinematics for the IK
                if self._mode == "twist":
                    self._integrate_twist()
                if self._mode != "joint":
                    self.ctrl.apply(d)
                mujoco.mj_step2(m, d)
            mujoco.mj_forward(m, d)  # poses after the last step, for state()

    def _integrate_twist(self) -> None:
        if self.data.time - self._twist_since > self.cfg.twist_timeout_s:
            self._mode = "pose"  # dead-man: the target stays where the twist left it
            return
        linear, angular = self._twist
        self.ctrl.target_pos = self.ctrl.target_pos + linear * self.dt
        self.ctrl.target_quat = integrate_angular_velocity(self.ctrl.target_quat, angular, self.dt)

    def _start_thread(self) -> None:
        self._running.set()
        self._thread = threading.Thread(target=self._realtime_loop, name="sim-arm-physics", daemon=True)
        self._thread.start()

    def _realtime_loop(self) -> None:
        start, sim_start = time.monotonic(), self.data.time
        while self._running.is_set():
            behind = (time.monotonic() - start) - (self.data.time - sim_start)
            steps = min(int(behind / self.dt), self.cfg.max_catch_up_steps)
            if steps > 0:
                self._step(steps)
            else:
                time.sleep(self.dt)

    # ---- Arm protocol ---------------------------------------------------------------------
    def state(self) -> ArmReading:
        with self._lock:
            d = self.data
            position, quat = self.ctrl.ee_pose(d)
            width = float(d.qpos[self._finger_qpos].sum()) / 2  # tendon = mean finger travel
            span = self._gripper_hi - self._gripper_lo
            gripper = float(np.clip(1.0 - 2.0 * (width - self._gripper_lo) / span, -1.0, 1.0))
            stamp = self._clock() if self._clock is not None else float(d.time)
            return reading(
                position,
                quat,
                stamp,
                d.qpos[self.ctrl.qpos_slice].copy(),
                d.qvel[self.ctrl.dof_slice].copy(),
                wrench=None,  # the sim model has no F/T sensor
                gripper=gripper,
                vendor_stamp=float(d.time),
            )

    def move_to_pose(self, command: PoseCommand) -> None:
        position, quat = check_pose_command(command)
        gripper = check_gripper(command.gripper)
        with self._lock:
            self.ctrl.target_pos, self.ctrl.target_quat = position, quat
            self._mode = "pose"
            self._set_gripper(gripper)

    def move_twist(self, command: TwistCommand) -> None:
        linear, angular = check_twist_command(command)
        gripper = check_gripper(command.gripper)
        with self._lock:
            if self._mode != "twist":
                # Start integrating from where the ee is, not from a stale pose target.
                self.ctrl.target_pos, self.ctrl.target_quat = self.ctrl.ee_pose(self.data)
            self._twist = (linear, angular)
            self._twist_since = float(self.data.time)
            self._mode = "twist"
            self._set_gripper(gripper)

    def joint_target(self, q: np.ndarray) -> None:
        with self._lock:
            current = self.data.qpos[self.ctrl.qpos_slice].copy()
            target = check_joint_target(
                q, self.ctrl.q_low, self.ctrl.q_high, current, self.cfg.max_joint_step_rad
            )
            self.data.ctrl[self.ctrl.act_slice] = target
            self._mode = "joint"

    def gripper(self, position: float) -> None:
        value = check_gripper(position)
        with self._lock:
            self._set_gripper(value)

    def _set_gripper(self, command: float) -> None:
        lo, hi = self._gripper_lo, self._gripper_hi
        self.data.ctrl[self._gripper_act] = gripper_actuator(command, open_value=hi, closed_value=lo)

    def hold(self) -> None:
        with self._lock:
            mujoco.mj_kinematics(self.model, self.data)
            self.ctrl.target_pos, self.ctrl.target_quat = self.ctrl.ee_pose(self.data)
            self._mode = "pose"

    def stop(self) -> None:
        """The twin has no streaming mode to leave: stopping is holding."""
        self.hold()

    def close(self) -> None:
        self._running.clear()
        if self._thread is not None:
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():
                raise ArmError("sim arm physics thread did not stop within 5 s")
            self._thread = None
        self.hold()
