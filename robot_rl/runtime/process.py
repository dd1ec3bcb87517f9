"""Small set-up steps shared by the processes: threads, device, status messages, supervision."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch


def set_torch_threads(n: int) -> None:
    """One thread by default: on a shared 2-core box two threads run up to 10x slower."""
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    torch.set_num_threads(n)
    with contextlib.suppress(RuntimeError):  # already set in this process
        torch.set_num_interop_threads(1)


def supervisor_gone(parent_pid: int) -> bool:
    """True once the process that started us has died (we were re-parented): time to stop."""
    return os.getppid() != parent_pid


def post_status(status: Any, msg: dict[str, Any]) -> None:
    """Progress messages are best effort: a full or closed queue must never stop the robot."""
    with contextlib.suppress(Exception):
        status.put_nowait(msg)


def resolve_device(name: str) -> str:
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError(f"device '{name}' was asked for but torch sees no CUDA device")
    return name
