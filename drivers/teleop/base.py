"""The teleop device protocol: what every device (SpaceMouse, gamepad, keyboard, a simulated
person) gives, and the pieces they share: axis mapping, deadband, scaling, and the intervention gate.

A device is started, polled once per control tick and stopped. poll() never blocks; it returns a
TeleopReading:
    twist     float64[6] in [-1, 1]: x, y, z, roll, pitch, yaw, the device's normalised axes after
              deadband, axis mapping and scaling. A consumer maps it to the action's delta part as
              is (sim/task_spec.py: the same scaling as the policy's actions).
    gripper   -1 open .. +1 closed, or None: no gripper command this tick (keep the last one).
    buttons   intervene, success, failure, rerecord, estop: True while pressed.
    active    the intervention is active: the person moves the device beyond the deadband, presses
              the gripper or holds the intervene button, or did so less than hold_s ago (SERL's
              0.5 s), so that a short pause in a correction does not hand control back mid-move.
    stamp     s, the device's clock at the poll.
A device that is unplugged or stops answering raises TeleopDisconnected from poll().

Raw axes: each device names its raw axes (RAW_AXES, normalised to [-1, 1] by the device) and its
raw buttons; TeleopConfig.axes says which raw axis drives which twist axis, with sign ("-y"), or
none (""), and TeleopConfig.buttons which raw button does which role.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

TWIST_AXES = ("x", "y", "z", "roll", "pitch", "yaw")
BUTTON_ROLES = ("intervene", "success", "failure", "rerecord", "estop")
GRIPPER_ROLES = ("gripper_open", "gripper_close")
# The task contract's absolute gripper command (sim/task_spec.py; drivers/ may not import sim/,
# tests/robot_rl/hil checks they agree).
GRIPPER_OPEN, GRIPPER_CLOSED = -1.0, 1.0
Clock = Callable[[], float]


class TeleopError(RuntimeError):
    """A teleop device cannot be used; the message says what to do."""


class TeleopDisconnected(TeleopError, ConnectionError):
    """The device stopped answering (unplugged, powered off, read error)."""


@dataclass(frozen=True)
class Buttons:
    intervene: bool = False
    success: bool = False
    failure: bool = False
    rerecord: bool = False
    estop: bool = False


@dataclass(frozen=True)
class TeleopReading:
    twist: np.ndarray  # float64[6] in [-1, 1]
    gripper: float | None
    buttons: Buttons
    active: bool
    stamp: float

    @classmethod
    def idle(cls, stamp: float) -> TeleopReading:
        """No motion, no gripper command, no buttons, not active."""
        return cls(np.zeros(6), None, Buttons(), False, stamp)


@runtime_checkable
class TeleopDevice(Protocol):
    def start(self) -> None:
        """Open the device; TeleopError naming what is missing or not allowed."""

    def stop(self) -> None:
        """Close the device and restore what start() changed (idempotent)."""

    def poll(self) -> TeleopReading:
        """The device's state now, without blocking; TeleopDisconnected when it is gone."""


@dataclass
class TeleopConfig:
    """What every device is configured with (the devices' configs extend it).

    axes: one entry per twist axis (x, y, z, roll, pitch, yaw): the raw axis that drives it,
    "-" in front to flip its sign, "" for none. buttons: raw button name -> role, a role being
    one of intervene, success, failure, rerecord, estop, gripper_open, gripper_close.
    """

    deadband: float = 0.1  # |raw| below this counts as no motion; above it is rescaled to [0, 1]
    scale: list[float] = field(default_factory=lambda: [1.0] * 6)  # per twist axis, then clipped
    axes: list[str] = field(default_factory=lambda: list(TWIST_AXES))
    buttons: dict[str, str] = field(default_factory=dict)
    hold_s: float = 0.5  # the intervention stays active this long after the last input

    def __post_init__(self) -> None:
        device = type(self).__name__
        if not (isinstance(self.deadband, (int, float)) and 0.0 <= self.deadband < 1.0):
            raise ValueError(f"{device}.deadband must be in [0, 1), got {self.deadband!r}")
        if not (isinstance(self.hold_s, (int, float)) and 0.0 <= self.hold_s < math.inf):
            raise ValueError(f"{device}.hold_s must be a finite number of seconds >= 0, got {self.hold_s!r}")
        if len(self.scale) != 6 or not all(math.isfinite(s) and s >= 0 for s in self.scale):
            raise ValueError(
                f"{device}.scale must be 6 finite numbers >= 0 (x y z roll pitch yaw), got {list(self.scale)}"
            )
        if len(self.axes) != 6:
            raise ValueError(
                f"{device}.axes must have 6 entries (x y z roll pitch yaw), got {len(self.axes)}: "
                f"{list(self.axes)}"
            )
        for role in self.buttons.values():
            if role not in BUTTON_ROLES + GRIPPER_ROLES:
                raise ValueError(
                    f"{device}.buttons: unknown role {role!r}; roles are {list(BUTTON_ROLES + GRIPPER_ROLES)}"
                )

    def check_names(self, raw_axes: Collection[str], raw_buttons: Collection[str] | None) -> None:
        """ValueError naming an axis or button the device does not have (None: any button name)."""
        device = type(self).__name__
        for twist_axis, entry in zip(TWIST_AXES, self.axes, strict=True):
            name = entry.removeprefix("-")
            if entry and name not in raw_axes:
                raise ValueError(
                    f"{device}.axes: {twist_axis} is mapped to unknown raw axis {entry!r}; "
                    f"this device's axes are {list(raw_axes)} (prefix '-' to flip, '' for none)"
                )
        unknown = sorted(set(self.buttons) - set(raw_buttons)) if raw_buttons is not None else []
        if unknown:
            raise ValueError(
                f"{device}.buttons: unknown buttons {unknown}; this device has {list(raw_buttons)}"
            )


def apply_deadband(value: float, deadband: float) -> float:
    """0 inside the deadband; outside it, rescaled so motion starts at 0 and still reaches +-1."""
    magnitude = abs(value)
    if magnitude <= deadband:
        return 0.0
    return math.copysign(min((magnitude - deadband) / (1.0 - deadband), 1.0), value)


def map_twist(raw: Mapping[str, float], cfg: TeleopConfig) -> np.ndarray:
    """The twist (float64[6], in [-1, 1]) of raw axis values in [-1, 1] (missing ones count as 0)."""
    twist = np.zeros(6)
    for i, entry in enumerate(cfg.axes):
        if not entry:
            continue
        sign = -1.0 if entry.startswith("-") else 1.0
        value = apply_deadband(float(raw.get(entry.removeprefix("-"), 0.0)), cfg.deadband)
        twist[i] = sign * value * cfg.scale[i]
    return np.clip(twist, -1.0, 1.0)


class InterventionGate:
    """Whether the person is intervening: input now, or input less than hold_s ago.

    It reads the clock it is given (never sleeps), so tests drive it with a fake clock.
    """

    def __init__(self, hold_s: float, clock: Clock = time.monotonic) -> None:
        self.hold_s = hold_s
        self.clock = clock
        self._last_input: float | None = None

    def update(self, has_input: bool) -> bool:
        now = self.clock()
        if has_input:
            self._last_input = now
        return has_input or (self._last_input is not None and now - self._last_input < self.hold_s)

    def reset(self) -> None:
        self._last_input = None


class MappedDevice:
    """Shared by the hardware devices: raw axes and pressed raw buttons -> a TeleopReading."""

    def __init__(self, cfg: TeleopConfig, clock: Clock = time.monotonic) -> None:
        self.cfg = cfg
        self.clock = clock
        self.gate = InterventionGate(cfg.hold_s, clock)

    def reading(self, raw_axes: Mapping[str, float], pressed: Collection[str]) -> TeleopReading:
        """The reading of raw axis values (normalised to [-1, 1]) and the raw buttons held now."""
        twist = map_twist(raw_axes, self.cfg)
        roles = {self.cfg.buttons[name] for name in pressed if name in self.cfg.buttons}
        gripper = None
        if "gripper_close" in roles:
            gripper = GRIPPER_CLOSED
        elif "gripper_open" in roles:
            gripper = GRIPPER_OPEN
        buttons = Buttons(**{role: role in roles for role in BUTTON_ROLES})
        has_input = bool(np.any(twist != 0.0)) or gripper is not None or buttons.intervene
        return TeleopReading(twist, gripper, buttons, self.gate.update(has_input), self.clock())
