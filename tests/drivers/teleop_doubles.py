"""A synthetic teleop device the teleop node and RosTeleop tests share."""

from __future__ import annotations

from drivers.teleop.base import TeleopDisconnected, TeleopError, TeleopReading


class SyntheticDevice:
    """Reports the readings put in `once` one poll each (a one-tick press), then `reading` on every
    poll; `lost` makes poll raise as an unplugged device does, and start() fails while
    `refuse_start` is set. Safe to drive from a test while a node polls it on another thread."""

    def __init__(self, reading: TeleopReading | None = None) -> None:
        self.reading = reading or TeleopReading.idle(0.0)
        self.once: list[TeleopReading] = []
        self.lost = False
        self.refuse_start = False
        self.starts = self.stops = 0

    def start(self) -> None:
        if self.refuse_start:
            raise TeleopError("no SpaceMouse found")
        self.starts += 1
        self.lost = False

    def stop(self) -> None:
        self.stops += 1

    def poll(self) -> TeleopReading:
        if self.lost:
            raise TeleopDisconnected("the SpaceMouse stopped answering: is it unplugged?")
        try:
            return self.once.pop(0)  # atomic: the test's append and the node's poll may overlap
        except IndexError:
            return self.reading
