"""WebSocket upgrades on the HTTP port, handed to trio-websocket.

`accept_websocket` takes over a connection whose upgrade request h11 has
already parsed: the socket stream replays that request, trio-websocket
(wsproto) answers the handshake, reads frames, answers pings and closes,
and a task pings the peer every ``ws_ping_interval`` seconds and drops it
when a pong is ``ws_pong_timeout`` late (SPEC 4.1).

`ServerWebSocket` is what a protocol handler gets. It reads like
trio-websocket (``get_message``, ``send_message``, ``aclose``, ``closed``)
and adds `ServerWebSocket.send_frames`, the fast path for events: each
payload (already-encoded JSON bytes) becomes one unfragmented,
uncompressed text frame, and all of them leave in one socket write, so
event JSON is never decoded or re-encoded and many events cost one
syscall. That is safe next to trio-websocket because no extension is
negotiated and every write goes through the stream's one lock
(`agentwatch.server.netstream`).
"""

from __future__ import annotations

import struct
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager

import trio
import trio_websocket
from trio_websocket import CloseReason, ConnectionClosed

from agentwatch.server.http import HTTPConnection, Request
from agentwatch.server.limits import RECEIVE_BYTES, Limits
from agentwatch.server.netstream import ConnStream

CLOSE_HANDSHAKE_S = 1.0  # how long a closing handshake may take before the socket is cut
MESSAGE_QUEUE = 4  # client messages buffered by trio-websocket ahead of the handler
_TEXT = 0x81  # FIN + text opcode


def add_text_frame(buf: bytearray, payload: bytes) -> None:
    """Append an unmasked server text frame carrying ``payload`` to ``buf``."""
    n = len(payload)
    if n < 126:
        buf += bytes((_TEXT, n))
    elif n < 65536:
        buf += struct.pack("!BBH", _TEXT, 126, n)
    else:
        buf += struct.pack("!BBQ", _TEXT, 127, n)
    buf += payload


class ServerWebSocket:
    """An accepted WebSocket connection (see the module docstring)."""

    def __init__(
        self, ws: trio_websocket.WebSocketConnection, stream: ConnStream, remote: str
    ) -> None:
        self.ws = ws
        self.stream = stream
        self.remote = remote

    @property
    def closed(self) -> CloseReason | None:
        """Why the connection is closed or closing, else None."""
        return self.ws.closed

    async def get_message(self) -> str | bytes:
        """The next client message; raises ConnectionClosed at the end."""
        return await self.ws.get_message()

    async def send_message(self, message: str | bytes) -> None:
        """Send one message through trio-websocket (str: text, bytes: binary)."""
        await self.ws.send_message(message)

    async def send_frames(self, payloads: Iterable[bytes]) -> None:
        """Send each payload (UTF-8 JSON) as one text frame, in one write."""
        reason = self.ws.closed
        if reason is not None:
            raise ConnectionClosed(reason)
        buf = bytearray()
        for payload in payloads:
            add_text_frame(buf, payload)
        try:
            await self.stream.send_all(buf)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ConnectionClosed(CloseReason(1006, "connection lost")) from None

    async def aclose(self, code: int = 1000, reason: str | None = None) -> None:
        """Close with ``code``, waiting briefly for the peer's close frame."""
        with trio.move_on_after(CLOSE_HANDSHAKE_S):
            await self.ws.aclose(code, reason)
        await self.stream.aclose()

    async def keep_alive(self, interval: float, pong_timeout: float) -> None:
        """Ping every ``interval`` s; cut the connection if a pong is late."""
        while True:
            await trio.sleep(interval)
            with trio.move_on_after(pong_timeout) as scope:
                try:
                    await self.ws.ping()
                except ConnectionClosed:
                    return
            if scope.cancelled_caught:
                await self.stream.aclose()
                return


@asynccontextmanager
async def accept_websocket(
    conn: HTTPConnection, request: Request, limits: Limits
) -> AsyncIterator[ServerWebSocket]:
    """Complete the upgrade of ``request``; yield the open WebSocket.

    On exit the WebSocket is closed (unless the block closed it already:
    code 1000 when the block returned, 1001 "going away" when it was
    cancelled or failed) and its background tasks end.
    """
    stream = conn.detach(request)
    async with trio.open_nursery() as nursery:
        ws_request = await trio_websocket.wrap_server_stream(
            nursery,
            stream,
            message_queue_size=MESSAGE_QUEUE,
            max_message_size=limits.ws_max_message_bytes,
            receive_buffer_size=RECEIVE_BYTES,
        )
        ws = ServerWebSocket(await ws_request.accept(), stream, request.remote)
        nursery.start_soon(ws.keep_alive, limits.ws_ping_interval, limits.ws_pong_timeout)
        code = 1001
        try:
            yield ws
            code = 1000
        finally:
            with trio.CancelScope(shield=True):
                await ws.aclose(code)
            nursery.cancel_scope.cancel()
