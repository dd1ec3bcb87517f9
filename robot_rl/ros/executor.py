"""The callback executor shared by the in-process and zenoh transports.

Middleware threads (zenoh's, or a publisher's in-process) only push decoded messages into
bounded keep-last queues; the node's own thread runs every callback in `spin_once`. That gives
rclpy's single-threaded-executor semantics (a node needs no locks) and ROS QoS depth semantics
(a slow node drops the oldest messages, memory stays bounded).
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter, deque
from collections.abc import Callable, Mapping
from typing import Any


class WorkQueue:
    """Keep-last queue of items for one subscription or service, run one at a time by `run`."""

    def __init__(
        self,
        executor: Executor,
        depth: int,
        run: Callable[[Any], None],
        on_evict: Callable[[Any], None] | None = None,
    ) -> None:
        self._executor = executor
        self._items: deque[tuple[int, Any]] = deque()
        self._depth = depth
        self.run = run
        self._on_evict = on_evict
        self._watchers: tuple[Callable[[Any], None], ...] = ()
        self.cancelled = False
        self.evicted = 0  # items dropped for newer ones (the consumer fell behind)

    def watch(self, watcher: Callable[[Any], None]) -> None:
        """Call watcher(item) with every item pushed from now on, on the pushing thread just before
        the item is queued, so a time it takes precedes the item's run (a latency probe's hook).
        It must be quick and must not raise: it delays, or breaks, the middleware's delivery."""
        self._watchers = (*self._watchers, watcher)  # swapped whole: a concurrent push sees old or new

    def push(self, item: Any) -> None:
        """Queue item (from any thread); when full the oldest goes, to on_evict if given."""
        for watcher in self._watchers:
            watcher(item)
        evicted = self._executor._push(self, item)
        if evicted is not None and self._on_evict is not None:
            self._on_evict(evicted)

    def cancel(self) -> None:
        """Stop delivering; queued items are dropped."""
        self._executor._remove(self)

    def drain(self) -> None:
        """Run this queue's items now, on the caller's thread: a client of a service served by
        its own transport gets its answer without a second thread spinning."""
        while True:
            with self._executor._cv:
                if not self._items:
                    return
                item = self._items.popleft()[1]
            self.run(item)


class Timer:
    """Periodic callback on the spinning thread. A late tick is run once, not caught up in a burst."""

    def __init__(self, executor: Executor, period_s: float, callback: Callable[[], None]) -> None:
        self._executor = executor
        self.period_s = period_s
        self.callback = callback
        self.next_due = time.monotonic() + period_s
        self.cancelled = False

    def cancel(self) -> None:
        self._executor._remove_timer(self)


class Registration:
    """A subscription or service as the node sees it: cancel() undoes every step that made it.
    queue: the subscription's keep-last queue, whose drops `superseded` reports."""

    def __init__(self, *undo: Callable[[], None], queue: WorkQueue | None = None) -> None:
        self._undo = list(undo)
        self._queue = queue

    @property
    def superseded(self) -> int:
        """Messages the keep-last queue dropped for newer ones before the node ran them."""
        return self._queue.evicted if self._queue is not None else 0

    def watch_queued(self, watcher: Callable[[Any], None]) -> None:
        """watcher(msg) for each decoded message as it reaches the keep-last queue, on the
        middleware's (or publisher's) thread: see WorkQueue.watch. Times taken there split the
        transport's delivery from the wait for the spinning thread."""
        if self._queue is None:
            raise ValueError("this registration has no queue to watch: pass a subscription's handle")
        self._queue.watch(watcher)

    def cancel(self) -> None:
        """Idempotent, so shutdown can cancel whatever the node has not."""
        undo, self._undo = self._undo, []
        for step in reversed(undo):
            step()


class Executor:
    """Runs queued work and timers on whichever thread calls spin_once / spin."""

    def __init__(self) -> None:
        self._cv = threading.Condition()
        self._queues: list[WorkQueue] = []
        self._timers: list[Timer] = []
        self._seq = itertools.count()
        self._dropped: Counter[str] = Counter()
        self.is_shutdown = False

    # --- registration (any thread) --------------------------------------------------------------

    def queue(
        self, depth: int, run: Callable[[Any], None], on_evict: Callable[[Any], None] | None = None
    ) -> WorkQueue:
        queue = WorkQueue(self, depth, run, on_evict)
        with self._cv:
            self._queues.append(queue)
        return queue

    def timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        if not period_s > 0:
            raise ValueError(f"timer period must be > 0 s, got {period_s!r}")
        timer = Timer(self, float(period_s), callback)
        with self._cv:
            self._timers.append(timer)
            self._cv.notify_all()
        return timer

    def count_garbled(self, name: str) -> None:
        """Record one dropped undecodable payload on a topic or service."""
        with self._cv:
            self._dropped[name] += 1

    @property
    def dropped_garbled(self) -> Mapping[str, int]:
        with self._cv:
            return dict(self._dropped)

    def _push(self, queue: WorkQueue, item: Any) -> Any | None:
        with self._cv:
            if queue.cancelled or self.is_shutdown:
                return None
            evicted = None
            if len(queue._items) >= queue._depth:
                evicted = queue._items.popleft()[1]
                queue.evicted += 1
            queue._items.append((next(self._seq), item))
            self._cv.notify_all()
            return evicted

    def _remove(self, queue: WorkQueue) -> None:
        with self._cv:
            queue.cancelled = True
            queue._items.clear()
            if queue in self._queues:
                self._queues.remove(queue)

    def _remove_timer(self, timer: Timer) -> None:
        with self._cv:
            timer.cancelled = True
            if timer in self._timers:
                self._timers.remove(timer)

    # --- spinning (the node's thread) -----------------------------------------------------------

    def _ready_count(self, now: float) -> int:
        return sum(len(q._items) for q in self._queues) + sum(t.next_due <= now for t in self._timers)

    def _pop_next(self) -> Callable[[], None] | None:
        """The next job: a due timer first, else the oldest queued item across queues."""
        with self._cv:
            now = time.monotonic()
            for timer in self._timers:
                if timer.next_due <= now:
                    timer.next_due += timer.period_s
                    if timer.next_due <= now:
                        timer.next_due = now + timer.period_s
                    return timer.callback
            heads = [q for q in self._queues if q._items]
            if not heads:
                return None
            queue = min(heads, key=lambda q: q._items[0][0])
            item = queue._items.popleft()[1]
            return lambda: queue.run(item)

    def spin_once(self, timeout_s: float = 0.1) -> int:
        """Run the work ready now (waiting up to timeout_s for some); how many callbacks ran.
        Work that arrives while running waits for the next call, so a fast publisher cannot
        keep one call busy forever."""
        deadline = time.monotonic() + max(0.0, timeout_s)
        with self._cv:
            while not self.is_shutdown:
                now = time.monotonic()
                budget = self._ready_count(now)
                if budget:
                    break
                next_timer = min((t.next_due for t in self._timers), default=deadline)
                wait = min(deadline, next_timer) - now
                if now >= deadline:
                    return 0
                self._cv.wait(max(wait, 0.0))
            else:
                return 0
        ran = 0
        for _ in range(budget):
            job = self._pop_next()
            if job is None:
                break
            job()
            ran += 1
        return ran

    def spin(self) -> None:
        """Run callbacks until shutdown()."""
        while not self.is_shutdown:
            self.spin_once(0.1)

    def shutdown(self) -> None:
        """Stop spinning; queued work is dropped."""
        with self._cv:
            self.is_shutdown = True
            for queue in self._queues:
                queue.cancelled = True
                queue._items.clear()
            self._queues.clear()
            self._timers.clear()
            self._cv.notify_all()


def serve_request(
    handler: Callable[[Any], Any],
    request: Any,
    expected_response_type: str,
    respond: Callable[[Any], None],
    fail: Callable[[str], None],
) -> None:
    """Run a service handler and answer the client either way. A handler that raises or returns
    the wrong type still gets the client an error reply (so it does not wait out its deadline),
    and then the exception propagates out of spin, as a failing callback does in rclpy."""
    try:
        response = handler(request)
    except Exception as exc:
        fail(f"service handler raised {type(exc).__name__}: {exc}")
        raise
    if getattr(response, "__msgtype__", None) != expected_response_type:
        got = getattr(response, "__msgtype__", type(response).__name__)
        fail(f"service handler returned a {got}, not a {expected_response_type}")
        raise TypeError(f"service handler returned a {got}, expected a {expected_response_type}")
    respond(response)
