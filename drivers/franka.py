"""Franka arms (Panda, FR3) behind the Arm protocol, through franky (pip: franky-control).

NOT YET RUN ON HARDWARE. The conversions, limit checks and error mapping below are tested against
a recording double of franky's Robot / Gripper / motion classes, built from franky's documented
API (franky-control 2.x); how a real controller takes over between motions, how fast a reflex
shows up, and the gripper timing still have to be checked on an arm.

Conventions: franky's Affine takes a translation (m) and a quaternion in (x, y, z, w) order, in
the robot base frame; the project's quaternions are (w, x, y, z), converted here. Motions run
asynchronously and a new motion of the same control type takes over the running one, so
streaming a pose, twist or joint target each control tick is franky's intended use. Switching
control type (pose <-> twist <-> joints) stops the running motion first, because franky refuses
to change the control signal type mid-motion. A twist runs for twist_duration_s and then ends:
the arm stops by itself if the node stops commanding. The measured wrench is franky's
O_F_ext_hat_K (base frame; franky counts forces the robot applies as positive).

To check on hardware besides the above: state() reads the gripper width on every call, which in
libfranka is a network read of the gripper; if that is slow, cache it apart from the arm state.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.arm import (
    ArmCommandRejected,
    ArmConnectionLost,
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
from drivers.rotations import wxyz_to_xyzw, xyzw_to_wxyz
from drivers.safety import PoseCommand, TwistCommand
from drivers.sdk import import_sdk

# Franka datasheet joint limits (rad), Panda; FR3's differ: set them in FrankaConfig.
PANDA_JOINT_LOW = (-2.8973, -1.7628, -2.8973, -3.0718, -2.8973, -0.0175, -2.8973)
PANDA_JOINT_HIGH = (2.8973, 1.7628, 2.8973, -0.0698, 2.8973, 3.7525, 2.8973)
# libfranka error flags (franky.Errors fields) by what they mean for the node.
_REFLEX_FLAGS = (
    "cartesian_reflex",
    "joint_reflex",
    "self_collision_avoidance_violation",
    "power_limit_violation",
)


@dataclass
class FrankaConfig:
    host: str = ""
    dynamics_factor: float = 0.2  # franky's relative dynamics factor (velocity/acceleration/jerk scale)
    twist_duration_s: float = 0.2  # a twist holds this long unless renewed
    joint_low: tuple[float, ...] = PANDA_JOINT_LOW
    joint_high: tuple[float, ...] = PANDA_JOINT_HIGH
    max_joint_step_rad: float = 0.2
    gripper_speed: float = 0.1  # m/s
    grasp_force_n: float = 20.0
    grasp_threshold: float = 0.9  # a gripper command at or above this grasps (with force) instead of moving
    switch_timeout_s: float = 1.0  # waiting for a stopped motion before starting another type

    def __post_init__(self) -> None:
        if not 0 < self.dynamics_factor <= 1:
            raise ValueError(f"FrankaConfig.dynamics_factor must be in (0, 1], got {self.dynamics_factor}")
        positive = ("twist_duration_s", "max_joint_step_rad", "gripper_speed", "grasp_force_n")
        check_arm_config(self, positive, joints=7)


class FrankaArm:
    """A Franka arm. robot / gripper / sdk: a franky Robot, Gripper and the franky module to use
    instead of connecting to config.host (tests pass recording doubles); gripper=False: no
    gripper; clock: host time (s) for state stamps."""

    def __init__(
        self,
        config: FrankaConfig,
        robot: Any = None,
        gripper: Any = None,
        sdk: Any = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.cfg, self._clock = config, clock
        self.sdk = sdk or import_sdk("franky", "franky-control", "FrankaArm")
        self._low, self._high = np.array(config.joint_low), np.array(config.joint_high)
        self._deadband = GripperDeadband()
        self._kind: str | None = None  # "pose" | "twist" | "joint" | None: the running motion's type
        if robot is None:
            robot, gripper = self._connect(gripper)
        self.robot = robot
        self._gripper = gripper or None

    @property
    def name(self) -> str:
        return f"Franka {self.cfg.host or '(injected)'}"

    def _connect(self, gripper: Any) -> tuple[Any, Any]:
        try:
            robot = self.sdk.Robot(self.cfg.host)
            robot.relative_dynamics_factor = self.cfg.dynamics_factor
            if gripper is None:
                gripper = self.sdk.Gripper(self.cfg.host)
        except Exception as exc:
            raise self._map(exc, "connect") from exc
        return robot, gripper

    # ---- error mapping ------------------------------------------------------------------------
    def _error_flags(self) -> list[str]:
        """Names of libfranka's error flags set now or when the last motion aborted."""
        try:
            state = self.robot.state
            errors = [state.current_errors, state.last_motion_errors]
        except Exception:
            return []
        return sorted({f for e in errors for f in dir(e) if not f.startswith("_") and getattr(e, f) is True})

    def _map(self, exc: Exception, action: str) -> ArmError:
        """The ArmError for a franky exception, using the error flags to tell a reflex from a limit."""
        where = f"{self.name}: {action} failed: {type(exc).__name__}: {exc}"
        sdk = self.sdk
        if isinstance(exc, sdk.NetworkException):
            return ArmConnectionLost(where, "NetworkException")
        if isinstance(exc, sdk.ControlException):
            flags = self._error_flags()
            reflex = [f for f in flags if f in _REFLEX_FLAGS]
            if reflex or "reflex" in str(exc):
                return ArmProtectiveStop(
                    f"{where}; reflex {reflex}: call recover_from_errors()", reflex or None
                )
            limits = [f for f in flags if "limit" in f or f.endswith("_violation")]
            if limits:
                return ArmLimitViolation(f"{where}; {limits}", limits)
            return ArmCommandRejected(f"{where}; flags {flags}", flags or None)
        if isinstance(exc, (sdk.CommandException, sdk.InvalidOperationException)):
            return ArmCommandRejected(where, type(exc).__name__)
        return ArmError(where, type(exc).__name__)

    def _move(self, action: str, motion: Any) -> None:
        try:
            self.robot.move(motion, asynchronous=True)
        except Exception as exc:
            self._kind = None
            raise self._map(exc, action) from exc

    def _check_no_fault(self, action: str) -> None:
        """An asynchronous motion that hit a reflex fails in the background: surface it here."""
        if self.robot.has_errors:
            flags = self._error_flags()
            self._kind = None
            raise self._map(self.sdk.ControlException(f"robot has errors {flags}"), action)

    # ---- Arm protocol -------------------------------------------------------------------------
    def state(self) -> ArmReading:
        try:
            s = self.robot.state
            ee = s.O_T_EE
            position, quat = (
                np.asarray(ee.translation, float).ravel(),
                np.asarray(ee.quaternion, float).ravel(),
            )
            q, dq = np.asarray(s.q, float).ravel(), np.asarray(s.dq, float).ravel()
            wrench = np.asarray(s.O_F_ext_hat_K, float).ravel()
            robot_time = float(s.time.to_sec())
        except Exception as exc:
            raise self._map(exc, "read state") from exc
        gripper = self._gripper_position()
        return reading(position, xyzw_to_wxyz(quat), self._clock(), q, dq, wrench, gripper, robot_time)

    def _gripper_position(self) -> float | None:
        if self._gripper is None:
            return None
        width, max_width = float(self._gripper.width), float(self._gripper.max_width)
        return float(np.clip(1.0 - 2.0 * width / max_width, -1.0, 1.0)) if max_width > 0 else None

    def move_to_pose(self, command: PoseCommand) -> None:
        position, quat = check_pose_command(command)
        gripper = check_gripper(command.gripper)
        self._enter("pose", "move_to_pose")
        sdk = self.sdk
        target = sdk.Affine(position, wxyz_to_xyzw(quat))
        motion = sdk.CartesianMotion(target, sdk.ReferenceType.Absolute, self.cfg.dynamics_factor)
        self._move("move_to_pose", motion)
        self._send_gripper(gripper)

    def move_twist(self, command: TwistCommand) -> None:
        linear, angular = check_twist_command(command)
        gripper = check_gripper(command.gripper)
        self._enter("twist", "move_twist")
        sdk = self.sdk
        velocity = sdk.RobotVelocity(sdk.Twist(linear, angular))
        duration = sdk.Duration(round(self.cfg.twist_duration_s * 1000))  # franky Durations are ms
        self._move("move_twist", sdk.CartesianVelocityMotion(velocity, duration, self.cfg.dynamics_factor))
        self._send_gripper(gripper)

    def joint_target(self, q: np.ndarray) -> None:
        try:
            current = np.asarray(self.robot.state.q, float).ravel()
        except Exception as exc:
            raise self._map(exc, "read joints") from exc
        target = check_joint_target(q, self._low, self._high, current, self.cfg.max_joint_step_rad)
        self._enter("joint", "joint_target")
        sdk = self.sdk
        self._move(
            "joint_target", sdk.JointMotion(target, sdk.ReferenceType.Absolute, self.cfg.dynamics_factor)
        )

    def gripper(self, position: float) -> None:
        value = check_gripper(position)
        if self._gripper is None:
            raise ArmCommandRejected(f"{self.name}: no gripper configured")
        self._send_gripper(value)

    def _send_gripper(self, position: float) -> None:
        """A closing command grasps with force (a plain move to zero width fails on an object);
        anything else moves the fingers to the width it maps to."""
        if self._gripper is None or not self._deadband.should_send(position):
            return
        c = self.cfg
        try:
            if position >= c.grasp_threshold:
                # Wide epsilons: any width counts as a grasp, so the fingers keep squeezing.
                self._gripper.grasp_async(0.0, c.gripper_speed, c.grasp_force_n, 1.0, 1.0)
            else:
                width = float(self._gripper.max_width) * (1.0 - position) / 2.0
                self._gripper.move_async(width, c.gripper_speed)
        except Exception as exc:
            self._deadband.reset()
            raise self._map(exc, "gripper") from exc

    def _enter(self, kind: str, action: str) -> None:
        self._check_no_fault(action)
        if self._kind is not None and self._kind != kind:
            self._stop_motion(action)
        self._kind = kind

    def _stop_motion(self, action: str) -> None:
        try:
            self.robot.stop()
            self.robot.join_motion(self.cfg.switch_timeout_s)
        except Exception as exc:
            raise self._map(exc, f"{action} (stopping the running motion)") from exc
        finally:
            self._kind = None

    def hold(self) -> None:
        """Take over the running motion with one that keeps the arm where it is."""
        if self._kind is None:
            return
        sdk, st = self.sdk, self.state()
        if self._kind == "twist":
            zero = sdk.RobotVelocity(sdk.Twist(np.zeros(3), np.zeros(3)))
            motion = sdk.CartesianVelocityMotion(zero, sdk.Duration(0), self.cfg.dynamics_factor)
        elif self._kind == "pose":
            here = sdk.Affine(st.ee_position, wxyz_to_xyzw(st.ee_quat_wxyz))
            motion = sdk.CartesianMotion(here, sdk.ReferenceType.Absolute, self.cfg.dynamics_factor)
        else:
            motion = sdk.JointMotion(st.joint_positions, sdk.ReferenceType.Absolute, self.cfg.dynamics_factor)
        self._move("hold", motion)

    def stop(self) -> None:
        if self._kind is not None:
            self._stop_motion("stop")

    def close(self) -> None:
        self.stop()
