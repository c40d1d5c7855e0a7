"""Server-Sent Events endpoints (SPEC 4.2).

``GET /api/processes/{id}/logs/stream`` starts with ``event: connected``
and names ``process-output`` events ``log``; ``GET /api/events/stream``
names every event by its type. Every event carries ``id: <seq>``, so a
browser's EventSource resumes by itself (``Last-Event-ID``); ``?since=``
and ``?tail=`` choose history, ``?type=`` (repeatable) and ``?stream=``
filter. Events leave as encoded, several per write, framed as
`agentwatch.proto.sse.encode_event` would (a JSON line has no line break).
"""

from __future__ import annotations

import msgspec
import trio

from agentwatch.errors import ProtocolError
from agentwatch.events import PROCESS_OUTPUT, EventBatch, gap_message
from agentwatch.proto.sse import encode_comment, encode_event, encode_retry
from agentwatch.server.context import ServerContext
from agentwatch.server.follow import follow, make_filter, open_subscriber
from agentwatch.server.http import HTTPConnection, Request
from agentwatch.server.limits import RECEIVE_BYTES
from agentwatch.server.netstream import ConnStream

RETRY_MS = 1000  # SPEC 4.2: the reconnection delay a client is told
KEEPALIVE = encode_comment("keepalive")
SSE_HEADERS = [("cache-control", "no-cache"), ("x-accel-buffering", "no")]
STREAMS = ("stdout", "stderr")


class SSESink:
    """Frames events as SSE, all events of one read in one write."""

    def __init__(self, conn: HTTPConnection, log_name: bool) -> None:
        self.conn = conn
        self.log_name = log_name  # per-process stream: process-output is "log"

    async def send_events(self, batches: list[EventBatch]) -> None:
        """``id: N`` / ``event: TYPE`` / ``data: {...}`` for each event."""
        buf = bytearray()
        for b in batches:
            name = b"log" if self.log_name and b.type == PROCESS_OUTPUT else b.type.encode()
            seq = b.first_seq
            for line in b.lines():
                buf += b"id: %d\nevent: %s\ndata: %s\n\n" % (seq, name, line)
                seq += 1
        await self.conn.send_data(bytes(buf))

    async def send_gap(self, from_seq: int, to_seq: int) -> None:
        """``event: gap`` with ``{"type":"gap","fromSeq":a,"toSeq":b}``."""
        await self.conn.send_data(
            encode_event(gap_message(from_seq, to_seq), event="gap", id=to_seq)
        )

    async def keepalive(self) -> None:
        """A comment line, so proxies and clients see the stream is alive."""
        await self.conn.send_data(KEEPALIVE)


def int_param(request: Request, name: str, value: str | None = None) -> int | None:
    """A non-negative integer query parameter (or ``value``); 400 if malformed."""
    text = request.param(name) if value is None else value
    if text is None or text == "":
        return None
    if not text.isascii() or not text.isdigit():
        raise ProtocolError(
            f"{name} must be a non-negative integer, not {text[:40]!r}", code="invalid-field"
        )
    return int(text)


def stream_param(request: Request) -> str | None:
    """``?stream=stdout|stderr``; 400 otherwise."""
    stream = request.param("stream")
    if stream is not None and stream not in STREAMS:
        raise ProtocolError("stream must be stdout or stderr", code="invalid-field")
    return stream


def resume_point(request: Request) -> int | None:
    """``Last-Event-ID`` (a reconnect) wins over ``?since=``."""
    last_id = request.header("last-event-id")
    if last_id:
        return int_param(request, "Last-Event-ID", last_id.strip())
    return int_param(request, "since")


async def _serve(
    ctx: ServerContext, conn: HTTPConnection, request: Request, process_id: str | None
) -> None:
    types = request.query.get("type")
    pids = [process_id] if process_id is not None else request.query.get("processId")
    flt = make_filter(pids, types, stream_param(request))
    since, tail = resume_point(request), int_param(request, "tail")
    conn.keep_alive = False  # the stream ends with the connection
    async with open_subscriber(ctx, "sse", request.remote, conn.stream) as subscriber:
        sub = await subscriber.subscribe(
            process_id or ",".join(pids or ["*"]), flt, since=since, tail=tail
        )
        await conn.start_stream(200, content_type="text/event-stream", headers=SSE_HEADERS)
        head = encode_retry(RETRY_MS)
        if process_id is not None:
            hello = msgspec.json.encode(
                {"processId": process_id, "streamId": subscriber.client.client_id}
            )
            head += encode_event(hello, event="connected")
        await conn.send_data(head)
        sink = SSESink(conn, log_name=process_id is not None)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_cancel_when_peer_closes, conn.stream, nursery.cancel_scope)
            await follow(
                ctx.hub,
                sub,
                sink,
                progress=subscriber.progress,
                idle_interval=ctx.limits.sse_keepalive,
                on_idle=sink.keepalive,
            )
            await conn.end_stream()
            nursery.cancel_scope.cancel()


async def _cancel_when_peer_closes(stream: ConnStream, scope: trio.CancelScope) -> None:
    """Notice a client that went away at once, not at the next keep-alive."""
    try:
        while await stream.receive_some(RECEIVE_BYTES):
            pass  # a streaming client has nothing more to say
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    scope.cancel()


async def process_stream(
    ctx: ServerContext, conn: HTTPConnection, request: Request, process_id: str
) -> None:
    """``GET /api/processes/{id}/logs/stream``; 404 for an unknown process."""
    ctx.supervisor.get(process_id)
    await _serve(ctx, conn, request, process_id)


async def events_stream(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    """``GET /api/events/stream?processId=..&type=..&since=``."""
    await _serve(ctx, conn, request, None)
