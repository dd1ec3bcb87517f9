"""Helpers for the network tests: a free port, and a TCP proxy the test can cut and restore.

A plain module (not conftest.py) so the tests import it by a name no other folder uses.
"""

from __future__ import annotations

import contextlib
import select
import socket
import struct
import threading

CUT_MODES = ("refuse", "blackhole", "stall")


def find_free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _close(sock: socket.socket, reset: bool = False) -> None:
    with contextlib.suppress(OSError):
        if reset:  # RST instead of FIN, like a refused or dropped connection
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    with contextlib.suppress(OSError):
        sock.close()


class TcpProxy:
    """Forwards 127.0.0.1:<port> to 127.0.0.1:<target_port> until cut.

    cut("refuse"): close every connection, reset new ones at once (the learner's host is down).
    cut("blackhole"): close every connection, accept new ones and never answer (a firewall).
    cut("stall"): keep every connection but move no byte either way (a pulled cable): TCP holds
        what was sent and delivers it after restore(), as a real link would.
    restore(): forward again.
    """

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._lock = threading.Lock()
        self._mode = "open"
        self._flowing = threading.Event()
        self._flowing.set()
        self._pairs: list[tuple[socket.socket, socket.socket]] = []
        self._held: list[socket.socket] = []  # blackholed
        self._closed = threading.Event()
        self.accepted = 0
        self._threads = [threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True)]
        self._threads[0].start()

    @property
    def address(self) -> str:
        return f"127.0.0.1:{self.port}"

    def cut(self, mode: str) -> None:
        assert mode in CUT_MODES, mode
        with self._lock:
            self._mode = mode
            if mode == "stall":
                self._flowing.clear()
                return
            pairs, self._pairs = self._pairs, []
        for a, b in pairs:
            _close(a, reset=True)
            _close(b, reset=True)

    def restore(self) -> None:
        with self._lock:
            self._mode = "open"
            held, self._held = self._held, []
        for s in held:  # what a blackhole swallowed is gone: the client must connect again
            _close(s, reset=True)
        self._flowing.set()

    def close(self) -> None:
        self._closed.set()
        self._flowing.set()
        _close(self._listener)
        with self._lock:
            pairs, self._pairs = self._pairs, []
            held, self._held = self._held, []
        for s in [*held, *(s for pair in pairs for s in pair)]:
            _close(s)
        for t in self._threads:
            t.join(timeout=2.0)

    def _accept_loop(self) -> None:
        while not self._closed.is_set():
            ready, _, _ = select.select([self._listener], [], [], 0.05)
            if not ready:
                continue
            try:
                client, _ = self._listener.accept()
            except OSError:
                continue
            with self._lock:
                mode = self._mode
                self.accepted += 1
                if mode == "blackhole":
                    self._held.append(client)
                    continue
            if mode == "refuse":
                _close(client, reset=True)
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target_port), timeout=1.0)
            except OSError:
                _close(client, reset=True)
                continue
            upstream.settimeout(None)
            with self._lock:
                self._pairs.append((client, upstream))
            for src, dst in ((client, upstream), (upstream, client)):
                t = threading.Thread(target=self._pump, args=(src, dst), name="proxy-pump", daemon=True)
                self._threads.append(t)
                t.start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        while not self._closed.is_set():
            if not self._flowing.wait(0.05):
                continue
            try:
                ready, _, _ = select.select([src], [], [], 0.05)
                if not ready:
                    continue
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
            except (OSError, ValueError):  # closed by cut() or by the other pump
                break
        _close(src)
        _close(dst)
