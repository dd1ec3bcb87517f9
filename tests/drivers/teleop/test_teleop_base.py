"""The shared teleop pieces: config validation, deadband, axis mapping and the intervention gate."""

from __future__ import annotations

import numpy as np
import pytest

from drivers.teleop.base import (
    InterventionGate,
    MappedDevice,
    TeleopConfig,
    apply_deadband,
    map_twist,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_deadband_zeroes_small_input_and_still_reaches_full_scale():
    assert apply_deadband(0.05, 0.1) == 0.0
    assert apply_deadband(-0.1, 0.1) == 0.0
    assert apply_deadband(1.0, 0.1) == pytest.approx(1.0)
    assert apply_deadband(-0.55, 0.1) == pytest.approx(-0.5)


def test_axis_mapping_sign_scale_and_clip():
    cfg = TeleopConfig(deadband=0.0, axes=["b", "-a", "", "a", "", ""], scale=[1.0, 1.0, 1.0, 3.0, 1.0, 1.0])
    twist = map_twist({"a": 0.5, "b": -0.25}, cfg)
    np.testing.assert_allclose(twist, [-0.25, -0.5, 0.0, 1.0, 0.0, 0.0])  # roll: 1.5 clipped to 1


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"deadband": 1.0}, r"deadband must be in \[0, 1\)"),
        ({"hold_s": -1.0}, "hold_s must be"),
        ({"scale": [1.0] * 5}, "scale must be 6 finite numbers"),
        ({"scale": [1.0] * 5 + [float("nan")]}, "scale must be 6 finite numbers"),
        ({"axes": ["x"] * 7}, "axes must have 6 entries"),
        ({"buttons": {"left": "launch"}}, "unknown role 'launch'"),
    ],
)
def test_config_errors_name_the_field(kwargs, message):
    with pytest.raises(ValueError, match=message):
        TeleopConfig(**kwargs)


def test_check_names_rejects_axes_and_buttons_the_device_lacks():
    with pytest.raises(ValueError, match="unknown raw axis '-w'"):
        TeleopConfig(axes=["x", "-w", "", "", "", ""]).check_names(["x", "y"], None)
    with pytest.raises(ValueError, match=r"unknown buttons \['middle'\]"):
        TeleopConfig(axes=[""] * 6, buttons={"middle": "success"}).check_names([], ["left"])


def test_gate_holds_after_the_last_input_then_releases():
    clock = FakeClock()
    gate = InterventionGate(hold_s=0.5, clock=clock)
    assert not gate.update(False)  # nothing yet
    assert gate.update(True)
    clock.now += 0.3
    assert gate.update(False)  # within the hold
    clock.now += 0.3
    assert not gate.update(False)  # 0.6 s after the last input
    gate.update(True)
    gate.reset()
    assert not gate.update(False)


def test_mapped_device_activity_from_motion_gripper_or_intervene_but_not_labels():
    clock = FakeClock()
    cfg = TeleopConfig(
        hold_s=0.0,
        axes=["a", "", "", "", "", ""],
        buttons={"b1": "gripper_close", "b2": "gripper_open", "b3": "intervene", "b4": "success"},
    )
    device = MappedDevice(cfg, clock)
    assert not device.reading({"a": 0.05}, []).active  # inside the deadband
    moving = device.reading({"a": 0.5}, [])
    assert moving.active and moving.twist[0] > 0 and moving.gripper is None
    closing = device.reading({}, ["b1"])
    assert closing.active and closing.gripper == 1.0
    assert device.reading({}, ["b2"]).gripper == -1.0
    held = device.reading({}, ["b3"])
    assert held.active and held.buttons.intervene and not held.twist.any()
    label = device.reading({}, ["b4", "unmapped"])
    assert label.buttons.success and not label.active
