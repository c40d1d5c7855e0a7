"""Helpers for the server tests (no tests here): a running server, an h11
client, an SSE reader and a raw WebSocket peer.

Imported by the other ``test_server_*.py`` modules (pytest puts ``tests/``
on ``sys.path``).
"""

from __future__ import annotations

import base64
import os
import struct
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import h11
import msgspec
import pytest
import trio

from agentwatch.config import ServerConfig
from agentwatch.hub import Hub
from agentwatch.journal import Journal
from agentwatch.proto.sse import SSEMessage, SSEParser
from agentwatch.runner import Echo, SessionOptions
from agentwatch.server import serve
from agentwatch.server.context import ServerContext
from agentwatch.server.limits import Limits
from agentwatch.supervisor import Supervisor

TOKEN = "s3cret-token"


def quiet_options(home: Path, token: str, **kw: Any) -> SessionOptions:
    """Options of a run_session with a server on ``token`` under ``home`` that prints nothing."""
    return SessionOptions(
        server=ServerConfig(token=token),
        home=home,
        echo=Echo.NONE,
        quiet_server=True,
        handle_signals=False,
        **kw,
    )


AUTH = [("authorization", f"Bearer {TOKEN}")]


def port_of(target: ServerContext | str) -> int:
    """The bound port of a server (or of its URL)."""
    url = target if isinstance(target, str) else target.url
    return int(urlsplit(url).port or 0)


def ws_url(target: ServerContext | str, query: str = "") -> str:
    """The /ws URL with the test token."""
    return f"ws://127.0.0.1:{port_of(target)}/ws?token={TOKEN}{query}"


@asynccontextmanager
async def running_server(
    tmp_path: Path,
    *,
    token: str | None = TOKEN,
    journal: bool = True,
    history_events: int | None = None,
    limits: Limits | None = None,
    **config: Any,
) -> AsyncIterator[ServerContext]:
    """A hub (journal in ``tmp_path``), a supervisor and `serve` on port 0."""
    jrn = None
    if journal:
        jrn = Journal(tmp_path / "events.jsonl")
        jrn.open()
    kwargs: dict[str, Any] = {}
    if history_events is not None:
        kwargs["history_events"] = history_events
    hub = Hub(jrn, **kwargs)
    ctx = ServerContext(hub, Supervisor(hub), ServerConfig(token=token, **config), "run-1", "9.9")
    if limits is not None:
        ctx.limits = limits
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(serve, ctx)
            yield ctx
            nursery.cancel_scope.cancel()
    finally:
        if jrn is not None:
            jrn.close()


def break_route(monkeypatch: pytest.MonkeyPatch, path: str, exc: Exception) -> None:
    """Make the route of ``path`` raise ``exc`` (a handler failure the server must survive)."""
    from agentwatch.server import api

    async def broken(*args: object) -> None:
        raise exc

    routes = [(m, p, broken if p.pattern == path else h) for m, p, h in api.ROUTES]
    monkeypatch.setattr(api, "ROUTES", routes)


def short_limits(**changes: Any) -> Limits:
    """Limits with short timers for tests."""
    return replace(Limits(), **changes)


@dataclass
class Response:
    """One HTTP response."""

    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        """The body, decoded."""
        return msgspec.json.decode(self.body)


@dataclass
class HTTPClient:
    """An h11 client over one keep-alive connection."""

    stream: trio.SocketStream
    conn: h11.Connection = field(default_factory=lambda: h11.Connection(h11.CLIENT))

    @classmethod
    async def connect(cls, target: ServerContext | str) -> HTTPClient:
        """Open a connection to the server (or its URL)."""
        return cls(await trio.open_tcp_stream("127.0.0.1", port_of(target)))

    async def send(
        self, method: str, path: str, headers: list[tuple[str, str]], body: bytes
    ) -> None:
        """Send one request."""
        hdrs = list(headers)
        if not any(k.lower() == "host" for k, _ in hdrs):
            hdrs.insert(0, ("host", "127.0.0.1"))
        if body:
            hdrs.append(("content-length", str(len(body))))
        data = self.conn.send(h11.Request(method=method, target=path, headers=hdrs)) or b""
        if body:
            data += self.conn.send(h11.Data(data=body)) or b""
        data += self.conn.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(data)

    async def next_event(self) -> Any:
        """The next h11 event from the server."""
        while True:
            event = self.conn.next_event()
            if event is h11.NEED_DATA:
                self.conn.receive_data(await self.stream.receive_some(65536))
                continue
            return event

    async def response_head(self) -> tuple[int, dict[str, str]]:
        """Status and headers of the next response."""
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Response):
                headers = {k.decode(): v.decode() for k, v in event.headers}
                return event.status_code, headers

    async def request(
        self,
        method: str,
        path: str,
        *,
        headers: list[tuple[str, str]] | None = None,
        body: bytes = b"",
        auth: bool = True,
    ) -> Response:
        """Send a request and read its whole response."""
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        await self.send(method, path, [*(AUTH if auth else []), *(headers or [])], body)
        status, hdrs = await self.response_head()
        data = bytearray()
        while True:
            event = await self.next_event()
            if isinstance(event, h11.Data):
                data += event.data
            elif isinstance(event, h11.EndOfMessage):
                return Response(status, hdrs, bytes(data))

    async def aclose(self) -> None:
        """Close the connection."""
        await self.stream.aclose()


async def request(target: ServerContext | str, method: str, path: str, **kwargs: Any) -> Response:
    """One request on a fresh connection."""
    client = await HTTPClient.connect(target)
    try:
        return await client.request(method, path, **kwargs)
    finally:
        await client.aclose()


async def raw_exchange(ctx: ServerContext, data: bytes) -> bytes:
    """Send raw bytes; return everything the server sends until it closes."""
    stream = await trio.open_tcp_stream("127.0.0.1", port_of(ctx))
    await stream.send_all(data)
    out = bytearray()
    while chunk := await stream.receive_some(65536):
        out += chunk
    await stream.aclose()
    return bytes(out)


class SSEReader:
    """Reads an SSE response with h11 and `SSEParser`."""

    def __init__(self, client: HTTPClient) -> None:
        self.client = client
        self.parser = SSEParser()
        self.pending: list[SSEMessage] = []
        self.comments = 0
        self.ended = False

    @classmethod
    async def open(
        cls, ctx: ServerContext, path: str, headers: list[tuple[str, str]] | None = None
    ) -> tuple[SSEReader, int, dict[str, str]]:
        """Start a stream; return the reader, status and headers."""
        client = await HTTPClient.connect(ctx)
        await client.send("GET", path, [*AUTH, *(headers or [])], b"")
        status, hdrs = await client.response_head()
        return cls(client), status, hdrs

    async def next(self) -> SSEMessage | None:
        """The next message; None at the end of the stream."""
        while not self.pending:
            event = await self.client.next_event()
            if isinstance(event, h11.Data):
                self.comments += bytes(event.data).count(b": keepalive")
                self.pending += self.parser.feed(bytes(event.data))
            elif isinstance(event, (h11.EndOfMessage, h11.ConnectionClosed)):
                self.ended = True
                return None
        return self.pending.pop(0)

    async def aclose(self) -> None:
        """Close the connection."""
        await self.client.aclose()


def masked_frame(payload: bytes, opcode: int = 1) -> bytes:
    """A client WebSocket frame (masked, unfragmented)."""
    mask = os.urandom(4)
    n = len(payload)
    if n < 126:
        head = bytes((0x80 | opcode, 0x80 | n))
    elif n < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, n)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, n)
    body = bytes(b ^ mask[i % 4] for i, b in enumerate(payload))
    return head + mask + body


def upgrade_request(path: str, headers: list[tuple[str, str]] | None = None) -> bytes:
    """A raw WebSocket upgrade request."""
    key = base64.b64encode(os.urandom(16)).decode()
    lines = [
        f"GET {path} HTTP/1.1",
        "Host: 127.0.0.1",
        "Upgrade: websocket",
        "Connection: Upgrade",
        f"Sec-WebSocket-Key: {key}",
        "Sec-WebSocket-Version: 13",
        *(f"{k}: {v}" for k, v in headers or []),
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


async def wait_for(predicate: Callable[[], bool], poll: float = 0.01) -> None:
    """Poll ``predicate`` until true (callers bound it with ``fail_after``)."""
    while not predicate():  # noqa: ASYNC110 - the suite polls conditions under fail_after
        await trio.sleep(poll)


async def open_raw_socket(
    target: ServerContext | str, rcvbuf: int | None = None
) -> trio.SocketStream:
    """A TCP connection to the server, optionally with a tiny receive buffer."""
    sock = trio.socket.socket(trio.socket.AF_INET, trio.socket.SOCK_STREAM)
    if rcvbuf is not None:
        sock.setsockopt(trio.socket.SOL_SOCKET, trio.socket.SO_RCVBUF, rcvbuf)
    await sock.connect(("127.0.0.1", port_of(target)))
    return trio.SocketStream(sock)


async def read_head(stream: trio.SocketStream) -> tuple[bytes, bytes]:
    """Read a response head; return it and the bytes after it."""
    buf = b""
    while b"\r\n\r\n" not in buf:
        chunk = await stream.receive_some(4096)
        if not chunk:
            break
        buf += chunk
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


class FrameReader:
    """Parses unmasked server WebSocket frames from a raw stream."""

    def __init__(self, stream: trio.SocketStream, buf: bytes = b"") -> None:
        self.stream = stream
        self.buf = buf

    async def _need(self, n: int) -> bool:
        while len(self.buf) < n:
            chunk = await self.stream.receive_some(65536)
            if not chunk:
                return False
            self.buf += chunk
        return True

    async def next(self) -> tuple[int, bytes] | None:
        """(opcode, payload) of the next frame; None at EOF."""
        if not await self._need(2):
            return None
        n = self.buf[1] & 0x7F
        start = 2
        if n == 126:
            await self._need(4)
            n, start = struct.unpack("!H", self.buf[2:4])[0], 4
        elif n == 127:
            await self._need(10)
            n, start = struct.unpack("!Q", self.buf[2:10])[0], 10
        if not await self._need(start + n):
            return None
        opcode, payload = self.buf[0] & 0x0F, self.buf[start : start + n]
        self.buf = self.buf[start + n :]
        return opcode, payload
