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

A program that started the run itself (`agentwatch.run_session`) follows it
with `follow_session` instead: the same events from the hub, no network, so
it cannot miss the start or the end of a short run.
"""

from __future__ import annotations

import http.client
import json
import os
import urllib.parse
from collections.abc import Mapping
from contextlib import AbstractAsyncContextManager
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

    from agentwatch.runner import Session

RECONNECT_GIVE_UP_S = 15.0  # failing to reconnect for this long: give up
API_TIMEOUT_S = 10.0  # one REST call
EXIT_RETRY = 75  # EX_TEMPFAIL: a ClientError that `follow` retries (never escapes it)
TRANSPORTS = ("ws", "sse")


@dataclass(frozen=True)
class Server:
    """Where a run serves, and the token to present.

    ``discovery`` is the run's ``server.json`` when the run is local: once it
    is gone (or its pid is), the run is over and `follow` finishes from the
    journal beside it instead of waiting for a server that will not return.
    """

    url: str
    token: str | None = None
    run_id: str | None = None
    discovery: Path | None = None

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
    for info in live_runs(home):  # a local run: its id, and its token if none was given
        if info.url == base:
            return Server(base, token or info.token, info.run_id, info.path)
    return Server(base, token)


def _from_discovery(info: Discovery, token: str | None) -> Server:
    return Server(info.url, token or info.token, info.run_id, info.path)


def _run_server(run_id: str, token: str | None, home: Path | None, why: str = "") -> Server:
    if not why:  # --run takes a prefix; $AGENTWATCH_RUN_ID is exact, and may have no folder
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

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether an event passes the process and type filters (as the server applies them)."""
        if "*" not in self.process_ids and event.get("processId") not in self.process_ids:
            return False
        return not self.types or event.get("type") in self.types

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


def follow(
    server: Server,
    sub: Subscription | None = None,
    *,
    transport: str = "ws",
    give_up_after: float = RECONNECT_GIVE_UP_S,
) -> AbstractAsyncContextManager[trio.abc.ReceiveChannel[dict[str, Any]]]:
    """A channel of events, live, reconnecting and resuming until the run ends.

    ``async with follow(server) as events: async for event in events: ...``.
    Events arrive in ``seq`` order per subscribed process (``*``: all of
    them), each once; ``{"type":"gap",...}`` says when some are gone for
    good. The channel ends when the run is over; leaving the block closes
    the connection. Raises `ClientError` (bad token, server gone for
    ``give_up_after`` seconds).
    """
    from agentwatch.client_stream import open_follow

    return open_follow(server, sub or Subscription(), transport, give_up_after, flatten=True)


def follow_batches(
    server: Server,
    sub: Subscription | None = None,
    *,
    transport: str = "ws",
    give_up_after: float = RECONNECT_GIVE_UP_S,
) -> AbstractAsyncContextManager[trio.abc.ReceiveChannel[list[dict[str, Any]]]]:
    """Like `follow`, but a list of events at a time (as they arrived): the fast path."""
    from agentwatch.client_stream import open_follow

    return open_follow(server, sub or Subscription(), transport, give_up_after, flatten=False)


def follow_session(
    session: Session, sub: Subscription | None = None
) -> AbstractAsyncContextManager[trio.abc.ReceiveChannel[dict[str, Any]]]:
    """The events of a run this program started, read from its hub (no network).

    ``async with follow_session(session) as events: async for event in
    events: ...``, right after ``session = await nursery.start(run_session,
    ...)``. Like `follow`: from the run's first event (or ``sub.since`` /
    ``sub.tail``), in ``seq`` order, each once, ``{"type":"gap",...}`` for
    events gone from memory and journal; the channel ends once the run is
    over and everything was delivered, however short the run and whether or
    not it serves.
    """
    from agentwatch.client_local import open_session_follow

    return open_session_follow(session.hub, sub or Subscription(), flatten=True)
