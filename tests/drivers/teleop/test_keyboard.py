"""The terminal keyboard against a pty (bytes written to the master side are key presses), and once
as a person would use it: the demo command in tmux, keys sent with send-keys, the screen read back."""

from __future__ import annotations

import contextlib
import os
import shutil
import subprocess
import sys
import termios
import time
import uuid
from pathlib import Path

import numpy as np
import pytest

from drivers.teleop.base import TeleopDisconnected, TeleopError
from drivers.teleop.keyboard import Keyboard, KeyboardConfig, _without_escape_sequences

ROOT = Path(__file__).resolve().parents[3]


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def pty():
    master, slave = os.openpty()
    yield master, slave
    for fd in (master, slave):
        with contextlib.suppress(OSError):
            os.close(fd)


def keyboard(slave: int, clock: FakeClock, **cfg) -> Keyboard:
    return Keyboard(KeyboardConfig(tty=os.ttyname(slave), hold_s=0.0, **cfg), clock=clock)


def test_cbreak_while_started_and_the_terminal_restored_on_stop(pty):
    _master, slave = pty
    before = termios.tcgetattr(slave)
    kb = keyboard(slave, FakeClock())
    kb.start()
    during = termios.tcgetattr(slave)
    assert not during[3] & (termios.ICANON | termios.ECHO)  # keys one by one, not echoed
    assert during[3] & termios.ISIG  # Ctrl-C still interrupts
    kb.stop()
    assert termios.tcgetattr(slave) == before
    kb.stop()  # idempotent


def test_the_terminal_is_restored_after_an_exception(pty):
    _master, slave = pty
    before = termios.tcgetattr(slave)
    with pytest.raises(RuntimeError, match="boom"), keyboard(slave, FakeClock()):
        raise RuntimeError("boom")
    assert termios.tcgetattr(slave) == before


def test_a_key_press_moves_for_press_s_and_repeats_extend_it(pty):
    master, slave = pty
    clock = FakeClock()
    with keyboard(slave, clock, scale=[1.0] * 6, press_s=0.2) as kb:
        assert not kb.poll().active
        os.write(master, b"iu")
        reading = kb.poll()
        np.testing.assert_allclose(reading.twist, [1, 0, 1, 0, 0, 0])
        assert reading.active
        clock.now = 0.15
        os.write(master, b"i")  # key repeat
        clock.now = 0.3
        np.testing.assert_allclose(kb.poll().twist, [1, 0, 0, 0, 0, 0])  # z stopped, x repeated
        clock.now = 0.5
        assert not kb.poll().twist.any()
        os.write(master, b"KU")
        np.testing.assert_allclose(kb.poll().twist, [0, 0, 0, 0, -1, 1])


def test_buttons_gripper_and_the_intervene_toggle(pty):
    master, slave = pty
    with keyboard(slave, FakeClock()) as kb:
        os.write(master, b"c")
        assert kb.poll().gripper == 1.0
        assert kb.poll().gripper is None  # a key is a momentary press
        os.write(master, b"v")
        assert kb.poll().gripper == -1.0
        os.write(master, b" ")
        on = kb.poll()
        assert on.buttons.intervene and on.active
        assert kb.poll().buttons.intervene  # stays on until space again
        os.write(master, b" ")
        assert not kb.poll().buttons.intervene
        for key, role in ((b"s", "success"), (b"f", "failure"), (b"r", "rerecord"), (b"q", "estop")):
            os.write(master, key)
            assert getattr(kb.poll().buttons, role)
        os.write(master, b"\x1b")
        assert kb.poll().buttons.estop
        os.write(master, b"\x1b[A\x1b[15~")  # arrow up, F5: not Esc
        assert not kb.poll().buttons.estop


def test_escape_sequences_are_not_keys():
    assert _without_escape_sequences("a\x1b[Ab\x1bOPc\x1b[15~d\x1b") == "abcd\x1b"


def test_a_closed_terminal_is_a_disconnect(pty):
    master, slave = pty
    with keyboard(slave, FakeClock()) as kb:
        os.close(master)
        with pytest.raises(TeleopDisconnected, match=r"went away|closed"):
            kb.poll()


def test_not_a_terminal(tmp_path):
    plain = tmp_path / "plain"
    plain.write_text("")
    with pytest.raises(TeleopError, match="is not a terminal"):
        Keyboard(KeyboardConfig(tty=str(plain))).start()
    with pytest.raises(TeleopError, match="the keyboard needs a terminal"):
        Keyboard(KeyboardConfig(tty=str(tmp_path / "missing"))).start()


def test_config_rejects_bad_keys():
    with pytest.raises(ValueError, match="'xy' -> '\\+x'"):
        KeyboardConfig(keys={"xy": "+x"})
    with pytest.raises(ValueError, match="'z' -> 'jump'"):
        KeyboardConfig(keys={"z": "jump"})


def _screen(server: str, session: str) -> str:
    return subprocess.run(
        ["tmux", "-L", server, "capture-pane", "-p", "-t", session], capture_output=True, text=True
    ).stdout


def _wait_for(server: str, session: str, text: str, timeout_s: float = 20.0) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        screen = _screen(server, session)
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared on the screen:\n{_screen(server, session)}")


@pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux (make sysdeps installs it)")
def test_the_demo_command_in_a_real_terminal():
    server, session = f"robot-rl-test-{uuid.uuid4().hex[:8]}", "kb"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = f"{sys.executable} -m drivers.teleop.keyboard; echo exit=$?; sleep 30"
    subprocess.run(
        ["tmux", "-L", server, "new-session", "-d", "-s", session, "-x", "200", "-y", "50", command],
        check=True,
        env=env,
    )
    try:
        _wait_for(server, session, "q or Esc e-stop")
        _wait_for(server, session, "idle")  # started: the terminal is in cbreak mode
        subprocess.run(["tmux", "-L", server, "send-keys", "-t", session, "i"], check=True)
        _wait_for(server, session, "x+0.50")
        subprocess.run(["tmux", "-L", server, "send-keys", "-t", session, "s"], check=True)
        _wait_for(server, session, "[success]")
        subprocess.run(["tmux", "-L", server, "send-keys", "-t", session, "q"], check=True)
        screen = _wait_for(server, session, "exit=0")
        assert "e-stop" in screen and "gripper -" in screen
        # the terminal is restored: typing now echoes again (the shell runs `sleep 30`)
        subprocess.run(["tmux", "-L", server, "send-keys", "-t", session, "echoed-again"], check=True)
        _wait_for(server, session, "echoed-again")
    finally:
        subprocess.run(["tmux", "-L", server, "kill-server"], capture_output=True)
