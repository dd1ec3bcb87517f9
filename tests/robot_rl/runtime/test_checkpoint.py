"""Checkpoints: a snapshot training cannot change, written in the background, newest wins."""

from __future__ import annotations

import threading

import pytest
import torch

from robot_rl.runtime import checkpoint
from robot_rl.runtime.checkpoint import CheckpointWriter, load_checkpoint, snapshot


def test_snapshot_is_independent_of_training() -> None:
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(net.parameters())
    net(torch.ones(1, 3)).sum().backward()
    opt.step()
    state = snapshot({"net": net.state_dict(), "opt": opt.state_dict(), "calls": 7})
    before = state["net"]["weight"].clone()
    with torch.no_grad():
        net.weight.add_(1.0)
    opt.step()
    assert torch.equal(state["net"]["weight"], before)
    assert state["calls"] == 7 and state["opt"]["state"][0]["step"] == 1


def test_writer_newest_wins_and_flush_waits(tmp_path, monkeypatch) -> None:
    gate = threading.Event()
    real = checkpoint.save_checkpoint

    def slow_save(path, state):
        gate.wait(5)
        real(path, state)

    monkeypatch.setattr(checkpoint, "save_checkpoint", slow_save)
    writer = CheckpointWriter(tmp_path / "c.pt")
    writer.submit({"calls": 1})  # taken by the writer, held at the gate
    for calls in (2, 3, 4):  # pile up: only the newest is written after it
        writer.submit({"calls": calls})
    gate.set()
    writer.close()
    assert load_checkpoint(tmp_path / "c.pt")["calls"] == 4
    assert writer.written in (1, 2)  # 1 and 4, or 4 alone if the writer had not taken 1 yet
    assert not list(tmp_path.glob("*.tmp*"))  # written, fsynced and renamed


def test_writer_failure_is_raised_naming_the_file(tmp_path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    writer = CheckpointWriter(blocker / "c.pt")  # its folder cannot be made: a file is in the way
    writer.submit({"calls": 1})
    with pytest.raises(RuntimeError, match=r"c\.pt"):
        writer.flush()
