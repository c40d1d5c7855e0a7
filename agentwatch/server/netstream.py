"""The socket of one connection, as every transport of the server uses it.

`ConnStream` wraps the accepted trio stream and adds three things:

- **serialized sends**: one `trio.StrictFIFOLock` around every `send_all`,
  so an HTTP response, SSE events, WebSocket frames written directly and
  trio-websocket's own control frames never interleave; a send cut short
  (cancelled at shutdown, or failed) marks the stream torn, and every later
  send fails, so a close frame can never follow half a data frame;
- **a stall deadline**: every chunk of `SEND_CHUNK_BYTES` must leave within
  ``send_timeout`` (the server's ``--client-timeout``). A peer that reads
  nothing for that long makes `send_all` raise `Stalled` (a
  `trio.BrokenResourceError`, so trio-websocket treats it as a dead
  socket), and ``stalled`` stays True for the transport to report it;
- **replay**: bytes already read off the socket (the WebSocket upgrade
  request that h11 parsed, and whatever followed it) are returned first by
  `receive_some`, so trio-websocket can take over the connection.
"""

from __future__ import annotations

import trio

from agentwatch.server.limits import RECEIVE_BYTES, SEND_CHUNK_BYTES


class Stalled(trio.BrokenResourceError):
    """The peer read nothing for the whole send deadline."""


class ConnStream(trio.abc.Stream):
    """A trio stream with serialized, deadline-bound sends and a replay prefix."""

    def __init__(self, inner: trio.abc.Stream, send_timeout: float) -> None:
        self.inner = inner
        self.send_timeout = send_timeout
        self.stalled = False
        self.torn = False  # a send was interrupted mid-message: nothing more may follow
        self._prefix = b""
        self._lock = trio.StrictFIFOLock()

    def replay(self, data: bytes) -> None:
        """Make ``data`` the next bytes `receive_some` returns."""
        self._prefix = data + self._prefix

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        """Send everything, a chunk at a time, each within the send deadline."""
        async with self._lock:
            if self.stalled:
                raise Stalled("connection already stalled")
            if self.torn:
                raise trio.BrokenResourceError("an earlier send was cut short")
            view = memoryview(data)
            self.torn = True  # until the whole message is out: a cut one poisons the stream
            for start in range(0, len(view), SEND_CHUNK_BYTES):
                chunk = view[start : start + SEND_CHUNK_BYTES]
                with trio.move_on_after(self.send_timeout) as scope:
                    await self.inner.send_all(chunk)
                if scope.cancelled_caught:
                    self.stalled = True
                    raise Stalled(f"peer read nothing for {self.send_timeout:g} s")
            self.torn = False

    async def wait_send_all_might_not_block(self) -> None:
        """Delegate to the socket."""
        await self.inner.wait_send_all_might_not_block()

    async def receive_some(self, max_bytes: int | None = None) -> bytes | bytearray:
        """The replayed bytes first, then the socket's."""
        if self._prefix:
            size = max_bytes or len(self._prefix)
            data, self._prefix = self._prefix[:size], self._prefix[size:]
            await trio.lowlevel.checkpoint()
            return data
        return await self.inner.receive_some(max_bytes or RECEIVE_BYTES)

    async def send_eof(self) -> None:
        """Half-close the socket (after the last response)."""
        async with self._lock:
            if isinstance(self.inner, trio.abc.HalfCloseableStream):
                await self.inner.send_eof()

    async def aclose(self) -> None:
        """Close the socket (idempotent)."""
        await self.inner.aclose()
