"""Teleop devices behind one protocol (drivers/teleop/base.py, re-exported here): SpaceMouse
(drivers.teleop.spacemouse, HID), gamepad (drivers.teleop.gamepad, evdev), terminal keyboard
(drivers.teleop.keyboard). Their vendor libraries are imported when a device starts."""

from drivers.teleop.base import (
    Buttons,
    InterventionGate,
    TeleopConfig,
    TeleopDevice,
    TeleopDisconnected,
    TeleopError,
    TeleopReading,
)

__all__ = [
    "Buttons",
    "InterventionGate",
    "TeleopConfig",
    "TeleopDevice",
    "TeleopDisconnected",
    "TeleopError",
    "TeleopReading",
]
