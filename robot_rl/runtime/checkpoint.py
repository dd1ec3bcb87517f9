"""Checkpoints written so a crash at any moment leaves the previous one intact."""

from __future__ import annotations

import copy
import os
import threading
from pathlib import Path
from typing import Any

import torch


def save_checkpoint(path: Path, state: dict[str, Any]) -> None:
    """torch.save to a temporary file, fsync, then rename over the old checkpoint."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".tmp{os.getpid()}")
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: Path) -> dict[str, Any]:
    """Load with weights_only=True: a checkpoint holds tensors and plain values, never code."""
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as err:
        raise RuntimeError(f"checkpoint {path} could not be read ({err}); it may be corrupt") from err


def snapshot(state: Any) -> Any:
    """A copy of a state_dict tree that training cannot change under a background writer.

    Tensors are cloned to the CPU (a GPU copy also lets the device keep training); containers are
    rebuilt; plain values are immutable already.
    """
    if isinstance(state, torch.Tensor):
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        return {k: snapshot(v) for k, v in state.items()}
    if isinstance(state, (list, tuple)):
        return type(state)(snapshot(v) for v in state)
    return copy.deepcopy(state)


class CheckpointWriter:
    """Writes checkpoints on a background thread, so training never waits for the disk.

    submit() hands over a state (take a snapshot() first); if one is still waiting, the newer
    replaces it: the newest wins, and at most one write is ever behind. A write that fails is
    raised by the next submit() or flush(), naming the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.written = 0  # checkpoints on disk so far
        self._pending: dict[str, Any] | None = None
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name="checkpoint-writer", daemon=True)
        self._thread.start()

    def submit(self, state: dict[str, Any]) -> None:
        with self._cond:
            self._raise_error()
            self._pending = state
            self._cond.notify_all()

    def flush(self) -> None:
        """Block until every submitted state is on disk."""
        with self._cond:
            self._cond.wait_for(lambda: (self._pending is None and not self._busy) or self._error is not None)
            self._raise_error()

    def close(self) -> None:
        self.flush()
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout=10)

    def _raise_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise RuntimeError(f"writing checkpoint {self.path} failed: {err}") from err

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._pending is None:
                    return
                state, self._pending, self._busy = self._pending, None, True
            try:
                save_checkpoint(self.path, state)
                self.written += 1
            except BaseException as err:  # reported to the training thread, not lost with this one
                self._error = err
            with self._cond:
                self._busy = False
                self._cond.notify_all()
