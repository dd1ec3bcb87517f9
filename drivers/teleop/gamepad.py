"""A gamepad read through Linux input events (pip package evdev, imported at start()): no window,
no X server, works over SSH.

Raw axes and buttons are evdev's code names (ABS_X, ABS_RY, BTN_SOUTH, ...; `python -m evdev.evtest`
shows a pad's). An axis is normalised from its absinfo range to [-1, 1] (rest at 0), a trigger
(listed in `triggers`) to [0, 1] (released at 0). The defaults fit an Xbox-style pad under the
xpad/hid-generic drivers: left stick moves in x/y, right stick up/down moves in z and sideways
turns in yaw.
"""

from __future__ import annotations

import glob
import time
from dataclasses import dataclass, field
from typing import Any

from drivers.sdk import import_sdk
from drivers.teleop.base import (
    Clock,
    MappedDevice,
    TeleopConfig,
    TeleopDisconnected,
    TeleopError,
    TeleopReading,
)

MAX_EVENTS_PER_POLL = 1024  # a pad sends a few hundred events a second; drain them all each tick
INPUT_GROUP_HINT = (
    "add the user to the input group (sudo usermod -aG input $USER, then log in again) or add a "
    'udev rule: echo \'SUBSYSTEM=="input", ENV{ID_INPUT_JOYSTICK}=="1", MODE="0666"\' | '
    "sudo tee /etc/udev/rules.d/99-gamepad.rules && sudo udevadm trigger"
)


@dataclass
class GamepadConfig(TeleopConfig):
    """teleop=gamepad."""

    axes: list[str] = field(default_factory=lambda: ["-ABS_Y", "-ABS_X", "-ABS_RY", "", "", "-ABS_RX"])
    buttons: dict[str, str] = field(
        default_factory=lambda: {
            "BTN_SOUTH": "gripper_close",
            "BTN_EAST": "gripper_open",
            "BTN_TL": "intervene",
            "BTN_START": "success",
            "BTN_SELECT": "failure",
            "BTN_NORTH": "rerecord",
            "BTN_MODE": "estop",
        }
    )
    triggers: list[str] = field(default_factory=lambda: ["ABS_Z", "ABS_RZ"])
    path: str = ""  # /dev/input/eventN; "" = the first device with ABS_X, ABS_Y and BTN_SOUTH

    def __post_init__(self) -> None:
        super().__post_init__()
        names = [a.removeprefix("-") for a in self.axes if a] + list(self.triggers)
        bad = [n for n in names if not n.startswith("ABS_")] + [
            b for b in self.buttons if not b.startswith(("BTN_", "KEY_"))
        ]
        if bad:
            raise ValueError(
                f"GamepadConfig: {bad} are not evdev axis (ABS_*) or button (BTN_*, KEY_*) names"
            )


class Gamepad(MappedDevice):
    def __init__(self, cfg: GamepadConfig, clock: Clock = time.monotonic) -> None:
        super().__init__(cfg, clock)
        self.cfg: GamepadConfig = cfg
        self._dev: Any = None
        self._ecodes: Any = None
        self._axis_names: dict[int, str] = {}  # evdev code -> name, for the axes the config uses
        self._button_names: dict[int, str] = {}
        self._ranges: dict[str, tuple[float, float]] = {}
        self._raw: dict[str, float] = {}
        self._pressed: set[str] = set()

    def _codes(self, names: list[str]) -> dict[int, str]:
        unknown = [n for n in names if n not in self._ecodes.ecodes]
        if unknown:
            raise TeleopError(f"evdev has no codes named {unknown}; see `python -m evdev.evtest`")
        return {self._ecodes.ecodes[n]: n for n in names}

    def _open(self, evdev: Any) -> Any:
        if self.cfg.path:
            try:
                return evdev.InputDevice(self.cfg.path)
            except PermissionError as err:
                raise TeleopError(f"no permission to read {self.cfg.path}: {INPUT_GROUP_HINT}") from err
            except OSError as err:
                raise TeleopError(f"could not open the gamepad at {self.cfg.path}: {err}") from err
        ec = evdev.ecodes
        for path in evdev.list_devices():  # only the event nodes this user may read
            dev = evdev.InputDevice(path)
            caps = dev.capabilities()
            if {ec.ABS_X, ec.ABS_Y} <= {c for c, *_ in caps.get(ec.EV_ABS, [])} and ec.BTN_SOUTH in caps.get(
                ec.EV_KEY, []
            ):
                return dev
            dev.close()
        hint = f": {INPUT_GROUP_HINT}" if glob.glob("/dev/input/event*") else ""
        raise TeleopError(f"no readable gamepad found (set teleop.path=/dev/input/eventN){hint}")

    def start(self) -> None:
        evdev = import_sdk("evdev", "evdev", "Gamepad")
        self._ecodes = evdev.ecodes
        axes = [a.removeprefix("-") for a in self.cfg.axes if a]
        self._axis_names = self._codes(sorted(set(axes) | set(self.cfg.triggers)))
        self._button_names = self._codes(sorted(self.cfg.buttons))
        dev = self._open(evdev)
        self._ranges = {}
        for code, name in self._axis_names.items():
            try:
                info = dev.absinfo(code)
            except OSError:  # the pad lacks this axis: it reads as rest
                continue
            self._ranges[name] = (float(info.min), float(info.max))
        self._raw = {name: 0.0 for name in self._ranges}
        self._pressed = set()
        self._dev = dev
        self.gate.reset()

    def stop(self) -> None:
        if self._dev is not None:
            dev, self._dev = self._dev, None
            dev.close()

    def _normalised(self, name: str, value: float) -> float:
        low, high = self._ranges[name]
        if high <= low:
            return 0.0
        if name in self.cfg.triggers:
            return min(max((value - low) / (high - low), 0.0), 1.0)
        return min(max(2.0 * (value - low) / (high - low) - 1.0, -1.0), 1.0)

    def poll(self) -> TeleopReading:
        if self._dev is None:
            raise TeleopError("Gamepad.poll() before start()")
        ec = self._ecodes
        for _ in range(MAX_EVENTS_PER_POLL):
            try:
                event = self._dev.read_one()
            except OSError as err:  # ENODEV once unplugged
                self.stop()
                raise TeleopDisconnected(f"the gamepad stopped answering ({err}): is it unplugged?") from err
            if event is None:
                break
            if event.type == ec.EV_ABS and event.code in self._axis_names:
                name = self._axis_names[event.code]
                if name in self._ranges:
                    self._raw[name] = self._normalised(name, event.value)
            elif event.type == ec.EV_KEY and event.code in self._button_names:
                name = self._button_names[event.code]
                if event.value:  # 1 pressed, 2 auto-repeat
                    self._pressed.add(name)
                else:
                    self._pressed.discard(name)
        return self.reading(self._raw, self._pressed)
