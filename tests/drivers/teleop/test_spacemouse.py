"""The SpaceMouse driver against a fake `hid` module fed synthetic HID reports (the byte layout of
3Dconnexion devices: report 1 translation, 2 rotation, 3 buttons; int16 little-endian)."""

from __future__ import annotations

import struct
import sys
import types

import numpy as np
import pytest

from drivers.sdk import MissingSDKError
from drivers.teleop import spacemouse as sm
from drivers.teleop.base import TeleopDisconnected, TeleopError
from drivers.teleop.spacemouse import SpaceMouse, SpaceMouseConfig, parse_report


def translation(x: int, y: int, z: int) -> list[int]:
    return list(struct.pack("<Bhhh", 1, x, y, z))


def rotation(rx: int, ry: int, rz: int) -> list[int]:
    return list(struct.pack("<Bhhh", 2, rx, ry, rz))


def buttons(mask: int) -> list[int]:
    return [3, mask & 0xFF, mask >> 8 & 0xFF]


class FakeHidDevice:
    def __init__(self, hid: FakeHid) -> None:
        self.hid = hid
        self.opened: bytes | None = None
        self.nonblocking = 0
        self.closed = False

    def open_path(self, path: bytes) -> None:
        if self.hid.open_error:
            raise OSError("open failed")
        self.opened = path

    def set_nonblocking(self, flag: int) -> None:
        self.nonblocking = flag

    def read(self, max_length: int) -> list[int]:
        assert self.nonblocking == 1, "the driver must never block the control loop"
        if not self.hid.reports:
            return []
        report = self.hid.reports.pop(0)
        if isinstance(report, Exception):
            raise report
        return report[:max_length]

    def close(self) -> None:
        self.closed = True


class FakeHid(types.ModuleType):
    """cython-hidapi's module surface the driver uses."""

    def __init__(self) -> None:
        super().__init__("hid")
        self.reports: list = []
        self.open_error = False
        self.devices = [{"path": b"/dev/hidraw7", "vendor_id": 0x256F, "product_id": 0xC635}]
        self.made: list[FakeHidDevice] = []

    def enumerate(self, vendor_id: int = 0, product_id: int = 0) -> list[dict]:
        return [d for d in self.devices if d["vendor_id"] == vendor_id and product_id in (0, d["product_id"])]

    def device(self) -> FakeHidDevice:
        self.made.append(FakeHidDevice(self))
        return self.made[-1]


@pytest.fixture
def hid(monkeypatch):
    fake = FakeHid()
    monkeypatch.setitem(sys.modules, "hid", fake)
    return fake


def started(hid: FakeHid, **cfg) -> SpaceMouse:
    mouse = SpaceMouse(SpaceMouseConfig(deadband=0.0, hold_s=0.0, **cfg), clock=lambda: 1.0)
    mouse.start()
    return mouse


def test_report_layout():
    assert parse_report(translation(350, -175, 1)) == ({"x": 350, "y": -175, "z": 1}, None)
    assert parse_report(rotation(-1, 2, -32768)) == ({"rx": -1, "ry": 2, "rz": -32768}, None)
    six = list(struct.pack("<Bhhhhhh", 1, 1, 2, 3, 4, 5, 6))  # newer models: all six in report 1
    assert parse_report(six)[0] == {"x": 1, "y": 2, "z": 3, "rx": 4, "ry": 5, "rz": 6}
    assert parse_report(buttons(0b10)) == ({}, 2)
    for garbled in ([], [1, 0, 0], [2, *[0] * 12], [3], [9, 0, 0, 0, 0, 0, 0]):
        assert parse_report(garbled) is None


def test_opens_the_first_device_of_the_vendor_nonblocking(hid):
    mouse = started(hid)
    assert hid.made[0].opened == b"/dev/hidraw7" and hid.made[0].nonblocking == 1
    mouse.stop()
    assert hid.made[0].closed
    mouse.stop()  # idempotent


def test_reports_to_twist_with_the_default_mapping(hid):
    mouse = started(hid)
    hid.reports += [translation(350, -175, 0), rotation(0, 0, 350)]
    reading = mouse.poll()
    # default axes: x <- y, y <- x, z <- -z, roll <- ry, pitch <- rx, yaw <- -rz
    np.testing.assert_allclose(reading.twist, [-0.5, 1.0, 0.0, 0.0, 0.0, -1.0])
    assert reading.active
    # no new report: the device holds its last values (it only reports changes)
    np.testing.assert_allclose(mouse.poll().twist, reading.twist)
    hid.reports.append(translation(0, 0, 0))
    hid.reports.append(rotation(0, 0, 0))
    assert not mouse.poll().twist.any()


def test_full_scale_clips_and_buttons_map_to_gripper(hid):
    mouse = started(hid)
    hid.reports += [translation(32767, 0, 0), buttons(0b01)]
    reading = mouse.poll()
    assert reading.twist[1] == 1.0 and reading.gripper == 1.0  # left: close
    hid.reports.append(buttons(0b10))
    assert mouse.poll().gripper == -1.0  # right: open
    hid.reports.append(buttons(0))
    assert mouse.poll().gripper is None


def test_garbled_reports_are_counted_and_ignored(hid):
    mouse = started(hid)
    hid.reports += [[1, 2, 3], [7, 0, 0, 0, 0, 0, 0], translation(0, 350, 0), [2] * 20]
    reading = mouse.poll()
    assert mouse.garbled == 3
    assert reading.twist[0] == 1.0


def test_unplugged_device_raises_disconnected_and_closes(hid):
    mouse = started(hid)
    hid.reports.append(OSError("read error"))
    with pytest.raises(TeleopDisconnected, match="unplugged"):
        mouse.poll()
    assert hid.made[0].closed
    with pytest.raises(TeleopError, match="before start"):
        mouse.poll()


def test_no_device_found(hid):
    hid.devices = []
    with pytest.raises(TeleopError, match=r"no SpaceMouse found.*vendor 0x256f"):
        started(hid)


def test_wrong_permissions_name_the_udev_rule(hid, monkeypatch):
    # /dev/hidraw7 is there but not ours (faked: the tests may run as root, who may open anything)
    monkeypatch.setattr(sm.os.path, "exists", lambda p: p == "/dev/hidraw7")
    monkeypatch.setattr(sm, "_accessible", lambda path: False)
    hid.open_error = True
    with pytest.raises(TeleopError, match=r"no permission to open /dev/hidraw7: add a udev rule.*256f"):
        started(hid)


def test_other_open_failures_say_so(hid):
    hid.open_error = True
    with pytest.raises(TeleopError, match="could not open the SpaceMouse at /dev/hidraw7"):
        started(hid, path="/dev/hidraw7")


def test_missing_hidapi_names_the_pip_package(monkeypatch):
    monkeypatch.setitem(sys.modules, "hid", None)
    with pytest.raises(MissingSDKError, match="pip install hidapi"):
        SpaceMouse(SpaceMouseConfig()).start()


def test_config_rejects_unknown_axes_and_buttons():
    with pytest.raises(ValueError, match="unknown raw axis 'w'"):
        SpaceMouseConfig(axes=["w", "", "", "", "", ""])
    with pytest.raises(ValueError, match="unknown buttons"):
        SpaceMouseConfig(buttons={"middle": "success"})
