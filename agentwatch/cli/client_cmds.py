"""Client commands: subscribe, ps, logs, runs, stop, restart, signal (SPEC 6).

They find the server as SPEC 3 says (`agentwatch.client.find_server`),
print human tables and lines by default and JSON with ``--json`` (JSON Lines
for event streams, one document for tables). Exit statuses besides the
agent's own (``subscribe --until-exit``): 0 done; 1 no server found, cannot
reach it, or it refused the request (bad token, process not running, ...);
4 no such process or run; 125 bad options; 130 interrupted.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time
import urllib.parse
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentwatch.cli import app, options
from agentwatch.errors import ClientError, ConfigError

if TYPE_CHECKING:
    from agentwatch.client import Server, Subscription
    from agentwatch.render import ExitTracker, Renderer

HISTORY_PAGE = 10_000  # events per REST page (the server's maximum)
EXIT_NOT_FOUND = 4
COMPLETE_TIMEOUT_S = 1.0  # shell completion asks the live run; a person is waiting
EVENT_TYPES = (
    "process-started",
    "process-output",
    "process-stopped",
    "process-error",
    "process-waiting",
    "process-resumed",
    "process-stats",
    "task-assigned",
    "task-completed",
    "system-alert",
)


def complete_processes(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion: the processes of the run the command would talk to."""
    from agentwatch.client import api, find_server

    p = ctx.params
    try:
        server = find_server(p.get("url"), p.get("token"), p.get("run_id"), p.get("home"))
        procs = api(server, "GET", "/api/processes", timeout=COMPLETE_TIMEOUT_S)
    except Exception:  # completion never fails loudly
        return []
    names = [str(x.get("processId")) for x in procs if isinstance(x, dict)]
    return [n for n in names if n.startswith(incomplete)]


def _choices(*values: str) -> Any:
    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return complete


Processes = Annotated[
    list[str] | None,
    typer.Argument(help="Process ids (default: all).", autocompletion=complete_processes),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="Server token (default: $AGENTWATCH_TOKEN or discovered)."),
]
Since = Annotated[int | None, typer.Option("--since", min=0, help="Start after this seq.")]
Tail = Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N events.")]


def _server(url: str | None, token: str | None, run_id: str | None, home: Path | None) -> Server:
    from agentwatch.client import find_server

    return find_server(url, token, run_id, home)


@contextlib.contextmanager
def _stdout_guard() -> Iterator[None]:
    """A reader that went away (``| head``) ends the command quietly, with status 0."""
    try:
        yield
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


def _print_json(obj: Any) -> None:
    with _stdout_guard():
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()


class Printer:
    """Prints events as JSON Lines or human lines, flushing once per batch."""

    def __init__(self, as_json: bool, names: Iterable[str] = ()) -> None:
        from agentwatch.render import Renderer

        self.as_json = as_json
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self.renderer: Renderer = Renderer(colour=colour, names=list(names))

    def print(self, events: Iterable[dict[str, Any]]) -> None:
        """Print some events."""
        if self.as_json:
            lines = [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in events]
        else:
            lines = [line for e in events if (line := self.renderer.line(e)) is not None]
        if lines:
            with _stdout_guard():
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()


def _processes(server: Server) -> list[dict[str, Any]]:
    from agentwatch.client import api

    procs = api(server, "GET", "/api/processes")
    return [p for p in procs if isinstance(p, dict)] if isinstance(procs, list) else []


def _check_names(server: Server, wanted: Iterable[str], procs: list[dict[str, Any]]) -> None:
    known = [str(p.get("processId")) for p in procs]
    for name in wanted:
        if name != "*" and name not in known:
            run = f" in run {server.run_id}" if server.run_id else ""
            raise ClientError(
                f"no process {name!r}{run} (processes: {', '.join(known) or 'none'})",
                exit_code=EXIT_NOT_FOUND,
            )


def history(server: Server, sub: Subscription) -> list[dict[str, Any]]:
    """Every matching event so far, through the REST API, with gaps as gap events."""
    from agentwatch.client import api

    pids = [p for p in sub.process_ids if p != "*"] if "*" not in sub.process_ids else []
    params: list[tuple[str, str]] = [("limit", str(HISTORY_PAGE))]
    params += [("type", t) for t in sub.types or ()]
    if sub.stream:
        params.append(("stream", sub.stream))
    if len(pids) == 1:
        path = f"/api/processes/{urllib.parse.quote(pids[0], safe='')}/logs"
    else:
        path = "/api/events"
        params += [("processId", p) for p in pids]
    start: list[tuple[str, str]] = [("since", str(sub.since or 0))]
    if sub.tail is not None:
        start = [("tail", str(sub.tail))] + (start if sub.since is not None else [])
    events: list[dict[str, Any]] = []
    query = [*params, *start]
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


@app.command("subscribe")
def subscribe(
    processes: Processes = None,
    url: options.Url = None,
    token: TokenOpt = None,
    run_id: options.RunIdOpt = None,
    since: Since = None,
    tail: Tail = None,
    type_: Annotated[
        list[str] | None,
        typer.Option(
            "--type", help="Event type (repeatable).", autocompletion=_choices(*EVENT_TYPES)
        ),
    ] = None,
    stream: Annotated[
        str | None,
        typer.Option(
            "--stream", help="stdout or stderr.", autocompletion=_choices("stdout", "stderr")
        ),
    ] = None,
    json_: options.Json = False,
    transport: Annotated[
        str, typer.Option("--transport", help="ws or sse.", autocompletion=_choices("ws", "sse"))
    ] = "ws",
    no_follow: Annotated[bool, typer.Option("--no-follow", help="Print history and exit.")] = False,
    until_exit: Annotated[
        bool,
        typer.Option("--until-exit", help="Exit when the processes end, with run's status."),
    ] = False,
    home: options.Home = None,
) -> int:
    """Follow events live, like `docker compose logs -f` (history first)."""
    from agentwatch.client import Subscription
    from agentwatch.render import ExitTracker

    if transport not in ("ws", "sse"):
        raise ConfigError(f"invalid --transport {transport!r}: use ws or sse")
    if stream not in (None, "stdout", "stderr"):
        raise ConfigError(f"invalid --stream {stream!r}: use stdout or stderr")
    if no_follow and until_exit:
        raise ConfigError("--no-follow and --until-exit exclude each other")
    server = _server(url, token, run_id, home)
    pids = tuple(dict.fromkeys(processes or ("*",)))
    if "*" in pids:
        pids = ("*",)
    procs = _processes(server)
    _check_names(server, pids, procs)
    types = tuple(type_) if type_ else None
    sub = Subscription(pids, types, stream, since, tail)
    printer = Printer(json_, [str(p.get("processId")) for p in procs])
    if no_follow:
        printer.print(history(server, sub))
        return 0
    tracker = ExitTracker(None if pids == ("*",) else set(pids))
    if until_exit:
        for proc in procs:
            if pids == ("*",) or proc.get("processId") in pids:
                tracker.seed(proc)
        if tracker.done:  # over already: print the history, give the status
            printer.print(history(server, sub))
            return tracker.status
        if types:  # the life-cycle events are needed to know the status
            sub.types = (*types, "process-started", "process-stopped", "process-error")
    return _follow(server, sub, transport, printer, tracker if until_exit else None, types)


def _follow(
    server: Server,
    sub: Subscription,
    transport: str,
    printer: Printer,
    tracker: ExitTracker | None,
    types: tuple[str, ...] | None,
) -> int:
    import trio

    from agentwatch.client import follow_batches

    async def main() -> int:
        async with follow_batches(server, sub, transport=transport) as batches:
            async for batch in batches:
                printer.print(e for e in batch if not types or e.get("type") in types)
                if tracker is not None:
                    for event in batch:
                        tracker.feed(event)
                    if tracker.done:
                        return int(tracker.status)
        if tracker is None:
            return 0  # the run is over
        if not tracker.done:
            raise ClientError(
                f"the run ended before {', '.join(tracker.pending) or 'the processes'} did"
            )
        return int(tracker.status)

    return trio.run(main)


def _fmt_bytes(n: Any) -> str:
    if not isinstance(n, int | float) or isinstance(n, bool):
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return "-"


def _uptime(started: Any, state: Any) -> str:
    if not isinstance(started, str) or state not in ("running", "waiting", "stopping"):
        return "-"
    try:
        t0 = dt.datetime.strptime(started, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "-"
    secs = max(int(time.time() - t0.timestamp()), 0)
    if secs >= 3600:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
    return f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s"


def _table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    text = "".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows
    )
    with _stdout_guard():
        sys.stdout.write(text)
        sys.stdout.flush()


def _warn(message: str) -> None:
    typer.echo(f"agentwatch: warning: {message}", err=True)


@app.command("ps")
def ps(
    url: options.Url = None,
    token: TokenOpt = None,
    run_id: options.RunIdOpt = None,
    json_: options.Json = False,
    home: options.Home = None,
) -> int:
    """List the processes of the live run(s)."""
    from agentwatch.client import Server
    from agentwatch.paths import live_runs

    env = os.environ
    several = not (url or run_id or env.get("AGENTWATCH_URL") or env.get("AGENTWATCH_RUN_ID"))
    if several:
        servers = [Server(r.url, token or r.token, r.run_id) for r in live_runs(home)]
    else:
        servers = [_server(url, token, run_id, home)]
    if not servers:
        servers = [_server(url, token, run_id, home)]  # raises the "no server" error
    procs: list[dict[str, Any]] = []
    for server in servers:
        try:
            procs += [{"runId": server.run_id, **p} for p in _processes(server)]
        except ClientError as exc:
            if not several or len(servers) == 1:
                raise
            _warn(f"run {server.run_id}: {exc}")
    if json_:
        _print_json(procs)
        return 0
    head = ["NAME", "STATE", "PID", "UPTIME", "CPU", "MEM", "RESTARTS", "EXIT"]
    rows = [[*head, "RUN"] if len(servers) > 1 else head]
    for p in procs:
        stats = p.get("stats") or {}
        exit_text = p.get("signal") or ("" if p.get("exitCode") is None else str(p["exitCode"]))
        cpu = stats.get("cpuPercent")
        row = [
            str(p.get("processId")),
            str(p.get("state")),
            str(p.get("pid") or "-"),
            _uptime(p.get("startedAt"), p.get("state")),
            f"{cpu:.1f}%" if isinstance(cpu, int | float) else "-",
            _fmt_bytes(stats.get("rssBytes")),
            str(p.get("restarts", 0)),
            exit_text or "-",
        ]
        rows.append([*row, str(p.get("runId") or "-")] if len(servers) > 1 else row)
    _table(rows)
    return 0


@app.command("logs")
def logs(
    process: Annotated[
        str,
        typer.Argument(
            help="Process id ('*' for every process).", autocompletion=complete_processes
        ),
    ],
    url: options.Url = None,
    token: TokenOpt = None,
    run_id: options.RunIdOpt = None,
    journal: Annotated[
        Path | None, typer.Option("--journal", help="Read this journal file (offline).")
    ] = None,
    since: Since = None,
    tail: Tail = None,
    json_: options.Json = False,
    home: options.Home = None,
) -> int:
    """Print a process's history, from the server or offline from a journal."""
    from agentwatch.client import Subscription

    if journal is not None and (url or run_id):
        raise ConfigError("--journal reads a file: it excludes --url and --run")
    if journal is None and run_id is not None and not url:
        from agentwatch.offline import run_journal

        journal = run_journal(run_id, home)
    if journal is not None:
        from agentwatch.offline import journal_events

        found = journal_events(journal, process, since, tail)
        if process != "*" and process not in found.processes:
            raise ClientError(
                f"no process {process!r} in {journal} "
                f"(processes: {', '.join(found.processes) or 'none'})",
                exit_code=EXIT_NOT_FOUND,
            )
        Printer(json_, [process]).print(found.events)
        return 0
    server = _server(url, token, run_id, home)
    if process != "*":
        _check_names(server, [process], _processes(server))
    Printer(json_, [process]).print(
        history(server, Subscription((process,), None, None, since, tail))
    )
    return 0


@app.command("runs")
def runs(json_: options.Json = False, home: options.Home = None) -> int:
    """List live and past runs (newest first)."""
    from agentwatch.offline import list_runs

    found = list_runs(home)
    if json_:
        _print_json(found)
        return 0
    rows = [["RUN", "STARTED", "STATE", "PROCESSES", "JOURNAL"]]
    rows += [
        [
            r["runId"],
            r["startedAt"] or "-",
            r["state"],
            ",".join(r["processes"]) or "-",
            _fmt_bytes(r["journalBytes"]) if r["journal"] else "-",
        ]
        for r in found
    ]
    _table(rows)
    return 0


def _control(
    process: str,
    action: str,
    body: dict[str, Any],
    where: tuple[str | None, str | None, str | None, Path | None],
    as_json: bool,
    done: str,
) -> int:
    from agentwatch.client import api

    server = _server(*where)
    quoted = urllib.parse.quote(process, safe="")
    result = api(server, "POST", f"/api/processes/{quoted}/{action}", body)
    if as_json:
        _print_json(result)
    else:
        typer.echo(f"{process}: {done}")
    return 0


ProcessArg = Annotated[str, typer.Argument(help="Process id.", autocompletion=complete_processes)]


@app.command("stop")
def stop(
    process: ProcessArg,
    url: options.Url = None,
    token: TokenOpt = None,
    run_id: options.RunIdOpt = None,
    json_: options.Json = False,
    home: options.Home = None,
) -> int:
    """Stop a process (SIGTERM to its group, SIGKILL to its tree after its grace)."""
    return _control(process, "stop", {}, (url, token, run_id, home), json_, "stopping")


@app.command("restart")
def restart(
    process: ProcessArg,
    url: options.Url = None,
    token: TokenOpt = None,
    run_id: options.RunIdOpt = None,
    json_: options.Json = False,
    home: options.Home = None,
) -> int:
    """Restart a process (stop it, then start it again at once)."""
    return _control(process, "restart", {}, (url, token, run_id, home), json_, "restarting")


@app.command("signal")
def signal_(
    process: ProcessArg,
    sig: Annotated[
        str,
        typer.Argument(
            metavar="SIG",
            help="TERM, HUP, USR1, 9, ...",
            autocompletion=_choices(
                "TERM", "INT", "HUP", "KILL", "USR1", "USR2", "QUIT", "STOP", "CONT"
            ),
        ),
    ],
    url: options.Url = None,
    token: TokenOpt = None,
    run_id: options.RunIdOpt = None,
    json_: options.Json = False,
    home: options.Home = None,
) -> int:
    """Send a signal to a process's group."""
    name = sig.upper()
    name = name if name.isdigit() or name.startswith("SIG") else "SIG" + name
    return _control(
        process, "signal", {"signal": sig}, (url, token, run_id, home), json_, f"sent {name}"
    )
