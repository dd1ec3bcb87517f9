"""LatestWorker: the newest item wins, failures reach the submitter, close ends the thread."""

from __future__ import annotations

import threading

import pytest

from robot_rl.runtime.background import LatestWorker


def test_items_that_pile_up_are_dropped_for_the_newest_in_order() -> None:
    gate, seen = threading.Event(), []

    def work(item: int | None) -> None:
        gate.wait(5)
        seen.append(item)

    worker: LatestWorker[int | None] = LatestWorker(work, "test work")
    worker.submit(None)  # None is an item like any other
    for item in range(1, 6):
        worker.submit(item)
    gate.set()
    worker.close()
    assert seen[-1] == 5 and len(seen) <= 2 and seen[0] in (None, 5)


def test_a_failure_reaches_the_next_call_and_close_refuses_more() -> None:
    def work(item: int) -> None:
        raise OSError(f"disk full at {item}")

    worker: LatestWorker[int] = LatestWorker(work, "writing the test file")
    worker.submit(1)
    with pytest.raises(RuntimeError, match="writing the test file failed: disk full at 1"):
        worker.flush()
    worker.close()
    with pytest.raises(RuntimeError, match="after close"):
        worker.submit(2)
