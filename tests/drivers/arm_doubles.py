"""Recording doubles for the vendor SDKs: classes with the SDK's method names that log every call
and return scripted values, so a driver's own logic is tested without the SDK or an arm."""

from __future__ import annotations

from typing import Any


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
