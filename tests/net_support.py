"""A threaded TCP relay for tests that break the network under a client.

`TcpProxy(port)` listens on 127.0.0.1 and relays to 127.0.0.1:`port`:
`drop()` resets every connection, `cut()` closes them (FIN), `outage()` drops
and refuses new connections for a while, `accepted` counts connections.
`proxy_to(url)` is a context manager around one.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
from collections.abc import Iterator


class TcpProxy:
    """Relays 127.0.0.1:`port` to a target; can cut every connection at will."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self.listener.getsockname()[1]
        self._lock = threading.Lock()
        self._conns: list[socket.socket] = []
        self._refusing = False
        self._closed = False
        self.accepted = 0
        self._thread = threading.Thread(target=self._accept_loop, daemon=True)
        self._thread.start()

    def _accept_loop(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                if self._closed or self._refusing:
                    _abort(client)
                    continue
                self.accepted += 1
            try:
                upstream = socket.create_connection(self.target, timeout=5)
                upstream.settimeout(None)
            except OSError:
                _abort(client)
                continue
            with self._lock:
                self._conns += [client, upstream]
            done = [0]  # directions finished; the second one closes both sockets
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(a, b, done), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, done: list[int]) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dst.shutdown(socket.SHUT_WR)
        with self._lock:
            done[0] += 1
            if done[0] < 2:
                return  # the other direction is still running; it closes both
            self._conns = [s for s in self._conns if s is not src and s is not dst]
        src.close()
        dst.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop(self) -> None:
        """Cut every open connection (reset, as a dying network link does)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            _abort(s)

    @contextlib.contextmanager
    def outage(self) -> Iterator[None]:
        """Drop everything now and refuse connections until the block ends."""
        with self._lock:
            self._refusing = True
        self.drop()
        try:
            yield
        finally:
            with self._lock:
                self._refusing = False

    def cut(self) -> None:
        """Break every open connection with FIN (shutdown, then close) on both sides."""
        with self._lock:
            conns, self._conns = self._conns, []
        for s in conns:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)
            with contextlib.suppress(OSError):
                s.close()

    def close(self) -> None:
        with self._lock:
            self._closed = True
        with contextlib.suppress(OSError):
            self.listener.shutdown(socket.SHUT_RDWR)  # wakes the blocked accept()
        self.listener.close()
        self.drop()
        self._thread.join(5)


def _abort(s: socket.socket) -> None:
    """Close with RST rather than FIN: the peer sees a broken connection."""
    with contextlib.suppress(OSError):
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    with contextlib.suppress(OSError):
        s.shutdown(socket.SHUT_RDWR)
    s.close()


@contextlib.contextmanager
def proxy_to(url: str) -> Iterator[TcpProxy]:
    """A `TcpProxy` in front of ``url`` (``http://127.0.0.1:PORT``), closed on exit."""
    proxy = TcpProxy(int(url.rsplit(":", 1)[1]))
    try:
        yield proxy
    finally:
        proxy.close()
