"""The client side: find a server, call its REST API, follow its events.

`find_server` resolves where a client command talks to (SPEC 3). `api`
makes one blocking REST call (client commands need no event loop). `follow`
is the async subscribe client for trio programs::

    server = find_server()                      # or Server(url, token)
    async with follow(server, Subscription(("builder",))) as events:
        async for event in events:
            print(event["seq"], event["type"])

It speaks the native WebSocket protocol (batched frames) or SSE, reconnects
with backoff and resumes from the last ``seq`` it delivered, so nothing is
missed or repeated; it ends when the run ends (the server closes the stream
once everything was sent) and raises `ClientError` when the server stays
unreachable for `RECONNECT_GIVE_UP_S`.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from contextlib import aclosing, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentwatch.errors import ClientError
from agentwatch.paths import (
    DISCOVERY_FILE,
    EXIT_NOT_FOUND,
    Discovery,
    live_discovery,
    live_runs,
    resolve_run_id,
    runs_dir,
)

if TYPE_CHECKING:
    import trio

WS_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # batched frames of huge lines stay under this
WS_RECEIVE_BUFFER = 64  # frames trio-websocket may hold before it stops reading
WS_READ_BYTES = 64 * 1024  # one socket read (trio-websocket's default, 4 KiB, is slow)
RECONNECT_FIRST_S = 0.1  # first reconnect delay, doubling ...
RECONNECT_MAX_S = 2.0  # ... up to this
RECONNECT_GIVE_UP_S = 15.0  # failing to reconnect for this long: give up
CONNECT_TIMEOUT_S = 5.0  # one connection attempt
API_TIMEOUT_S = 10.0  # one REST call
EXIT_RETRY = 75  # EX_TEMPFAIL: a ClientError that `follow` retries (never escapes it)
TRANSPORTS = ("ws", "sse")


@dataclass(frozen=True)
class Server:
    """Where a run serves, and the token to present."""

    url: str
    token: str | None = None
    run_id: str | None = None

    def headers(self) -> dict[str, str]:
        """The Authorization header, when there is a token."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def _from_url(url: str, token: str | None, home: Path | None) -> Server:
    parsed = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    if parsed.scheme not in ("http", "https") or not parsed.hostname:
        raise ClientError(f"invalid server URL {url!r}: use http://HOST:PORT")
    if not token:
        token = urllib.parse.parse_qs(parsed.query).get("token", [None])[0]
    base = f"{parsed.scheme}://{parsed.netloc}"
    run_id = None
    for info in live_runs(home):  # a local run: its id, and its token if none was given
        if info.url == base:
            token, run_id = token or info.token, info.run_id
            break
    return Server(base, token, run_id)


def _from_discovery(info: Discovery, token: str | None) -> Server:
    return Server(info.url, token or info.token, info.run_id)


def _run_server(run_id: str, token: str | None, home: Path | None, why: str = "") -> Server:
    run_id = resolve_run_id(run_id, home)
    info = live_discovery(runs_dir(home) / run_id / DISCOVERY_FILE)
    if info is None:
        raise ClientError(
            f"run {run_id}{why} is not serving (it has ended, or runs with --no-server); "
            f"its journal: 'agentwatch logs PROCESS --run {run_id}'"
        )
    return _from_discovery(info, token)


def find_server(
    url: str | None = None,
    token: str | None = None,
    run_id: str | None = None,
    home: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Server:
    """Where to connect, from flags first, then the environment, then discovery.

    ``--url``; else ``--run ID`` (an id or a unique prefix); else
    ``AGENTWATCH_URL``; else ``AGENTWATCH_RUN_ID`` (set inside an agent: its
    own run, never another one); else the newest live run. The token is
    ``--token``, else ``AGENTWATCH_TOKEN`` with ``AGENTWATCH_URL``, else the
    URL's ``?token=``, else the discovery file's.
    """
    env = os.environ if environ is None else environ
    if url:
        return _from_url(url, token, home)
    if run_id:
        return _run_server(run_id, token, home)
    if env.get("AGENTWATCH_URL"):
        return _from_url(env["AGENTWATCH_URL"], token or env.get("AGENTWATCH_TOKEN"), home)
    if env.get("AGENTWATCH_RUN_ID"):
        return _run_server(env["AGENTWATCH_RUN_ID"], token, home, " (AGENTWATCH_RUN_ID)")
    runs = live_runs(home)
    if not runs:
        raise ClientError(
            "no running agentwatch server found in "
            f"{runs_dir(home)} (start one with 'agentwatch run' or 'agentwatch up', "
            "or pass --url)"
        )
    return _from_discovery(runs[0], token)


def api(
    server: Server, method: str, path: str, body: Any = None, *, timeout: float = API_TIMEOUT_S
) -> Any:
    """One REST call; returns the decoded JSON, raises ClientError on failure.

    Exit statuses of the error: 4 for 404 (no such process), else 1.
    """
    parsed = urllib.parse.urlsplit(server.url)
    conn_type = (
        http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
    )
    conn = conn_type(parsed.hostname or "127.0.0.1", parsed.port, timeout=timeout)
    headers = server.headers()
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except (OSError, http.client.HTTPException) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ClientError(f"cannot reach {server.url}: {reason}") from exc
    finally:
        conn.close()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode("utf-8", "replace")
    if resp.status >= 400:
        error = payload.get("error") if isinstance(payload, dict) else None
        message = error.get("message") if isinstance(error, dict) else None
        if resp.status == 401:
            raise ClientError(f"unauthorized: wrong or missing token for {server.url}")
        raise ClientError(
            message or f"{method} {path}: HTTP {resp.status}",
            exit_code=EXIT_NOT_FOUND if resp.status == 404 else 1,
        )
    return payload


@dataclass
class Subscription:
    """What to follow: processes (``*`` for all), types, stream, where to start.

    With neither ``since`` nor ``tail`` it starts at the run's first event.
    ``cursors`` holds the last seq delivered per subscribed key; a reconnect
    resumes from there.
    """

    process_ids: tuple[str, ...] = ("*",)
    types: tuple[str, ...] | None = None
    stream: str | None = None
    since: int | None = None
    tail: int | None = None
    cursors: dict[str, int] = field(default_factory=dict)

    def message(self, pid: str) -> dict[str, Any]:
        """The /ws subscribe operation for one processId, resuming if possible."""
        msg: dict[str, Any] = {"op": "subscribe", "processId": pid}
        if pid in self.cursors:
            msg["since"] = self.cursors[pid]
        elif self.tail is not None:
            msg["tail"] = self.tail
            if self.since is not None:
                msg["since"] = self.since
        else:
            msg["since"] = self.since or 0
        if self.types:
            msg["types"] = list(self.types)
        return msg

    def accept(self, key: str, event: dict[str, Any]) -> bool:
        """Record an event's seq; False for a duplicate or a filtered-out stream."""
        seq = event.get("seq")
        if isinstance(seq, int):
            if seq <= self.cursors.get(key, -1):
                return False
            self.cursors[key] = seq
        elif event.get("type") == "gap":
            to_seq = event.get("toSeq")
            if isinstance(to_seq, int):
                if to_seq <= self.cursors.get(key, -1):
                    return False
                self.cursors[key] = to_seq
        return not (
            self.stream
            and event.get("type") == "process-output"
            and event.get("stream") != self.stream
        )


@dataclass
class _Attempt:
    """One connection attempt; ``connected`` once the server accepted it."""

    connected: bool = False


@asynccontextmanager
async def follow(
    server: Server,
    sub: Subscription | None = None,
    *,
    transport: str = "ws",
    give_up_after: float = RECONNECT_GIVE_UP_S,
) -> AsyncIterator[trio.abc.ReceiveChannel[dict[str, Any]]]:
    """A channel of events, live, reconnecting and resuming until the run ends.

    ``async with follow(server) as events: async for event in events: ...``.
    Events arrive in ``seq`` order per subscribed process (``*``: all of
    them), each once; ``{"type":"gap",...}`` says when some are gone for
    good. The channel ends when the run is over; leaving the block closes
    the connection.
    """
    import trio

    _check_transport(transport)
    gen = trio.as_safe_channel(_events)
    async with gen(server, sub or Subscription(), transport, give_up_after) as channel:
        yield channel


@asynccontextmanager
async def follow_batches(
    server: Server,
    sub: Subscription | None = None,
    *,
    transport: str = "ws",
    give_up_after: float = RECONNECT_GIVE_UP_S,
) -> AsyncIterator[trio.abc.ReceiveChannel[list[dict[str, Any]]]]:
    """Like `follow`, but a list of events at a time (as they arrived): the fast path."""
    import trio

    _check_transport(transport)
    gen = trio.as_safe_channel(_batches)
    async with gen(server, sub or Subscription(), transport, give_up_after) as channel:
        yield channel


def _check_transport(transport: str) -> None:
    if transport not in TRANSPORTS:
        raise ClientError(f"invalid transport {transport!r}: use ws or sse")


async def _events(
    server: Server, sub: Subscription, transport: str, give_up_after: float
) -> AsyncGenerator[dict[str, Any], None]:
    async with aclosing(_batches(server, sub, transport, give_up_after)) as batches:
        async for batch in batches:
            for event in batch:
                yield event


async def _batches(
    server: Server, sub: Subscription, transport: str, give_up_after: float
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """Connect, yield what arrives, reconnect with backoff and resume (see `follow`)."""
    import trio

    delay = RECONNECT_FIRST_S
    failing_since: float | None = None
    while True:
        attempt = _Attempt()
        try:
            if transport == "sse":
                from agentwatch.client_sse import sse_batches

                stream = sse_batches(server, sub, attempt)
            else:
                stream = _ws_batches(server, sub, attempt)
            async with aclosing(stream):
                async for batch in stream:
                    yield batch
            return  # a clean end: the run is over and everything was sent
        except ClientError as exc:
            if exc.exit_code != EXIT_RETRY:
                raise
            now = trio.current_time()
            if attempt.connected or failing_since is None:
                failing_since, delay = now, RECONNECT_FIRST_S
            if now - failing_since >= give_up_after:
                raise ClientError(f"lost the connection to {server.url}: {exc}") from None
            await trio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)


async def _ws_batches(
    server: Server, sub: Subscription, attempt: _Attempt
) -> AsyncGenerator[list[dict[str, Any]], None]:
    """Events from one /ws connection, a frame at a time; ClientError(EXIT_RETRY) when
    it breaks."""
    import trio
    import trio_websocket as tws

    parsed = urllib.parse.urlsplit(server.url)
    scheme = "wss" if parsed.scheme == "https" else "ws"
    headers = [(b"authorization", f"Bearer {server.token}".encode())] if server.token else []
    keys = list(dict.fromkeys(sub.process_ids))
    if not keys or "*" in keys:  # "*" has every process: more keys would only repeat events
        keys = ["*"]
    try:
        async with tws.open_websocket_url(
            f"{scheme}://{parsed.netloc}/ws?batch=1",
            extra_headers=headers,
            max_message_size=WS_MAX_MESSAGE_BYTES,
            connect_timeout=CONNECT_TIMEOUT_S,
            disconnect_timeout=2,
            message_queue_size=WS_RECEIVE_BUFFER,
            receive_buffer_size=WS_READ_BYTES,
        ) as ws:
            attempt.connected = True
            for pid in keys:
                await ws.send_message(json.dumps(sub.message(pid)))
            while True:
                try:
                    text = await ws.get_message()
                except tws.ConnectionClosed as exc:
                    code = exc.reason.code if exc.reason else None
                    if code == 1000:
                        return
                    raise ClientError(f"connection closed ({code})", exit_code=EXIT_RETRY) from exc
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
                    yield batch
    except tws.ConnectionRejected as exc:
        if exc.status_code == 401:
            raise ClientError(f"unauthorized: wrong or missing token for {server.url}") from exc
        raise ClientError(
            f"the server refused the connection (HTTP {exc.status_code})", exit_code=EXIT_RETRY
        ) from exc
    except (tws.HandshakeError, tws.ConnectionTimeout, tws.DisconnectionTimeout) as exc:
        raise ClientError(f"websocket: {type(exc).__name__}", exit_code=EXIT_RETRY) from exc
    except (OSError, trio.BrokenResourceError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
        raise ClientError(f"cannot reach {server.url}: {reason}", exit_code=EXIT_RETRY) from exc


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
