"""Executor: keep-last queues, timers, one bounded pass per spin_once (robot_rl/ros/executor.py)."""

from __future__ import annotations

import threading
import time

import pytest

from robot_rl.ros.executor import Executor, Registration, serve_request


def test_keep_last_queue_drops_the_oldest_and_reports_it() -> None:
    executor, seen, evicted = Executor(), [], []
    queue = executor.queue(2, seen.append, on_evict=evicted.append)
    for i in range(5):
        queue.push(i)
    assert executor.spin_once(0.0) == 2
    assert seen == [3, 4] and evicted == [0, 1, 2]
    assert queue.evicted == 3


def test_a_watcher_sees_each_pushed_item_on_the_pushing_thread_before_it_runs() -> None:
    executor, events = Executor(), []
    queue = executor.queue(1, lambda item: events.append(("ran", item, threading.get_ident())))
    handle = Registration(queue.cancel, queue=queue)
    handle.watch_queued(lambda item: events.append(("queued", item, threading.get_ident())))
    pusher = threading.Thread(target=lambda: [queue.push(i) for i in range(3)])
    pusher.start()
    pusher.join()
    executor.spin_once(0.0)
    assert [e[:2] for e in events] == [("queued", 0), ("queued", 1), ("queued", 2), ("ran", 2)]
    assert {e[2] for e in events[:3]} == {pusher.ident} and events[3][2] == threading.get_ident()
    assert handle.superseded == 2  # watched, then dropped for newer ones


def test_only_a_registration_with_a_queue_can_be_watched() -> None:
    with pytest.raises(ValueError, match="no queue to watch"):
        Registration(lambda: None).watch_queued(lambda _item: None)


def test_items_run_in_arrival_order_across_queues_and_new_work_waits_for_the_next_call() -> None:
    executor, seen = Executor(), []
    a = executor.queue(10, lambda x: (seen.append(x), b.push("b-again") if x == "a1" else None))
    b = executor.queue(10, seen.append)
    a.push("a1")
    b.push("b1")
    a.push("a2")
    assert executor.spin_once(0.0) == 3
    assert seen == ["a1", "b1", "a2"]
    assert executor.spin_once(0.0) == 1 and seen[-1] == "b-again"


def test_timer_ticks_on_the_spinning_thread_until_cancelled() -> None:
    executor, ticks = Executor(), []
    timer = executor.timer(0.01, lambda: ticks.append(threading.get_ident()))
    deadline = time.monotonic() + 5.0
    while len(ticks) < 3 and time.monotonic() < deadline:
        executor.spin_once(0.1)
    assert len(ticks) >= 3 and set(ticks) == {threading.get_ident()}
    timer.cancel()
    count = len(ticks)
    executor.spin_once(0.05)
    assert len(ticks) == count
    with pytest.raises(ValueError, match="period"):
        executor.timer(0.0, lambda: None)


def test_spin_returns_when_a_callback_shuts_down_and_queues_stop_accepting() -> None:
    executor = Executor()
    queue = executor.queue(1, lambda _: executor.shutdown())
    queue.push("stop")
    executor.spin()  # returns: the callback shut the executor down
    assert executor.is_shutdown
    queue.push("late")
    assert executor.spin_once(0.0) == 0


def test_garbled_counts_are_per_name() -> None:
    executor = Executor()
    executor.count_garbled("/wrist_cam/image_raw")
    executor.count_garbled("/wrist_cam/image_raw")
    executor.count_garbled("/arm/joint_states")
    assert executor.dropped_garbled == {"/wrist_cam/image_raw": 2, "/arm/joint_states": 1}


def test_a_failing_service_handler_still_answers_the_client() -> None:
    answers: list[str] = []

    def broken(_request: object) -> object:
        raise RuntimeError("gripper offline")

    with pytest.raises(RuntimeError, match="gripper offline"):
        serve_request(broken, object(), "std_srvs/srv/Trigger_Response", answers.append, answers.append)
    assert answers == ["service handler raised RuntimeError: gripper offline"]
    with pytest.raises(TypeError, match="expected a std_srvs/srv/Trigger_Response"):
        serve_request(
            lambda r: "ok", object(), "std_srvs/srv/Trigger_Response", answers.append, answers.append
        )
    assert "returned a str" in answers[-1]
