"""The async subscribe client's machinery: connect, push, reconnect, resume.

`open_follow` (behind `agentwatch.client.follow` and `follow_batches`)
runs one task that connects over the native WebSocket (batched frames) or
SSE, pushes what arrives into a bounded channel, reconnects with backoff
and resumes from the last ``seq`` delivered. No async generator yields
across a nursery: the connection lives in that task, the caller only reads
the channel. When a local run ends while we are disconnected, the rest
comes from its journal.
"""

from __future__ import annotations

import contextlib
import json
import ssl
import urllib.parse
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

import trio
import trio_websocket as tws

from agentwatch.client import EXIT_RETRY, TRANSPORTS, Server, Subscription
from agentwatch.client_local import single_exception
from agentwatch.errors import ClientError
from agentwatch.paths import JOURNAL_FILE, live_discovery

WS_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # batched frames of huge lines stay under this
WS_RECEIVE_BUFFER = 64  # frames trio-websocket may hold before it stops reading
WS_READ_BYTES = 64 * 1024  # one socket read (trio-websocket's default, 4 KiB, is slow)
RECONNECT_FIRST_S = 0.1  # first reconnect delay, doubling ...
RECONNECT_MAX_S = 2.0  # ... up to this
CONNECT_TIMEOUT_S = 5.0  # one connection attempt
FOLLOW_QUEUE_EVENTS = 1024  # events `follow` holds for a slow consumer (then the socket waits)
FOLLOW_QUEUE_BATCHES = 16  # the same for `follow_batches`, in received frames
REPLAY_BATCH_EVENTS = 1000  # events per batch when finishing from the journal


@dataclass
class _Attempt:
    """One connection attempt; ``connected`` once the server accepted it."""

    connected: bool = False


class _ConsumerGone(Exception):
    """The receiving end of a follow channel was closed: stop quietly."""


Put = Callable[[list[dict[str, Any]]], Awaitable[None]]


@asynccontextmanager
async def open_follow(
    server: Server,
    sub: Subscription,
    transport: str,
    give_up_after: float,
    *,
    flatten: bool,
) -> AsyncIterator[Any]:
    """One task connects, reconnects and pushes into a bounded channel; we hand out its end."""
    if transport not in TRANSPORTS:
        raise ClientError(f"invalid transport {transport!r}: use ws or sse")
    queue = FOLLOW_QUEUE_EVENTS if flatten else FOLLOW_QUEUE_BATCHES
    send, recv = trio.open_memory_channel[Any](queue)
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_deliver, server, sub, transport, give_up_after, send, flatten)
            with recv:
                yield recv
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise single_exception(group) from None


async def _deliver(
    server: Server,
    sub: Subscription,
    transport: str,
    give_up_after: float,
    send: trio.MemorySendChannel[Any],
    flatten: bool,
) -> None:
    """Connect, push what arrives, reconnect with backoff and resume (see `follow`)."""

    async def put(batch: list[dict[str, Any]]) -> None:
        try:
            if flatten:
                for event in batch:
                    await send.send(event)
            else:
                await send.send(batch)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise _ConsumerGone from None

    delay = RECONNECT_FIRST_S
    failing_since: float | None = None
    with send:
        while True:
            attempt = _Attempt()
            try:
                if transport == "sse":
                    from agentwatch.client_sse import sse_session

                    await sse_session(server, sub, attempt, put)
                else:
                    await _ws_session(server, sub, attempt, put)
                return  # a clean end: the run is over and everything was sent
            except _ConsumerGone:
                return
            except ClientError as exc:
                if exc.exit_code != EXIT_RETRY:
                    raise
                if _run_over(server):
                    with contextlib.suppress(_ConsumerGone):
                        await _replay(server, sub, transport, put, exc)
                    return
                now = trio.current_time()
                if attempt.connected or failing_since is None:
                    failing_since, delay = now, RECONNECT_FIRST_S
                if now - failing_since >= give_up_after:
                    raise ClientError(f"lost the connection to {server.url}: {exc}") from None
                await trio.sleep(delay)
                delay = min(delay * 2, RECONNECT_MAX_S)


async def open_stream(server: Server) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
    """A TCP (or TLS, for https) connection to the server; ClientError(EXIT_RETRY) if none."""
    parsed = urllib.parse.urlsplit(server.url)
    host = parsed.hostname or "127.0.0.1"
    tls = parsed.scheme == "https"
    try:
        with trio.fail_after(CONNECT_TIMEOUT_S):
            tcp = await trio.open_tcp_stream(host, parsed.port or (443 if tls else 80))
            if not tls:
                return tcp
            stream = trio.SSLStream(tcp, ssl.create_default_context(), server_hostname=host)
            await stream.do_handshake()
            return stream
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ClientError(f"cannot reach {server.url}: {reason}", exit_code=EXIT_RETRY) from exc


async def _ws_session(server: Server, sub: Subscription, attempt: _Attempt, put: Put) -> None:
    """Follow over one /ws connection until the server closes it (1000: the run is over)."""
    headers = [(b"authorization", f"Bearer {server.token}".encode())] if server.token else []
    keys = list(dict.fromkeys(sub.process_ids))
    if not keys or "*" in keys:  # "*" has every process: more keys would only repeat events
        keys = ["*"]
    stream = await open_stream(server)
    # We own the TCP stream and close it ourselves: trio-websocket leaves a client's
    # connection open when the server is the one that starts the close handshake.
    async with stream:
        try:
            async with trio.open_nursery() as nursery:
                with trio.fail_after(CONNECT_TIMEOUT_S):
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
                    await _ws_loop(ws, sub, keys, put)
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
            raise ClientError(f"connection closed ({code})", exit_code=EXIT_RETRY) from None
        batch = []
        for event in _decode_frame(text):
            kind = event.get("type")
            if kind == "error":
                raise ClientError(f"the server refused: {event.get('message')}")
            if kind in ("subscribed", "unsubscribed", "pong", "published"):
                continue
            if sub.accept(_key_for(event, keys), event):
                batch.append(event)
        if batch:
            await put(batch)


def _run_over(server: Server) -> bool:
    """Whether a local run has ended (its discovery file, or its pid, is gone)."""
    path = server.discovery
    return path is not None and live_discovery(path) is None


async def _replay(
    server: Server, sub: Subscription, transport: str, put: Put, why: ClientError
) -> None:
    """The run ended while we were disconnected: deliver the rest from its journal."""
    from agentwatch.journal import read_journal

    assert server.discovery is not None
    journal = server.discovery.with_name(JOURNAL_FILE)
    if not journal.is_file():
        raise ClientError(f"the run ended while disconnected ({why}), and {journal} is missing")
    keys = ["sse"] if transport == "sse" else list(dict.fromkeys(sub.process_ids))
    if transport != "sse" and (not keys or "*" in keys):
        keys = ["*"]
    batch: list[dict[str, Any]] = []
    for line in read_journal(journal):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or not sub.matches(event):
            continue
        if sub.accept(_key_for(event, keys), event):
            batch.append(event)
        if len(batch) >= REPLAY_BATCH_EVENTS:
            await put(batch)
            batch = []
            await trio.lowlevel.checkpoint()
    if batch:
        await put(batch)


def _ws_error(server: Server, exc: BaseException) -> BaseException:
    """What a failed /ws connection means for `follow`: retry, or stop with a reason."""
    if isinstance(exc, ClientError | _ConsumerGone):
        return exc
    if isinstance(exc, tws.ConnectionRejected):
        if exc.status_code == 401:
            return ClientError(f"unauthorized: wrong or missing token for {server.url}")
        if exc.status_code not in (502, 503, 504):
            return ClientError(f"the server refused the WebSocket: HTTP {exc.status_code}")
        return ClientError(f"the server answered HTTP {exc.status_code}", exit_code=EXIT_RETRY)
    retry = (
        tws.HandshakeError,
        tws.ConnectionClosed,
        trio.TooSlowError,
        trio.BrokenResourceError,
        OSError,
    )
    if isinstance(exc, retry):
        reason = getattr(exc, "strerror", None) or type(exc).__name__
        return ClientError(f"websocket: {reason}", exit_code=EXIT_RETRY)
    return exc


def _decode_frame(text: str | bytes) -> list[dict[str, Any]]:
    try:
        obj = json.loads(text)
    except ValueError as exc:
        raise ClientError(f"the server sent a frame that is not JSON: {exc}") from None
    if isinstance(obj, list):
        return [e for e in obj if isinstance(e, dict)]
    return [obj] if isinstance(obj, dict) else []


def _key_for(event: dict[str, Any], keys: list[str]) -> str:
    """The subscription an event belongs to: its process, else ``*``."""
    if len(keys) == 1:
        return keys[0]
    pid = event.get("processId")
    if isinstance(pid, str) and pid in keys:
        return pid
    return "*" if "*" in keys else keys[0]
