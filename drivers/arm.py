"""The arm seam: what every arm driver (MuJoCo twin, UR, Franka, xArm) gives the rest.

Units and frames are those of drivers/safety.py: metres, unit quaternions (w, x, y, z) in the
robot base frame, m/s and rad/s, N and Nm, gripper -1 fully open .. +1 closed. Commands reach a
driver only after the SafetyFilter passed them; each driver still checks what it can check alone
(finite numbers, unit quaternions, joint limits, gripper range) so a bug upstream raises a clear
ArmError instead of moving the arm.

A driver's state() returns an ArmReading. Its `ee` field is the safety filter's own ArmState, so
`safety.filter(cmd, arm.state().ee, now)` works as is; the reading adds what the filter does not
use (joints, torque, gripper). ArmState is composed rather than subclassed because the filter
accepts exactly its own type.

Vendor errors map onto one hierarchy, so a node can react to the kind (reconnect, wait for an
operator, fix a command) without knowing the vendor:
    ArmError
      ArmConnectionLost    the link to the controller is gone or timed out
      ArmProtectiveStop    the arm stopped itself: protective stop, reflex, collision detection
      ArmEmergencyStop     an e-stop circuit is open
      ArmLimitViolation    a command or the arm beyond joint / workspace / speed limits
      ArmCommandRejected   the controller refused a command for another reason
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import numpy as np

from drivers.rotations import as_unit_quat
from drivers.safety import ArmState, PoseCommand, TwistCommand


class ArmError(RuntimeError):
    """An arm failure. vendor_code: the SDK's own code or name, for logs and support tickets."""

    def __init__(self, message: str, vendor_code: object = None) -> None:
        super().__init__(message)
        self.vendor_code = vendor_code


class ArmConnectionLost(ArmError):
    pass


class ArmProtectiveStop(ArmError):
    pass


class ArmEmergencyStop(ArmError):
    pass


class ArmLimitViolation(ArmError):
    pass


class ArmCommandRejected(ArmError):
    pass


@dataclass(frozen=True, eq=False)
class ArmReading:
    """One measurement of the arm.

    ee: ee pose (base frame, m, wxyz), measured force (3,) N or None, and stamp (s, on the
    host clock the driver was given, so the safety filter can judge staleness);
    joint_positions / joint_velocities: (n,) rad, rad/s; wrench_torque: (3,) Nm or None;
    gripper: measured opening as a command value (-1 open .. +1 closed) or None without one;
    vendor_stamp: the controller's own timestamp (s) or None; wrench sign as the vendor reports
    it (the safety filter uses only the magnitude).
    """

    ee: ArmState
    joint_positions: np.ndarray
    joint_velocities: np.ndarray
    wrench_torque: np.ndarray | None = None
    gripper: float | None = None
    vendor_stamp: float | None = None

    @property
    def ee_position(self) -> np.ndarray:
        return self.ee.ee_position

    @property
    def ee_quat_wxyz(self) -> np.ndarray:
        return self.ee.ee_quat_wxyz

    @property
    def stamp(self) -> float:
        return self.ee.stamp


@runtime_checkable
class Arm(Protocol):
    """An arm driver. Commands return once sent (they do not wait for the motion to finish)."""

    def state(self) -> ArmReading:
        """The newest measurement; ArmError when the arm cannot be read. A fault (protective stop,
        reflex) leaves the measurement valid: it shows as an ArmError from the next command."""

    def move_to_pose(self, command: PoseCommand) -> None:
        """Servo the ee towards an absolute pose (a small step: the filter bounds it)."""

    def move_twist(self, command: TwistCommand) -> None:
        """Move the ee at a base-frame velocity until the next command, hold() or a timeout."""

    def joint_target(self, q: np.ndarray) -> None:
        """Servo the joints towards absolute positions (rad)."""

    def gripper(self, position: float) -> None:
        """Move the gripper: -1 fully open .. +1 closed."""

    def hold(self) -> None:
        """Stop moving and keep the current pose under control."""

    def stop(self) -> None:
        """Stop moving and leave streaming control; the next command re-enters it."""

    def close(self) -> None:
        """stop(), then release the connection; safe to call twice."""


class GripperDevice(Protocol):
    """A gripper driven apart from the arm SDK (e.g. a Robotiq on a UR), in command units."""

    def move(self, position: float) -> None:
        """-1 fully open .. +1 closed."""

    def position(self) -> float | None:
        """Measured opening in command units, or None when unknown."""


def _vector(x: object, n: int, what: str) -> np.ndarray:
    try:
        v = np.array(x, dtype=np.float64)
    except (TypeError, ValueError):
        v = np.full(0, np.nan)
    if v.shape != (n,) or not np.all(np.isfinite(v)):
        raise ValueError(f"{what} must be {n} finite numbers, got {x!r}")
    return v


def check_pose_command(command: PoseCommand) -> tuple[np.ndarray, np.ndarray]:
    """(position (3,) m, unit quat wxyz) of a pose command; ValueError when malformed."""
    if not isinstance(command, PoseCommand):
        raise ValueError(f"expected a PoseCommand, got {type(command).__name__}")
    position = _vector(command.position, 3, "PoseCommand.position (m)")
    return position, as_unit_quat(command.quat_wxyz, "PoseCommand.quat_wxyz")


def check_twist_command(command: TwistCommand) -> tuple[np.ndarray, np.ndarray]:
    """(linear (3,) m/s, angular (3,) rad/s) of a twist command; ValueError when malformed."""
    if not isinstance(command, TwistCommand):
        raise ValueError(f"expected a TwistCommand, got {type(command).__name__}")
    return (
        _vector(command.linear, 3, "TwistCommand.linear (m/s)"),
        _vector(command.angular, 3, "TwistCommand.angular (rad/s)"),
    )


def check_gripper(position: float) -> float:
    """position as a float in [-1, 1]; ArmLimitViolation outside, ValueError when not a number."""
    if isinstance(position, bool) or not isinstance(position, (int, float, np.integer, np.floating)):
        raise ValueError(f"gripper position must be a number in [-1, 1], got {position!r}")
    value = float(position)
    if not math.isfinite(value) or not -1.0 <= value <= 1.0:
        raise ArmLimitViolation(f"gripper position {value} outside [-1 open, +1 closed]")
    return value


def check_joint_target(
    q: object,
    low: np.ndarray,
    high: np.ndarray,
    current: np.ndarray | None = None,
    max_step_rad: float | None = None,
) -> np.ndarray:
    """q as float64 (n,) inside [low, high] and, given the current joints, within max_step_rad of
    them per joint. ValueError when malformed; ArmLimitViolation naming the joint otherwise."""
    target = _vector(q, len(low), "joint target (rad)")
    for i, (value, lo, hi) in enumerate(zip(target, low, high, strict=True)):
        if not lo <= value <= hi:
            raise ArmLimitViolation(f"joint {i + 1} target {value:.4f} rad outside [{lo:.4f}, {hi:.4f}]")
    if current is not None and max_step_rad is not None:
        step = np.abs(target - current)
        worst = int(np.argmax(step))
        if step[worst] > max_step_rad:
            raise ArmLimitViolation(
                f"joint {worst + 1} target is {step[worst]:.4f} rad from the current position "
                f"(max step {max_step_rad} rad): command a path, not a jump"
            )
    return target


def check_arm_config(config: object, positive: tuple[str, ...], joints: int) -> None:
    """Shared start-up checks of a real arm's config: the named fields > 0, and joint_low /
    joint_high as float tuples (hydra hands over lists) of `joints` values each."""
    name = type(config).__name__
    for field in positive:
        if not getattr(config, field) > 0:
            raise ValueError(f"{name}.{field} must be > 0, got {getattr(config, field)!r}")
    low = tuple(float(x) for x in config.joint_low)  # type: ignore[attr-defined]
    high = tuple(float(x) for x in config.joint_high)  # type: ignore[attr-defined]
    if len(low) != joints or len(high) != joints:
        raise ValueError(f"{name}.joint_low / joint_high need {joints} values (rad)")
    config.joint_low, config.joint_high = low, high  # type: ignore[attr-defined]


class GripperDeadband:
    """Decides when a gripper command is worth sending.

    Vendor grippers run each command as a slow action that restarts when a new one arrives, so
    sending the same target every control tick stalls them. A command goes out when it differs
    from the last one sent by more than `deadband` (command units).
    """

    def __init__(self, deadband: float = 0.05) -> None:
        if not deadband >= 0:
            raise ValueError(f"gripper deadband must be >= 0, got {deadband!r}")
        self.deadband = deadband
        self.last_sent: float | None = None

    def should_send(self, position: float) -> bool:
        if self.last_sent is not None and abs(position - self.last_sent) <= self.deadband:
            return False
        self.last_sent = position
        return True

    def reset(self) -> None:
        """Forget the last command (after a fault the gripper state is unknown)."""
        self.last_sent = None


def reading(
    ee_position: np.ndarray,
    ee_quat_wxyz: np.ndarray,
    stamp: float,
    joint_positions: np.ndarray,
    joint_velocities: np.ndarray,
    wrench: np.ndarray | None = None,
    gripper: float | None = None,
    vendor_stamp: float | None = None,
) -> ArmReading:
    """An ArmReading from plain arrays; wrench is (6,) force then torque, or None."""
    force = torque = None
    if wrench is not None:
        w = np.asarray(wrench, dtype=np.float64)
        force, torque = w[:3].copy(), w[3:6].copy()
    ee = ArmState(np.asarray(ee_position, np.float64), np.asarray(ee_quat_wxyz, np.float64), force, stamp)
    return ArmReading(
        ee,
        np.asarray(joint_positions, np.float64),
        np.asarray(joint_velocities, np.float64),
        torque,
        gripper,
        vendor_stamp,
    )
