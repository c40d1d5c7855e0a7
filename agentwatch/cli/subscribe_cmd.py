"""`agentwatch subscribe`: follow events live, like `docker compose logs -f` (SPEC 6).

With ``--until-exit`` it is the CI step's gate: it exits with the status
`agentwatch run` gives. A process that has already finished gets its
recorded status at once (from the ended run's journal); a run that has not
started serving yet is waited for, up to ``--wait`` seconds, then followed.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentwatch.cli import Command, app, options
from agentwatch.cli.client_common import (
    Printer,
    Processes,
    Since,
    Tail,
    TokenOpt,
    check_names,
    choices,
    server_of,
)
from agentwatch.client.discovery import EXIT_NOT_FOUND
from agentwatch.errors import ClientError, ConfigError
from agentwatch.events import EVENT_TYPES
from agentwatch.publishable import CUSTOM_PREFIX

if TYPE_CHECKING:
    from agentwatch.client import Server, Subscription
    from agentwatch.client.exits import ExitTracker
    from agentwatch.client.offline import EndedRun

DEFAULT_WAIT_S = 10.0  # SPEC 9: how long --until-exit waits for a run that is starting
POLL_S = 0.05  # how often it looks for that run (a CI step's start-up, not a hot path)
LIFE_CYCLE = ("process-started", "process-stopped", "process-error", "system-alert")


def event_types(values: list[str] | None) -> tuple[str, ...] | None:
    """``--type`` values (repeatable, comma lists) checked against SPEC 1's names."""
    if not values:
        return None
    found = tuple(dict.fromkeys(t.strip() for v in values for t in v.split(",") if t.strip()))
    for t in found:
        custom = t.startswith(CUSTOM_PREFIX) and len(t) > len(CUSTOM_PREFIX)
        if t not in EVENT_TYPES and not custom:
            raise ConfigError(
                f"invalid --type {t!r}: use {', '.join(EVENT_TYPES)} or a custom x-... type"
            )
    return found or None


# 65 lines: 45 of them are its Typer options, one per flag; the body is short.
@app.command("subscribe", cls=Command)
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
            "--type",
            help="Event type (repeatable, or a comma list).",
            autocompletion=choices(*EVENT_TYPES),
        ),
    ] = None,
    stream: Annotated[
        str | None,
        typer.Option(
            "--stream", help="stdout or stderr.", autocompletion=choices("stdout", "stderr")
        ),
    ] = None,
    json_: options.Json = False,
    transport: Annotated[
        str, typer.Option("--transport", help="ws or sse.", autocompletion=choices("ws", "sse"))
    ] = "ws",
    no_follow: Annotated[bool, typer.Option("--no-follow", help="Print history and exit.")] = False,
    until_exit: Annotated[
        bool,
        typer.Option(
            "--until-exit", help="Exit when the processes end, with the status run would give."
        ),
    ] = False,
    wait: Annotated[
        float,
        typer.Option(
            "--wait", min=0, help="With --until-exit: wait this long for a run to start (s)."
        ),
    ] = DEFAULT_WAIT_S,
    home: options.Home = None,
) -> int:
    """Follow events live, like `docker compose logs -f` (history first)."""
    from agentwatch.client import Subscription, history
    from agentwatch.client import processes as processes_of

    if transport not in ("ws", "sse"):
        raise ConfigError(f"invalid --transport {transport!r}: use ws or sse")
    if stream not in (None, "stdout", "stderr"):
        raise ConfigError(f"invalid --stream {stream!r}: use stdout or stderr")
    if no_follow and until_exit:
        raise ConfigError("--no-follow and --until-exit exclude each other")
    types = event_types(type_)
    pids = tuple(dict.fromkeys(processes or ("*",)))
    if "*" in pids:
        pids = ("*",)
    sub = Subscription(pids, types, stream, since, tail)
    if until_exit:
        return _until_exit(pids, (url, token, run_id, home), wait, sub, json_, transport)
    server = server_of(url, token, run_id, home)
    procs = processes_of(server)
    check_names(server, pids, procs)
    printer = Printer(json_, [str(p.get("processId")) for p in procs])
    if no_follow:
        printer.print(history(server, sub))
        return 0
    return _follow(server, sub, transport, printer, None, types)


def _until_exit(
    pids: tuple[str, ...],
    where: Where,
    wait: float,
    sub: Subscription,
    as_json: bool,
    transport: str,
) -> int:
    """Follow the processes to their end; the status `run` gives (SPEC 6, 9)."""
    from agentwatch.client import history
    from agentwatch.client.exits import ExitTracker

    def tracker() -> ExitTracker:
        return ExitTracker(None if pids == ("*",) else set(pids))

    types = sub.types
    if types:  # the life-cycle events are needed to know the status
        sub.types = tuple(dict.fromkeys((*types, *LIFE_CYCLE)))
    deadline = time.monotonic() + wait
    while True:
        found = _await_run(pids, where, deadline)
        if not isinstance(found, tuple):
            sub.types = types
            return _from_journal(found, sub, as_json)
        server, procs = found
        printer = Printer(as_json, [str(p.get("processId")) for p in procs])
        seeded = tracker()
        for proc in procs:
            if pids == ("*",) or proc.get("processId") in pids:
                seeded.seed(proc)
        if not seeded.done:
            return _follow(server, sub, transport, printer, tracker(), types)
        try:  # over already: print the history, give the status it records
            events = history(server, sub)
        except ClientError:  # the run stopped serving in between: read its journal
            deadline = max(deadline, time.monotonic() + wait)
            continue
        replayed = tracker()
        for event in events:
            replayed.feed(event)
        if not replayed.done:  # the history lags the state by a moment: follow to the end
            return _follow(server, sub, transport, printer, tracker(), types)
        printer.print(e for e in events if not types or e.get("type") in types)
        return replayed.status


Where = tuple[str | None, str | None, str | None, Path | None]


def _await_run(
    pids: tuple[str, ...], where: Where, deadline: float
) -> tuple[Server, list[dict[str, Any]]] | EndedRun:
    """The live run to follow, else the ended run that has the processes.

    Waits until ``deadline`` (`time.monotonic`) while neither exists yet, or while a live run
    that has them is starting (not serving yet) or ending (no longer serving).
    """
    from agentwatch.client.offline import ended_run_with, live_run_with

    url, _, run_id, home = where
    while True:
        try:
            return _serving(pids, where)
        except ClientError as exc:
            error = exc
        if url is None and (run_id is not None or live_run_with(pids, home) is None):
            ended = ended_run_with(pids, home, run_id)
            if ended is not None:
                return ended
        if time.monotonic() >= deadline:
            if url is None and pids != ("*",) and ended_run_with(("*",), home, run_id):
                raise ClientError(
                    f"no process {', '.join(map(repr, pids))} in a live or ended run "
                    "(see 'agentwatch runs')",
                    exit_code=EXIT_NOT_FOUND,
                ) from error
            raise error
        time.sleep(POLL_S)


def _serving(pids: tuple[str, ...], where: Where) -> tuple[Server, list[dict[str, Any]]]:
    """The serving run to follow and its processes; ClientError if none has them."""
    from agentwatch.client import Server, processes
    from agentwatch.client.discovery import live_runs

    url, token, run_id, home = where
    server = server_of(url, token, run_id, home)
    procs = processes(server)
    try:
        check_names(server, pids, procs)
    except ClientError:
        if url or run_id or server.run_id is None:
            raise
        for info in live_runs(home):  # another live run may have them
            if info.run_id != server.run_id and all(p in info.processes for p in pids):
                other = Server.of_run(info, token)
                return other, processes(other)
        raise
    return server, procs


def _from_journal(ended: EndedRun, sub: Subscription, as_json: bool) -> int:
    """Print an ended run's history of the followed processes; its recorded status."""
    events = sub.select(ended.events)
    Printer(as_json, sorted({str(e["processId"]) for e in events if e.get("processId")})).print(
        events
    )
    if ended.status is None:
        raise ClientError(
            f"run {ended.run_id} ended before {', '.join(ended.pending) or 'the processes'} did "
            f"(see 'agentwatch logs --run {ended.run_id}')"
        )
    return ended.status


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
