"""SSE transport of the subscribe client: h11 for the response, our SSE parser.

One firehose stream (``GET /api/events/stream``) carries every subscribed
process, so one cursor (`SSE_KEY`) is enough to resume after a reconnect.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import h11
import trio

from agentwatch.client.channel import Put
from agentwatch.client.connect import Attempt, open_stream
from agentwatch.client.discovery import Server
from agentwatch.client.subscription import Subscription
from agentwatch.errors import ClientError, ConnectionLost, ProtocolError
from agentwatch.proto.sse import SSEParser

SSE_KEY = "sse"  # one ordered stream, one cursor
READ_BYTES = 64 * 1024  # one socket read
MAX_HEADER_BYTES = 64 * 1024  # a response head larger than this is not our server


def stream_path(sub: Subscription) -> str:
    """The firehose URL path with filters and the resume point."""
    params = sub.filter_params() + [(k, str(v)) for k, v in sub.start(SSE_KEY)]
    return "/api/events/stream?" + urllib.parse.urlencode(params)


async def sse_session(server: Server, sub: Subscription, attempt: Attempt, put: Put) -> None:
    """Follow over one SSE stream until the server ends it (the run is over).

    Raises ConnectionLost when the connection breaks.
    """
    parsed = urllib.parse.urlsplit(server.url)
    stream = await open_stream(server)
    async with stream:
        conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=MAX_HEADER_BYTES)
        headers = [("Host", parsed.netloc), ("Accept", "text/event-stream")]
        if server.token:
            headers.append(("Authorization", f"Bearer {server.token}"))
        req = h11.Request(method="GET", target=stream_path(sub), headers=headers)
        try:
            await stream.send_all(conn.send(req) + (conn.send(h11.EndOfMessage()) or b""))
        except (trio.BrokenResourceError, OSError) as exc:
            raise ConnectionLost("connection lost") from exc
        parser = SSEParser()
        while True:
            try:
                event = conn.next_event()
            except h11.RemoteProtocolError as exc:
                raise ConnectionLost(f"bad HTTP from the server: {exc}") from exc
            if event is h11.NEED_DATA:
                try:
                    data = await stream.receive_some(READ_BYTES)
                except (trio.BrokenResourceError, OSError) as exc:
                    raise ConnectionLost("connection lost") from exc
                conn.receive_data(bytes(data))
            elif isinstance(event, h11.Response):
                _check_status(server, event.status_code)
                attempt.connected = True
            elif isinstance(event, h11.Data):
                batch = _events(parser, bytes(event.data), sub)
                if batch:
                    await put(batch)
            elif isinstance(event, h11.EndOfMessage):
                return  # the server ended the stream: the run is over
            elif isinstance(event, h11.ConnectionClosed):
                raise ConnectionLost("connection closed")


def _check_status(server: Server, status: int) -> None:
    if status == 401:
        raise ClientError(f"unauthorized: wrong or missing token for {server.url}")
    if status in (502, 503, 504):
        raise ConnectionLost(f"the server answered HTTP {status}")
    if status != 200:
        raise ClientError(f"the SSE stream was refused: HTTP {status}")


def _events(parser: SSEParser, data: bytes, sub: Subscription) -> list[dict[str, Any]]:
    """The new events in ``data``, recorded in the subscription's cursor."""
    try:
        messages = parser.feed(data)
    except ProtocolError as exc:
        raise ConnectionLost(f"bad SSE from the server: {exc}") from exc
    batch = []
    for msg in messages:
        if msg.event == "connected" or not msg.data.startswith("{"):
            continue
        try:
            obj = json.loads(msg.data)
        except ValueError as exc:
            raise ClientError(f"the server sent an event that is not JSON: {exc}") from None
        if isinstance(obj, dict) and sub.accept(SSE_KEY, obj):
            batch.append(obj)
    return batch
