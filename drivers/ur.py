"""Universal Robots arms (CB3, e-Series) behind the Arm protocol, through ur_rtde (pip: ur-rtde).

NOT YET RUN ON HARDWARE. The unit and frame conversions, limit checks and error mapping below are
tested against a recording double of ur_rtde's RTDEControlInterface / RTDEReceiveInterface, built
from that SDK's documented methods; the behaviour of a real controller (servo smoothing, how fast
a protective stop shows in the status bits, the frame of the TCP force) still has to be checked
on an arm before anyone relies on this driver.

Conventions: ur_rtde poses are [x, y, z, rx, ry, rz]: metres and an axis-angle rotation vector
(rad) in the controller's base frame, which is ROS ur_description's `base`, turned 180 degrees
about z from `base_link`. Speeds are m/s and rad/s in the same frame. Poses are streamed with
servoL, twists with speedL, joint targets with servoJ; each is a target for the next
command_period_s, so a node must keep commanding or call hold().
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.arm import (
    ArmCommandRejected,
    ArmConnectionLost,
    ArmEmergencyStop,
    ArmError,
    ArmLimitViolation,
    ArmProtectiveStop,
    ArmReading,
    GripperDeadband,
    GripperDevice,
    check_arm_config,
    check_gripper,
    check_joint_target,
    check_pose_command,
    check_twist_command,
    reading,
)
from drivers.rotations import quat_to_rotvec, rotvec_to_quat
from drivers.safety import PoseCommand, TwistCommand
from drivers.sdk import import_sdk

# UR safety modes (RTDE safety_mode) that the error mapping distinguishes.
_SAFETY_MODES = {
    1: "normal",
    2: "reduced",
    3: "protective stop",
    4: "recovery",
    5: "safeguard stop",
    6: "system emergency stop",
    7: "robot emergency stop",
    8: "violation",
    9: "fault",
    12: "automatic mode safeguard stop",
}
_PROTECTIVE = {3, 5, 12}
_TWO_PI = 2 * math.pi


@dataclass
class URConfig:
    host: str = ""
    rtde_frequency_hz: float = -1.0  # -1: the controller's own rate (500 Hz e-Series, 125 Hz CB3)
    command_period_s: float = 0.1  # servoL/servoJ `time`: how long one target steers the arm
    lookahead_time_s: float = 0.1  # servo smoothing; UR allows [0.03, 0.2]
    servo_gain: float = 300.0  # UR allows [100, 2000]
    twist_acceleration: float = 0.5  # m/s^2 towards a commanded twist
    stop_deceleration: float = 2.0  # m/s^2 when leaving servo or speed mode
    joint_low: tuple[float, ...] = (-_TWO_PI,) * 6
    joint_high: tuple[float, ...] = (_TWO_PI,) * 6
    max_joint_step_rad: float = 0.2  # a joint target farther than this from the joints is refused

    def __post_init__(self) -> None:
        if not 0.03 <= self.lookahead_time_s <= 0.2:
            raise ValueError(f"URConfig.lookahead_time_s must be in [0.03, 0.2], got {self.lookahead_time_s}")
        if not 100 <= self.servo_gain <= 2000:
            raise ValueError(f"URConfig.servo_gain must be in [100, 2000], got {self.servo_gain}")
        positive = ("command_period_s", "twist_acceleration", "stop_deceleration", "max_joint_step_rad")
        check_arm_config(self, positive, joints=6)


class URArm:
    """A UR arm. control / receive: ur_rtde interfaces to use instead of connecting to config.host
    (tests pass recording doubles); gripper: a separately driven gripper, or None; clock: host
    time (s) for state stamps."""

    def __init__(
        self,
        config: URConfig,
        control: Any = None,
        receive: Any = None,
        gripper: GripperDevice | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg = config
        self._gripper, self._clock = gripper, clock
        self._deadband = GripperDeadband()
        self._low, self._high = np.array(config.joint_low), np.array(config.joint_high)
        self._mode: str | None = None  # "servo" | "speed" | None (idle)
        self._closed = False
        if control is None or receive is None:
            control, receive = self._connect()
        self.control, self.receive = control, receive

    @property
    def name(self) -> str:
        return f"UR {self.cfg.host or '(injected)'}"

    def _connect(self) -> tuple[Any, Any]:
        rtde_control = import_sdk("rtde_control", "ur-rtde", "URArm")
        rtde_receive = import_sdk("rtde_receive", "ur-rtde", "URArm")
        try:
            receive = rtde_receive.RTDEReceiveInterface(self.cfg.host, self.cfg.rtde_frequency_hz)
            control = rtde_control.RTDEControlInterface(self.cfg.host, self.cfg.rtde_frequency_hz)
        except RuntimeError as exc:
            raise ArmConnectionLost(f"{self.name}: cannot connect over RTDE: {exc}", "connect") from exc
        return control, receive

    # ---- error mapping ------------------------------------------------------------------------
    def _fault(self, action: str, exc: Exception | None = None) -> ArmError:
        """The ArmError that explains why `action` failed, read from the controller's status."""
        detail = f": {exc}" if exc is not None else ""
        try:
            connected = bool(self.receive.isConnected()) and bool(self.control.isConnected())
            estop = bool(self.receive.isEmergencyStopped())
            pstop = bool(self.receive.isProtectiveStopped())
            mode = int(self.receive.getSafetyMode())
        except Exception as status_exc:  # the status cannot be read either: the link is gone
            return ArmConnectionLost(
                f"{self.name}: {action} failed and status unreadable ({status_exc}){detail}"
            )
        where = f"{self.name}: {action} failed"
        mode_name = _SAFETY_MODES.get(mode, f"safety mode {mode}")
        if not connected:
            return ArmConnectionLost(f"{where}: RTDE connection lost{detail}", "disconnected")
        if estop or mode in (6, 7):
            return ArmEmergencyStop(
                f"{where}: {mode_name}; release the e-stop, then unlock on the pendant", mode
            )
        if pstop or mode in _PROTECTIVE:
            return ArmProtectiveStop(f"{where}: {mode_name}; clear it on the pendant or dashboard", mode)
        if mode == 8:
            return ArmLimitViolation(f"{where}: safety limit violation{detail}", mode)
        if mode == 9:
            return ArmError(f"{where}: safety system fault{detail}", mode)
        return ArmCommandRejected(f"{where}: refused by the controller ({mode_name}){detail}", mode)

    def _command(self, action: str, fn: Callable[..., Any], *args: Any) -> None:
        try:
            ok = fn(*args)
        except Exception as exc:  # ur_rtde raises RuntimeError when the control script is gone
            raise self._fault(action, exc) from exc
        if ok is False:
            raise self._fault(action)

    def _read(self, action: str, fn: Callable[[], Any], size: int) -> np.ndarray:
        try:
            values = np.asarray(fn(), dtype=np.float64)
        except Exception as exc:
            raise self._fault(action, exc) from exc
        if values.shape != (size,) or not np.all(np.isfinite(values)):
            raise ArmConnectionLost(f"{self.name}: {action} gave {values.tolist()}, expected {size} numbers")
        return values

    # ---- Arm protocol -------------------------------------------------------------------------
    def state(self) -> ArmReading:
        pose = self._read("getActualTCPPose", self.receive.getActualTCPPose, 6)
        q = self._read("getActualQ", self.receive.getActualQ, 6)
        qd = self._read("getActualQd", self.receive.getActualQd, 6)
        wrench = self._read("getActualTCPForce", self.receive.getActualTCPForce, 6)
        controller_time = float(self._read("getTimestamp", lambda: [self.receive.getTimestamp()], 1)[0])
        gripper = self._gripper.position() if self._gripper is not None else None
        return reading(
            pose[:3], rotvec_to_quat(pose[3:]), self._clock(), q, qd, wrench, gripper, controller_time
        )

    def move_to_pose(self, command: PoseCommand) -> None:
        position, quat = check_pose_command(command)
        gripper = check_gripper(command.gripper)
        self._enter("servo")
        pose = [*position.tolist(), *quat_to_rotvec(quat).tolist()]
        self._servo("servoL", self.control.servoL, pose)
        self._send_gripper(gripper)

    def move_twist(self, command: TwistCommand) -> None:
        linear, angular = check_twist_command(command)
        gripper = check_gripper(command.gripper)
        self._enter("speed")
        speed = [*linear.tolist(), *angular.tolist()]
        self._command("speedL", self.control.speedL, speed, self.cfg.twist_acceleration, 0.0)
        self._send_gripper(gripper)

    def joint_target(self, q: np.ndarray) -> None:
        current = self._read("getActualQ", self.receive.getActualQ, 6)
        target = check_joint_target(q, self._low, self._high, current, self.cfg.max_joint_step_rad)
        self._enter("servo")
        self._servo("servoJ", self.control.servoJ, target.tolist())

    def _servo(self, action: str, fn: Callable[..., Any], target: list[float]) -> None:
        """servoL / servoJ share a signature; their speed and acceleration are unused (ur_rtde's
        documentation says so), hence 0."""
        c = self.cfg
        self._command(action, fn, target, 0.0, 0.0, c.command_period_s, c.lookahead_time_s, c.servo_gain)

    def gripper(self, position: float) -> None:
        value = check_gripper(position)
        if self._gripper is None:
            raise ArmCommandRejected(f"{self.name}: no gripper configured")
        self._send_gripper(value)

    def _send_gripper(self, position: float) -> None:
        if self._gripper is not None and self._deadband.should_send(position):
            self._gripper.move(position)

    def _enter(self, mode: str) -> None:
        """Leave the other streaming mode first: servo and speed commands must not interleave."""
        if self._mode is not None and self._mode != mode:
            self._leave()
        self._mode = mode

    def _leave(self) -> None:
        if self._mode == "servo":
            self._command("servoStop", self.control.servoStop, self.cfg.stop_deceleration)
        elif self._mode == "speed":
            self._command("speedStop", self.control.speedStop, self.cfg.stop_deceleration)
        self._mode = None

    def hold(self) -> None:
        """Decelerate to rest; an idle UR holds its pose."""
        self._leave()

    def stop(self) -> None:
        """As hold(): leaving servo / speed mode is what stops a UR without a protective stop."""
        self._leave()

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self._leave()
        finally:
            self.control.stopScript()
            self.control.disconnect()
            self.receive.disconnect()
