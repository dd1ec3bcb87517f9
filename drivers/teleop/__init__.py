"""Teleop devices behind one protocol (drivers/teleop/base.py): SpaceMouse (HID), gamepad (evdev),
terminal keyboard. Their vendor libraries are imported when a device starts, not here."""

from drivers.teleop.base import (
    Buttons,
    InterventionGate,
    TeleopConfig,
    TeleopDevice,
    TeleopDisconnected,
    TeleopError,
    TeleopReading,
)
from drivers.teleop.gamepad import Gamepad, GamepadConfig
from drivers.teleop.keyboard import Keyboard, KeyboardConfig
from drivers.teleop.spacemouse import SpaceMouse, SpaceMouseConfig

__all__ = [
    "Buttons",
    "Gamepad",
    "GamepadConfig",
    "InterventionGate",
    "Keyboard",
    "KeyboardConfig",
    "SpaceMouse",
    "SpaceMouseConfig",
    "TeleopConfig",
    "TeleopDevice",
    "TeleopDisconnected",
    "TeleopError",
    "TeleopReading",
]
