"""The xArm driver's own logic against a recording double of XArmAPI: millimetres and degrees,
roll/pitch/yaw <-> quaternions, mode switches, gripper pulses and the return / error code mapping."""

from __future__ import annotations

import inspect
import math
import sys

import numpy as np
import pytest
from arm_doubles import CallLog

from drivers.arm import (
    Arm,
    ArmCommandRejected,
    ArmConnectionLost,
    ArmEmergencyStop,
    ArmError,
    ArmLimitViolation,
    ArmProtectiveStop,
)
from drivers.rotations import rpy_to_quat
from drivers.safety import PoseCommand, TwistCommand
from drivers.sdk import MissingSDKError
from drivers.xarm import XArmArm, XArmConfig

DOWN = np.array([0.0, 1.0, 0.0, 0.0])


class FakeXArmAPI(CallLog):
    """xarm.wrapper.XArmAPI's methods and properties used by the driver; every call returns a code."""

    def __init__(self) -> None:
        super().__init__()
        self.connected, self.has_error, self.error_code, self.default_is_radian = True, False, 0, False
        self.position_mm_deg = [300.0, -50.0, 250.0, 180.0, 0.0, 90.0]
        self.angles_rad = [0.0, 0.1, 0.0, 0.8, 0.0, 0.7, 0.0]
        self.realtime_joint_speeds = [10.0, 0, 0, 0, 0, 0, -5.0]  # deg/s: the API default unit
        self.ft_ext_force = [1.0, 0.0, -2.0, 0.0, 0.05, 0.0]
        self.gripper_pulse = 425.0

    def _code(self, name: str, *args, **kwargs) -> int:
        return self._record(name, *args, ok=0, **kwargs)

    def clean_warn(self):
        return self._code("clean_warn")

    def motion_enable(self, enable=True, servo_id=None):
        return self._code("motion_enable", enable=enable)

    def set_mode(self, mode=0):
        return self._code("set_mode", mode)

    def set_state(self, state=0):
        return self._code("set_state", state)

    def set_gripper_mode(self, mode):
        return self._code("set_gripper_mode", mode)

    def set_gripper_enable(self, enable):
        return self._code("set_gripper_enable", enable)

    def get_position(self, is_radian=None):
        assert is_radian is False  # the driver always says which unit it wants
        return self._code("get_position"), list(self.position_mm_deg)

    def get_servo_angle(self, servo_id=None, is_radian=None, is_real=False):
        assert is_radian is True
        return self._code("get_servo_angle"), list(self.angles_rad)

    def get_gripper_position(self):
        return self._code("get_gripper_position"), self.gripper_pulse

    def set_servo_cartesian(
        self, mvpose, speed=None, mvacc=None, mvtime=0, is_radian=None, is_tool_coord=False
    ):
        return self._code("set_servo_cartesian", mvpose, is_radian=is_radian)

    def vc_set_cartesian_velocity(self, speeds, is_radian=None, is_tool_coord=False, duration=-1):
        return self._code(
            "vc_set_cartesian_velocity",
            speeds,
            is_radian=is_radian,
            is_tool_coord=is_tool_coord,
            duration=duration,
        )

    def set_servo_angle_j(self, angles, speed=None, mvacc=None, mvtime=None, is_radian=None):
        return self._code("set_servo_angle_j", angles, is_radian=is_radian)

    def set_gripper_position(self, pos, wait=False, speed=None, auto_enable=False, timeout=None):
        return self._code("set_gripper_position", pos, wait=wait, speed=speed)

    def disconnect(self):
        return self._record("disconnect", ok=None)


@pytest.fixture
def rig() -> tuple[XArmArm, FakeXArmAPI]:
    api = FakeXArmAPI()
    arm = XArmArm(XArmConfig(host="192.168.1.185", gripper=True, has_ft_sensor=True), api, clock=lambda: 3.0)
    api.calls.clear()
    return arm, api


def test_connecting_enables_motion_and_the_gripper() -> None:
    api = FakeXArmAPI()
    XArmArm(XArmConfig(host="h", gripper=True), api)
    assert api.names() == ["clean_warn", "motion_enable", "set_gripper_mode", "set_gripper_enable"]
    api.connected = False
    with pytest.raises(ArmConnectionLost, match="not connected"):
        XArmArm(XArmConfig(host="h"), api)


def test_state_converts_millimetres_degrees_and_rpy(rig) -> None:
    arm, _ = rig
    assert isinstance(arm, Arm)
    st = arm.state()
    assert np.allclose(st.ee_position, [0.3, -0.05, 0.25])
    # roll 180, yaw 90: R = Rz(90) Rx(180); the tool's x axis points along base +y, its z down.
    expected = rpy_to_quat(math.pi, 0.0, math.pi / 2)
    assert abs(float(np.dot(st.ee_quat_wxyz, expected))) == pytest.approx(1.0)
    assert np.allclose(st.joint_velocities, np.radians([10.0, 0, 0, 0, 0, 0, -5.0]))
    assert np.array_equal(st.ee.wrench_force, [1.0, 0.0, -2.0]) and st.stamp == 3.0
    assert st.gripper == pytest.approx(0.0)  # 425 of 850 pulses: half open


def test_pose_goes_out_in_millimetres_and_degrees_after_entering_servo_mode(rig) -> None:
    arm, api = rig
    quat = rpy_to_quat(math.pi, 0.0, math.radians(30))
    arm.move_to_pose(PoseCommand(np.array([0.25, 0.1, 0.2]), quat, -1.0, 0.0))
    arm.move_to_pose(PoseCommand(np.array([0.25, 0.1, 0.21]), quat, -1.0, 0.0))
    first = ["set_mode", "set_state", "set_servo_cartesian", "set_gripper_position"]
    assert api.names() == [*first, "set_servo_cartesian"]  # the mode is entered once
    assert api.calls[0][1] == (1,) and api.calls[1][1] == (0,)
    (mvpose,), kwargs = api.last("set_servo_cartesian")
    assert kwargs == {"is_radian": False}
    assert np.allclose(mvpose[:3], [250.0, 100.0, 210.0])
    assert np.allclose(np.abs(mvpose[3]), 180.0) and np.allclose(mvpose[4:], [0.0, 30.0], atol=1e-9)
    assert api.last("set_gripper_position")[0] == (850.0,)  # -1: fully open


def test_twist_uses_velocity_mode_with_a_duration(rig) -> None:
    arm, api = rig
    arm.move_twist(TwistCommand(np.array([0.05, 0.0, -0.01]), np.array([0.0, 0.0, math.pi / 4]), 1.0, 0.0))
    assert api.calls[0][1] == (5,)
    (speeds,), kwargs = api.last("vc_set_cartesian_velocity")
    assert np.allclose(speeds, [50.0, 0.0, -10.0, 0.0, 0.0, 45.0])
    assert kwargs == {"is_radian": False, "is_tool_coord": False, "duration": 0.2}
    assert api.last("set_gripper_position")[0] == (0.0,)


def test_joint_target_checks_limits_and_sends_radians(rig) -> None:
    arm, api = rig
    target = np.array(api.angles_rad) + 0.1
    arm.joint_target(target)
    (angles,), kwargs = api.last("set_servo_angle_j")
    assert np.allclose(angles, target) and kwargs == {"is_radian": True}
    with pytest.raises(ArmLimitViolation, match="from the current position"):
        arm.joint_target(np.array(api.angles_rad) + np.array([0, 0, 0, 0, 0.5, 0, 0]))
    small = XArmArm(XArmConfig(dof=6, joint_low=(-1,) * 6, joint_high=(1,) * 6), FakeXArmAPI())
    with pytest.raises(ArmLimitViolation, match="joint 4 target"):
        small.joint_target(np.array([0.0, 0.1, 0.0, 1.2, 0.0, 0.7]))


def test_hold_and_stop(rig) -> None:
    arm, api = rig
    arm.move_twist(TwistCommand(np.array([0.05, 0.0, 0.0]), np.zeros(3), 0.0, 0.0))
    arm.hold()
    assert api.last("vc_set_cartesian_velocity")[0] == ([0.0] * 6,)
    arm.move_to_pose(PoseCommand(np.array([0.25, 0.1, 0.2]), DOWN, 0.0, 0.0))
    arm.hold()  # servo mode: the measured pose, exactly as read, becomes the target
    assert api.last("set_servo_cartesian")[0] == (api.position_mm_deg,)
    arm.stop()
    assert api.last("set_state")[0] == (4,)
    arm.move_to_pose(PoseCommand(np.array([0.25, 0.1, 0.2]), DOWN, 0.0, 0.0))
    assert api.names()[-3:] == ["set_mode", "set_state", "set_servo_cartesian"]  # re-entered after stop
    arm.close()
    arm.close()
    assert api.names().count("disconnect") == 1


@pytest.mark.parametrize(
    ("code", "controller_error", "error", "match"),
    [
        (-1, 0, ArmConnectionLost, "not connected"),
        (3, 0, ArmConnectionLost, "reply timeout"),
        (-9, 0, ArmEmergencyStop, "emergency stop"),
        (-7, 0, ArmLimitViolation, "joint limit"),
        (1, 22, ArmProtectiveStop, "self-collision"),
        (1, 31, ArmProtectiveStop, "collision caused abnormal current"),
        (1, 35, ArmLimitViolation, "safety boundary"),
        (1, 2, ArmEmergencyStop, "C2"),
        (1, 10, ArmError, "controller error C10"),
        (9, 0, ArmCommandRejected, "state not ready"),
        (51, 0, ArmCommandRejected, "returned 51"),
    ],
)
def test_return_and_controller_codes_map_to_arm_errors(rig, code, controller_error, error, match) -> None:
    arm, api = rig
    api.fail["set_servo_cartesian"] = code
    api.error_code = controller_error
    with pytest.raises(error, match=match) as info:
        arm.move_to_pose(PoseCommand(np.array([0.25, 0.1, 0.2]), DOWN, 0.0, 0.0))
    assert info.value.vendor_code in (code, controller_error)
    assert "xArm 192.168.1.185: set_servo_cartesian returned" in str(info.value)


def test_a_controller_fault_refuses_the_next_command_before_it_is_sent(rig) -> None:
    arm, api = rig
    api.has_error, api.error_code = True, 31
    with pytest.raises(ArmProtectiveStop, match="move_twist refused"):
        arm.move_twist(TwistCommand(np.zeros(3), np.zeros(3), 0.0, 0.0))
    assert "vc_set_cartesian_velocity" not in api.names()


def test_failed_reads_are_errors_not_zeros(rig) -> None:
    arm, api = rig
    api.fail["get_position"] = -1
    with pytest.raises(ArmConnectionLost, match="get_position returned -1"):
        arm.state()


def test_no_gripper_and_missing_sdk(monkeypatch: pytest.MonkeyPatch) -> None:
    bare = XArmArm(XArmConfig(host="h"), FakeXArmAPI())
    assert bare.state().gripper is None and bare.state().ee.wrench_force is None
    with pytest.raises(ArmCommandRejected, match="no gripper"):
        bare.gripper(1.0)
    with pytest.raises(ValueError, match="dof"):
        XArmConfig(dof=8)
    monkeypatch.setitem(sys.modules, "xarm", None)
    with pytest.raises(MissingSDKError, match="pip install xarm-python-sdk"):
        XArmArm(XArmConfig(host="h"))


def test_every_call_the_driver_makes_fits_the_real_xarmapi(rig) -> None:
    wrapper = pytest.importorskip(
        "xarm.wrapper", reason="xarm-python-sdk not installed: SDK contract not checked"
    )
    arm, api = rig
    arm.state()
    arm.move_to_pose(PoseCommand(np.array([0.25, 0.1, 0.2]), DOWN, 1.0, 0.0))
    arm.hold()
    arm.move_twist(TwistCommand(np.array([0.05, 0.0, 0.0]), np.zeros(3), -1.0, 0.0))
    arm.hold()
    arm.joint_target(np.array(api.angles_rad) + 0.05)
    arm.close()
    real = wrapper.XArmAPI
    for name, args, kwargs in api.calls:
        inspect.signature(getattr(real, name)).bind(None, *args, **kwargs)  # TypeError if it does not fit
    for prop in ("connected", "has_error", "error_code", "default_is_radian", "realtime_joint_speeds"):
        assert isinstance(getattr(real, prop), property), prop
    assert isinstance(real.ft_ext_force, property)
    assert len({c[0] for c in api.calls}) >= 10
