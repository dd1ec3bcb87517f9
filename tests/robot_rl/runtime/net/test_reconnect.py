"""One backoff between an actor's connection attempts: gRPC's, bounded by reconnect_max_s; each
Connect waits for the channel to be ready, up to its deadline, and is tried again without a
second backoff of the actor's own on top."""

from __future__ import annotations

import threading
import time
from typing import Any

import grpc
import pytest

from robot_rl.config import TransportConfig
from robot_rl.runtime.net import client
from robot_rl.runtime.net.client import RETRY_PAUSE_S, GrpcActorTransport, reconnect_options

pytestmark = pytest.mark.timeout(60)


class _Expired(grpc.RpcError, grpc.Future):
    """A call whose deadline passed while the channel was not ready (what a down learner gives)."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self._code = code

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return "no learner"

    def result(self, timeout: float | None = None) -> Any:
        raise self

    def cancel(self) -> bool:
        return True

    def cancelled(self) -> bool:
        return False

    def running(self) -> bool:
        return False

    def done(self) -> bool:
        return True

    def exception(self, timeout: float | None = None) -> Any:
        return self

    def traceback(self, timeout: float | None = None) -> Any:
        return None

    def add_done_callback(self, fn: Any) -> None:
        fn(self)


class _Channel:
    """Records the channel's options and every Connect; the learner is never there."""

    def __init__(self, code: grpc.StatusCode) -> None:
        self.options: list[tuple[str, Any]] = []
        self.connects: list[tuple[float, dict[str, Any]]] = []
        self.code = code

    def unary_unary(self, method: str, *codecs: Any) -> Any:
        channel = self

        class Method:
            def future(self, request: Any, **kwargs: Any) -> _Expired:
                assert method.endswith("/Connect"), "nothing but Connect before a connection"
                channel.connects.append((time.monotonic(), kwargs))
                return _Expired(channel.code)

            def __call__(self, request: Any, **kwargs: Any) -> Any:
                raise _Expired(grpc.StatusCode.UNAVAILABLE)

        return Method()

    def unary_stream(self, method: str, *codecs: Any) -> Any:
        return self.unary_unary(method)

    def stream_stream(self, method: str, *codecs: Any) -> Any:
        return self.unary_unary(method)

    def close(self) -> None:
        pass


def _actor(monkeypatch: pytest.MonkeyPatch, code: grpc.StatusCode) -> tuple[GrpcActorTransport, _Channel]:
    channel = _Channel(code)

    def insecure_channel(target: str, options: list[tuple[str, Any]]) -> _Channel:
        channel.options = list(options)
        return channel

    monkeypatch.setattr(client.grpc, "insecure_channel", insecure_channel)
    cfg = TransportConfig(kind="grpc", token="t", reconnect_max_s=0.8, call_timeout_s=2.0)
    return GrpcActorTransport(cfg, 0, "{}", "t"), channel


def _wait_for(pred: Any, what: str) -> None:
    deadline = time.monotonic() + 20
    while not pred():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.01)


def test_the_channel_carries_the_only_backoff_and_connects_wait_for_it(monkeypatch):
    actor, channel = _actor(monkeypatch, grpc.StatusCode.DEADLINE_EXCEEDED)
    try:
        _wait_for(lambda: len(channel.connects) >= 3, "three connection attempts")
    finally:
        actor.close(final_beat=False)
    options = dict(channel.options)
    assert options["grpc.initial_reconnect_backoff_ms"] == 100
    assert options["grpc.max_reconnect_backoff_ms"] == 800  # transport.reconnect_max_s
    assert dict(reconnect_options(actor.cfg)).items() <= options.items()
    for _, kwargs in channel.connects:  # each waits for the channel, up to the call deadline
        assert kwargs["wait_for_ready"] is True and kwargs["timeout"] == actor.cfg.call_timeout_s
    assert not actor.connected() and actor.failure is None  # a down learner is not a failure


def test_a_refusal_that_comes_at_once_is_retried_after_a_pause_not_in_a_spin(monkeypatch):
    waits: list[float] = []
    real_wait = threading.Event.wait

    def wait(self: threading.Event, timeout: float | None = None) -> bool:
        if threading.current_thread().name == "grpc-_link_loop":
            waits.append(timeout)
        return real_wait(self, timeout)

    monkeypatch.setattr(threading.Event, "wait", wait)
    actor, channel = _actor(monkeypatch, grpc.StatusCode.UNAVAILABLE)
    try:
        _wait_for(lambda: len(channel.connects) >= 3, "three connection attempts")
    finally:
        actor.close(final_beat=False)
    # the pause tops each attempt up to RETRY_PAUSE_S; nothing grows it into a second backoff
    assert waits and all(w is not None and w <= RETRY_PAUSE_S for w in waits)
