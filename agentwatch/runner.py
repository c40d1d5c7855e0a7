"""A whole run: journal, hub, supervisor, server, signals, linger (SPEC 2-5).

`run_session` is what `agentwatch run` and `agentwatch up` call, and what
a trio program embeds: it starts every agent (respecting ``depends_on``),
serves the events, forwards signals, and returns the run's exit status.
It reads top to bottom as the run's steps, from `session_steps` and `linger`.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from agentwatch import __version__
from agentwatch import spawn as sp
from agentwatch.agentfile import check_dependencies
from agentwatch.config import AgentSpec, DependencyCondition, ServerConfig, StdinMode
from agentwatch.events import SYSTEM_ALERT, format_timestamp
from agentwatch.exitcodes import run_status
from agentwatch.hub import Hub
from agentwatch.journal import Journal
from agentwatch.linger import linger
from agentwatch.paths import JOURNAL_FILE, Discovery, new_run_id, runs_dir
from agentwatch.session_steps import (
    Interrupts,
    JsonEcho,
    log,
    open_journal,
    open_run_files,
    open_watchdog,
    serve_server,
    serve_signals,
)
from agentwatch.supervisor import ManagedProcess, ProcState, Supervisor
from agentwatch.terminal import Console, owns_terminal, screen_fd

if TYPE_CHECKING:
    from agentwatch.server.context import ServerContext


class Echo:
    """What `run` prints of its agents: raw output, events as JSON, or nothing."""

    RAW = "raw"
    JSON = "json"
    NONE = "none"


@dataclass(frozen=True)
class SessionOptions:
    """Run-wide options (per-agent ones live in `AgentSpec`)."""

    server: ServerConfig | None = field(default_factory=ServerConfig)
    journal: Path | None = None  # default: <home>/runs/<runId>/events.jsonl
    no_journal: bool = False
    home: Path | None = None
    echo: str = Echo.RAW
    quiet_server: bool = False
    linger: float | None = None
    summary: bool = False
    handle_signals: bool = True
    run_id: str | None = None
    subreaper: bool = False
    prefix: bool = False  # echo `name | ` before each line (`up`)


@dataclass
class Session:
    """The live objects of a run, for embedding programs and the summary."""

    run_id: str
    hub: Hub
    supervisor: Supervisor
    url: str | None = None
    token: str | None = None
    started: float = field(default_factory=time.time)
    failures: list[str] = field(default_factory=list)


async def run_session(
    specs: list[AgentSpec],
    opts: SessionOptions,
    *,
    on_ready: Callable[[Session], None] | None = None,
    task_status: trio.TaskStatus[Session] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Run agents to completion under one hub and server; return the exit status.

    Read top to bottom, the body is the run's steps in order: each resource an
    `open_*` context (undone on the way out), each task a `serve_*` started with
    ``nursery.start``; the server binds before the agents are given its URL.
    """
    check_dependencies("run_session", specs)  # unknown names and cycles, as for `up`
    run_id = opts.run_id or new_run_id()
    with (
        open_journal(_journal_path(opts, run_id)) as journal,
        open_watchdog(subreaper=opts.subreaper) as watchdog,
    ):
        session = _new_session(specs, opts, run_id, journal, watchdog)
        supervisor, hub, info = session.supervisor, session.hub, _run_info(session)
        interrupts = Interrupts(supervisor, trio.CancelScope())
        with open_run_files(runs_dir(opts.home) / run_id, info) as files:
            async with trio.open_nursery() as nursery:
                await nursery.start(hub.serve_journal)
                if opts.handle_signals:
                    await nursery.start(serve_signals, interrupts, supervisor.console)
                json_echo = await _start_json_echo(nursery, hub, opts.echo)
                ctx = _server_context(session, opts.server)
                if ctx is not None:  # bound (and in server.json) before agents get the URL
                    serve = partial(serve_server, ctx, files, info, quiet=opts.quiet_server)
                    session.url, session.token = await nursery.start(serve), ctx.config.token
                supervisor.env.update(_agent_env(session))
                task_status.started(session)
                if on_ready is not None:
                    on_ready(session)
                await nursery.start(supervisor.serve_echo)  # the one writer of stdout/stderr
                # exited processes started again (SPEC 4) live as long as the run, not the phase
                on_exit = partial(_note_exit, session)
                await nursery.start(supervisor.serve_restarts, nursery, on_exit)
                await _serve_agents(session, interrupts)
                await _linger_until_final(session, opts.linger, interrupts, json_echo, ctx)
                _begin_shutdown(supervisor, ctx)
                nursery.cancel_scope.cancel()
    return exit_status(session)


def _journal_path(opts: SessionOptions, run_id: str) -> Path | None:
    if opts.no_journal:
        return None
    return opts.journal or runs_dir(opts.home) / run_id / JOURNAL_FILE


def _new_session(
    specs: list[AgentSpec],
    opts: SessionOptions,
    run_id: str,
    journal: Journal | None,
    watchdog: sp.Watchdog,
) -> Session:
    """The hub (with an alert if the journal could not be opened) and the supervisor
    with every agent added: `pending` while it has depends_on to wait for."""
    hub = Hub(journal, on_journal_error=log)
    if journal is None and not opts.no_journal:
        hub.publish(
            SYSTEM_ALERT,
            None,
            {"level": "error", "code": "journal-error", "message": "journal could not be opened"},
        )
    echo = opts.echo == Echo.RAW
    console = _relayed_console(specs, opts)
    supervisor = Supervisor(
        hub, echo=echo, watchdog=watchdog, console=console, prefix=opts.prefix, log=log
    )
    for spec in specs:
        proc = supervisor.add(spec)
        if proc.spec.dependencies:
            proc.state = ProcState.PENDING  # until _serve_agent sees its depends_on hold
    return Session(run_id, hub, supervisor)


def _relayed_console(specs: list[AgentSpec], opts: SessionOptions) -> Console | None:
    """SPEC 5: in a terminal, `run`'s agent gets a relayed pty (one agent only)."""
    inheriting = [s for s in specs if s.stdin is StdinMode.INHERIT]
    if opts.handle_signals and len(inheriting) == 1 and owns_terminal():
        return Console(out_fd=screen_fd(stdout_is_data=opts.echo == Echo.JSON))
    return None


def _run_info(session: Session) -> Discovery:
    """What run.json says (server.json adds the URL and token once bound)."""
    names = list(session.supervisor.processes)
    started = format_timestamp(session.started)
    return Discovery(session.run_id, "", None, os.getpid(), started, names)


async def _start_json_echo(nursery: trio.Nursery, hub: Hub, echo: str) -> JsonEcho | None:
    """Start the JSON echo (`run --json`) if asked for."""
    if echo != Echo.JSON:
        return None
    json_echo = JsonEcho(hub)
    await nursery.start(json_echo.serve)
    return json_echo


def _server_context(session: Session, config: ServerConfig | None) -> ServerContext | None:
    """What the server's handlers reach (None: ``--no-server``)."""
    if config is None:
        return None
    from agentwatch.server.context import ServerContext

    return ServerContext(session.hub, session.supervisor, config, session.run_id, __version__)


def _agent_env(session: Session) -> dict[str, str]:
    """What the agents learn of the run (SPEC 3): its id, and where it serves."""
    env = {"AGENTWATCH_RUN_ID": session.run_id}
    if session.url is not None:
        env["AGENTWATCH_URL"] = session.url
    if session.token:
        env["AGENTWATCH_TOKEN"] = session.token
    return env


async def _serve_agents(session: Session, interrupts: Interrupts) -> None:
    """Serve every agent, each once its depends_on hold, until all are final.

    Our terminal is raw and relayed only for this phase: cooked again for the linger.
    """
    procs = list(session.supervisor.processes.values())
    by_name = {p.name: p for p in procs}
    console = session.supervisor.console
    relay: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
    if console is not None:
        relay = console.open_relay(interrupts.ctrl_c)
    async with relay, trio.open_nursery() as agents:
        for proc in procs:
            deps = [by_name[d] for d in proc.spec.depends_on]
            agents.start_soon(_serve_agent, session, proc, deps)


async def _linger_until_final(
    session: Session,
    seconds: float | None,
    interrupts: Interrupts,
    json_echo: JsonEcho | None,
    ctx: ServerContext | None,
) -> None:
    """Flush, close the hub and linger (SPEC 6) while serving; a restart during the
    linger makes the run live again, and it lingers again once that is final."""
    supervisor, hub = session.supervisor, session.hub
    while True:
        await supervisor.wait_restarted()
        await supervisor.wait_echoed()
        hub.close()
        if json_echo is not None:
            await json_echo.wait_written()
        lingering = partial(linger, hub, seconds, interrupts.linger_scope)
        if ctx is None or not await supervisor.unless_restarted(lingering):
            return
        hub.reopen()  # a restart during the linger: the run is live again
        interrupts.linger_scope = trio.CancelScope()  # a scope is entered once


def _begin_shutdown(supervisor: Supervisor, ctx: ServerContext | None) -> None:
    """The run is over: restarts now answer 409, and /api/health says so."""
    supervisor.ending = True
    if ctx is not None:
        ctx.shutting_down = True


def _unmet(dep: ManagedProcess, cond: DependencyCondition) -> str | None:
    """Why ``dep`` fails ``cond`` once it is decided (None: it holds)."""
    if dep.state is ProcState.SKIPPED:
        return "was skipped"
    if dep.pid is None:  # spawn failed, or stopped before it started
        return "did not start"
    if cond is DependencyCondition.SUCCEEDED and dep.status != 0:
        if dep.signal:
            return f"was killed by {dep.signal} (status {dep.status})"
        return f"exited with status {dep.status}"
    return None


async def _wait_dependencies(
    proc: ManagedProcess, deps: list[ManagedProcess]
) -> tuple[ManagedProcess, str] | None:
    """Wait until each condition of ``proc``'s depends_on holds; else the first that
    cannot, and why (at once: the others are not waited for)."""
    failed: list[tuple[ManagedProcess, str]] = []
    conditions = proc.spec.dependencies

    async def one(dep: ManagedProcess, scope: trio.CancelScope) -> None:
        cond = conditions[dep.name]
        started = cond is DependencyCondition.STARTED
        await (dep.running_event if started else dep.done_event).wait()  # final exit
        why = _unmet(dep, cond)
        if why is not None:
            failed.append((dep, f"{dep.name} (in depends_on, {cond.value}) {why}"))
            scope.cancel()

    async with trio.open_nursery() as nursery:
        for dep in deps:
            nursery.start_soon(one, dep, nursery.cancel_scope)
    return failed[0] if failed else None


async def _serve_agent(session: Session, proc: ManagedProcess, deps: list[ManagedProcess]) -> None:
    """Wait for ``proc``'s depends_on (state `pending`), then serve it; `skipped` if
    a condition cannot hold. A stop while pending ends the wait at once."""
    supervisor = session.supervisor
    failed = None
    while deps and proc.state is ProcState.PENDING:
        with trio.CancelScope() as scope:
            proc._wait_scope = scope  # what Supervisor.stop cancels
            failed = await _wait_dependencies(proc, deps)
        proc._wait_scope = None
        if proc.stop_reason == "restart" and not supervisor.shutting_down:
            proc.state, proc.stop_reason = ProcState.PENDING, None  # still waiting
            continue
        break
    if supervisor.shutting_down or proc.state is ProcState.STOPPING or failed is not None:
        if proc.state is ProcState.STOPPING or supervisor.shutting_down:
            proc.state, proc.status = ProcState.EXITED, 0  # stopped before it started
        else:
            assert failed is not None
            # Not a failure of its own: the run's status is the dependency's (exit_status).
            proc.state = ProcState.SKIPPED
            msg = f"{proc.name} not started: {failed[1]}"
            log(msg)
            session.hub.publish(
                SYSTEM_ALERT,
                proc.name,
                {"level": "error", "message": msg, "code": "dependency-failed"},
            )
        proc.done_event.set()
        proc.running_event.set()
        return
    proc.state = ProcState.STARTING
    status = await supervisor.serve_process(proc)
    if status != 0:
        session.failures.append(proc.name)


def _note_exit(session: Session, proc: ManagedProcess, status: int) -> None:
    """A process started again by a restart request ended with ``status``."""
    if status != 0 and proc.name not in session.failures:
        session.failures.append(proc.name)


def exit_status(session: Session) -> int:
    """0 when every agent succeeded, else the status of the first that failed.

    A `skipped` agent (its depends_on failed) has no status of its own: the run
    exits with the status of the failure that caused it, and 1 only when nothing
    else failed (a dependency stopped before it started).
    """
    procs = session.supervisor.processes
    status = run_status(
        [procs[name].status for name in session.failures] + [p.status for p in procs.values()]
    )
    if status:
        return status
    if any(p.state is ProcState.SKIPPED for p in procs.values()):
        return 1
    return 0


def new_token() -> str:
    """A random token for a run's server."""
    return secrets.token_urlsafe(24)


__all__ = ["Echo", "Session", "SessionOptions", "exit_status", "new_token", "run_session"]

if sys.platform == "win32":  # pragma: no cover
    raise ImportError("agentwatch needs a POSIX system")
