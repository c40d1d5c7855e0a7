"""The native WebSocket transport of the subscribe client (``/ws?batch=1``).

One subscribe operation per followed process (or one for ``*``), each with
its own cursor in the `Subscription`, so a reconnect resumes every one of
them where it stopped.
"""

from __future__ import annotations

import json
import urllib.parse
from typing import Any

import trio
import trio_websocket as tws

from agentwatch.client import connect
from agentwatch.client.channel import ConsumerGone, Put, single_exception
from agentwatch.client.connect import Attempt, open_stream
from agentwatch.client.discovery import Server
from agentwatch.client.subscription import Subscription, key_for
from agentwatch.errors import ClientError, ConnectionLost

WS_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # batched frames of huge lines stay under this
WS_RECEIVE_BUFFER = 64  # frames trio-websocket may hold before it stops reading
WS_READ_BYTES = 64 * 1024  # one socket read (trio-websocket's default, 4 KiB, is slow)
CONTROL_REPLIES = ("subscribed", "unsubscribed", "pong", "published")  # not events


async def ws_session(server: Server, sub: Subscription, attempt: Attempt, put: Put) -> None:
    """Follow over one /ws connection until the server closes it (1000: the run is over).

    Raises ConnectionLost when the connection breaks.
    """
    headers = [(b"authorization", f"Bearer {server.token}".encode())] if server.token else []
    stream = await open_stream(server)
    # We own the TCP stream and close it ourselves: trio-websocket leaves a client's
    # connection open when the server is the one that starts the close handshake.
    async with stream:
        try:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(connect.CONNECT_TIMEOUT_S):
                    ws = await tws.wrap_client_stream(
                        nursery,
                        stream,
                        urllib.parse.urlsplit(server.url).netloc,
                        "/ws?batch=1",
                        extra_headers=headers,
                        message_queue_size=WS_RECEIVE_BUFFER,
                        max_message_size=WS_MAX_MESSAGE_BYTES,
                        receive_buffer_size=WS_READ_BYTES,
                    )
                attempt.connected = True
                try:
                    await _ws_loop(ws, sub, sub.keys(), put)
                finally:
                    nursery.cancel_scope.cancel()
        except BaseExceptionGroup as group:
            raise _ws_error(server, single_exception(group)) from None
        except (tws.HandshakeError, trio.TooSlowError, OSError, trio.BrokenResourceError) as exc:
            raise _ws_error(server, exc) from None


async def _ws_loop(ws: Any, sub: Subscription, keys: list[str], put: Put) -> None:
    for pid in keys:
        await ws.send_message(json.dumps(sub.message(pid)))
    while True:
        try:
            text = await ws.get_message()
        except tws.ConnectionClosed as exc:
            code = exc.reason.code if exc.reason else None
            if code == 1000:
                return
            raise ConnectionLost(f"connection closed ({code})") from None
        batch = []
        for event in _decode_frame(text):
            kind = event.get("type")
            if kind == "error":
                raise ClientError(f"the server refused: {event.get('message')}")
            if kind in CONTROL_REPLIES:
                continue
            if sub.accept(key_for(event, keys), event):
                batch.append(event)
        if batch:
            await put(batch)


def _ws_error(server: Server, exc: BaseException) -> BaseException:
    """What a failed /ws connection means for `follow`: retry, or stop with a reason."""
    if isinstance(exc, ClientError | ConsumerGone):
        return exc
    if isinstance(exc, tws.ConnectionRejected):
        if exc.status_code == 401:
            return ClientError(f"unauthorized: wrong or missing token for {server.url}")
        if exc.status_code not in (502, 503, 504):
            return ClientError(f"the server refused the WebSocket: HTTP {exc.status_code}")
        return ConnectionLost(f"the server answered HTTP {exc.status_code}")
    retry = (
        tws.HandshakeError,
        tws.ConnectionClosed,
        trio.TooSlowError,
        trio.BrokenResourceError,
        OSError,
    )
    if isinstance(exc, retry):
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        return ConnectionLost(f"websocket: {reason}")
    return exc


def _decode_frame(text: str | bytes) -> list[dict[str, Any]]:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ClientError(f"the server sent a frame that is not JSON: {exc}") from None
    if isinstance(obj, list):
        return [e for e in obj if isinstance(e, dict)]
    return [obj] if isinstance(obj, dict) else []
