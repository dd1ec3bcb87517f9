"""The window `robot-rl record-demos` shows: each camera's latest frame and the episode's state.

The person recording demos needs to see what the cameras see (a demo is learned from those
frames) and whether the episode is recording, whether their command is the one executed, and
which keys move the arm and end it. compose_frame() puts the frames side by side, scaled to one
height (nearest neighbour: pixels stay pixels) and framed in the state's colour: green while
recording, orange while the person's command is executed, red once stopped. status_lines() is
the text above it. Both are pure functions; CameraWindow draws them with matplotlib (already a
dependency; its Tk backend needs only an X display), and never takes the keys: matplotlib's key
bindings are off, and the window manager is asked never to give it the keyboard focus nor to
raise it, so the terminal keyboard's keys stay in the terminal, also as the window opens.

The window opens when a display is there (DISPLAY or WAYLAND_DISPLAY) and --no-window is not
given; a window that cannot open, or that the person closes, costs the recording nothing.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from drivers.teleop.base import TWIST_AXES

log = logging.getLogger(__name__)

COLOURS = {  # RGB of the frame around the cameras
    "recording": (40, 170, 60),
    "intervening": (240, 140, 20),
    "stopped": (200, 30, 30),
}
BORDER_PX = 6
GAP_PX = 4
BUTTON_ROLES_SHOWN = ("success", "failure", "rerecord", "estop")


@dataclass
class WindowState:
    """What the window says about the recording session."""

    episode: int  # 1-based: the episode being recorded
    step: int  # steps taken in it
    intervening: bool  # the person's command was executed this step
    saved: int
    asked: int
    failed: int = 0
    rerecorded: int = 0
    last: str = ""  # how the previous episode ended ("" before the first)
    stopped: bool = False

    @property
    def mode(self) -> str:
        """recording | intervening | stopped: the frame's colour."""
        return "stopped" if self.stopped else "intervening" if self.intervening else "recording"


def _scaled(frame: np.ndarray, height: int) -> np.ndarray:
    """frame at most `height` px tall: enlarged by the largest whole factor that fits (each pixel
    a k x k block), or reduced by the smallest whole stride that fits."""
    h = frame.shape[0]
    if h <= height:
        k = height // h
        return np.repeat(np.repeat(frame, k, axis=0), k, axis=1)
    stride = -(-h // height)
    return frame[::stride, ::stride]


def compose_frame(images: Mapping[str, np.ndarray], mode: str, height: int = 240) -> np.ndarray:
    """uint8 [H, W, 3]: the cameras' frames left to right in the mapping's order, each scaled to
    at most `height` px (_scaled; shorter ones padded below), GAP_PX apart, in a BORDER_PX frame
    of COLOURS[mode]; a grey tile without cameras. ValueError for a frame that is not uint8
    [h, w, 3] or an unknown mode."""
    if mode not in COLOURS:
        raise ValueError(f"mode must be one of {sorted(COLOURS)}, got {mode!r}")
    if height < 8:
        raise ValueError(f"height must be >= 8 px, got {height}")
    tiles = []
    for camera, frame in images.items():
        frame = np.asarray(frame)
        if frame.dtype != np.uint8 or frame.ndim != 3 or frame.shape[2] != 3 or 0 in frame.shape:
            got = f"{frame.dtype} {frame.shape}"
            raise ValueError(f"camera {camera!r}: a frame is uint8 [H, W, 3], got {got}")
        tiles.append(_scaled(frame, height))
    if not tiles:  # an env without cameras: the state still shows
        tiles = [np.full((height * 3 // 4, height, 3), 90, np.uint8)]
    row_h = max(tile.shape[0] for tile in tiles)
    tiles = [np.pad(tile, ((0, row_h - tile.shape[0]), (0, 0), (0, 0))) for tile in tiles]
    gap = np.zeros((row_h, GAP_PX, 3), np.uint8)
    row = np.concatenate([part for tile in tiles for part in (tile, gap)][:-1], axis=1)
    framed = np.empty((row_h + 2 * BORDER_PX, row.shape[1] + 2 * BORDER_PX, 3), np.uint8)
    framed[:] = COLOURS[mode]
    framed[BORDER_PX:-BORDER_PX, BORDER_PX:-BORDER_PX] = row
    return framed


def _keys_by_command(teleop_cfg: Any) -> dict[str, list[str]] | None:
    """The terminal keyboard's keys of each command, as the window writes them; None for another
    device."""
    keys = getattr(teleop_cfg, "keys", None)
    if not isinstance(keys, Mapping):
        return None
    shown = {" ": "space", "\x1b": "Esc"}
    by_command: dict[str, list[str]] = {}
    for key, command in keys.items():
        by_command.setdefault(command, []).append(shown.get(key, key))
    return by_command


def motion_hints(teleop_cfg: Any, rotation: bool) -> str:
    """The terminal keyboard's keys that move the arm, e.g. "move: i/k x  j/l y  u/o z  c/v
    gripper close/open  space intervene on/off" (the rotation axes only with rotation); "" for
    another device, whose sticks say it themselves."""
    by_command = _keys_by_command(teleop_cfg)
    if by_command is None:
        return ""
    parts = []
    for axis in TWIST_AXES[: 6 if rotation else 3]:
        plus, minus = by_command.get(f"+{axis}", []), by_command.get(f"-{axis}", [])
        if plus or minus:
            parts.append(f"{','.join(plus) or '-'}/{','.join(minus) or '-'} {axis}")
    close, opened = by_command.get("gripper_close", []), by_command.get("gripper_open", [])
    if close or opened:
        parts.append(f"{','.join(close) or '-'}/{','.join(opened) or '-'} gripper close/open")
    if "intervene" in by_command:
        parts.append(f"{'/'.join(by_command['intervene'])} intervene on/off")
    return "move: " + "  ".join(parts)


def button_hints(teleop_cfg: Any) -> str:
    """Which keys or buttons end an episode, from the device's config: a keyboard's keys, another
    device's button mapping, or what the simulated person does."""
    names = {"rerecord": "re-record", "estop": "e-stop"}
    by_role = _keys_by_command(teleop_cfg)
    if by_role is not None:  # the terminal keyboard
        parts = [f"{'/'.join(by_role[r])} {names.get(r, r)}" for r in BUTTON_ROLES_SHOWN if r in by_role]
        return "keys (in the terminal): " + "   ".join(parts)
    buttons = getattr(teleop_cfg, "buttons", None)
    if isinstance(buttons, Mapping):
        by_button = {role: button for button, role in buttons.items()}
        parts = [f"{by_button[r]} {names.get(r, r)}" for r in BUTTON_ROLES_SHOWN if r in by_button]
        return "buttons: " + ("   ".join(parts) if parts else "none mapped to success / failure / e-stop")
    return "the simulated person drives; the task's success ends an episode"


def status_lines(state: WindowState, hints: str) -> list[str]:
    """The text above the frames: the episode, the session's counts, the buttons."""
    who = "PERSON ACTING" if state.intervening else "arm holding"
    mode = "STOPPED" if state.stopped else f"RECORDING | {who}"
    last = f" | last: {state.last}" if state.last else ""
    return [
        f"episode {state.episode}, step {state.step} | {mode}",
        f"saved {state.saved}/{state.asked} | {state.failed} failed, {state.rerecorded} re-recorded{last}",
        hints,
    ]


def display_available(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"))


class CameraWindow:
    """A matplotlib figure showing compose_frame() and status_lines(); show() redraws it.

    backend: matplotlib's ("TkAgg" on a desktop; "Agg" draws off screen, for a picture or a
    test). RuntimeError when it cannot be opened."""

    def __init__(self, title: str, hints: str, backend: str = "TkAgg", height: int = 240) -> None:
        import matplotlib

        try:
            matplotlib.use(backend, force=True)
            import matplotlib.pyplot as plt

            with matplotlib.rc_context({"toolbar": "None"}):  # its pan and zoom would move the frames
                self.fig = plt.figure(title, figsize=(7.0, 4.4))
        except Exception as err:  # no display, no Tk: the recording goes on without the window
            raise RuntimeError(f"no camera window ({backend}: {err})") from err
        self.plt, self.hints, self.height = plt, hints, height
        manager = self.fig.canvas.manager
        if manager is not None and getattr(manager, "key_press_handler_id", None) is not None:
            # matplotlib's own keys (s saves, f goes full screen, q closes) are the teleop keys
            self.fig.canvas.mpl_disconnect(manager.key_press_handler_id)
        if hasattr(getattr(manager, "window", None), "wm_focusmodel"):  # Tk
            # The window manager must never give this window the keyboard focus (WM_HINTS input
            # off): a window that took it as it opened would swallow the keys the person types
            # into the terminal, where the keyboard device reads them.
            manager.window.wm_focusmodel("active")
        self.ax = self.fig.add_axes((0.01, 0.01, 0.98, 0.74))  # below four lines of text
        self.ax.set_axis_off()
        self.image: Any = None
        self.text = self.fig.text(0.02, 0.97, "", va="top", family="monospace", fontsize=9)
        self.labels: list[Any] = []
        if backend.lower() != "agg":
            with matplotlib.rc_context({"figure.raise_window": False}):  # not over the terminal
                plt.show(block=False)

    @property
    def open(self) -> bool:
        return self.plt.fignum_exists(self.fig.number)

    def show(self, images: Mapping[str, np.ndarray], state: WindowState) -> None:
        """Draw the frames and the state now (a closed window is left closed)."""
        if not self.open:
            return
        frame = compose_frame(images, state.mode, self.height)
        if self.image is None or self.image.get_array().shape != frame.shape:
            self.ax.clear()
            self.ax.set_axis_off()
            self.image = self.ax.imshow(frame, interpolation="nearest")
            self._label(images)
        else:
            self.image.set_data(frame)
        self.text.set_text("\n".join(status_lines(state, self.hints)))
        self.fig.canvas.draw_idle()
        self.fig.canvas.flush_events()

    def _label(self, images: Mapping[str, np.ndarray]) -> None:
        x = BORDER_PX
        for camera, frame in images.items():
            self.ax.text(x + 4, BORDER_PX + 4, camera, color="white", va="top", fontsize=9,
                         bbox={"facecolor": "black", "alpha": 0.5, "pad": 1, "linewidth": 0})  # fmt: skip
            x += _scaled(np.asarray(frame), self.height).shape[1] + GAP_PX

    def save(self, path: str) -> None:
        self.fig.savefig(path, dpi=100)

    def close(self) -> None:
        self.plt.close(self.fig)


def open_window(title: str, hints: str, wanted: bool) -> CameraWindow | None:
    """The window, or None (and a log line why) when it is not wanted or cannot open."""
    if not wanted:
        return None
    if not display_available():
        log.info("no display (DISPLAY unset): recording without the camera window")
        return None
    try:
        return CameraWindow(title, hints)
    except RuntimeError as err:
        log.warning("%s: recording without it", err)
        return None
