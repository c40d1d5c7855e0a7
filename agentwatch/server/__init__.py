"""The one-port server (SPEC 4): REST, SSE, WebSocket and Socket.IO.

``await nursery.start(serve, ctx)`` binds ``ctx.config.host:port`` and
returns the URL; the server runs until cancelled. Each connection is its
own task with its own limits, so a slow or hostile client only holds its
own connection, and no handler error can take the server down.

Modules: `http` (h11 loop, `Request`, `HTTPConnection`; the handler
interface), `app` (origin, auth, routing), `api` (REST), `sse`,
`native_ws` (the ``/ws`` protocol of SPEC 4.1), `upgrade` (any WebSocket
upgrade handed to trio-websocket, and the fast text-frame writer), `follow` (the
subscriber loop shared by every streaming transport), `socketio`,
`socketio_session` and `socketio_rooms` (the Socket.IO endpoint; its
sessions outlive requests and run in `SessionRegistry.serve`, beside the
accept loop),
`metrics`, `netstream` (the socket wrapper), `auth`, `limits`.
"""

from __future__ import annotations

import errno
import functools

import trio

from agentwatch.errors import ConfigError
from agentwatch.server.app import handle_request
from agentwatch.server.context import ServerContext
from agentwatch.server.http import HTTPConnection, Request, log_error, serve_http
from agentwatch.server.limits import Limits
from agentwatch.server.netstream import ConnStream
from agentwatch.server.socketio_session import registry_of

__all__ = ["HTTPConnection", "Limits", "Request", "ServerContext", "serve"]

_WILDCARD = {"0.0.0.0": "127.0.0.1", "::": "::1", "": "127.0.0.1"}


def _url(host: str, port: int) -> str:
    host = _WILDCARD.get(host, host)
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


def _remote(stream: trio.SocketStream) -> str:
    try:
        addr = stream.socket.getpeername()
    except OSError:
        return "unknown"
    host, port = addr[0], addr[1]
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


async def _bind(host: str, port: int) -> list[trio.SocketListener]:
    try:
        listeners = await trio.open_tcp_listeners(port, host=host or None)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            raise ConfigError(
                f"port {port} is in use on {host}: choose another with --port (0 picks a free one)"
            ) from None
        raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from None
    if len(listeners) > 1:  # e.g. "localhost": one address, so one port for all
        for extra in listeners[1:]:
            await extra.aclose()
        listeners = listeners[:1]
    return listeners


async def _connection(ctx: ServerContext, stream: trio.SocketStream) -> None:
    conn_stream = ConnStream(stream, ctx.config.client_timeout)
    try:
        await serve_http(
            conn_stream, _remote(stream), ctx.limits, functools.partial(handle_request, ctx)
        )
    except Exception as exc:  # a handler must never take the server down
        log_error(f"connection error: {type(exc).__name__}: {exc}")
        with trio.CancelScope(shield=True):
            await conn_stream.aclose()


async def serve(
    ctx: ServerContext, *, task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED
) -> None:
    """Serve ``ctx`` on ``ctx.config.host:port`` until cancelled.

    Sets ``ctx.url`` and passes it to ``task_status.started``. Raises
    `ConfigError` (before ``started``) when the port is in use.
    """
    listeners = await _bind(ctx.config.host, ctx.config.port)
    ctx.url = _url(ctx.config.host, listeners[0].socket.getsockname()[1])
    async with trio.open_nursery() as nursery:
        await nursery.start(registry_of(ctx).serve)  # Socket.IO sessions run there
        handler = functools.partial(_connection, ctx)
        await nursery.start(
            functools.partial(trio.serve_listeners, handler, listeners, handler_nursery=nursery)
        )
        task_status.started(ctx.url)
