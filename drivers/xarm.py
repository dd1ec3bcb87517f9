"""UFACTORY xArm 5/6/7 and Lite 6 behind the Arm protocol, through xarm-python-sdk (XArmAPI).

NOT YET RUN ON HARDWARE. The unit and rotation conversions, limit checks and error mapping below
are tested against a recording double of XArmAPI, built from the SDK's documented methods and
return codes (xarm-python-sdk 1.18); the real controller's servo behaviour, mode switching delays
and error timing still have to be checked on an arm.

Conventions: XArmAPI positions are millimetres and, unless told otherwise, angles are degrees; this
driver passes is_radian explicitly on every call rather than relying on the API's default. Cartesian
orientation is roll/pitch/yaw with R = Rz(yaw) @ Ry(pitch) @ Rx(roll) in the base frame (the
UFACTORY manual's convention), converted to and from the project's (w, x, y, z) quaternions here.
Every call returns a code (0 = done); move commands in servo mode (set_mode(1): poses via
set_servo_cartesian, joints via set_servo_angle_j) and in Cartesian velocity mode (set_mode(5):
twists via vc_set_cartesian_velocity, which stops by itself after twist_duration_s).

To check on hardware besides the above: state() reads the gripper position over the tool modbus
on every call when a gripper is configured; if that is slow, read it less often.
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
    check_arm_config,
    check_gripper,
    check_joint_target,
    check_pose_command,
    check_twist_command,
    reading,
)
from drivers.rotations import quat_to_rpy, rpy_to_quat
from drivers.safety import PoseCommand, TwistCommand
from drivers.sdk import import_sdk

SERVO_MODE, CARTESIAN_VELOCITY_MODE = 1, 5
# XArmAPI return codes (xarm/x3/code.py APIState) and controller error codes (C codes).
_API_DISCONNECTED = {-1: "not connected", 3: "reply timeout", 8: "send failed"}
_API_LIMIT = {-6: "Cartesian limit", -7: "joint limit", -8: "out of range"}
_API_NOT_READY = {-2: "not enabled or state not set", 9: "state not ready"}
_API_HAS_ERROR, _API_ESTOP = 1, -9
_CTRL_ESTOP = {1, 2, 3}
_CTRL_COLLISION = {22: "self-collision", 31: "collision caused abnormal current"}
_CTRL_LIMIT = {
    23: "joint angle exceeds limit",
    24: "speed exceeds limit",
    30: "feedback speed exceeds limit",
    35: "safety boundary limit",
    38: "abnormal joint angle",
    60: "linear speed exceeded in servo_j mode",
}
_TWO_PI = 2 * math.pi


@dataclass
class XArmConfig:
    host: str = ""
    dof: int = 7  # 5, 6 (xArm6, Lite 6) or 7
    twist_duration_s: float = 0.2  # a twist stops by itself after this (vc_set_cartesian_velocity duration)
    joint_low: tuple[float, ...] | None = None  # rad; None: +-2 pi (the controller checks its own too)
    joint_high: tuple[float, ...] | None = None
    max_joint_step_rad: float = 0.2
    gripper: bool = False  # the xArm Gripper on the tool flange
    gripper_open_pulse: float = 850.0  # xArm Gripper position units
    gripper_closed_pulse: float = 0.0
    gripper_speed: float = 3000.0  # r/min
    has_ft_sensor: bool = False  # the UFACTORY six-axis F/T sensor

    def __post_init__(self) -> None:
        if self.dof not in (5, 6, 7):
            raise ValueError(f"XArmConfig.dof must be 5, 6 or 7, got {self.dof!r}")
        if self.joint_low is None:
            self.joint_low = (-_TWO_PI,) * self.dof
        if self.joint_high is None:
            self.joint_high = (_TWO_PI,) * self.dof
        check_arm_config(self, ("twist_duration_s", "max_joint_step_rad", "gripper_speed"), joints=self.dof)


class XArmArm:
    """An xArm. api: an XArmAPI to use instead of connecting to config.host (tests pass a recording
    double); clock: host time (s) for state stamps."""

    def __init__(
        self, config: XArmConfig, api: Any = None, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.cfg, self._clock = config, clock
        self._low, self._high = np.array(config.joint_low), np.array(config.joint_high)
        self._deadband = GripperDeadband()
        self._mode: int | None = None
        self._closed = False
        if api is None:
            api = import_sdk("xarm.wrapper", "xarm-python-sdk", "XArmArm").XArmAPI(config.host)
        self.api = api
        if not api.connected:
            raise ArmConnectionLost(f"{self.name}: not connected", -1)
        self._code("clean_warn", api.clean_warn())
        self._code("motion_enable", api.motion_enable(enable=True))
        if config.gripper:
            self._code("set_gripper_mode", api.set_gripper_mode(0))
            self._code("set_gripper_enable", api.set_gripper_enable(True))

    @property
    def name(self) -> str:
        return f"xArm {self.cfg.host or '(injected)'}"

    # ---- error mapping ------------------------------------------------------------------------
    def _controller_error(self, where: str) -> ArmError:
        code = int(self.api.error_code)
        if code in _CTRL_ESTOP:
            return ArmEmergencyStop(f"{where}: emergency stop (C{code}); release it and re-enable", code)
        if code in _CTRL_COLLISION:
            return ArmProtectiveStop(
                f"{where}: {_CTRL_COLLISION[code]} (C{code}); clean_error to recover", code
            )
        if code in _CTRL_LIMIT:
            return ArmLimitViolation(f"{where}: {_CTRL_LIMIT[code]} (C{code})", code)
        return ArmError(f"{where}: controller error C{code}", code)

    def _code(self, action: str, code: Any) -> None:
        """Raise the ArmError that an XArmAPI return code stands for; 0 is success."""
        code = int(code)
        if code == 0:
            return
        where = f"{self.name}: {action} returned {code}"
        if code in _API_DISCONNECTED:
            raise ArmConnectionLost(f"{where} ({_API_DISCONNECTED[code]})", code)
        if code == _API_ESTOP:
            raise ArmEmergencyStop(f"{where} (emergency stop)", code)
        if code in _API_LIMIT:
            raise ArmLimitViolation(f"{where} ({_API_LIMIT[code]})", code)
        if code == _API_HAS_ERROR:
            raise self._controller_error(where)
        if code in _API_NOT_READY:
            raise ArmCommandRejected(f"{where} ({_API_NOT_READY[code]})", code)
        raise ArmCommandRejected(where, code)

    def _check_no_fault(self, action: str) -> None:
        if self.api.has_error:
            self._mode = None  # a fault drops the controller out of its mode
            raise self._controller_error(f"{self.name}: {action} refused")

    def _enter(self, mode: int, action: str) -> None:
        self._check_no_fault(action)
        if self._mode != mode:
            self._code("set_mode", self.api.set_mode(mode))
            self._code("set_state", self.api.set_state(0))
            self._mode = mode

    # ---- Arm protocol -------------------------------------------------------------------------
    def _read(self, action: str, result: tuple[int, Any], size: int) -> np.ndarray:
        code, values = result
        self._code(action, code)
        arr = np.asarray(values, dtype=np.float64)[:size]
        if arr.shape != (size,) or not np.all(np.isfinite(arr)):
            raise ArmConnectionLost(f"{self.name}: {action} gave {values!r}, expected {size} numbers")
        return arr

    def state(self) -> ArmReading:
        api, dof = self.api, self.cfg.dof
        pose = self._read("get_position", api.get_position(is_radian=False), 6)
        q = self._read("get_servo_angle", api.get_servo_angle(is_radian=True), dof)
        qd = np.asarray(api.realtime_joint_speeds, dtype=np.float64)[:dof]
        if not api.default_is_radian:  # the property follows the API's default unit
            qd = np.radians(qd)
        wrench = np.asarray(api.ft_ext_force, dtype=np.float64)[:6] if self.cfg.has_ft_sensor else None
        quat = rpy_to_quat(*np.radians(pose[3:]))
        return reading(pose[:3] / 1000.0, quat, self._clock(), q, qd, wrench, self._gripper_position())

    def _gripper_position(self) -> float | None:
        if not self.cfg.gripper:
            return None
        code, pulse = self.api.get_gripper_position()
        if int(code) != 0 or pulse is None:
            return None
        c = self.cfg
        fraction = (float(pulse) - c.gripper_open_pulse) / (c.gripper_closed_pulse - c.gripper_open_pulse)
        return float(np.clip(2.0 * fraction - 1.0, -1.0, 1.0))

    def move_to_pose(self, command: PoseCommand) -> None:
        position, quat = check_pose_command(command)
        gripper = check_gripper(command.gripper)
        self._enter(SERVO_MODE, "move_to_pose")
        mvpose = [*(position * 1000.0).tolist(), *(math.degrees(a) for a in quat_to_rpy(quat))]
        self._code("set_servo_cartesian", self.api.set_servo_cartesian(mvpose, is_radian=False))
        self._send_gripper(gripper)

    def move_twist(self, command: TwistCommand) -> None:
        linear, angular = check_twist_command(command)
        gripper = check_gripper(command.gripper)
        self._enter(CARTESIAN_VELOCITY_MODE, "move_twist")
        speeds = [*(linear * 1000.0).tolist(), *np.degrees(angular).tolist()]
        code = self.api.vc_set_cartesian_velocity(
            speeds, is_radian=False, is_tool_coord=False, duration=self.cfg.twist_duration_s
        )
        self._code("vc_set_cartesian_velocity", code)
        self._send_gripper(gripper)

    def joint_target(self, q: np.ndarray) -> None:
        current = self._read("get_servo_angle", self.api.get_servo_angle(is_radian=True), self.cfg.dof)
        target = check_joint_target(q, self._low, self._high, current, self.cfg.max_joint_step_rad)
        self._enter(SERVO_MODE, "joint_target")
        self._code("set_servo_angle_j", self.api.set_servo_angle_j(target.tolist(), is_radian=True))

    def gripper(self, position: float) -> None:
        value = check_gripper(position)
        if not self.cfg.gripper:
            raise ArmCommandRejected(f"{self.name}: no gripper configured")
        self._send_gripper(value)

    def _send_gripper(self, position: float) -> None:
        if not self.cfg.gripper or not self._deadband.should_send(position):
            return
        c = self.cfg
        pulse = (
            c.gripper_open_pulse + (c.gripper_closed_pulse - c.gripper_open_pulse) * (position + 1.0) / 2.0
        )
        code = self.api.set_gripper_position(pulse, wait=False, speed=c.gripper_speed)
        if int(code) != 0:
            self._deadband.reset()
        self._code("set_gripper_position", code)

    def hold(self) -> None:
        """Zero velocity in velocity mode; in servo mode, the measured pose as the servo target."""
        if self._mode == CARTESIAN_VELOCITY_MODE:
            code = self.api.vc_set_cartesian_velocity(
                [0.0] * 6, is_radian=False, is_tool_coord=False, duration=self.cfg.twist_duration_s
            )
            self._code("vc_set_cartesian_velocity", code)
        elif self._mode == SERVO_MODE:
            code, pose = self.api.get_position(is_radian=False)
            self._code("get_position", code)
            self._code("set_servo_cartesian", self.api.set_servo_cartesian(list(pose), is_radian=False))

    def stop(self) -> None:
        """Stop state (set_state(4)); the next command re-enters its mode with set_state(0)."""
        self._mode = None
        self._code("set_state", self.api.set_state(4))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            self.stop()
        finally:
            self.api.disconnect()
