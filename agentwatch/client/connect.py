"""Connecting to a server, and when to try again.

`open_stream` opens the TCP (or TLS) connection both transports run on;
`ConnectionLost` from a transport means "try again", and `Backoff` says
how long to wait before the next attempt and when to give up.
"""

from __future__ import annotations

import ssl
import urllib.parse
from dataclasses import dataclass

import trio

from agentwatch.client.discovery import Server
from agentwatch.errors import ConnectionLost

RECONNECT_GIVE_UP_S = 15.0  # failing to reconnect for this long: give up
RECONNECT_FIRST_S = 0.1  # first reconnect delay, doubling ...
RECONNECT_MAX_S = 2.0  # ... up to this
CONNECT_TIMEOUT_S = 5.0  # one connection attempt


@dataclass
class Attempt:
    """One connection attempt; ``connected`` once the server accepted it."""

    connected: bool = False


@dataclass
class Backoff:
    """Reconnect delays: doubling from the first, reset by every accepted connection."""

    give_up_after: float = RECONNECT_GIVE_UP_S
    delay: float = RECONNECT_FIRST_S
    failing_since: float | None = None

    def next_delay(self, attempt: Attempt) -> float | None:
        """How long to wait after a failed ``attempt``; None: failing for too long, give up."""
        now = trio.current_time()
        if attempt.connected or self.failing_since is None:
            self.failing_since, self.delay = now, RECONNECT_FIRST_S
        if now - self.failing_since >= self.give_up_after:
            return None
        delay, self.delay = self.delay, min(self.delay * 2, RECONNECT_MAX_S)
        return delay


async def open_stream(server: Server) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
    """A TCP (or TLS, for https) connection to the server; ConnectionLost if none."""
    parsed = urllib.parse.urlsplit(server.url)
    host = parsed.hostname or "127.0.0.1"
    tls = parsed.scheme == "https"
    try:
        with trio.fail_after(CONNECT_TIMEOUT_S):
            tcp = await trio.open_tcp_stream(host, parsed.port or (443 if tls else 80))
            if not tls:
                return tcp
            stream = trio.SSLStream(tcp, ssl.create_default_context(), server_hostname=host)
            await stream.do_handshake()
            return stream
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ConnectionLost(f"cannot reach {server.url}: {reason}") from exc
