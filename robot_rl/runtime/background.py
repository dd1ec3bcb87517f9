"""Work for a background thread where only the newest item matters (checkpoints, weights).

The training thread hands an item over and goes on; one thread works through them. An item
handed over while another still waits replaces it: the newest wins, at most one waits, and an
item is never worked on after a newer one. A failure is raised by the next submit() or flush(),
so it reaches the training thread instead of dying with the background one.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestWorker(Generic[T]):
    """Runs `work(item)` on a background thread, on the newest item submitted (see the module)."""

    def __init__(self, work: Callable[[T], None], what: str) -> None:
        """what: names the work in errors and the thread, e.g. "writing checkpoint <path>"."""
        self.what = what
        self.done = 0  # items worked on so far
        self._work = work
        self._pending: tuple[T] | None = None  # a 1-tuple, so None can be an item too
        self._error: BaseException | None = None
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self._thread = threading.Thread(target=self._loop, name=f"latest: {what}"[:60], daemon=True)
        self._thread.start()

    def submit(self, item: T) -> None:
        """Hand an item over without waiting; one still waiting is dropped for it."""
        with self._cond:
            self._raise_error()
            if self._closed:
                raise RuntimeError(f"{self.what}: submitted after close()")
            self._pending = (item,)
            self._cond.notify_all()

    def flush(self) -> None:
        """Block until every submitted item has been worked on."""
        with self._cond:
            self._cond.wait_for(lambda: (self._pending is None and not self._busy) or self._error is not None)
            self._raise_error()

    def close(self) -> None:
        """Flush, then stop the thread."""
        try:
            self.flush()
        finally:
            with self._cond:
                self._closed = True
                self._cond.notify_all()
            self._thread.join(timeout=10)

    def _raise_error(self) -> None:
        if self._error is not None:
            err, self._error = self._error, None
            raise RuntimeError(f"{self.what} failed: {err}") from err

    def _loop(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(lambda: self._pending is not None or self._closed)
                if self._pending is None:
                    return
                (item,), self._pending, self._busy = self._pending, None, True
            try:
                self._work(item)
                self.done += 1
            except BaseException as err:  # reported to the training thread, not lost with this one
                self._error = err
            with self._cond:
                self._busy = False
                self._cond.notify_all()
