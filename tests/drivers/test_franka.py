"""The Franka driver's own logic against a recording double of franky: xyzw <-> wxyz quaternions,
the motions it builds, control-type switches, gripper width mapping and the error mapping."""

from __future__ import annotations

import sys
from types import SimpleNamespace
from typing import Any

import numpy as np
import pytest
from arm_doubles import CallLog

from drivers.arm import Arm, ArmCommandRejected, ArmConnectionLost, ArmLimitViolation, ArmProtectiveStop
from drivers.franka import FrankaArm, FrankaConfig
from drivers.safety import PoseCommand, TwistCommand
from drivers.sdk import MissingSDKError

HOME_Q = np.array([0.0, -0.785, 0.0, -2.356, 0.0, 1.571, 0.785])
DOWN_WXYZ = np.array([0.0, 1.0, 0.0, 0.0])


class Motion:
    """Stands for every franky motion / value class: remembers its kind and arguments."""

    def __init__(self, kind: str, *args: Any) -> None:
        self.kind, self.args = kind, args


def _factory(kind: str):
    return lambda *args: Motion(kind, *args)


class NetworkException(Exception):
    pass


class ControlException(Exception):
    pass


class CommandException(Exception):
    pass


class InvalidOperationException(Exception):
    pass


def fake_franky() -> SimpleNamespace:
    """The slice of the franky module the driver uses."""
    return SimpleNamespace(
        Affine=_factory("Affine"),
        CartesianMotion=_factory("CartesianMotion"),
        CartesianVelocityMotion=_factory("CartesianVelocityMotion"),
        JointMotion=_factory("JointMotion"),
        RobotVelocity=_factory("RobotVelocity"),
        Twist=_factory("Twist"),
        Duration=_factory("Duration"),
        ReferenceType=SimpleNamespace(Absolute="Absolute", Relative="Relative"),
        NetworkException=NetworkException,
        ControlException=ControlException,
        CommandException=CommandException,
        InvalidOperationException=InvalidOperationException,
    )


class Errors:
    """franky.Errors: one bool per libfranka error flag."""

    def __init__(self, **flags: bool) -> None:
        self.cartesian_reflex = self.joint_reflex = False
        self.joint_position_limits_violation = self.cartesian_velocity_violation = False
        for name, value in flags.items():
            setattr(self, name, value)


class FakeRobot(CallLog):
    """franky.Robot with a scripted RobotState."""

    def __init__(self) -> None:
        super().__init__()
        self.has_errors = False
        self.errors = Errors()
        affine = SimpleNamespace(
            translation=np.array([0.3, 0.0, 0.48]), quaternion=np.array([1.0, 0.0, 0.0, 0.0])
        )
        self.state_value = SimpleNamespace(
            O_T_EE=affine,  # xyzw (1, 0, 0, 0): half a turn about x, the tool pointing down
            q=HOME_Q.copy(),
            dq=np.full(7, 0.01),
            O_F_ext_hat_K=np.array([0.5, -0.5, 4.0, 0.0, 0.1, 0.0]),
            time=SimpleNamespace(to_sec=lambda: 77.25),
            current_errors=self.errors,
            last_motion_errors=Errors(),
        )

    @property
    def state(self) -> Any:
        self._record("state")
        return self.state_value

    def move(self, motion: Any, asynchronous: bool = False) -> None:
        self._record("move", motion, asynchronous=asynchronous, ok=None)

    def stop(self) -> None:
        self._record("stop", ok=None)

    def join_motion(self, timeout: float | None = None) -> bool:
        return self._record("join_motion", timeout)


class FakeHand(CallLog):
    """franky.Gripper."""

    def __init__(self) -> None:
        super().__init__()
        self.width, self.max_width = 0.06, 0.08

    def move_async(self, width: float, speed: float) -> Any:
        return self._record("move_async", width, speed)

    def grasp_async(self, width, speed, force, epsilon_inner=0.005, epsilon_outer=0.005) -> Any:
        return self._record("grasp_async", width, speed, force, epsilon_inner, epsilon_outer)


@pytest.fixture
def rig() -> tuple[FrankaArm, FakeRobot, FakeHand]:
    robot, hand = FakeRobot(), FakeHand()
    return (
        FrankaArm(FrankaConfig(host="172.16.0.2"), robot, hand, fake_franky(), clock=lambda: 9.0),
        robot,
        hand,
    )


def moves(robot: FakeRobot) -> list[Motion]:
    return [c[1][0] for c in robot.calls if c[0] == "move"]


def test_state_converts_xyzw_to_wxyz_and_maps_the_gripper_width(rig) -> None:
    arm, _, _ = rig
    assert isinstance(arm, Arm)
    st = arm.state()
    assert np.array_equal(st.ee_quat_wxyz, DOWN_WXYZ) and np.allclose(st.ee_position, [0.3, 0.0, 0.48])
    assert np.array_equal(st.joint_positions, HOME_Q) and np.array_equal(st.ee.wrench_force, [0.5, -0.5, 4.0])
    assert st.stamp == 9.0 and st.vendor_stamp == 77.25
    assert st.gripper == pytest.approx(-0.5)  # 6 of 8 cm open


def test_pose_becomes_an_asynchronous_absolute_cartesian_motion_with_an_xyzw_affine(rig) -> None:
    arm, robot, hand = rig
    quat = np.array([0.5, 0.5, -0.5, 0.5])
    arm.move_to_pose(PoseCommand(np.array([0.4, 0.1, 0.3]), quat, -1.0, 0.0))
    (motion,), kwargs = robot.last("move")
    assert kwargs == {"asynchronous": True} and motion.kind == "CartesianMotion"
    affine, reference, factor = motion.args
    assert np.allclose(affine.args[0], [0.4, 0.1, 0.3]) and np.allclose(affine.args[1], [0.5, -0.5, 0.5, 0.5])
    assert (reference, factor) == ("Absolute", 0.2)
    assert hand.last("move_async")[0] == (pytest.approx(0.08), 0.1)  # -1 is fully open


def test_twist_holds_for_the_configured_duration_in_milliseconds(rig) -> None:
    arm, robot, _ = rig
    arm.move_twist(TwistCommand(np.array([0.0, 0.02, 0.0]), np.array([0.0, 0.0, 0.3]), -1.0, 0.0))
    (motion,), _ = robot.last("move")
    velocity, duration, _factor = motion.args
    twist = velocity.args[0]
    assert motion.kind == "CartesianVelocityMotion" and duration.args == (200,)
    assert np.array_equal(twist.args[0], [0, 0.02, 0]) and np.array_equal(twist.args[1], [0, 0, 0.3])


def test_switching_control_type_stops_the_running_motion_first(rig) -> None:
    arm, robot, _ = rig
    arm.move_to_pose(PoseCommand(np.array([0.4, 0.1, 0.3]), DOWN_WXYZ, -1.0, 0.0))
    arm.move_to_pose(PoseCommand(np.array([0.4, 0.1, 0.31]), DOWN_WXYZ, -1.0, 0.0))
    arm.move_twist(TwistCommand(np.zeros(3), np.zeros(3), -1.0, 0.0))
    names = [n for n in robot.names() if n != "state"]
    assert names == ["move", "move", "stop", "join_motion", "move"]
    assert robot.last("join_motion")[0] == (1.0,)


def test_joint_target_is_checked_then_sent_as_a_joint_motion(rig) -> None:
    arm, robot, _ = rig
    arm.joint_target(HOME_Q + 0.05)
    motion = moves(robot)[-1]
    assert motion.kind == "JointMotion" and np.allclose(motion.args[0], HOME_Q + 0.05)
    with pytest.raises(ArmLimitViolation, match="joint 4 target"):
        arm.joint_target(HOME_Q + np.array([0, 0, 0, 3.0, 0, 0, 0]))
    assert len(moves(robot)) == 1


def test_closing_grasps_with_force_and_repeats_are_not_resent(rig) -> None:
    arm, _, hand = rig
    arm.gripper(1.0)
    arm.gripper(1.0)
    arm.gripper(0.0)
    assert hand.names() == ["grasp_async", "move_async"]
    assert hand.calls[0][1] == (0.0, 0.1, 20.0, 1.0, 1.0)
    assert hand.calls[1][1] == (pytest.approx(0.04), 0.1)


def test_hold_takes_over_with_a_motion_to_stay_put(rig) -> None:
    arm, robot, _ = rig
    arm.hold()
    assert moves(robot) == []  # nothing running, nothing to hold
    arm.move_twist(TwistCommand(np.array([0.01, 0, 0]), np.zeros(3), -1.0, 0.0))
    arm.hold()
    zero = moves(robot)[-1]
    assert zero.kind == "CartesianVelocityMotion" and zero.args[1].args == (0,)
    assert np.array_equal(zero.args[0].args[0].args[0], np.zeros(3))
    arm.stop()
    assert robot.names()[-2:] == ["stop", "join_motion"]


def test_a_reflex_found_before_a_command_is_a_protective_stop(rig) -> None:
    arm, robot, _ = rig
    robot.has_errors = True
    robot.errors.cartesian_reflex = True
    with pytest.raises(ArmProtectiveStop, match="cartesian_reflex") as info:
        arm.move_to_pose(PoseCommand(np.array([0.4, 0.1, 0.3]), DOWN_WXYZ, -1.0, 0.0))
    assert info.value.vendor_code == ["cartesian_reflex"] and moves(robot) == []


@pytest.mark.parametrize(
    ("exc", "flags", "error", "match"),
    [
        (
            ControlException("motion aborted"),
            {"joint_position_limits_violation": True},
            ArmLimitViolation,
            "limits",
        ),
        (ControlException("aborted by reflex"), {}, ArmProtectiveStop, "reflex"),
        (ControlException("aborted"), {}, ArmCommandRejected, "flags"),
        (NetworkException("timeout"), {}, ArmConnectionLost, "timeout"),
        (InvalidOperationException("not in control"), {}, ArmCommandRejected, "InvalidOperation"),
    ],
)
def test_franky_exceptions_map_to_arm_errors(rig, exc, flags, error, match) -> None:
    arm, robot, _ = rig
    for name, value in flags.items():
        setattr(robot.errors, name, value)
    robot.fail["move"] = exc
    with pytest.raises(error, match=match) as info:
        arm.move_to_pose(PoseCommand(np.array([0.4, 0.1, 0.3]), DOWN_WXYZ, -1.0, 0.0))
    assert "Franka 172.16.0.2: move_to_pose failed" in str(info.value) and info.value.__cause__ is exc


def test_config_and_missing_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="dynamics_factor"):
        FrankaConfig(dynamics_factor=1.5)
    monkeypatch.setitem(sys.modules, "franky", None)
    with pytest.raises(MissingSDKError, match="pip install franky-control"):
        FrankaArm(FrankaConfig(host="172.16.0.2"))


def test_the_real_franky_classes_accept_what_the_driver_builds() -> None:
    franky = pytest.importorskip("franky", reason="franky-control not installed: SDK contract not checked")
    robot = FakeRobot()
    arm = FrankaArm(FrankaConfig(host="172.16.0.2"), robot, False, franky)
    quat = np.array([0.5, 0.5, -0.5, 0.5])
    arm.move_to_pose(PoseCommand(np.array([0.4, 0.1, 0.3]), quat, -1.0, 0.0))
    arm.move_twist(TwistCommand(np.array([0.0, 0.02, 0.0]), np.array([0.0, 0.0, 0.3]), -1.0, 0.0))
    arm.hold()
    arm.joint_target(HOME_Q + 0.05)
    built = moves(robot)
    kinds = [type(m).__name__ for m in built]
    assert kinds == ["CartesianMotion", "CartesianVelocityMotion", "CartesianVelocityMotion", "JointMotion"]
    target = built[0].target.pose.end_effector_pose
    assert np.allclose(target.translation.ravel(), [0.4, 0.1, 0.3])
    assert np.allclose(target.quaternion.ravel(), [0.5, -0.5, 0.5, 0.5])  # xyzw
    assert np.allclose(built[1].target.end_effector_twist.angular.ravel(), [0.0, 0.0, 0.3])
    assert built[1].duration.to_msec() == 200
    assert np.allclose(built[3].target.position.ravel(), HOME_Q + 0.05)
