"""Client commands: ps, logs, runs, stop, restart, signal (SPEC 6).

They find the server as SPEC 3 says (`agentwatch.client.find_server`),
print human tables and lines by default and JSON with ``--json`` (JSON Lines
for event streams, one document for tables). Exit statuses besides the
agent's own (``subscribe --until-exit``): 0 done; 1 no server found, cannot
reach it, or it refused the request (bad token, process not running, ...);
4 no such process or run; 125 bad options; 130 interrupted.
"""

from __future__ import annotations

import os
import urllib.parse
from pathlib import Path
from typing import Annotated, Any

import typer

from agentwatch.cli import Command, app, options
from agentwatch.cli.client_common import (
    Printer,
    Since,
    Tail,
    TokenOpt,
    check_names,
    choices,
    complete_processes,
    fmt_bytes,
    print_json,
    server_of,
    table,
    uptime,
)
from agentwatch.client.discovery import EXIT_NOT_FOUND
from agentwatch.errors import ClientError, ConfigError


def _warn(message: str) -> None:
    typer.echo(f"agentwatch: warning: {message}", err=True)


@app.command("ps", cls=Command)
def ps(
    url: options.Url = None,
    token: TokenOpt = None,
    run_id: options.RunIdOpt = None,
    json_: options.Json = False,
    home: options.Home = None,
) -> int:
    """List the processes of the live run(s)."""
    from agentwatch.client import Server, processes
    from agentwatch.client.discovery import live_runs

    env = os.environ
    several = not (url or run_id or env.get("AGENTWATCH_URL") or env.get("AGENTWATCH_RUN_ID"))
    if several:
        servers = [Server(r.url, token or r.token, r.run_id) for r in live_runs(home)]
    else:
        servers = [server_of(url, token, run_id, home)]
    if not servers:
        servers = [server_of(url, token, run_id, home)]  # raises the "no server" error
    procs: list[dict[str, Any]] = []
    for server in servers:
        try:
            procs += [{"runId": server.run_id, **p} for p in processes(server)]
        except ClientError as exc:
            if not several or len(servers) == 1:
                raise
            _warn(f"run {server.run_id}: {exc}")
    if json_:
        print_json(procs)
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
            uptime(p.get("startedAt"), p.get("state")),
            f"{cpu:.1f}%" if isinstance(cpu, int | float) else "-",
            fmt_bytes(stats.get("rssBytes")),
            str(p.get("restarts", 0)),
            exit_text or "-",
        ]
        rows.append([*row, str(p.get("runId") or "-")] if len(servers) > 1 else row)
    table(rows)
    return 0


@app.command("logs", cls=Command)
def logs(
    process: Annotated[
        str | None,
        typer.Argument(
            help="Process id ('*' for every process; the default with --run or --journal).",
            autocompletion=complete_processes,
            show_default=False,
        ),
    ] = None,
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
    from agentwatch.client import Subscription, history, processes

    if journal is not None and (url or run_id):
        raise ConfigError("--journal reads a file: it excludes --url and --run")
    if process is None:
        if journal is None and run_id is None:
            raise ConfigError("missing the process: agentwatch logs PROCESS (or --run ID for all)")
        process = "*"
    if journal is None and run_id is not None and not url:
        from agentwatch.client.offline import run_journal

        journal = run_journal(run_id, home)
    if journal is not None:
        from agentwatch.client.offline import journal_events

        found = journal_events(journal, process, since, tail)
        if process != "*" and process not in found.processes:
            raise ClientError(
                f"no process {process!r} in {journal} "
                f"(processes: {', '.join(found.processes) or 'none'})",
                exit_code=EXIT_NOT_FOUND,
            )
        Printer(json_, [process]).print(found.events)
        return 0
    server = server_of(url, token, run_id, home)
    if process != "*":
        check_names(server, [process], processes(server))
    Printer(json_, [process]).print(
        history(server, Subscription((process,), None, None, since, tail))
    )
    return 0


@app.command("runs", cls=Command)
def runs(json_: options.Json = False, home: options.Home = None) -> int:
    """List live and past runs (newest first)."""
    from agentwatch.client.offline import list_runs

    found = list_runs(home)
    if json_:
        print_json(found)
        return 0
    rows = [["RUN", "STARTED", "STATE", "PROCESSES", "JOURNAL"]]
    rows += [
        [
            r["runId"],
            r["startedAt"] or "-",
            r["state"],
            ",".join(r["processes"]) or "-",
            fmt_bytes(r["journalBytes"]) if r["journal"] else "-",
        ]
        for r in found
    ]
    table(rows)
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

    server = server_of(*where)
    quoted = urllib.parse.quote(process, safe="")
    result = api(server, "POST", f"/api/processes/{quoted}/{action}", body)
    if as_json:
        print_json(result)
    else:
        typer.echo(f"{process}: {done}")
    return 0


ProcessArg = Annotated[str, typer.Argument(help="Process id.", autocompletion=complete_processes)]


@app.command("stop", cls=Command)
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


@app.command("restart", cls=Command)
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


@app.command("signal", cls=Command)
def signal_(
    process: ProcessArg,
    sig: Annotated[
        str,
        typer.Argument(
            metavar="SIG",
            help="TERM, HUP, USR1, 9, ...",
            autocompletion=choices(
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
    name = signal_name(sig)
    return _control(
        process, "signal", {"signal": sig}, (url, token, run_id, home), json_, f"sent {name}"
    )


def signal_name(sig: str) -> str:
    """``term``, ``SIGTERM`` or ``15`` -> ``SIGTERM``; ConfigError for anything else."""
    import signal

    text = sig.strip().upper()
    try:
        if text.isdigit():
            return signal.Signals(int(text)).name
        return signal.Signals[text if text.startswith("SIG") else "SIG" + text].name
    except (KeyError, ValueError):
        raise ConfigError(
            f"invalid signal {sig!r}: use a name (TERM, HUP, USR1, ...) or a number"
        ) from None
