"""The gamepad driver against a fake `evdev` module fed synthetic input events."""

from __future__ import annotations

import errno
import sys
import types
from dataclasses import dataclass

import numpy as np
import pytest

from drivers.sdk import MissingSDKError
from drivers.teleop.base import TeleopDisconnected, TeleopError
from drivers.teleop.gamepad import Gamepad, GamepadConfig

CODES = {
    "EV_KEY": 1,
    "EV_ABS": 3,
    "ABS_X": 0,
    "ABS_Y": 1,
    "ABS_Z": 2,
    "ABS_RX": 3,
    "ABS_RY": 4,
    "ABS_RZ": 5,
    "BTN_SOUTH": 304,
    "BTN_EAST": 305,
    "BTN_NORTH": 307,
    "BTN_TL": 310,
    "BTN_SELECT": 314,
    "BTN_START": 315,
    "BTN_MODE": 316,
}


@dataclass
class Event:
    type: int
    code: int
    value: int


@dataclass
class AbsInfo:
    value: int
    min: int
    max: int


class FakeInputDevice:
    def __init__(self, evdev: FakeEvdev, path: str) -> None:
        if path in evdev.forbidden:
            raise PermissionError(errno.EACCES, "Permission denied", path)
        self.evdev, self.path, self.closed = evdev, path, False
        self.kind = evdev.nodes[path]

    def capabilities(self) -> dict[int, list]:
        if self.kind == "keyboard":
            return {CODES["EV_KEY"]: [30, 31]}
        axes = [(CODES[a], None) for a in ("ABS_X", "ABS_Y", "ABS_RX", "ABS_RY", "ABS_Z", "ABS_RZ")]
        return {CODES["EV_ABS"]: axes, CODES["EV_KEY"]: [CODES["BTN_SOUTH"], CODES["BTN_EAST"]]}

    def absinfo(self, code: int) -> AbsInfo:
        if code in (CODES["ABS_Z"], CODES["ABS_RZ"]):
            return AbsInfo(0, 0, 255)  # triggers
        return AbsInfo(0, -32768, 32767)

    def read_one(self) -> Event | None:
        if not self.evdev.events:
            return None
        event = self.evdev.events.pop(0)
        if isinstance(event, Exception):
            raise event
        return event

    def close(self) -> None:
        self.closed = True


class FakeEvdev(types.ModuleType):
    def __init__(self) -> None:
        super().__init__("evdev")
        self.ecodes = types.SimpleNamespace(ecodes=dict(CODES), **CODES)
        self.nodes = {"/dev/input/event0": "keyboard", "/dev/input/event3": "gamepad"}
        self.forbidden: set[str] = set()
        self.events: list = []

    def list_devices(self) -> list[str]:
        return [p for p in self.nodes if p not in self.forbidden]

    def InputDevice(self, path: str) -> FakeInputDevice:
        return FakeInputDevice(self, path)


@pytest.fixture
def evdev(monkeypatch):
    fake = FakeEvdev()
    monkeypatch.setitem(sys.modules, "evdev", fake)
    return fake


def axis(name: str, value: int) -> Event:
    return Event(CODES["EV_ABS"], CODES[name], value)


def key(name: str, value: int) -> Event:
    return Event(CODES["EV_KEY"], CODES[name], value)


def started(**cfg) -> Gamepad:
    pad = Gamepad(GamepadConfig(hold_s=0.0, **cfg), clock=lambda: 1.0)
    pad.start()
    return pad


def test_finds_the_gamepad_among_input_devices(evdev):
    pad = started()
    assert pad._dev.path == "/dev/input/event3"


def test_sticks_and_buttons_map_by_config(evdev):
    pad = started(deadband=0.0)
    evdev.events += [axis("ABS_Y", -32768), axis("ABS_X", 16384), axis("ABS_RX", 32767)]
    evdev.events += [key("BTN_SOUTH", 1), key("BTN_TL", 1)]
    reading = pad.poll()
    # default: x <- -ABS_Y (stick forward), y <- -ABS_X, z <- -ABS_RY, yaw <- -ABS_RX
    np.testing.assert_allclose(reading.twist, [1.0, -0.5, 0.0, 0.0, 0.0, -1.0], atol=1e-4)
    assert reading.gripper == 1.0 and reading.buttons.intervene and reading.active
    evdev.events += [key("BTN_SOUTH", 0), key("BTN_TL", 0), key("BTN_START", 1)]
    reading = pad.poll()
    assert reading.gripper is None and not reading.buttons.intervene and reading.buttons.success


def test_triggers_read_from_rest_and_stick_noise_is_in_the_deadband(evdev):
    pad = started(axes=["ABS_RZ", "-ABS_Z", "ABS_X", "", "", ""])
    evdev.events += [axis("ABS_RZ", 255), axis("ABS_Z", 0), axis("ABS_X", 900)]
    reading = pad.poll()
    np.testing.assert_allclose(reading.twist[:3], [1.0, 0.0, 0.0])
    assert reading.active


def test_unplugged_pad_raises_disconnected(evdev):
    pad = started()
    evdev.events.append(OSError(errno.ENODEV, "No such device"))
    with pytest.raises(TeleopDisconnected, match="unplugged"):
        pad.poll()
    assert pad._dev is None


def test_wrong_permissions_say_how_to_get_access(evdev):
    evdev.forbidden.add("/dev/input/event3")
    with pytest.raises(
        TeleopError, match="no permission to read /dev/input/event3: add the user to the input"
    ):
        started(path="/dev/input/event3")


def test_no_gamepad_found(evdev):
    evdev.nodes = {"/dev/input/event0": "keyboard"}
    with pytest.raises(TeleopError, match="no readable gamepad found"):
        started()


def test_unknown_code_names(evdev):
    with pytest.raises(TeleopError, match=r"evdev has no codes named \['BTN_BOGUS'\]"):
        started(buttons={"BTN_BOGUS": "success"})
    with pytest.raises(ValueError, match="not evdev axis"):
        GamepadConfig(axes=["X", "", "", "", "", ""])


def test_missing_evdev_names_the_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "evdev", None)
    with pytest.raises(MissingSDKError, match="pip install evdev"):
        Gamepad(GamepadConfig()).start()


def test_the_real_evdev_codes_match_the_defaults():
    evdev = pytest.importorskip("evdev", reason="evdev is in the dev extra; it builds on Linux only")
    names = [a.removeprefix("-") for a in GamepadConfig().axes if a] + list(GamepadConfig().buttons)
    assert all(n in evdev.ecodes.ecodes for n in names)
    assert all(evdev.ecodes.ecodes[n] == CODES[n] for n in names)
