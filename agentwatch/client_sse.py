"""SSE transport of the subscribe client: h11 for the response, our SSE parser."""

from __future__ import annotations

import json
import urllib.parse
from collections.abc import AsyncIterator
from typing import Any

import h11
import trio

from agentwatch.client import Server, Subscription
from agentwatch.errors import ClientError
from agentwatch.proto.sse import SSEParser

SSE_KEY = "sse"  # one ordered stream, one cursor
READ_BYTES = 65536


def stream_path(sub: Subscription) -> str:
    """The firehose URL path with filters and the resume point."""
    params: list[tuple[str, str]] = []
    for pid in sub.process_ids:
        if pid != "*":
            params.append(("processId", pid))
    for t in sub.types or ():
        params.append(("type", t))
    if SSE_KEY in sub.cursors:
        params.append(("since", str(sub.cursors[SSE_KEY])))
    elif sub.since is not None:
        params.append(("since", str(sub.since)))
    elif sub.tail is not None:
        params.append(("tail", str(sub.tail)))
    else:
        params.append(("since", "0"))
    return "/api/events/stream?" + urllib.parse.urlencode(params)


async def sse_events(server: Server, sub: Subscription) -> AsyncIterator[dict[str, Any]]:
    """Yield events from one SSE connection; ClientError(75) when it breaks."""
    parsed = urllib.parse.urlsplit(server.url)
    host, port = parsed.hostname or "127.0.0.1", parsed.port or 80
    try:
        stream = await trio.open_tcp_stream(host, port)
    except OSError as exc:
        raise ClientError(f"cannot reach {server.url}: {exc.strerror}", exit_code=75) from exc
    async with stream:
        conn = h11.Connection(h11.CLIENT)
        headers = [("Host", parsed.netloc), ("Accept", "text/event-stream")]
        if server.token:
            headers.append(("Authorization", f"Bearer {server.token}"))
        req = h11.Request(method="GET", target=stream_path(sub), headers=headers)
        try:
            await stream.send_all(conn.send(req) + conn.send(h11.EndOfMessage()))
        except trio.BrokenResourceError as exc:
            raise ClientError("connection lost", exit_code=75) from exc
        parser = SSEParser()
        while True:
            event = conn.next_event()
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive_some(READ_BYTES)
                except trio.BrokenResourceError as exc:
                    raise ClientError("connection lost", exit_code=75) from exc
                if not data:
                    raise ClientError("connection closed", exit_code=75)
                conn.receive_data(data)
                continue
            if isinstance(event, h11.Response):
                if event.status_code == 401:
                    raise ClientError(f"unauthorized: wrong or missing token for {server.url}")
                if event.status_code != 200:
                    raise ClientError(f"SSE stream refused: HTTP {event.status_code}")
            elif isinstance(event, h11.Data):
                for msg in parser.feed(bytes(event.data)):
                    if msg.event in ("connected", "message") and not msg.data.startswith("{"):
                        continue
                    obj = json.loads(msg.data)
                    if not isinstance(obj, dict) or msg.event == "connected":
                        continue
                    if sub.accept(SSE_KEY, obj):
                        yield obj
            elif isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
                return
