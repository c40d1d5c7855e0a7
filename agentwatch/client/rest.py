"""The REST client: one blocking call, the process list, the paged history.

Client commands need no event loop for these: `api` is one HTTP request
with `http.client`, `history` pages ``/api/events`` (or a process's
``/logs``) until the server says there is no more.
"""

from __future__ import annotations

import http.client
import json
import urllib.parse
from typing import Any

from agentwatch.client.discovery import EXIT_NOT_FOUND, Server
from agentwatch.client.subscription import Subscription
from agentwatch.errors import ClientError

API_TIMEOUT_S = 10.0  # one REST call
HISTORY_PAGE = 10_000  # events per REST page (the server's maximum)


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


def processes(server: Server) -> list[dict[str, Any]]:
    """The run's processes (``GET /api/processes``)."""
    procs = api(server, "GET", "/api/processes")
    return [p for p in procs if isinstance(p, dict)] if isinstance(procs, list) else []


def history(server: Server, sub: Subscription) -> list[dict[str, Any]]:
    """Every matching event so far, through the REST API, with gaps as gap events."""
    pids = sub.named()
    params: list[tuple[str, str]] = [("limit", str(HISTORY_PAGE))]
    if len(pids) == 1:
        path = f"/api/processes/{urllib.parse.quote(pids[0], safe='')}/logs"
        params += [p for p in sub.filter_params() if p[0] != "processId"]
    else:
        path = "/api/events"
        params += sub.filter_params()
    query = [*params, *((k, str(v)) for k, v in sub.start(None))]
    events: list[dict[str, Any]] = []
    while True:
        page = api(server, "GET", f"{path}?{urllib.parse.urlencode(query)}")
        if not isinstance(page, dict):
            raise ClientError(f"unexpected answer from {server.url}{path}")
        events += page.get("events") or []
        events += [{"type": "gap", **g} for g in page.get("gaps") or []]
        last = page.get("lastSeq")
        if not page.get("more") or not isinstance(last, int):
            break
        query = [*params, ("since", str(last))]
    events.sort(key=lambda e: e.get("seq") or e.get("toSeq") or 0)
    return events
