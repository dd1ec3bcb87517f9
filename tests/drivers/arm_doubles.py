"""Recording doubles: for the vendor SDKs, classes with the SDK's method names that log every
call and return scripted values, so a driver's own logic is tested without the SDK or an arm; and
for the Arm protocol, the twin wrapped to record what reached it (node and guard tests). On the
path of every test through pytest's `pythonpath` (pyproject.toml)."""

from __future__ import annotations

from typing import Any

import numpy as np

from drivers.arm import ArmReading
from drivers.safety import PoseCommand, TwistCommand
from sim.sim_arm import SimArm


class CallLog:
    """Records (method, args, kwargs); `fail` scripts a return value or an exception per method."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, tuple[Any, ...], dict[str, Any]]] = []
        self.fail: dict[str, Any] = {}

    def _record(self, name: str, *args: Any, ok: Any = True, **kwargs: Any) -> Any:
        self.calls.append((name, args, kwargs))
        outcome = self.fail.get(name, ok)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome

    def names(self) -> list[str]:
        return [c[0] for c in self.calls]

    def last(self, name: str) -> tuple[tuple[Any, ...], dict[str, Any]]:
        for call in reversed(self.calls):
            if call[0] == name:
                return call[1], call[2]
        raise AssertionError(f"{name} was not called; calls: {self.names()}")


class FakeGripper:
    """A GripperDevice (drivers.arm) that records moves."""

    def __init__(self) -> None:
        self.moves: list[float] = []

    def move(self, position: float) -> None:
        self.moves.append(position)

    def position(self) -> float | None:
        return self.moves[-1] if self.moves else None


class SteppedClock:
    """One clock for the twin's stamps and the node's judgement; tests step `t` by hand."""

    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


class RecordingArm:
    """The twin as the arm a node drives, recording each command with the reading it was sent in."""

    def __init__(self, inner: SimArm) -> None:
        self.inner = inner
        self.sent: list[tuple[PoseCommand | TwistCommand, ArmReading]] = []
        self.grippers: list[float] = []
        self.holds = 0
        self.stops = 0

    def state(self) -> ArmReading:
        return self.inner.state()

    def move_to_pose(self, command: PoseCommand) -> None:
        self.sent.append((command, self.inner.state()))
        self.inner.move_to_pose(command)

    def move_twist(self, command: TwistCommand) -> None:
        self.sent.append((command, self.inner.state()))
        self.inner.move_twist(command)

    def joint_target(self, q: np.ndarray) -> None:
        raise AssertionError("the arm node never sends joint targets")

    def gripper(self, position: float) -> None:
        self.grippers.append(position)
        self.inner.gripper(position)

    def hold(self) -> None:
        self.holds += 1
        self.inner.hold()

    def stop(self) -> None:
        self.stops += 1
        self.inner.stop()

    def close(self) -> None:
        self.inner.close()
