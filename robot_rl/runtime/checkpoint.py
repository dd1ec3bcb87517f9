"""Checkpoints written so a crash at any moment leaves the previous one intact."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import torch

from robot_rl.runtime.background import LatestWorker


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


class CheckpointWriter(LatestWorker[dict[str, Any]]):
    """Writes checkpoints on a background thread, so training never waits for the disk.

    submit() hands over a state (take a snapshot() first); if one is still waiting, the newer
    replaces it: the newest wins, and at most one write is ever behind. A write that fails is
    raised by the next submit() or flush(), naming the file.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        super().__init__(lambda state: save_checkpoint(self.path, state), f"writing checkpoint {path}")

    @property
    def written(self) -> int:
        """Checkpoints on disk so far."""
        return self.done
