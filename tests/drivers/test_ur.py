"""The UR driver's own logic against a recording double of ur_rtde: rotation vectors <-> quaternions,
the exact servoL / speedL / servoJ calls, mode switches, limit checks and the error mapping."""

from __future__ import annotations

import math
import sys

import numpy as np
import pytest
from arm_doubles import CallLog, FakeGripper

from drivers.arm import (
    Arm,
    ArmCommandRejected,
    ArmConnectionLost,
    ArmEmergencyStop,
    ArmError,
    ArmLimitViolation,
    ArmProtectiveStop,
)
from drivers.safety import PoseCommand, TwistCommand
from drivers.sdk import MissingSDKError
from drivers.ur import URArm, URConfig

S = math.sqrt(0.5)
DOWN = np.array([0.0, 1.0, 0.0, 0.0])  # tool pointing down: half a turn about base x


class FakeRTDEControl(CallLog):
    """ur_rtde.RTDEControlInterface's methods used by the driver."""

    connected = True

    def servoL(self, pose, speed, acceleration, time, lookahead_time, gain):
        return self._record("servoL", pose, speed, acceleration, time, lookahead_time, gain)

    def speedL(self, xd, acceleration=0.25, time=0.0):
        return self._record("speedL", xd, acceleration, time)

    def servoJ(self, q, speed, acceleration, time, lookahead_time, gain):
        return self._record("servoJ", q, speed, acceleration, time, lookahead_time, gain)

    def servoStop(self, a=10.0):
        return self._record("servoStop", a)

    def speedStop(self, a=10.0):
        return self._record("speedStop", a)

    def stopScript(self):
        return self._record("stopScript", ok=None)

    def disconnect(self):
        return self._record("disconnect", ok=None)

    def isConnected(self):
        return self.connected


class FakeRTDEReceive(CallLog):
    """ur_rtde.RTDEReceiveInterface with a scripted robot state."""

    def __init__(self) -> None:
        super().__init__()
        self.tcp_pose = [0.4, -0.1, 0.3, math.pi, 0.0, 0.0]
        self.q = [0.0, -1.57, 1.57, -1.57, -1.57, 0.0]
        self.qd = [0.01, 0.0, 0.0, 0.0, 0.0, -0.02]
        self.tcp_force = [1.0, 2.0, -3.0, 0.1, 0.2, 0.3]
        self.connected, self.estop, self.pstop, self.safety_mode = True, False, False, 1

    def getActualTCPPose(self):
        return self._record("getActualTCPPose", ok=self.tcp_pose)

    def getActualQ(self):
        return self._record("getActualQ", ok=self.q)

    def getActualQd(self):
        return self._record("getActualQd", ok=self.qd)

    def getActualTCPForce(self):
        return self._record("getActualTCPForce", ok=self.tcp_force)

    def getTimestamp(self):
        return 1234.5

    def isConnected(self):
        return self.connected

    def isEmergencyStopped(self):
        return self.estop

    def isProtectiveStopped(self):
        return self.pstop

    def getSafetyMode(self):
        return self.safety_mode

    def disconnect(self):
        return self._record("disconnect", ok=None)


@pytest.fixture
def rig() -> tuple[URArm, FakeRTDEControl, FakeRTDEReceive, FakeGripper]:
    control, receive, gripper = FakeRTDEControl(), FakeRTDEReceive(), FakeGripper()
    arm = URArm(URConfig(host="10.0.0.2"), control, receive, gripper, clock=lambda: 50.0)
    return arm, control, receive, gripper


def test_state_converts_the_rotation_vector_and_splits_the_wrench(rig) -> None:
    arm, _, receive, _ = rig
    assert isinstance(arm, Arm)
    st = arm.state()
    assert np.allclose(st.ee_position, [0.4, -0.1, 0.3])
    assert abs(float(np.dot(st.ee_quat_wxyz, DOWN))) == pytest.approx(1.0)
    assert np.array_equal(st.ee.wrench_force, [1, 2, -3]) and np.array_equal(
        st.wrench_torque, [0.1, 0.2, 0.3]
    )
    assert np.array_equal(st.joint_positions, receive.q) and np.array_equal(st.joint_velocities, receive.qd)
    assert st.stamp == 50.0 and st.vendor_stamp == 1234.5  # host clock for the filter, controller time kept


def test_pose_becomes_a_servoL_with_a_rotation_vector_in_metres(rig) -> None:
    arm, control, _, gripper = rig
    yaw_90 = np.array([S, 0.0, 0.0, S])
    arm.move_to_pose(PoseCommand(np.array([0.5, 0.1, 0.2]), yaw_90, 1.0, 0.0))
    (pose, speed, acc, period, lookahead, gain), _ = control.last("servoL")
    assert np.allclose(pose, [0.5, 0.1, 0.2, 0.0, 0.0, math.pi / 2])
    assert (speed, acc, period, lookahead, gain) == (0.0, 0.0, 0.1, 0.1, 300.0)
    assert gripper.moves == [1.0]


def test_twist_becomes_speedL_and_mode_switches_stop_the_other_mode_first(rig) -> None:
    arm, control, _, _ = rig
    arm.move_to_pose(PoseCommand(np.array([0.5, 0.1, 0.2]), DOWN, 0.0, 0.0))
    arm.move_twist(TwistCommand(np.array([0.01, 0.0, -0.02]), np.array([0.0, 0.0, 0.1]), 0.0, 0.0))
    arm.move_twist(TwistCommand(np.array([0.02, 0.0, 0.0]), np.zeros(3), 0.0, 0.0))
    arm.move_to_pose(PoseCommand(np.array([0.5, 0.1, 0.2]), DOWN, 0.0, 0.0))
    assert control.names() == ["servoL", "servoStop", "speedL", "speedL", "speedStop", "servoL"]
    assert control.calls[2][1] == ([0.01, 0.0, -0.02, 0.0, 0.0, 0.1], 0.5, 0.0)
    assert control.calls[1][1] == (2.0,)


def test_joint_target_is_checked_then_sent_as_servoJ(rig) -> None:
    arm, control, receive, _ = rig
    target = np.array(receive.q) + 0.1
    arm.joint_target(target)
    assert np.allclose(control.last("servoJ")[0][0], target)
    with pytest.raises(ArmLimitViolation, match="joint 2 target"):
        arm.joint_target(np.array(receive.q) + np.array([0, 7.0, 0, 0, 0, 0]))
    with pytest.raises(ArmLimitViolation, match="from the current position"):
        arm.joint_target(np.array(receive.q) + np.array([0, 0, 0.5, 0, 0, 0]))
    assert control.names().count("servoJ") == 1


def test_hold_and_close(rig) -> None:
    arm, control, receive, _ = rig
    arm.hold()  # idle: nothing to stop
    assert control.names() == []
    arm.move_to_pose(PoseCommand(np.array([0.5, 0.1, 0.2]), DOWN, 0.0, 0.0))
    arm.hold()
    assert control.names()[-1] == "servoStop"
    arm.close()
    arm.close()
    assert control.names()[-2:] == ["stopScript", "disconnect"] and receive.names() == ["disconnect"]


def test_gripper_goes_to_the_device_only_when_it_changes(rig) -> None:
    arm, _, _, gripper = rig
    for g in (-1.0, -1.0, -0.98, 1.0):
        arm.gripper(g)
    assert gripper.moves == [-1.0, 1.0]
    bare = URArm(URConfig(host="x"), FakeRTDEControl(), FakeRTDEReceive())
    with pytest.raises(ArmCommandRejected, match="no gripper"):
        bare.gripper(0.0)
    bare.move_to_pose(PoseCommand(np.array([0.5, 0.1, 0.2]), DOWN, 1.0, 0.0))  # gripper value ignored


@pytest.mark.parametrize(
    ("status", "error", "match"),
    [
        ({"pstop": True, "safety_mode": 3}, ArmProtectiveStop, "protective stop"),
        ({"estop": True, "safety_mode": 7}, ArmEmergencyStop, "robot emergency stop"),
        ({"connected": False}, ArmConnectionLost, "RTDE connection lost"),
        ({"safety_mode": 8}, ArmLimitViolation, "safety limit violation"),
        ({"safety_mode": 9}, ArmError, "safety system fault"),
        ({}, ArmCommandRejected, "refused by the controller"),
    ],
)
def test_a_refused_command_is_explained_by_the_controller_status(rig, status, error, match) -> None:
    arm, control, receive, _ = rig
    control.fail["servoL"] = False
    for key, value in status.items():
        setattr(receive, key, value)
    with pytest.raises(error, match=match) as info:
        arm.move_to_pose(PoseCommand(np.array([0.5, 0.1, 0.2]), DOWN, 0.0, 0.0))
    assert "UR 10.0.0.2: servoL failed" in str(info.value)


def test_sdk_exceptions_are_mapped_and_chained(rig) -> None:
    arm, control, receive, _ = rig
    control.fail["speedL"] = RuntimeError("RTDE control script is not running!")
    receive.connected = False
    with pytest.raises(ArmConnectionLost, match="script is not running") as info:
        arm.move_twist(TwistCommand(np.zeros(3), np.zeros(3), 0.0, 0.0))
    assert isinstance(info.value.__cause__, RuntimeError)
    receive.fail["getActualTCPPose"] = RuntimeError("socket closed")
    with pytest.raises(ArmConnectionLost):
        arm.state()


def test_missing_state_data_is_a_lost_connection(rig) -> None:
    arm, _, receive, _ = rig
    receive.tcp_pose = []
    with pytest.raises(ArmConnectionLost, match="expected 6 numbers"):
        arm.state()


def test_malformed_commands_never_reach_the_sdk(rig) -> None:
    arm, control, _, _ = rig
    with pytest.raises(ValueError):
        arm.move_to_pose(PoseCommand(np.array([0.5, np.nan, 0.2]), DOWN, 0.0, 0.0))
    with pytest.raises(ArmLimitViolation):
        arm.move_twist(TwistCommand(np.zeros(3), np.zeros(3), 3.0, 0.0))
    assert control.calls == []


def test_config_and_missing_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="servo_gain"):
        URConfig(servo_gain=50)
    with pytest.raises(ValueError, match="lookahead_time_s"):
        URConfig(lookahead_time_s=0.5)
    monkeypatch.setitem(sys.modules, "rtde_control", None)
    with pytest.raises(MissingSDKError, match="pip install ur-rtde"):
        URArm(URConfig(host="10.0.0.2"))
