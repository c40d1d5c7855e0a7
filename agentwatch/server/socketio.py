"""The Socket.IO v5 / Engine.IO v4 endpoint ``/socket.io/`` (SPEC 4.3).

The original dashboard's socket.io-client works unchanged, over both
transports: WebSocket directly (``transports: ['websocket']``), or the
client's default, HTTP long-polling first, then the upgrade to WebSocket
(``2probe``/``3probe``/``5``). The codecs are sans-IO
(`agentwatch.proto.engineio`, `agentwatch.proto.socketio`); the sessions,
their hub cursor, heartbeat and rooms are in
`agentwatch.server.socketio_session`. This module only moves frames.

The router (`agentwatch.server.app`) calls:

- ``accepts_websocket(ctx, request)``: whether a WebSocket upgrade may be
  accepted (valid ``EIO=4&transport=websocket`` query, and a known sid that
  can upgrade, if any); if not, the request goes to `handle_http`, which
  answers the error as HTTP 400 before any handshake;
- ``handle_http(ctx, conn, request, body)``: the polling handshake, GETs
  (long polls) and POSTs;
- ``handle_websocket(ctx, ws, request)``: a WebSocket session or the upgrade
  of a polling session.

HTTP auth: none at this layer. The token comes in the CONNECT packet's auth
``{"token": T, "userId": U}`` (or on the handshake request, ``?token=T`` or
a bearer header); a bad one gets CONNECT_ERROR ``{"message":"unauthorized"}``.
The router's Origin check applies as for every route.

Errors are HTTP 400 (413 for a body over ``maxPayload``, which also closes
the session), with a body that both engine.io clients and SPEC 4 readers
understand: ``{"code":5,"message":"...","error":{"code":"unsupported-protocol-version",
"message":"..."}}``. Clients are listed by ``/api/clients`` with transport
``socketio`` (whether polling or upgraded) and their ``userId``. (A body
over the HTTP layer's 1 MiB is refused there first: 413, connection closed;
the session then ends at its ping timeout.)

When the run is over, and when the server stops, a joined client gets the
server's DISCONNECT (``41``) before the CLOSE, so socket.io-client reports
"io server disconnect" and does not try to reconnect.
"""

from __future__ import annotations

from urllib.parse import urlsplit

import msgspec
import trio
from trio_websocket import ConnectionClosed

from agentwatch.errors import ProtocolError
from agentwatch.proto.engineio import (
    EngineQuery,
    ErrorCode,
    Transport,
    UpgradeState,
    decode_payload,
    engine_error,
    error_body,
    parse_query,
)
from agentwatch.server.context import ServerContext
from agentwatch.server.http import HTTPConnection, Request
from agentwatch.server.socketio_session import (
    GOODBYE_S,
    Session,
    SessionRegistry,
    registry_of,
)
from agentwatch.server.upgrade import ServerWebSocket

__all__ = [
    "PATH",
    "accepts_websocket",
    "handle_http",
    "handle_websocket",
]

PATH = "/socket.io/"
POLL_CONTENT_TYPE = "text/plain; charset=UTF-8"  # what engine.io answers a poll with
CLOSE_TOO_BIG = 1009  # WebSocket close code: message too big (over maxPayload)
CLOSE_POLICY = 1008  # WebSocket close code: the session refused this socket


# -- queries and errors -----------------------------------------------------------


def _query(request: Request) -> EngineQuery:
    """The validated Engine.IO query; ProtocolError (404 off ``/socket.io/``) if not."""
    if request.path != PATH:
        raise ProtocolError(f"no route {request.path}", status=404, code="not-found")
    return parse_query(urlsplit(request.target.decode("latin-1")).query)


def _upgradable(registry: SessionRegistry, sid: str) -> Session:
    """The polling session ``sid`` if a WebSocket may join it now."""
    session = registry.get(sid)
    engine = session.engine
    if engine.transport is not Transport.POLLING or engine.upgrade is not UpgradeState.NONE:
        raise engine_error(ErrorCode.BAD_REQUEST, "session already upgraded or upgrading")
    return session


def accepts_websocket(ctx: ServerContext, request: Request) -> bool:
    """Whether the WebSocket upgrade ``request`` may be accepted (else `handle_http` refuses)."""
    try:
        _check_websocket(ctx, request)
    except ProtocolError:
        return False
    return True


def _check_websocket(ctx: ServerContext, request: Request) -> None:
    query = _query(request)
    if query.transport is not Transport.WEBSOCKET:
        raise engine_error(ErrorCode.BAD_REQUEST, "a WebSocket upgrade needs transport=websocket")
    if query.sid is not None:
        _upgradable(registry_of(ctx), query.sid)


def _error_body(exc: ProtocolError) -> bytes:
    """engine.io's ``{"code":N,"message":..}`` plus SPEC 4's ``"error"`` object."""
    body = msgspec.json.decode(error_body(exc))
    body["error"] = {"code": exc.code, "message": str(exc)}
    return msgspec.json.encode(body)


async def _send_error(conn: HTTPConnection, exc: ProtocolError) -> None:
    await conn.send_response(exc.status, _error_body(exc), headers=[("cache-control", "no-store")])


# -- long-polling -------------------------------------------------------------------


async def handle_http(
    ctx: ServerContext, conn: HTTPConnection, request: Request, body: bytes
) -> None:
    """Answer one HTTP request on ``/socket.io/`` (handshake, long poll, POST)."""
    try:
        if request.is_websocket:  # refused by accepts_websocket: say why
            _check_websocket(ctx, request)
            raise engine_error(ErrorCode.BAD_REQUEST)
        query = _query(request)
        if query.transport is not Transport.POLLING:
            raise engine_error(
                ErrorCode.BAD_REQUEST, "transport=websocket needs a WebSocket upgrade"
            )
        registry = registry_of(ctx)
        if query.sid is None:
            if request.method != "GET":
                raise engine_error(ErrorCode.BAD_HANDSHAKE_METHOD)
            await _poll(registry.open(ctx, Transport.POLLING, request), conn)
        else:
            session = registry.get(query.sid)
            if request.method == "GET":
                await _poll(session, conn)
            elif request.method == "POST":
                await _post(session, conn, request, body)
            else:
                raise engine_error(ErrorCode.BAD_REQUEST, f"{request.method} is not for polling")
    except ProtocolError as exc:
        if not conn.can_respond:
            raise
        await _send_error(conn, exc)


async def _poll(session: Session, conn: HTTPConnection) -> None:
    """A long poll: wait until something is queued, then answer with up to ``maxPayload``."""
    engine = session.engine
    try:
        engine.begin_get()
    except ProtocolError:
        if engine.closed:  # overlapping GETs close the session
            session.close(engine.close_reason or "overlapping polls")
        raise
    try:
        while not engine.poll_ready:
            await session.changed()
    except trio.Cancelled:  # the server stops: this poll carries the goodbye
        with trio.CancelScope(shield=True):
            session.goodbye("server stopped")
            with trio.move_on_after(GOODBYE_S):
                await _answer_poll(session, conn)
        raise
    finally:
        engine.end_get()
    await _answer_poll(session, conn)


async def _answer_poll(session: Session, conn: HTTPConnection) -> None:
    body, frames = session.drain_for_poll()
    try:
        await conn.send_response(200, body.encode(), content_type=POLL_CONTENT_TYPE)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        if conn.stream.stalled:
            session.report_stalled()
        session.close("poll connection closed prematurely")  # as engine.io does: data was lost
        raise
    session.written(frames)


async def _post(session: Session, conn: HTTPConnection, request: Request, body: bytes) -> None:
    """Packets from the client; ``ok`` once handled."""
    engine = session.engine
    try:
        engine.begin_post()
    except ProtocolError:
        if engine.closed:
            session.close(engine.close_reason or "overlapping posts")
        raise
    try:
        limit = session.limits.socketio_max_payload
        if len(body) > limit:
            session.close("max payload exceeded")
            raise ProtocolError(
                f"payload over maxPayload ({limit} bytes)", status=413, code="too-large"
            )
        try:
            packets = decode_payload(body)
        except ProtocolError as exc:
            session.close(f"transport error: {exc}")
            raise
        for packet in packets:
            session.receive(packet, Transport.POLLING, request.authenticated)
    finally:
        engine.end_post()
    await conn.send_response(200, b"ok", content_type="text/html")


# -- WebSocket ---------------------------------------------------------------------------


def _size(message: str | bytes) -> int:
    if isinstance(message, bytes) or message.isascii():
        return len(message)
    return len(message.encode())


async def handle_websocket(ctx: ServerContext, ws: ServerWebSocket, request: Request) -> None:
    """Serve one WebSocket: a new session, or the upgrade of a polling one."""
    registry = registry_of(ctx)
    try:
        query = _query(request)
        if query.sid is None:
            session = registry.open(ctx, Transport.WEBSOCKET, request)
        else:
            session = _upgradable(registry, query.sid)
            session.engine.begin_upgrade()
    except ProtocolError as exc:  # the session went away since accepts_websocket
        await ws.aclose(CLOSE_POLICY, str(exc)[:100])
        return
    if query.sid is not None and not await _probe(session, ws, request):
        return
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_ws_reader, session, ws, request)
            await _ws_writer(session, ws)
            nursery.cancel_scope.cancel()
    finally:
        with trio.CancelScope(shield=True):
            session.goodbye("server stopped")  # a no-op unless cancelled: the server stops
            with trio.move_on_after(GOODBYE_S):
                await _ws_writer(session, ws)


async def _probe(session: Session, ws: ServerWebSocket, request: Request) -> bool:
    """The upgrade: ``2probe`` -> ``3probe`` (the pending poll gets NOOP), then ``5``."""
    engine = session.engine
    with trio.move_on_after(session.limits.socketio_upgrade_timeout):
        try:
            while not engine.closed:
                message = await ws.get_message()
                if _size(message) > session.limits.socketio_max_payload:
                    break
                inbound = session.receive_frame(message, Transport.WEBSOCKET, request.authenticated)
                if inbound.reply is not None:
                    await ws.send_message(inbound.reply)
                    session.notify()  # answer the pending GET with NOOP
                if inbound.upgraded:
                    session.notify()
                    return True
        except (ProtocolError, ConnectionClosed):
            pass
    if engine.transport is Transport.POLLING:
        engine.cancel_upgrade()
        session.notify()
    return False


async def _ws_reader(session: Session, ws: ServerWebSocket, request: Request) -> None:
    """Client frames into the session; closes it when the socket ends or misbehaves."""
    reason = "transport close"
    try:
        while not session.engine.closed:
            message = await ws.get_message()
            if _size(message) > session.limits.socketio_max_payload:
                reason = "max payload exceeded"
                await ws.aclose(CLOSE_TOO_BIG, reason)
                break
            session.receive_frame(message, Transport.WEBSOCKET, request.authenticated)
    except ConnectionClosed:
        pass
    except ProtocolError as exc:
        reason = f"transport error: {exc}"
    session.close(reason)


async def _ws_writer(session: Session, ws: ServerWebSocket) -> None:
    """Queued frames onto the socket, in order; returns once closed and flushed."""
    engine = session.engine
    while True:
        frames = engine.drain_for_ws()
        if frames:
            try:
                await _send_frames(ws, frames)
            except ConnectionClosed:
                if ws.stream.stalled:
                    session.report_stalled()
                session.close("transport close")
                return
            session.written(len(frames))
        elif engine.closed:
            return
        else:
            await session.changed()


async def _send_frames(ws: ServerWebSocket, frames: list[str | bytes]) -> None:
    """Text frames in one write (`ServerWebSocket.send_frames`); binary ones on their own."""
    text: list[bytes] = []
    for frame in frames:
        if isinstance(frame, str):
            text.append(frame.encode())
            continue
        if text:
            await ws.send_frames(text)
            text = []
        await ws.send_message(frame)
    if text:
        await ws.send_frames(text)
