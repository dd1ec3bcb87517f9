"""A 3Dconnexion SpaceMouse read over HID (pip package hidapi, module hid, imported at start()).

The device sends input reports only when something changes; this driver parses them itself:
    report 1, 7 bytes:  id, x, y, z                     (int16 little-endian each)
    report 1, 13 bytes: id, x, y, z, rx, ry, rz         (newer models send all six at once)
    report 2, 7 bytes:  id, rx, ry, rz
    report 3, >= 2 bytes: id, buttons bitmask (little-endian; bit 0 left, bit 1 right, ...)
Raw axes x, y, z, rx, ry, rz are the HID values divided by full_scale (about 350 counts at full
deflection) and clipped to [-1, 1], in the device's own HID frame (y towards the person, z down).
A report of another id or length is counted in `garbled` and ignored.

Linux: the device node /dev/hidrawN must be readable and writable by the user; start() says
which udev rule to add when it is not.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
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

VENDOR_3DCONNEXION = 0x256F  # older, Logitech-made SpaceNavigators report 0x046D
RAW_AXES = ("x", "y", "z", "rx", "ry", "rz")
RAW_BUTTONS = ("left", "right", *(f"button_{i}" for i in range(2, 32)))
MAX_REPORTS_PER_POLL = 64  # drain what queued since the last tick; the latest values win
REPORT_BYTES = 13  # the longest report read


@dataclass
class SpaceMouseConfig(TeleopConfig):
    """teleop=spacemouse. The default mapping is HIL-SERL's (HID frame -> robot base frame for a
    person facing the robot); flip signs in axes to match where the person stands."""

    axes: list[str] = field(default_factory=lambda: ["y", "x", "-z", "ry", "rx", "-rz"])
    buttons: dict[str, str] = field(
        default_factory=lambda: {"left": "gripper_close", "right": "gripper_open"}
    )
    vendor_id: int = VENDOR_3DCONNEXION
    product_id: int = 0  # 0: the first device of vendor_id
    path: str = ""  # the HID path (/dev/hidrawN on Linux); "" finds it by vendor_id/product_id
    full_scale: float = 350.0  # raw counts at full deflection

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_names(RAW_AXES, RAW_BUTTONS)
        if not self.full_scale > 0:
            raise ValueError(f"SpaceMouseConfig.full_scale must be > 0, got {self.full_scale!r}")


def _int16(data: Sequence[int], at: int) -> int:
    return int.from_bytes(bytes(data[at : at + 2]), "little", signed=True)


def parse_report(data: Sequence[int]) -> tuple[dict[str, int], int | None] | None:
    """(raw axis counts, button bitmask or None) of one HID report, or None if it is not one of
    the reports above."""
    if not data:
        return None
    report_id, n = data[0], len(data)
    if report_id == 1 and n in (7, 13):
        names = RAW_AXES if n == 13 else RAW_AXES[:3]
        return {name: _int16(data, 1 + 2 * i) for i, name in enumerate(names)}, None
    if report_id == 2 and n == 7:
        return {name: _int16(data, 1 + 2 * i) for i, name in enumerate(RAW_AXES[3:])}, None
    if report_id == 3 and n >= 2:
        return {}, int.from_bytes(bytes(data[1:]), "little")
    return None


def _accessible(path: str) -> bool:
    return os.access(path, os.R_OK | os.W_OK)


def udev_hint(vendor_id: int) -> str:
    rule = f'KERNEL=="hidraw*", ATTRS{{idVendor}}=="{vendor_id:04x}", MODE="0666"'
    return (
        f"add a udev rule: echo '{rule}' | sudo tee /etc/udev/rules.d/99-spacemouse.rules && "
        "sudo udevadm control --reload-rules && sudo udevadm trigger, then replug the SpaceMouse"
    )


class SpaceMouse(MappedDevice):
    def __init__(self, cfg: SpaceMouseConfig, clock: Clock = time.monotonic) -> None:
        super().__init__(cfg, clock)
        self.cfg: SpaceMouseConfig = cfg
        self._dev: Any = None
        self._counts = dict.fromkeys(RAW_AXES, 0)
        self._buttons = 0
        self.garbled = 0  # reports of an unknown id or length, ignored

    def _find_path(self, hid: Any) -> bytes:
        if self.cfg.path:
            return self.cfg.path.encode()
        found = hid.enumerate(self.cfg.vendor_id, self.cfg.product_id)
        if not found:
            raise TeleopError(
                f"no SpaceMouse found (HID vendor 0x{self.cfg.vendor_id:04x}, product "
                f"0x{self.cfg.product_id:04x}; 0 = any): plug it in (lsusb lists it) or set "
                "teleop.vendor_id / teleop.path"
            )
        return found[0]["path"]

    def start(self) -> None:
        hid = import_sdk("hid", "hidapi", "SpaceMouse")
        path = self._find_path(hid)
        dev = hid.device()
        try:
            dev.open_path(path)
        except OSError as err:
            name = path.decode(errors="replace")
            if name.startswith("/dev/") and os.path.exists(name) and not _accessible(name):
                raise TeleopError(f"no permission to open {name}: {udev_hint(self.cfg.vendor_id)}") from err
            raise TeleopError(f"could not open the SpaceMouse at {name}: {err}") from err
        dev.set_nonblocking(1)
        self._dev = dev
        self._counts = dict.fromkeys(RAW_AXES, 0)
        self._buttons = 0
        self.gate.reset()

    def stop(self) -> None:
        if self._dev is not None:
            dev, self._dev = self._dev, None
            dev.close()

    def poll(self) -> TeleopReading:
        if self._dev is None:
            raise TeleopError("SpaceMouse.poll() before start()")
        for _ in range(MAX_REPORTS_PER_POLL):
            try:
                data = self._dev.read(REPORT_BYTES)
            except (OSError, ValueError) as err:  # hidapi: OSError('read error') once unplugged
                self.stop()
                raise TeleopDisconnected(
                    f"the SpaceMouse stopped answering ({err}): is it unplugged?"
                ) from err
            if not data:
                break
            parsed = parse_report(data)
            if parsed is None:
                self.garbled += 1
                continue
            counts, buttons = parsed
            self._counts.update(counts)
            if buttons is not None:
                self._buttons = buttons
        scale = self.cfg.full_scale
        raw = {name: max(-1.0, min(1.0, count / scale)) for name, count in self._counts.items()}
        pressed = [name for bit, name in enumerate(RAW_BUTTONS) if self._buttons >> bit & 1]
        return self.reading(raw, pressed)
