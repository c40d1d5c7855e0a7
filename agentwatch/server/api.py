"""The REST routes of SPEC 4 (JSON in, JSON out) and the dashboard page.

Handlers are ``async (ctx, conn, request, *path_ids) -> None``; they answer
once through ``conn`` or raise `ProtocolError`, or let the supervisor's
`ControlError` through: the router answers it as `control_error` says. The
route table is `ROUTES`.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Awaitable, Callable
from importlib import resources
from typing import Any

import msgspec
import trio

from agentwatch.errors import (
    ControlConflict,
    ControlError,
    InvalidSignal,
    ProtocolError,
    UnknownProcess,
)
from agentwatch.events import EventBatch, json_array
from agentwatch.hub import READ_MAX_EVENTS, Filter
from agentwatch.publishable import validate_publish
from agentwatch.server import metrics, sse
from agentwatch.server.auth import auth_cookie, token_matches
from agentwatch.server.context import ServerContext
from agentwatch.server.follow import make_filter, start_cursor
from agentwatch.server.http import HTTPConnection, Request
from agentwatch.server.limits import LOGS_DEFAULT_LIMIT, LOGS_MAX_BYTES, LOGS_MAX_LIMIT
from agentwatch.server.native_ws import handle_ws
from agentwatch.supervisor import parse_signal

RouteHandler = Callable[..., Awaitable[None]]
HTML_HEADERS = [
    ("cache-control", "no-store"),
    ("x-content-type-options", "nosniff"),
    ("referrer-policy", "no-referrer"),
]

# The HTTP answer to each refused control request (SPEC 4), most specific first.
CONTROL_ANSWERS: list[tuple[type[ControlError], int, str]] = [
    (UnknownProcess, 404, "not-found"),
    (InvalidSignal, 400, "invalid-signal"),
    (ControlConflict, 409, "conflict"),
]


def control_error(exc: ControlError) -> ProtocolError:
    """The error response to a control request the supervisor refused (same message)."""
    for kind, status, code in CONTROL_ANSWERS:
        if isinstance(exc, kind):
            return ProtocolError(str(exc), status=status, code=code)
    return ProtocolError(str(exc), status=409, code="conflict")


def _json_body(request: Request) -> dict[str, Any]:
    """The request body as a JSON object; 400 otherwise."""
    try:
        obj = msgspec.json.decode(request.body or b"{}")
    except msgspec.DecodeError as exc:
        raise ProtocolError(f"body is not valid JSON: {exc}", code="invalid-json") from None
    if not isinstance(obj, dict):
        raise ProtocolError("body must be a JSON object", code="invalid-json")
    return obj


async def healthz(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    """``{"status":"ok","runId":..,"version":..}`` (503 while shutting down)."""
    status = "shutting-down" if ctx.shutting_down else "ok"
    await conn.send_json(
        503 if ctx.shutting_down else 200,
        {"status": status, "runId": ctx.run_id, "version": ctx.version},
    )


async def list_processes(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    """Every process, as SPEC 4 describes it."""
    await conn.send_json(200, [p.as_json() for p in ctx.supervisor.processes.values()])


async def get_process(ctx: ServerContext, conn: HTTPConnection, request: Request, pid: str) -> None:
    """One process; 404 if unknown."""
    await conn.send_json(200, ctx.supervisor.get(pid).as_json())


def _limit(request: Request) -> int:
    limit = sse.int_param(request, "limit")
    return LOGS_DEFAULT_LIMIT if limit is None else min(limit, LOGS_MAX_LIMIT)


async def logs(ctx: ServerContext, conn: HTTPConnection, request: Request, pid: str) -> None:
    """History: ``{"events":[..],"lastSeq":N,"more":bool}`` (plus ``gaps`` if any).

    Without ``since`` or ``tail`` it starts at the beginning. ``lastSeq`` is
    the position read up to: ask again with ``?since=lastSeq`` while
    ``more`` is true. Events are spliced in as encoded.
    """
    ctx.supervisor.get(pid)
    flt = make_filter([pid], request.query.get("type"), sse.stream_param(request))
    await _send_history(ctx, conn, request, flt)


async def events_history(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    """``GET /api/events?since=&tail=&limit=&processId=&type=&stream=``: every event.

    The same page as a process's ``/logs`` (an extension of SPEC 4, used by
    ``agentwatch subscribe --no-follow``); ``processId`` and ``type`` repeat.
    """
    flt = make_filter(
        request.query.get("processId"), request.query.get("type"), sse.stream_param(request)
    )
    await _send_history(ctx, conn, request, flt)


async def _send_history(
    ctx: ServerContext, conn: HTTPConnection, request: Request, flt: Filter
) -> None:
    hub = ctx.hub
    since, tail = sse.int_param(request, "since"), sse.int_param(request, "tail")
    cursor = await start_cursor(hub, flt, since, tail) if tail is not None else since or 0
    limit = _limit(request)
    batches: list[EventBatch] = []
    gaps: list[dict[str, int]] = []
    count = size = 0
    while count < limit and size < LOGS_MAX_BYTES:
        read = hub.read(cursor, flt, min(limit - count, READ_MAX_EVENTS))
        if read.gap is not None:
            gaps.append({"fromSeq": read.gap[0], "toSeq": read.gap[1]})
        batches += read.batches
        count += read.count
        size += sum(b.nbytes for b in read.batches)
        if read.cursor == cursor:
            break
        cursor = read.cursor
        await trio.lowlevel.checkpoint()  # a long stretch of journal: let others run between reads
    more = b"true" if cursor < hub.last_seq else b"false"
    body = b'{"events":' + json_array(batches) + b',"lastSeq":%d,"more":%s' % (cursor, more)
    if gaps:
        body += b',"gaps":' + msgspec.json.encode(gaps)
    await conn.send_response(200, body + b"}", headers=[("cache-control", "no-store")])


async def send_signal(ctx: ServerContext, conn: HTTPConnection, request: Request, pid: str) -> None:
    """``{"signal":"TERM"}`` -> 202."""
    name = _json_body(request).get("signal", request.param("signal"))
    if not isinstance(name, (str, int)) or isinstance(name, bool):
        raise ProtocolError(
            'body must be {"signal": "TERM"} (a name or number)', code="invalid-signal"
        )
    ctx.supervisor.send_signal(pid, parse_signal(name))
    await conn.send_json(202, {"ok": True})


async def stop(ctx: ServerContext, conn: HTTPConnection, request: Request, pid: str) -> None:
    """Stop a process -> 202 (409 if it is not running)."""
    ctx.supervisor.stop(pid)
    await conn.send_json(202, {"ok": True})


async def restart(ctx: ServerContext, conn: HTTPConnection, request: Request, pid: str) -> None:
    """Restart a process -> 202 (409 while it is stopping)."""
    ctx.supervisor.restart(pid)
    await conn.send_json(202, {"ok": True})


async def publish(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    """Publish ``task-*``, ``system-alert`` or ``x-*`` -> 201 ``{"seq":N}``."""
    event = validate_publish(_json_body(request))
    kind, pid = event.pop("type"), event.pop("processId")
    await conn.send_json(201, {"seq": ctx.hub.publish(kind, pid, event)})


async def clients(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    """Connected subscribers."""
    last = ctx.hub.last_seq
    await conn.send_json(200, [c.as_json(last) for c in ctx.hub.clients.values()])


async def get_metrics(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    """Prometheus text format."""
    body = metrics.render(ctx.hub, ctx.supervisor.processes.values())
    await conn.send_response(200, body, content_type=metrics.CONTENT_TYPE)


async def websocket(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    """``/ws``: the native WebSocket protocol (426 without an upgrade)."""
    if not request.is_websocket:
        raise ProtocolError("/ws needs a WebSocket upgrade", status=426, code="upgrade-required")
    await handle_ws(ctx, conn, request)


@functools.cache
def dashboard_page() -> bytes | None:
    """``dashboard/index.html`` from the package, read once (None if absent)."""
    try:
        return (resources.files("agentwatch.server") / "dashboard" / "index.html").read_bytes()
    except OSError:
        return None


async def dashboard(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    """The dashboard; ``?token=`` (valid) also sets the auth cookie."""
    page = dashboard_page()
    if page is None:
        raise ProtocolError("no dashboard in this build", status=404, code="not-found")
    headers = list(HTML_HEADERS)
    token = request.param("token")
    if token and ctx.config.token is not None and token_matches(ctx.config.token, token):
        headers.append(auth_cookie(token))
    await conn.send_response(200, page, content_type="text/html; charset=utf-8", headers=headers)


_ID = r"/([^/]+)"
_TABLE: list[tuple[str, str, RouteHandler]] = [
    ("GET", r"/", dashboard),
    ("GET", r"/healthz", healthz),
    ("GET", r"/api/processes", list_processes),
    ("GET", r"/api/processes" + _ID, get_process),
    ("GET", r"/api/processes" + _ID + r"/logs", logs),
    ("GET", r"/api/processes" + _ID + r"/logs/stream", sse.process_stream),
    ("POST", r"/api/processes" + _ID + r"/signal", send_signal),
    ("POST", r"/api/processes" + _ID + r"/stop", stop),
    ("POST", r"/api/processes" + _ID + r"/restart", restart),
    ("GET", r"/api/events/stream", sse.events_stream),
    ("GET", r"/api/events", events_history),
    ("POST", r"/api/events", publish),
    ("GET", r"/api/clients", clients),
    ("GET", r"/metrics", get_metrics),
    ("GET", r"/ws", websocket),
]
ROUTES: list[tuple[str, re.Pattern[str], RouteHandler]] = [
    (method, re.compile(pattern), handler) for method, pattern, handler in _TABLE
]
