"""Client commands: subscribe, ps, logs, runs, stop, restart, signal, emit."""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer

from agentwatch.cli import app, options
from agentwatch.errors import ClientError, ConfigError

Processes = Annotated[list[str] | None, typer.Argument(help="Process ids (default: all).")]
TokenOpt = Annotated[str | None, typer.Option("--token", envvar="AGENTWATCH_TOKEN",
                                              help="Server token (default: discovered).")]


def _server(url: str | None, token: str | None, run_id: str | None, home: Path | None) -> Any:
    from agentwatch.client import find_server

    return find_server(url, token, run_id, home)


def _emit_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")


@app.command("subscribe")
def subscribe(
    processes: Processes = None,
    url: options.Url = None,
    token: TokenOpt = None,
    run_id: options.RunIdOpt = None,
    since: Annotated[int | None, typer.Option("--since", help="Start after this seq.")] = None,
    tail: Annotated[int | None, typer.Option("--tail", help="Only the last N events.")] = None,
    type_: Annotated[list[str] | None, typer.Option("--type", help="Event type (repeatable).")
                     ] = None,
    stream: Annotated[str | None, typer.Option("--stream", help="stdout or stderr.")] = None,
    json_: options.Json = False,
    transport: Annotated[str, typer.Option("--transport", help="ws or sse.")] = "ws",
    no_follow: Annotated[bool, typer.Option("--no-follow", help="Print history and exit.")
                         ] = False,
    until_exit: Annotated[bool, typer.Option(
        "--until-exit", help="Exit when the processes stop, with their status.")] = False,
    home: options.Home = None,
) -> int:
    """Follow events live, like `docker compose logs -f`."""
    import trio

    from agentwatch.client import Subscription, api
    from agentwatch.render import ExitTracker, Renderer

    if transport not in ("ws", "sse"):
        raise ConfigError(f"invalid --transport {transport!r}: use ws or sse")
    if stream not in (None, "stdout", "stderr"):
        raise ConfigError(f"invalid --stream {stream!r}: use stdout or stderr")
    server = _server(url, token, run_id, home)
    pids = tuple(processes or ("*",))
    sub = Subscription(pids, tuple(type_) if type_ else None, stream, since, tail)
    renderer = Renderer(colour=sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    if no_follow:
        for event in _history(server, sub):
            _print_event(event, json_, renderer)
        return 0
    tracker = ExitTracker(None if pids == ("*",) else set(pids))
    if until_exit:
        for proc in api(server, "GET", "/api/processes") or []:
            if pids == ("*",) or proc.get("processId") in pids:
                tracker.seed(proc)
        if tracker.done:
            return tracker.status
        if type_:  # the stop events are needed to know the status
            sub.types = (*type_, "process-started", "process-stopped", "process-error")

    async def main() -> int:
        from agentwatch.client import follow

        async for event in follow(server, sub, transport=transport):
            if not type_ or event.get("type") in type_:
                _print_event(event, json_, renderer)
            if until_exit:
                tracker.feed(event)
                if tracker.done:
                    return tracker.status
        return tracker.status if until_exit else 0

    try:
        return trio.run(main)
    except KeyboardInterrupt:
        return 130


def _print_event(event: dict[str, Any], as_json: bool, renderer: Any) -> None:
    if as_json:
        _emit_json(event)
    else:
        line = renderer.line(event)
        if line is not None:
            sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _history(server: Any, sub: Any) -> list[dict[str, Any]]:
    """Every matching event so far, through the REST API (for --no-follow)."""
    from agentwatch.client import api

    events: list[dict[str, Any]] = []
    for pid in sub.process_ids:
        params: list[tuple[str, str]] = [("limit", "10000")]
        if sub.stream:
            params.append(("stream", sub.stream))
        if sub.tail is not None:
            params.append(("tail", str(sub.tail)))
        cursor = sub.since or 0
        while True:
            query = urllib.parse.urlencode([*params, ("since", str(cursor))])
            path = (f"/api/processes/{urllib.parse.quote(pid, safe='')}/logs?{query}"
                    if pid != "*" else f"/api/events?{query}")
            page = api(server, "GET", path)
            batch = page.get("events", [])
            events.extend(e for e in batch if not sub.types or e.get("type") in sub.types)
            if not page.get("more") or not batch or sub.tail is not None:
                break
            cursor = batch[-1]["seq"]
    events.sort(key=lambda e: e.get("seq", 0))
    return events


def _fmt_bytes(n: Any) -> str:
    if not isinstance(n, int | float):
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return "-"


def _uptime(started: Any, state: str) -> str:
    if not isinstance(started, str) or state not in ("running", "waiting", "stopping"):
        return "-"
    import datetime as dt

    try:
        t0 = dt.datetime.strptime(started, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "-"
    secs = int(time.time() - t0.timestamp())
    return f"{secs // 3600}h{secs % 3600 // 60:02d}m" if secs >= 3600 else (
        f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s")


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        sys.stdout.write("  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
                         + "\n")


@app.command("ps")
def ps(
    url: options.Url = None,
    token: TokenOpt = None,
    run_id: options.RunIdOpt = None,
    json_: options.Json = False,
    home: options.Home = None,
) -> int:
    """List the processes of the live run(s)."""
    from agentwatch.client import Server, api
    from agentwatch.paths import live_runs

    if url or run_id or os.environ.get("AGENTWATCH_URL"):
        servers = [_server(url, token, run_id, home)]
    else:
        servers = [Server(r.url, token or r.token, r.run_id) for r in live_runs(home)]
        if not servers:
            raise ClientError("no running agentwatch server found")
    procs: list[dict[str, Any]] = []
    for server in servers:
        for p in api(server, "GET", "/api/processes") or []:
            procs.append({"runId": server.run_id, **p})
    if json_:
        _emit_json(procs)
        return 0
    rows = [["NAME", "STATE", "PID", "UPTIME", "CPU", "MEM", "RESTARTS", "EXIT", "RUN"]]
    for p in procs:
        stats = p.get("stats") or {}
        exit_text = p.get("signal") or ("" if p.get("exitCode") is None else str(p["exitCode"]))
        cpu = stats.get("cpuPercent")
        rows.append([str(p.get("processId")), str(p.get("state")), str(p.get("pid") or "-"),
                     _uptime(p.get("startedAt"), str(p.get("state"))),
                     f"{cpu:.1f}%" if isinstance(cpu, int | float) else "-",
                     _fmt_bytes(stats.get("rssBytes")), str(p.get("restarts", 0)),
                     exit_text or "-", str(p.get("runId") or "-")])
    _table(rows)
    return 0


@app.command("logs")
def logs(
    process: Annotated[str, typer.Argument(help="Process id.")],
    url: options.Url = None,
    token: TokenOpt = None,
    run_id: options.RunIdOpt = None,
    journal: Annotated[Path | None, typer.Option("--journal", help="Read this journal file.")
                       ] = None,
    since: Annotated[int | None, typer.Option("--since", help="Start after this seq.")] = None,
    tail: Annotated[int | None, typer.Option("--tail", help="Only the last N events.")] = None,
    json_: options.Json = False,
    home: options.Home = None,
) -> int:
    """Print a process's history, from the server or offline from a journal."""
    from agentwatch.offline import journal_events, run_journal
    from agentwatch.render import Renderer

    renderer = Renderer(colour=sys.stdout.isatty() and not os.environ.get("NO_COLOR"))
    if journal is None and run_id is not None and not url:
        path = run_journal(run_id, home)
        if path is not None:
            journal = path
    if journal is not None:
        events = journal_events(journal, process, since, tail)
    else:
        from agentwatch.client import Subscription

        server = _server(url, token, run_id, home)
        events = _history(server, Subscription((process,), None, None, since, tail))
    for event in events:
        _print_event(event, json_, renderer)
    return 0


@app.command("runs")
def runs(json_: options.Json = False, home: options.Home = None) -> int:
    """List live and past runs."""
    from agentwatch.offline import list_runs

    found = list_runs(home)
    if json_:
        _emit_json(found)
        return 0
    rows = [["RUN", "STARTED", "STATE", "PROCESSES", "JOURNAL"]]
    for r in found:
        rows.append([r["runId"], r["startedAt"] or "-", r["state"],
                     ",".join(r["processes"]) or "-", _fmt_bytes(r["journalBytes"])])
    _table(rows)
    return 0


def _control(process: str, action: str, body: Any, url: str | None, token: str | None,
             run_id: str | None, home: Path | None, as_json: bool) -> int:
    from agentwatch.client import api

    server = _server(url, token, run_id, home)
    quoted = urllib.parse.quote(process, safe="")
    result = api(server, "POST", f"/api/processes/{quoted}/{action}", body)
    if as_json:
        _emit_json(result)
    return 0


@app.command("stop")
def stop(process: Annotated[str, typer.Argument(help="Process id.")], url: options.Url = None,
         token: TokenOpt = None, run_id: options.RunIdOpt = None, json_: options.Json = False,
         home: options.Home = None) -> int:
    """Stop a process (SIGTERM, then SIGKILL after its grace period)."""
    return _control(process, "stop", {}, url, token, run_id, home, json_)


@app.command("restart")
def restart(process: Annotated[str, typer.Argument(help="Process id.")], url: options.Url = None,
            token: TokenOpt = None, run_id: options.RunIdOpt = None,
            json_: options.Json = False, home: options.Home = None) -> int:
    """Restart a process."""
    return _control(process, "restart", {}, url, token, run_id, home, json_)


@app.command("signal")
def signal_(process: Annotated[str, typer.Argument(help="Process id.")],
            sig: Annotated[str, typer.Argument(metavar="SIG", help="TERM, HUP, USR1, 9, ...")],
            url: options.Url = None, token: TokenOpt = None, run_id: options.RunIdOpt = None,
            json_: options.Json = False, home: options.Home = None) -> int:
    """Send a signal to a process's group."""
    return _control(process, "signal", {"signal": sig}, url, token, run_id, home, json_)
