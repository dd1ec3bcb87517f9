"""record-demos' camera window: the frame composition (pure numpy, runs everywhere), the text, and
the window itself drawn off screen (matplotlib's Agg: no display needed) and, where Xvfb is
installed, on a real X display, read back with a screenshot."""

from __future__ import annotations

import os
import select
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from drivers.teleop.keyboard import KeyboardConfig
from drivers.teleop.spacemouse import SpaceMouseConfig
from robot_rl.hil.camera_window import (
    BORDER_PX,
    COLOURS,
    GAP_PX,
    CameraWindow,
    WindowState,
    button_hints,
    compose_frame,
    display_available,
    motion_hints,
    open_window,
    status_lines,
)
from robot_rl.hil.sim_human import SimHumanConfig

B = BORDER_PX
ROOT = Path(__file__).resolve().parents[3]


def frames(*shapes: tuple[int, int]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(0)
    return {f"cam{i}": rng.integers(0, 256, (h, w, 3), np.uint8) for i, (h, w) in enumerate(shapes)}


def test_cameras_side_by_side_enlarged_by_whole_pixels_in_the_states_colour():
    images = frames((64, 64), (64, 80))
    out = compose_frame(images, "recording", height=240)
    assert out.dtype == np.uint8 and out.shape == (192 + 2 * B, 192 + GAP_PX + 240 + 2 * B, 3)  # 64 * 3
    first = out[B : B + 192, B : B + 192]
    np.testing.assert_array_equal(first, np.repeat(np.repeat(images["cam0"], 3, 0), 3, 1))
    second = out[B : B + 192, B + 192 + GAP_PX : B + 192 + GAP_PX + 240]
    np.testing.assert_array_equal(second[::3, ::3], images["cam1"])
    assert (out[B : B + 192, B + 192 : B + 192 + GAP_PX] == 0).all()  # the gap between them
    for edge in (out[:B], out[-B:], out[:, :B], out[:, -B:]):
        assert (edge == COLOURS["recording"]).all()
    assert (compose_frame(images, "intervening", 240)[0, 0] == COLOURS["intervening"]).all()


def test_large_frames_are_reduced_and_a_shorter_one_is_padded_below():
    images = frames((480, 640), (120, 160))
    out = compose_frame(images, "stopped", height=240)
    assert out.shape == (240 + 2 * B, 320 + GAP_PX + 320 + 2 * B, 3)  # 480 / 2; 120 * 2
    np.testing.assert_array_equal(out[B : B + 240, B : B + 320], images["cam0"][::2, ::2])
    mixed = frames((64, 64), (32, 32))
    out = compose_frame(mixed, "stopped", height=100)  # 64 * 1 and 32 * 3: the row is 96 tall
    assert out.shape == (96 + 2 * B, 64 + GAP_PX + 96 + 2 * B, 3)
    np.testing.assert_array_equal(out[B : B + 64, B : B + 64], mixed["cam0"])
    assert (out[B + 64 : B + 96, B : B + 64] == 0).all()  # padded below


def test_without_cameras_the_frame_is_a_grey_tile():
    out = compose_frame({}, "recording", height=120)
    assert out.shape == (90 + 2 * B, 120 + 2 * B, 3) and (out[B:-B, B:-B] == 90).all()


@pytest.mark.parametrize(
    ("images", "mode", "match"),
    [
        ({"wrist": np.zeros((8, 8, 3), np.float32)}, "recording", "camera 'wrist': a frame is uint8"),
        ({"wrist": np.zeros((8, 8), np.uint8)}, "recording", "camera 'wrist'"),
        ({}, "paused", "mode must be one of"),
    ],
)
def test_bad_frames_and_modes_are_named(images, mode, match):
    with pytest.raises(ValueError, match=match):
        compose_frame(images, mode)


def test_the_text_says_the_state_the_counts_and_the_buttons():
    state = WindowState(3, 17, True, saved=2, asked=10, failed=1, last="success, saved (2/10)")
    lines = status_lines(state, "hints")
    assert lines[0] == "episode 3, step 17 | RECORDING | PERSON ACTING"
    assert lines[1] == "saved 2/10 | 1 failed, 0 re-recorded | last: success, saved (2/10)"
    assert lines[2] == "hints" and state.mode == "intervening"
    assert "STOPPED" in status_lines(WindowState(3, 17, False, 2, 10, stopped=True), "")[0]
    keys = button_hints(KeyboardConfig())
    assert keys == "keys (in the terminal): s success   f failure   r re-record   q/Esc e-stop"
    custom = SpaceMouseConfig(buttons={"left": "success", "right": "estop"})
    assert button_hints(custom) == "buttons: left success   right e-stop"
    assert "none mapped" in button_hints(SpaceMouseConfig())  # the default: gripper buttons only
    assert "simulated person" in button_hints(SimHumanConfig())


def test_the_keyboards_motion_keys_are_shown_the_rotation_keys_only_with_rotation():
    assert motion_hints(KeyboardConfig(), rotation=False) == (
        "move: i/k x  j/l y  u/o z  c/v gripper close/open  space intervene on/off"
    )
    turning = motion_hints(KeyboardConfig(), rotation=True)
    assert "u/o z  J/L roll  I/K pitch  U/O yaw  c/v gripper" in turning
    one_way = KeyboardConfig(keys={"w": "+x", "e": "+x", "d": "gripper_close"})
    assert motion_hints(one_way, rotation=False) == "move: w,e/- x  d/- gripper close/open"
    assert motion_hints(SpaceMouseConfig(), rotation=True) == ""  # its stick says it itself


def test_no_display_no_window(monkeypatch):
    assert not display_available({}) and display_available({"DISPLAY": ":1"})
    monkeypatch.delenv("DISPLAY", raising=False)
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    assert open_window("t", "h", wanted=True) is None  # recording goes on without it
    monkeypatch.setenv("DISPLAY", ":1")
    assert open_window("t", "h", wanted=False) is None  # --no-window


def test_the_window_draws_frames_and_state(tmp_path):
    window = CameraWindow("test", "keys", backend="Agg")
    state = WindowState(1, 0, False, 0, 5)
    window.show(frames((64, 64), (64, 64)), state)
    window.show(frames((64, 64), (64, 64)), WindowState(1, 1, True, 0, 5))  # redrawn in place
    assert window.image.get_array().shape == compose_frame(frames((64, 64), (64, 64)), "recording").shape
    assert "PERSON ACTING" in window.text.get_text()
    window.save(str(tmp_path / "window.png"))
    assert (tmp_path / "window.png").stat().st_size > 0
    window.close()
    assert not window.open
    window.show(frames((64, 64)), state)  # a closed window is left closed


# Opens the window as record-demos does (open_window: the display, TkAgg), shows a few frames of a
# person acting, says how the window stands with the window manager, and waits to be told to close.
ON_SCREEN = """
import sys
import numpy as np
from robot_rl.hil.camera_window import WindowState, open_window
window = open_window("robot-rl record-demos: x11", "keys", wanted=True)
frames = {"wrist": np.full((32, 32, 3), 200, np.uint8), "front": np.full((32, 48, 3), 60, np.uint8)}
for step in range(5):
    window.show(frames, WindowState(1, step, True, 0, 2))
    window.plt.pause(0.05)
manager = window.fig.canvas.manager
print("focusmodel", manager.window.wm_focusmodel(), "toolbar", manager.toolbar, flush=True)
sys.stdin.readline()
window.close()
"""


def _start_xvfb() -> tuple[subprocess.Popen, str]:
    """Xvfb on a free display number (it writes the number it took to -displayfd)."""
    read, write = os.pipe()
    server = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write), "-screen", "0", "800x600x24", "-nolisten", "tcp"],
        pass_fds=(write,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    os.close(write)
    said = b""
    while not said.endswith(b"\n") and select.select([read], [], [], 20.0)[0]:
        chunk = os.read(read, 64)
        said += chunk
        if not chunk:
            break
    os.close(read)  # only once it has written all of it: a write to a closed pipe would kill it
    if not said.endswith(b"\n") or server.poll() is not None:
        server.kill()
        pytest.fail(f"Xvfb did not start within 20 s (it said {said!r})")
    return server, f":{said.decode().strip()}"


def _screenshot(display: str) -> np.ndarray:
    """The X screen as uint8 [H, W, 3], from xwd's dump (a 100-byte header of 25 big-endian
    uint32, the window name, the colour map, then 32-bit ZPixmap rows)."""
    raw = subprocess.run(
        ["xwd", "-display", display, "-root", "-silent"], capture_output=True, check=True, timeout=20
    ).stdout
    head = struct.unpack(">25I", raw[:100])
    header_size, byte_order, width, height, bits, row_bytes, colours = (
        head[0], head[7], head[4], head[5], head[11], head[12], head[19],
    )  # fmt: skip
    assert bits == 32, f"xwd wrote {bits} bits a pixel; the test reads 32"
    start = header_size + 12 * colours
    pixels = np.frombuffer(raw[start : start + row_bytes * height], np.uint8).reshape(height, row_bytes)
    pixels = pixels[:, : 4 * width].reshape(height, width, 4)
    return pixels[..., [2, 1, 0]] if byte_order == 0 else pixels[..., [1, 2, 3]]  # BGRX or XRGB


def _pixels_of(screen: np.ndarray, rgb: tuple[int, int, int]) -> int:
    return int((screen == rgb).all(axis=-1).sum())


@pytest.mark.skipif(
    shutil.which("Xvfb") is None or shutil.which("xwd") is None,
    reason="needs Xvfb and xwd (apt-get install xvfb x11-apps)",
)
def test_the_window_on_an_x_display():
    pytest.importorskip("tkinter")
    server, display = _start_xvfb()
    env = {k: v for k, v in os.environ.items() if k not in ("WAYLAND_DISPLAY", "MPLBACKEND")}
    env |= {"DISPLAY": display, "PYTHONPATH": str(ROOT)}
    window = subprocess.Popen(
        [sys.executable, "-c", ON_SCREEN], env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    try:
        ready, _, _ = select.select([window.stdout], [], [], 60.0)
        said = window.stdout.readline() if ready else "nothing within 60 s"  # the frames are drawn
        assert said.split() == ["focusmodel", "active", "toolbar", "None"], said
        screen = _screenshot(display)
        window.stdin.write("\n")
        window.stdin.flush()
        assert window.wait(timeout=20) == 0
    finally:
        window.kill()
        server.terminate()  # it removes its socket and lock file
        server.wait()
    # on the screen: the frame in the colour of a person acting, and both cameras' frames
    assert _pixels_of(screen, COLOURS["intervening"]) > 2_000
    assert _pixels_of(screen, (200, 200, 200)) > 10_000 and _pixels_of(screen, (60, 60, 60)) > 10_000
