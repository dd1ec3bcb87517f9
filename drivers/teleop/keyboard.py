"""The keyboard of a plain terminal (works over SSH, no X server): `python -m drivers.teleop.keyboard`
shows the live reading.

start() puts the terminal (/dev/tty, the controlling terminal, so it works from a process whose
stdin is elsewhere) in cbreak mode: keys arrive one by one without Enter and without echo, while
output processing and Ctrl-C stay as they were (raw mode would turn both off). stop() restores the
terminal, also after an exception (use the device as a context manager, or call stop() in finally).

A terminal reports key presses, not releases: a motion key moves its axis at +-1 for press_s after
each press, and holding it down repeats the press (the terminal's key repeat), which gives a
stream of motion. Default keys (KeyboardConfig.keys):
    i / k  +x / -x      j / l  +y / -y      u / o  +z / -z
    I / K  +pitch / -pitch   J / L  +roll / -roll   U / O  +yaw / -yaw
    c  close gripper    v  open gripper
    space  intervene on / off    s  success    f  failure    r  re-record    q or Esc  e-stop
"""

from __future__ import annotations

import os
import sys
import termios
import time
import tty
from dataclasses import dataclass, field
from types import TracebackType

from drivers.teleop.base import (
    BUTTON_ROLES,
    GRIPPER_ROLES,
    TWIST_AXES,
    Clock,
    MappedDevice,
    TeleopConfig,
    TeleopDisconnected,
    TeleopError,
    TeleopReading,
)

ESC = "\x1b"
MOTIONS = tuple(f"{sign}{axis}" for axis in TWIST_AXES for sign in "+-")
COMMANDS = MOTIONS + BUTTON_ROLES + GRIPPER_ROLES


def _default_keys() -> dict[str, str]:
    keys = dict(zip("ikjluo", MOTIONS[:6], strict=True))  # +x -x +y -y +z -z
    keys |= {"J": "+roll", "L": "-roll", "I": "+pitch", "K": "-pitch", "U": "+yaw", "O": "-yaw"}
    keys |= {"c": "gripper_close", "v": "gripper_open", " ": "intervene"}
    return keys | {"s": "success", "f": "failure", "r": "rerecord", "q": "estop", ESC: "estop"}


@dataclass
class KeyboardConfig(TeleopConfig):
    """teleop=keyboard. keys: one character -> a command (+x .. -yaw, intervene, success, failure,
    rerecord, estop, gripper_open, gripper_close); "\\x1b" is Esc."""

    scale: list[float] = field(default_factory=lambda: [0.5] * 6)  # a key is full deflection
    buttons: dict[str, str] = field(default_factory=lambda: {r: r for r in BUTTON_ROLES + GRIPPER_ROLES})
    keys: dict[str, str] = field(default_factory=_default_keys)
    press_s: float = 0.15  # how long one key press moves; key repeat continues it
    tty: str = "/dev/tty"

    def __post_init__(self) -> None:
        super().__post_init__()
        self.check_names(TWIST_AXES, BUTTON_ROLES + GRIPPER_ROLES)
        for key, command in self.keys.items():
            if len(key) != 1 or command not in COMMANDS:
                raise ValueError(
                    f"KeyboardConfig.keys: {key!r} -> {command!r}; a key is one character and a "
                    f"command one of {list(COMMANDS)}"
                )
        if not self.press_s > 0:
            raise ValueError(f"KeyboardConfig.press_s must be > 0, got {self.press_s!r}")


class Keyboard(MappedDevice):
    def __init__(self, cfg: KeyboardConfig, clock: Clock = time.monotonic) -> None:
        super().__init__(cfg, clock)
        self.cfg: KeyboardConfig = cfg
        self._fd: int | None = None
        self._saved: list | None = None
        self._moving_until: dict[str, tuple[float, float]] = {}  # axis -> (sign, until)
        self._intervene = False

    def start(self) -> None:
        try:
            fd = os.open(self.cfg.tty, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY)
        except OSError as err:
            raise TeleopError(
                f"the keyboard needs a terminal: could not open {self.cfg.tty} ({err}); run the "
                "command in a terminal (ssh -t for a remote one)"
            ) from err
        try:
            self._saved = termios.tcgetattr(fd)
            tty.setcbreak(fd, termios.TCSANOW)
        except termios.error as err:
            os.close(fd)
            raise TeleopError(f"{self.cfg.tty} is not a terminal ({err})") from err
        self._fd = fd
        self._moving_until, self._intervene = {}, False
        self.gate.reset()

    def stop(self) -> None:
        if self._fd is None:
            return
        fd, self._fd = self._fd, None
        try:
            if self._saved is not None:
                termios.tcsetattr(fd, termios.TCSADRAIN, self._saved)
        except termios.error:
            pass  # the terminal is gone: nothing left to restore
        finally:
            os.close(fd)

    def __enter__(self) -> Keyboard:
        self.start()
        return self

    def __exit__(self, kind: type | None, err: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()

    def _read_keys(self) -> str:
        try:
            data = os.read(self._fd, 1024)
        except BlockingIOError:
            return ""
        except OSError as err:  # the terminal went away (ssh session closed)
            self.stop()
            raise TeleopDisconnected(f"the terminal {self.cfg.tty} went away ({err})") from err
        if data == b"":
            self.stop()
            raise TeleopDisconnected(f"the terminal {self.cfg.tty} closed")
        return _without_escape_sequences(data.decode(errors="ignore"))

    def poll(self) -> TeleopReading:
        if self._fd is None:
            raise TeleopError("Keyboard.poll() before start()")
        now = self.clock()
        pressed: set[str] = set()
        for key in self._read_keys():
            command = self.cfg.keys.get(key)
            if command in MOTIONS:
                self._moving_until[command[1:]] = (1.0 if command[0] == "+" else -1.0, now + self.cfg.press_s)
            elif command == "intervene":
                self._intervene = not self._intervene
            elif command is not None:
                pressed.add(command)  # momentary: reported on the poll that read it
        if self._intervene:
            pressed.add("intervene")
        raw = {axis: sign for axis, (sign, until) in self._moving_until.items() if now < until}
        return self.reading(raw, pressed)


def _without_escape_sequences(text: str) -> str:
    """The keys of text with arrow/function-key sequences (Esc [ ... or Esc O x) removed, so
    only a lone Esc counts as Esc."""
    out, i = [], 0
    while i < len(text):
        if text[i] == ESC and i + 1 < len(text) and text[i + 1] in "[O":
            i += 2
            while i < len(text) and not (text[i].isalpha() or text[i] == "~"):
                i += 1
            i += 1
            continue
        out.append(text[i])
        i += 1
    return "".join(out)


def describe(reading: TeleopReading) -> str:
    """One line for a person: the twist, the gripper, the buttons held and whether it is active."""
    twist = " ".join(f"{a}{v:+.2f}" for a, v in zip(TWIST_AXES, reading.twist, strict=True))
    gripper = "-" if reading.gripper is None else f"{reading.gripper:+.2f}"
    held = [role for role in BUTTON_ROLES if getattr(reading.buttons, role)]
    return f"{twist} gripper {gripper} buttons [{' '.join(held)}] {'ACTIVE' if reading.active else 'idle'}"


def main(argv: list[str] | None = None) -> int:
    """Print the live reading, one line per change, until e-stop (q or Esc) or Ctrl-C."""
    del argv
    print(
        "keyboard teleop: i/k j/l u/o move, I/K J/L U/O turn, c/v gripper, space intervene, "
        "s/f/r success/failure/re-record, q or Esc e-stop",
        flush=True,
    )
    last = ""
    try:
        with Keyboard(KeyboardConfig()) as keyboard:
            while True:
                reading = keyboard.poll()
                line = describe(reading)
                if line != last:
                    print(line, flush=True)
                    last = line
                if reading.buttons.estop:
                    print("e-stop", flush=True)
                    return 0
                time.sleep(0.02)
    except KeyboardInterrupt:
        return 130
    except TeleopError as err:
        print(err, file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
