"""The learner's intake: the replay buffers are fed on a thread of their own, not the training one.

A restarted learner opens its port before it has re-read its replay store: Intake first refills
the buffers from the store (the transport holds the actors' chunks meanwhile, and refuses them
with back-pressure once its queue is full, so they wait in the actors' stores), then drains the
transport into Ingest for as long as the learner runs. Chunks arrive decoded (the gRPC
transport decodes them on its own threads); appending each whole episode to the replay store and
adding it to the buffers happens here, under the buffers' lock, which the training thread holds
only while it draws a batch. The learner trains once `loaded` is set.

A failure (a gap in an actor's steps, a damaged store) stops the intake; raise_if_failed()
raises it, as it was, on the training thread.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from robot_rl.runtime.ingest import Ingest
from robot_rl.runtime.transport import LearnerTransport


class Intake:
    """Refill, then ingest what the transport receives, on a background thread (see the module)."""

    def __init__(
        self, ingest: Ingest, transport: LearnerTransport, refill: Callable[[], None], max_chunks: int = 256
    ) -> None:
        """refill: fills the buffers from what is stored (run once, first, on the intake's thread)."""
        if max_chunks < 1:
            raise ValueError(f"max_chunks must be >= 1, got {max_chunks}")
        self.ingest = ingest
        self.transport = transport
        self.max_chunks = max_chunks
        self.loaded = threading.Event()  # the refill is done: the learner may train
        self.refill_s = float("nan")  # how long the refill took
        self.error: BaseException | None = None
        self._refill = refill
        self._arrived = threading.Event()  # new steps since the training thread last waited
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="learner-intake", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self, timeout_s: float = 30.0) -> None:
        """Stop taking chunks (the one in hand is finished) and wait for the thread."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)

    def raise_if_failed(self) -> None:
        if self.error is not None:
            raise self.error

    def wait_for_steps(self, timeout_s: float) -> bool:
        """Block until new steps were ingested (or timeout_s passed); True if they were."""
        arrived = self._arrived.wait(timeout_s)
        self._arrived.clear()
        return arrived

    def _run(self) -> None:
        try:
            t0 = time.monotonic()
            self._refill()
            self.refill_s = time.monotonic() - t0
            self.loaded.set()
            self._arrived.set()
            while not self._stop.is_set():
                new = 0
                for item in self.transport.receive(self.max_chunks, timeout_s=0.05):
                    new += self.ingest.add(item)
                if new:
                    self._arrived.set()
        except BaseException as err:  # raised on the training thread, not lost with this one
            self.error = err
            self._arrived.set()
