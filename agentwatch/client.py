"""The client side: find a server, call its REST API, follow its events.

`find_server` resolves ``--url`` / ``AGENTWATCH_URL`` / the newest live
discovery file (SPEC 3). `api` makes one blocking REST call (client
commands need no event loop). `follow` is the async subscribe client: it
yields event dicts over the native WebSocket (batched frames) or SSE,
reconnects with backoff and resumes from the last ``seq`` per
subscription, so nothing is missed or repeated.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentwatch.errors import ClientError
from agentwatch.paths import live_runs, read_discovery, runs_dir

WS_MAX_MESSAGE_BYTES = 64 * 1024 * 1024  # batched frames can carry 1 MiB lines
RECONNECT_FIRST_S = 0.1  # first reconnect delay, doubling
RECONNECT_MAX_S = 2.0  # ... up to this
RECONNECT_GIVE_UP_S = 15.0  # no successful connection for this long: give up
API_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Server:
    """Where a run serves, and the token to present."""

    url: str
    token: str | None = None
    run_id: str | None = None

    def headers(self) -> dict[str, str]:
        """Authorization header, when there is a token."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


def find_server(url: str | None = None, token: str | None = None, run_id: str | None = None,
                home: Path | None = None) -> Server:
    """``--url``, else ``AGENTWATCH_URL``, else the newest live run (or ``--run ID``)."""
    token = token or os.environ.get("AGENTWATCH_TOKEN") or None
    url = url or os.environ.get("AGENTWATCH_URL") or None
    if url:
        parsed = urllib.parse.urlsplit(url)
        query = urllib.parse.parse_qs(parsed.query)
        if not token and query.get("token"):
            token = query["token"][0]
        base = f"{parsed.scheme or 'http'}://{parsed.netloc}"
        return Server(base, token, run_id)
    if run_id:
        info = read_discovery(runs_dir(home) / run_id / "server.json")
        if info is None:
            raise ClientError(f"run {run_id} is not running (no server.json)")
        return Server(info.url, token or info.token, info.run_id)
    runs = live_runs(home)
    if not runs:
        raise ClientError("no running agentwatch server found "
                          "(start one with 'agentwatch run', or pass --url)")
    info = runs[0]
    return Server(info.url, token or info.token, info.run_id)


def api(server: Server, method: str, path: str, body: Any = None) -> Any:
    """One REST call; returns the decoded JSON, raises ClientError on failure."""
    parsed = urllib.parse.urlsplit(server.url)
    conn = http.client.HTTPConnection(parsed.hostname or "127.0.0.1", parsed.port or 80,
                                      timeout=API_TIMEOUT_S)
    headers = server.headers()
    data = None
    if body is not None:
        data = json.dumps(body).encode()
        headers["Content-Type"] = "application/json"
    try:
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        raw = resp.read()
    except OSError as exc:
        raise ClientError(f"cannot reach {server.url}: {exc.strerror or exc}") from exc
    finally:
        conn.close()
    try:
        payload = json.loads(raw) if raw else None
    except ValueError:
        payload = raw.decode("utf-8", "replace")
    if resp.status >= 400:
        message = payload.get("error", {}).get("message") if isinstance(payload, dict) else None
        if resp.status == 401:
            raise ClientError(f"unauthorized: wrong or missing token for {server.url}")
        raise ClientError(message or f"{method} {path}: HTTP {resp.status}",
                          exit_code=4 if resp.status == 404 else 1)
    return payload


@dataclass
class Subscription:
    """What to follow: processes (``*`` for all), types, stream, where to start."""

    process_ids: tuple[str, ...] = ("*",)
    types: tuple[str, ...] | None = None
    stream: str | None = None
    since: int | None = None
    tail: int | None = None
    cursors: dict[str, int] = field(default_factory=dict)  # per processId: last seq seen

    def message(self, pid: str) -> dict[str, Any]:
        """The /ws subscribe operation for one processId, resuming if possible."""
        msg: dict[str, Any] = {"op": "subscribe", "processId": pid}
        if pid in self.cursors:
            msg["since"] = self.cursors[pid]
        elif self.since is not None:
            msg["since"] = self.since
        elif self.tail is not None:
            msg["tail"] = self.tail
        else:
            msg["since"] = 0
        if self.types:
            msg["types"] = list(self.types)
        return msg

    def accept(self, key: str, event: dict[str, Any]) -> bool:
        """Record an event's seq; False for a duplicate or a filtered stream."""
        seq = event.get("seq")
        if isinstance(seq, int):
            if seq <= self.cursors.get(key, -1):
                return False
            self.cursors[key] = seq
        elif event.get("type") == "gap":
            to_seq = event.get("toSeq")
            if isinstance(to_seq, int):
                self.cursors[key] = max(self.cursors.get(key, 0), to_seq)
        return not (self.stream and event.get("type") == "process-output"
                    and event.get("stream") != self.stream)


class ServerGone(ClientError):
    """The server closed the stream because the run ended."""


async def follow(server: Server, sub: Subscription, *,
                 transport: str = "ws") -> AsyncIterator[dict[str, Any]]:
    """Yield events live, reconnecting and resuming until the run ends."""
    import trio

    delay = RECONNECT_FIRST_S
    last_ok = trio.current_time()
    while True:
        try:
            if transport == "sse":
                from agentwatch.client_sse import sse_events

                stream = sse_events(server, sub)
            else:
                stream = _ws_events(server, sub)
            async for event in stream:
                last_ok = trio.current_time()
                delay = RECONNECT_FIRST_S
                yield event
            return  # clean end: the run is over
        except ClientError as exc:
            if exc.exit_code != 75:  # 75: connection trouble, retry
                raise
            if trio.current_time() - last_ok > RECONNECT_GIVE_UP_S:
                raise ClientError(f"lost connection to {server.url}: {exc}") from exc
            await trio.sleep(delay)
            delay = min(delay * 2, RECONNECT_MAX_S)


async def _ws_events(server: Server, sub: Subscription) -> AsyncIterator[dict[str, Any]]:
    import trio
    import trio_websocket as tws

    parsed = urllib.parse.urlsplit(server.url)
    ws_url = f"ws://{parsed.netloc}/ws?batch=1"
    headers = [(b"authorization", f"Bearer {server.token}".encode())] if server.token else []
    try:
        async with tws.open_websocket_url(ws_url, extra_headers=headers,
                                          max_message_size=WS_MAX_MESSAGE_BYTES,
                                          connect_timeout=5, disconnect_timeout=2,
                                          receive_buffer_size=65536) as ws:
            keys = list(sub.process_ids)
            for pid in keys:
                await ws.send_message(json.dumps(sub.message(pid)))
            while True:
                try:
                    text = await ws.get_message()
                except tws.ConnectionClosed as exc:
                    code = exc.reason.code if exc.reason else None
                    if code == 1000:
                        return
                    raise ClientError(f"connection closed ({code})", exit_code=75) from exc
                for event in _decode_frame(text):
                    kind = event.get("type")
                    if kind == "error":
                        raise ClientError(f"server refused: {event.get('message')}")
                    if kind in ("subscribed", "unsubscribed", "pong", "published"):
                        continue
                    key = _key_for(event, keys)
                    if sub.accept(key, event):
                        yield event
    except tws.HandshakeError as exc:
        status = getattr(exc, "status_code", None)
        if status == 401:
            raise ClientError(f"unauthorized: wrong or missing token for {server.url}") from exc
        raise ClientError(f"websocket handshake failed ({status})", exit_code=75) from exc
    except (OSError, trio.BrokenResourceError, tws.ConnectionTimeout,
            tws.DisconnectionTimeout) as exc:
        raise ClientError(f"cannot reach {server.url}: {exc}", exit_code=75) from exc


def _decode_frame(text: str | bytes) -> list[dict[str, Any]]:
    obj = json.loads(text)
    if isinstance(obj, list):
        return [e for e in obj if isinstance(e, dict)]
    return [obj] if isinstance(obj, dict) else []


def _key_for(event: dict[str, Any], keys: list[str]) -> str:
    if len(keys) == 1:
        return keys[0]
    pid = event.get("processId")
    return pid if isinstance(pid, str) and pid in keys else keys[0]
