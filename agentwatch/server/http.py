"""HTTP/1.1 on one connection with h11: requests in, responses out.

This is the interface every route handler uses, including the Socket.IO
module (``agentwatch/server/socketio.py``), which the router calls as::

    def accepts_websocket(ctx: ServerContext, request: Request) -> bool
    async def handle_http(ctx: ServerContext, conn: HTTPConnection,
                          request: Request, body: bytes) -> None
    async def handle_websocket(ctx: ServerContext, ws: ServerWebSocket,
                               request: Request) -> None

(an upgrade that ``accepts_websocket`` refuses goes to ``handle_http``;
``ServerWebSocket`` is in `agentwatch.server.upgrade`).

A handler gets a parsed `Request` (the whole body already read, at most
``Limits.max_body_bytes``) and answers through its `HTTPConnection`, once:

- ``await conn.send_response(status, body, content_type=..., headers=[...])``
  for a whole response (``Content-Length`` is set);
- ``await conn.send_json(status, obj)`` / ``await conn.send_error(status,
  code, message)`` for JSON (errors as ``{"error":{"code":..,"message":..}}``);
- ``await conn.start_stream(status, content_type=..., headers=[...])``, then
  ``await conn.send_data(bytes)`` any number of times, then
  ``await conn.end_stream()`` for a chunked response (SSE, long-polling).

Or it raises `ProtocolError(message, status=, code=)`, which becomes the JSON
error. Any other exception answers 500 with `INTERNAL_ERROR_MESSAGE`, never
the exception's text: that goes to stderr, one line (and the traceback with
``AGENTWATCH_DEBUG=1``). Headers are ``(name, value)`` string pairs; CORS headers for the
request's origin are added to every response by the router. ``conn.keep_alive
= False`` closes the connection after the response. A WebSocket upgrade is
taken over with `agentwatch.server.upgrade.accept_websocket`, which uses
`HTTPConnection.detach`.

Limits (`agentwatch.server.limits`): a request head over 64 KiB answers
431, a body over 1 MiB 413, a malformed request 400; a request must arrive
whole within ``request_timeout`` of its first byte and an idle keep-alive
connection is closed after ``keepalive_timeout``, so a slow client only ever
holds its own connection. Every send leaves within ``--client-timeout`` or
the connection is dropped (`agentwatch.server.netstream`).
"""

from __future__ import annotations

import os
import traceback
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import Any
from urllib.parse import parse_qs, urlsplit

import h11
import msgspec
import trio

from agentwatch.errors import ProtocolError
from agentwatch.server.limits import RECEIVE_BYTES, Limits
from agentwatch.server.netstream import ConnStream

JSON_TYPE = "application/json"
LINGER_S = 2.0  # how long a refused request's remaining bytes are drained
LINGER_MAX_BYTES = 4 * 1024 * 1024  # ... and how many at most
INTERNAL_ERROR_MESSAGE = "internal server error"  # a 500's body: no exception text for peers
_REASONS = {s.value: s.phrase.encode() for s in HTTPStatus}
Headers = Iterable[tuple[str, str]]
_encode = msgspec.json.Encoder().encode


@dataclass(slots=True)
class Request:
    """One parsed HTTP request.

    ``path`` is the target's path as sent (percent-encoded); ``query`` maps
    each parameter to its values; ``headers`` has lower-case names (repeated
    headers joined with ``", "``, cookies with ``"; "``). ``authenticated``
    is set by the router: the request carried the server's token (or auth is
    off). ``remote`` is ``"host:port"`` of the peer.
    """

    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes = b""
    remote: str = ""
    target: bytes = b"/"
    raw_headers: list[tuple[bytes, bytes]] = field(default_factory=list)
    authenticated: bool = False

    def param(self, name: str) -> str | None:
        """The first value of query parameter ``name``, if any."""
        values = self.query.get(name)
        return values[0] if values else None

    def header(self, name: str) -> str | None:
        """Header ``name`` (case-insensitive), if present."""
        return self.headers.get(name.lower())

    @property
    def is_websocket(self) -> bool:
        """Whether this is a WebSocket upgrade request."""
        return "websocket" in self.headers.get("upgrade", "").lower()


def parse_request(event: h11.Request, remote: str) -> Request:
    """Build a `Request` (without body) from h11's event."""
    target = bytes(event.target)
    parts = urlsplit(target.decode("latin-1"))
    headers: dict[str, str] = {}
    for name, value in event.headers:
        key, text = name.decode("latin-1"), value.decode("latin-1")
        if key in headers:
            text = headers[key] + ("; " if key == "cookie" else ", ") + text
        headers[key] = text
    return Request(
        method=event.method.decode("ascii", "replace"),
        path=parts.path or "/",
        query=parse_qs(parts.query, keep_blank_values=True),
        headers=headers,
        remote=remote,
        target=target,
        raw_headers=list(event.headers.raw_items()),
    )


class _Timeout(Exception):
    """The peer was too slow to send a request."""


class HTTPConnection:
    """One client connection: reads requests, writes one response to each."""

    def __init__(self, stream: ConnStream, remote: str, limits: Limits) -> None:
        self.stream = stream
        self.remote = remote
        self.limits = limits
        self.keep_alive = True
        self.response_headers: list[tuple[str, str]] = []  # added to every response
        self.response_started = False
        self.detached = False
        self.linger = False  # drain unread input before closing, so the peer gets the error
        self._h11 = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)

    # ---- responses ----------------------------------------------------------

    def _headers(self, extra: Headers) -> list[tuple[str, str]]:
        headers = [*self.response_headers, *extra]
        if not self.keep_alive:
            headers.append(("connection", "close"))
        return headers

    async def _send(self, event: Any) -> None:
        data = self._h11.send(event)
        if data:
            await self.stream.send_all(data)

    async def send_response(
        self,
        status: int,
        body: bytes = b"",
        *,
        content_type: str = JSON_TYPE,
        headers: Headers = (),
    ) -> None:
        """Send a whole response with ``Content-Length``."""
        self.response_started = True
        all_headers = [
            ("content-type", content_type),
            ("content-length", str(len(body))),
            *self._headers(headers),
        ]
        data = (
            self._h11.send(
                h11.Response(
                    status_code=status, headers=all_headers, reason=_REASONS.get(status, b"")
                )
            )
            or b""
        )
        if body:
            data += self._h11.send(h11.Data(data=body)) or b""
        data += self._h11.send(h11.EndOfMessage()) or b""
        await self.stream.send_all(data)

    async def send_json(self, status: int, obj: Any, *, headers: Headers = ()) -> None:
        """Send ``obj`` as JSON (``Cache-Control: no-store``)."""
        await self.send_response(
            status, _encode(obj), headers=[("cache-control", "no-store"), *headers]
        )

    async def send_error(
        self, status: int, code: str, message: str, *, headers: Headers = ()
    ) -> None:
        """Send the JSON error of SPEC 4."""
        await self.send_json(status, {"error": {"code": code, "message": message}}, headers=headers)

    async def start_stream(self, status: int, *, content_type: str, headers: Headers = ()) -> None:
        """Start a chunked response; follow with `send_data` and `end_stream`."""
        self.response_started = True
        await self._send(
            h11.Response(
                status_code=status,
                headers=[("content-type", content_type), *self._headers(headers)],
                reason=_REASONS.get(status, b""),
            )
        )

    async def send_data(self, data: bytes) -> None:
        """Send a piece of a streamed response (one chunk)."""
        if data:
            await self._send(h11.Data(data=data))

    async def end_stream(self) -> None:
        """Finish a streamed response."""
        await self._send(h11.EndOfMessage())

    def detach(self, request: Request) -> ConnStream:
        """Hand the socket over for a protocol switch (WebSocket upgrade).

        Returns the stream, set to replay the upgrade request and any bytes
        that followed it, so a WebSocket library can read it from the start.
        The HTTP loop ends after the handler returns.
        """
        self.detached = self.response_started = True
        self.keep_alive = False
        head = bytearray(request.method.encode() + b" " + request.target + b" HTTP/1.1\r\n")
        for name, value in request.raw_headers:
            head += name + b": " + value + b"\r\n"
        head += b"\r\n"
        self.stream.replay(bytes(head) + self._h11.trailing_data[0])
        return self.stream

    # ---- requests -------------------------------------------------------------

    async def _next_event(self, deadline: float, first_byte: bool) -> Any:
        while True:
            event = self._h11.next_event()
            if event is not h11.NEED_DATA:
                return event
            with trio.move_on_at(deadline):
                data = await self.stream.receive_some(RECEIVE_BYTES)
                self._h11.receive_data(bytes(data))
                if first_byte and data:
                    first_byte = False
                    deadline = min(deadline, trio.current_time() + self.limits.request_timeout)
                continue
            raise _Timeout("request timed out")

    async def read_request(self) -> Request | None:
        """The next request with its body; None when the peer is done or too slow."""
        try:
            return await self._read_request()
        except _Timeout:
            self.keep_alive = False
            return None

    async def _read_request(self) -> Request | None:
        limits = self.limits
        now = trio.current_time()
        pending = bool(self._h11.trailing_data[0])
        deadline = now + (limits.request_timeout if pending else limits.keepalive_timeout)
        event = await self._next_event(deadline, not pending)
        if isinstance(event, h11.ConnectionClosed) or event is h11.PAUSED:
            return None
        assert isinstance(event, h11.Request)
        if event.http_version not in (b"1.0", b"1.1"):
            version = event.http_version.decode()
            raise ProtocolError(f"unsupported HTTP version {version}", code="bad-request")
        head_size = len(event.target) + sum(len(k) + len(v) + 4 for k, v in event.headers)
        if head_size > limits.max_header_bytes:  # h11 only bounds heads still incomplete
            raise ProtocolError(
                f"request head over {limits.max_header_bytes} bytes",
                status=431,
                code="headers-too-large",
            )
        request = parse_request(event, self.remote)
        body = await self._read_body(request)
        if body is None:
            return None
        request.body = body
        return request

    async def _read_body(self, request: Request) -> bytes | None:
        """The whole body (413 past the limit); None if the peer hung up."""
        limit = self.limits.max_body_bytes
        too_large = ProtocolError(f"request body over {limit} bytes", status=413, code="too-large")
        length = request.headers.get("content-length", "0")
        if length.isdigit() and int(length) > limit:
            raise too_large
        if self._h11.they_are_waiting_for_100_continue:
            await self._send(h11.InformationalResponse(status_code=100, headers=[]))
        deadline = trio.current_time() + self.limits.request_timeout
        body = bytearray()
        while True:
            event = await self._next_event(deadline, False)
            if isinstance(event, h11.EndOfMessage):
                return bytes(body)
            if isinstance(event, h11.ConnectionClosed):
                return None
            if isinstance(event, h11.Data):
                body += event.data
                if len(body) > limit:
                    raise too_large

    def next_cycle(self) -> bool:
        """Prepare for the next request; False when the connection must close."""
        if not self.keep_alive or self.detached:
            return False
        if self._h11.our_state is h11.DONE and self._h11.their_state is h11.DONE:
            self._h11.start_next_cycle()
            self.response_started = False
            self.response_headers = []
            return True
        return False

    @property
    def can_respond(self) -> bool:
        """Whether no response has started (so an error can still be sent)."""
        return not self.response_started and self._h11.our_state in (h11.IDLE, h11.SEND_RESPONSE)


Handler = Callable[[HTTPConnection, Request], Awaitable[None]]


def log_error(text: str) -> None:
    """One line on stderr (never stdout, never a traceback)."""
    try:
        os.write(2, ("agentwatch: " + text.replace("\n", " ")[:500] + "\n").encode())
    except OSError:
        pass


def log_internal_error(request: Request, exc: Exception) -> None:
    """A handler failed: one line on stderr, plus the traceback with ``AGENTWATCH_DEBUG=1``."""
    log_error(f"internal error on {request.method} {request.path}: {type(exc).__name__}: {exc}")
    if os.environ.get("AGENTWATCH_DEBUG") == "1":
        try:
            os.write(2, "".join(traceback.format_exception(exc)).encode())
        except OSError:
            pass


def is_disconnect(exc: BaseException) -> bool:
    """Whether ``exc`` (or every leaf of a group) means the peer went away."""
    if isinstance(exc, BaseExceptionGroup):
        return all(is_disconnect(e) for e in exc.exceptions)
    return isinstance(exc, (trio.BrokenResourceError, trio.ClosedResourceError))


async def _fail(
    conn: HTTPConnection, status: int, code: str, message: str, *, close: bool = True
) -> None:
    """Answer with a JSON error if still possible; else (or if ``close``) close."""
    if close or not conn.can_respond:
        conn.keep_alive = False
    if conn.can_respond:
        conn.linger = close
        try:
            await conn.send_error(status, code, message)
        except (trio.BrokenResourceError, trio.ClosedResourceError, h11.LocalProtocolError):
            pass


async def _handle_one(conn: HTTPConnection, handler: Handler) -> bool:
    """Read and answer one request; False when the connection is done."""
    try:
        request = await conn.read_request()
    except h11.RemoteProtocolError as exc:
        status = exc.error_status_hint
        code = "headers-too-large" if status == 431 else "bad-request"
        await _fail(conn, status, code, f"malformed request: {exc}")
        return False
    except ProtocolError as exc:
        await _fail(conn, exc.status, exc.code, str(exc))
        return False
    if request is None:
        return False
    try:
        await handler(conn, request)
        if conn.can_respond and not conn.detached:
            raise RuntimeError(f"no response to {request.method} {request.path}")
    except ProtocolError as exc:
        await _fail(conn, exc.status, exc.code, str(exc), close=False)
    except Exception as exc:
        if is_disconnect(exc):
            return False
        log_internal_error(request, exc)
        await _fail(conn, 500, "internal-error", INTERNAL_ERROR_MESSAGE)
    return conn.next_cycle()


async def serve_http(stream: ConnStream, remote: str, limits: Limits, handler: Handler) -> None:
    """Serve requests on one connection until it closes; never raises on bad input."""
    conn = HTTPConnection(stream, remote, limits)
    try:
        while await _handle_one(conn, handler):
            pass
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    finally:
        with trio.CancelScope(shield=True):
            if conn.linger:
                await _lingering_close(stream)
            await stream.aclose()


async def _lingering_close(stream: ConnStream) -> None:
    """Half-close, then read and drop what the peer still sends, briefly.

    Closing a socket with unread input makes the kernel send a reset, which
    can destroy the error response before the peer reads it (a 413 or 431
    answered before the whole request arrived).
    """
    with trio.move_on_after(LINGER_S):
        try:
            await stream.send_eof()
            drained = 0
            while drained < LINGER_MAX_BYTES:
                data = await stream.receive_some(RECEIVE_BYTES)
                if not data:
                    break
                drained += len(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
