"""The arm seam's shared checks: command validation, joint limits, gripper range and deadband, and
that a driver's reading feeds the safety filter as is."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.arm import (
    ArmError,
    ArmLimitViolation,
    ArmProtectiveStop,
    GripperDeadband,
    check_gripper,
    check_joint_target,
    check_pose_command,
    check_twist_command,
    reading,
)
from drivers.safety import PoseCommand, SafetyFilter, SafetyLimits, TwistCommand

LOW, HIGH = -np.ones(3), np.ones(3)
DOWN = np.array([0.0, 1.0, 0.0, 0.0])


def test_pose_and_twist_commands_are_parsed_to_float_arrays() -> None:
    pos, quat = check_pose_command(PoseCommand([0.4, 0, 0.2], [0, 1.0, 0, 0], 0.0, 1.0))
    assert pos.dtype == np.float64 and np.array_equal(quat, DOWN)
    lin, ang = check_twist_command(TwistCommand([0.1, 0, 0], [0, 0, 0.2], 0.0, 1.0))
    assert np.array_equal(lin, [0.1, 0, 0]) and np.array_equal(ang, [0, 0, 0.2])


@pytest.mark.parametrize(
    ("cmd", "match"),
    [
        (PoseCommand([0.4, 0, float("nan")], DOWN, 0.0, 1.0), "position"),
        (PoseCommand([0.4, 0], DOWN, 0.0, 1.0), "position"),
        (PoseCommand([0.4, 0, 0.2], [0, 2.0, 0, 0], 0.0, 1.0), "quat_wxyz"),
        (TwistCommand([0.1, 0, 0], [0, 0, float("inf")], 0.0, 1.0), "angular"),
        ("move!", "expected a"),
    ],
)
def test_malformed_commands_raise_value_error_naming_the_field(cmd: object, match: str) -> None:
    check = check_twist_command if isinstance(cmd, TwistCommand) else check_pose_command
    with pytest.raises(ValueError, match=match):
        check(cmd)  # type: ignore[arg-type]


def test_joint_target_limits_and_step() -> None:
    q = check_joint_target([0.5, -0.5, 0.0], LOW, HIGH, current=np.zeros(3), max_step_rad=0.6)
    assert np.array_equal(q, [0.5, -0.5, 0.0])
    with pytest.raises(ArmLimitViolation, match=r"joint 2 target -1\.5000"):
        check_joint_target([0.0, -1.5, 0.0], LOW, HIGH)
    with pytest.raises(ArmLimitViolation, match=r"joint 3 target is 0\.9000 rad from"):
        check_joint_target([0.0, 0.0, 0.9], LOW, HIGH, current=np.zeros(3), max_step_rad=0.5)
    with pytest.raises(ValueError, match="3 finite numbers"):
        check_joint_target([0.0, 0.0], LOW, HIGH)


def test_gripper_range() -> None:
    assert check_gripper(-1) == -1.0 and check_gripper(np.float32(0.5)) == 0.5
    for bad in (1.01, -2.0, float("nan")):
        with pytest.raises(ArmLimitViolation, match="gripper"):
            check_gripper(bad)
    with pytest.raises(ValueError, match="gripper"):
        check_gripper(True)


def test_gripper_deadband_sends_only_changes() -> None:
    band = GripperDeadband(0.1)
    sent = [g for g in (-1.0, -1.0, -0.95, -0.5, -0.45, 1.0, 1.0) if band.should_send(g)]
    assert sent == [-1.0, -0.5, 1.0]
    band.reset()
    assert band.should_send(1.0)
    with pytest.raises(ValueError):
        GripperDeadband(-0.1)


def test_errors_carry_the_vendor_code() -> None:
    err = ArmProtectiveStop("reflex", vendor_code="cartesian_reflex")
    assert isinstance(err, ArmError) and err.vendor_code == "cartesian_reflex"


def test_a_reading_feeds_the_safety_filter_as_is() -> None:
    r = reading([0.5, 0, 0.2], DOWN, 10.0, np.zeros(7), np.zeros(7), wrench=[1, 2, 3, 0.1, 0.2, 0.3])
    assert np.array_equal(r.ee.wrench_force, [1, 2, 3]) and np.array_equal(r.wrench_torque, [0.1, 0.2, 0.3])
    assert r.stamp == 10.0 and np.array_equal(r.ee_position, [0.5, 0, 0.2])
    limits = SafetyLimits((0.2, -0.3, 0.0), (0.8, 0.3, 0.5), 0.03, 0.2, 0.25, 1.0, 30.0, 0.2)
    decision = SafetyFilter(limits).filter(PoseCommand(np.array([0.51, 0, 0.2]), DOWN, 0.0, 10.0), r.ee, 10.0)
    assert decision.ok
    no_ft = reading([0.5, 0, 0.2], DOWN, 10.0, np.zeros(7), np.zeros(7))
    assert no_ft.ee.wrench_force is None and no_ft.wrench_torque is None
