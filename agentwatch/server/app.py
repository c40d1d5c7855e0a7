"""The router: origin, CORS, shutdown, auth, then the route (SPEC 4, 4.0).

Order of checks for every request: a refused ``Origin`` answers 403
(WebSocket upgrades included); an ``OPTIONS`` preflight from an allowed
origin answers 204; ``/healthz`` needs no token; while shutting down
everything else answers 503; ``/socket.io/`` goes to the Socket.IO module,
which authenticates in its CONNECT packet (``request.authenticated`` tells
it whether the HTTP request already carried the token) and refuses, through
``handle_http``, the WebSocket upgrades that ``accepts_websocket`` rejects
(bad query, unknown sid) with a 400 before the handshake; every other route
needs the token (401), exists (404) and takes the method (405).
"""

from __future__ import annotations

from urllib.parse import unquote

from agentwatch.errors import ControlError, ProtocolError
from agentwatch.server import api, socketio
from agentwatch.server.auth import cors_headers, is_authenticated, origin_allowed, preflight_headers
from agentwatch.server.context import ServerContext
from agentwatch.server.http import HTTPConnection, Request
from agentwatch.server.upgrade import accept_websocket

SOCKETIO_PREFIX = "/socket.io/"


async def _socketio(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    if request.is_websocket and socketio.accepts_websocket(ctx, request):
        async with accept_websocket(conn, request, ctx.limits) as ws:
            await socketio.handle_websocket(ctx, ws, request)
    else:
        await socketio.handle_http(ctx, conn, request, request.body)


async def _route(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    allowed: list[str] = []
    for method, pattern, handler in api.ROUTES:
        match = pattern.fullmatch(request.path)
        if match is None:
            continue
        if method != request.method:
            allowed.append(method)
            continue
        ids = [unquote(g) for g in match.groups()]
        try:
            await handler(ctx, conn, request, *ids)
        except ControlError as exc:  # the supervisor refused: 404, 409 or 400
            raise api.control_error(exc) from None
        return
    if allowed:
        await conn.send_error(
            405,
            "method-not-allowed",
            f"{request.method} is not allowed on {request.path}",
            headers=[("allow", ", ".join(allowed))],
        )
        return
    raise ProtocolError(f"no route {request.path}", status=404, code="not-found")


async def handle_request(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    """Answer one request (see the module docstring for the order of checks)."""
    if request.is_websocket:
        conn.keep_alive = False  # a refused upgrade closes: the peer would send frames next
    if not origin_allowed(ctx.config, ctx.url, request):
        raise ProtocolError(
            f"origin {request.headers.get('origin')!r} is not allowed",
            status=403,
            code="forbidden-origin",
        )
    conn.response_headers = cors_headers(request)
    if request.method == "OPTIONS":
        await conn.send_response(204, headers=preflight_headers(request))
        return
    if request.path == "/healthz":
        await _route(ctx, conn, request)
        return
    if ctx.shutting_down:
        raise ProtocolError("the server is shutting down", status=503, code="shutting-down")
    request.authenticated = is_authenticated(ctx.config, request)
    if request.path.startswith(SOCKETIO_PREFIX):
        await _socketio(ctx, conn, request)
        return
    if not request.authenticated:
        await conn.send_error(
            401,
            "unauthorized",
            "missing or bad token: use 'Authorization: Bearer TOKEN' or ?token=TOKEN",
            headers=[("www-authenticate", "Bearer")],
        )
        return
    await _route(ctx, conn, request)
