"""A loopback TCP proxy that cuts a link on demand: transport_recovery's fault injector.

cut("stall") holds every byte and new connection (connections stay open: a pulled cable);
cut("reset") closes the connections and refuses new ones; restore() reopens the link on the
same port, so the client reconnects to the address it was given.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import time


class CutProxy:
    """127.0.0.1:port -> the learner's port; cut() stalls or resets the link, restore() reopens it."""

    def __init__(self, upstream_port: int) -> None:
        self.upstream = ("127.0.0.1", upstream_port)
        self.open = threading.Event()
        self.open.set()
        self.mode = ""
        self._closed = False
        self._lock = threading.Lock()
        self._socks: list[socket.socket] = []
        self._listener: socket.socket | None = self._listen(0)
        self.port = self._listener.getsockname()[1]
        threading.Thread(target=self._accept_loop, name="proxy-accept", daemon=True).start()

    @staticmethod
    def _listen(port: int) -> socket.socket:
        sock = socket.create_server(("127.0.0.1", port))
        sock.settimeout(0.05)
        return sock

    def _accept_loop(self) -> None:
        while not self._closed:
            listener = self._listener
            if listener is None:
                time.sleep(0.01)
                continue
            try:
                client, _ = listener.accept()
            except (TimeoutError, OSError):
                continue
            self.open.wait()  # a stalled link holds new connections until it is restored
            try:
                upstream = socket.create_connection(self.upstream, timeout=2.0)
            except OSError:  # the learner is down: the actor sees the connection close
                client.close()
                continue
            client.settimeout(None)
            with self._lock:
                self._socks += [client, upstream]
            for src, dst in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(src, dst), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(1 << 16)
                if not data:
                    break
                self.open.wait()  # stalled: the bytes wait here, later ones in the kernel's buffers
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                _shut(s)

    def cut(self, mode: str) -> None:
        self.mode = mode
        self.open.clear()
        if mode == "reset":
            listener, self._listener = self._listener, None
            if listener is not None:
                listener.close()
            with self._lock:
                socks, self._socks = self._socks, []
            for s in socks:
                _shut(s)

    def restore(self) -> None:
        if self._listener is None:
            self._listener = self._listen(self.port)
        self.open.set()

    def close(self) -> None:
        self._closed = True
        self.open.set()
        if self._listener is not None:
            self._listener.close()
        with self._lock:
            for s in self._socks:
                _shut(s)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):
        sock.shutdown(socket.SHUT_RDWR)
    sock.close()
