"""A whole run: journal, hub, supervisor, server, signals, linger (SPEC 2-5).

`run_session` is what `agentwatch run` and `agentwatch up` call, and what
a trio program embeds: it starts every agent (respecting ``depends_on``),
serves the events, forwards signals, and returns the run's exit status.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import trio

from agentwatch import __version__
from agentwatch import spawn as sp
from agentwatch.agentfile import check_dependencies
from agentwatch.config import AgentSpec, DependencyCondition, ServerConfig, StdinMode
from agentwatch.errors import JournalError
from agentwatch.events import SYSTEM_ALERT, format_timestamp
from agentwatch.hub import Filter, Hub
from agentwatch.journal import Journal
from agentwatch.linger import linger
from agentwatch.paths import (
    RUN_MARKER_FILE,
    Discovery,
    new_run_id,
    runs_dir,
    write_discovery,
)
from agentwatch.supervisor import ManagedProcess, ProcState, Supervisor
from agentwatch.terminal import Console, owns_terminal, screen_fd


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


def _stderr(line: str) -> None:
    with contextlib.suppress(OSError):
        os.write(2, (line + "\n").encode("utf-8", "replace"))


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
            _stderr(f"agentwatch: {msg}")
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


@dataclass
class _Interrupts:
    """SIGINT, SIGTERM, SIGHUP and the Ctrl-C typed into a relayed terminal (SPEC 5).

    Each is forwarded and starts the grace period; a second interrupt (either
    kind) kills every tree; any of them ends ``--linger``.
    """

    supervisor: Supervisor
    linger_scope: trio.CancelScope
    seen_int: bool = False

    def signal(self, signum: int, *, delivered: bool = False) -> None:
        """``signum`` reached agentwatch (``delivered``: the agents got it too)."""
        self.linger_scope.cancel()  # a signal after the agents ended stops --linger too
        if signum == signal.SIGINT and self.seen_int:
            self.supervisor.kill_all()
            return
        self.seen_int = self.seen_int or signum == signal.SIGINT
        self.supervisor.forward_signal(signum, send=not delivered)

    def ctrl_c(self, delivered: bool) -> None:
        """A Ctrl-C typed while our terminal is relayed (raw, so no SIGINT for us)."""
        self.signal(signal.SIGINT, delivered=delivered)


def _note_exit(session: Session, proc: ManagedProcess, status: int) -> None:
    """A process started again by a restart request ended with ``status``."""
    if status != 0 and proc.name not in session.failures:
        session.failures.append(proc.name)


async def _follow_signals(interrupts: _Interrupts, console: Console | None) -> None:
    signums = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    if console is not None:
        signums.append(signal.SIGWINCH)  # our terminal was resized: so is the agent's
    with trio.open_signal_receiver(*signums) as signals:
        async for signum in signals:
            if signum == signal.SIGWINCH and console is not None:
                console.resize()
            else:
                interrupts.signal(signum)


async def _echo_json(hub: Hub) -> None:
    cursor = 0
    flt = Filter()
    while True:
        read = hub.read(cursor, flt)
        cursor = read.cursor
        if read.batches:
            data = b"".join(b.data for b in read.batches)
            await trio.to_thread.run_sync(_write_stdout, data)
            continue
        if hub.finished and cursor >= hub.last_seq:
            return
        await hub.wait_beyond(cursor)


def _write_stdout(data: bytes) -> None:
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(1, view) :]


def _open_journal(opts: SessionOptions, run_id: str) -> Journal | None:
    if opts.no_journal:
        return None
    path = opts.journal or runs_dir(opts.home) / run_id / "events.jsonl"
    journal = Journal(path)
    journal.open()
    return journal


async def run_session(
    specs: list[AgentSpec],
    opts: SessionOptions,
    *,
    on_ready: Callable[[Session], None] | None = None,
    task_status: trio.TaskStatus[Session] = trio.TASK_STATUS_IGNORED,
) -> int:
    """Run agents to completion under one hub and server; return the exit status."""
    check_dependencies("run_session", specs)  # unknown names and cycles, as for `up`
    run_id = opts.run_id or new_run_id()
    journal = None
    try:
        journal = _open_journal(opts, run_id)
    except JournalError as exc:
        _stderr(f"agentwatch: {exc}; keeping events in memory only")
    hub = Hub(journal, on_journal_error=lambda m: _stderr(f"agentwatch: {m}"))
    if journal is None and not opts.no_journal:
        hub.publish(
            SYSTEM_ALERT,
            None,
            {"level": "error", "code": "journal-error", "message": "journal could not be opened"},
        )
    watchdog = sp.Watchdog()
    console = None  # SPEC 5: in a terminal, `run`'s agent gets a relayed pty (one agent only)
    inheriting = [s for s in specs if s.stdin is StdinMode.INHERIT]
    if opts.handle_signals and len(inheriting) == 1 and owns_terminal():
        console = Console(out_fd=screen_fd(stdout_is_data=opts.echo == Echo.JSON))
    supervisor = Supervisor(
        hub,
        echo=opts.echo == Echo.RAW,
        watchdog=watchdog,
        console=console,
        prefix=opts.prefix,
        log=lambda m: _stderr(f"agentwatch: {m}"),
    )
    session = Session(run_id, hub, supervisor)
    procs = [supervisor.add(s) for s in specs]
    for proc in procs:
        if proc.spec.dependencies:
            proc.state = ProcState.PENDING  # until _serve_agent sees its depends_on hold
    discovery_path = runs_dir(opts.home) / run_id / "server.json"
    # run.json marks every live run, served or not, for `agentwatch runs`
    marker_path = runs_dir(opts.home) / run_id / RUN_MARKER_FILE
    with contextlib.suppress(OSError):
        write_discovery(
            marker_path,
            Discovery(
                run_id,
                "",
                None,
                os.getpid(),
                format_timestamp(session.started),
                [s.name for s in specs],
            ),
        )
    if opts.subreaper:
        sp.become_subreaper()
    watchdog.start()
    linger_scope = trio.CancelScope()
    interrupts = _Interrupts(supervisor, linger_scope)
    try:
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.serve_journal)
            if opts.handle_signals:
                nursery.start_soon(_follow_signals, interrupts, console)
            echo_done = trio.Event()
            if opts.echo == Echo.JSON:

                async def echo_task() -> None:
                    try:
                        await _echo_json(hub)
                    finally:
                        echo_done.set()

                nursery.start_soon(echo_task)
            else:
                echo_done.set()
            ctx = None
            if opts.server is not None:
                from agentwatch.server import serve
                from agentwatch.server.context import ServerContext

                ctx = ServerContext(hub, supervisor, opts.server, run_id, __version__)
                session.url = await nursery.start(serve, ctx)
                session.token = opts.server.token
                supervisor.env.update({"AGENTWATCH_URL": session.url, "AGENTWATCH_RUN_ID": run_id})
                if session.token:
                    supervisor.env["AGENTWATCH_TOKEN"] = session.token
                write_discovery(
                    discovery_path,
                    Discovery(
                        run_id,
                        session.url,
                        session.token,
                        os.getpid(),
                        format_timestamp(session.started),
                        [s.name for s in specs],
                    ),
                )
                if not opts.quiet_server:  # CI logs are often public: no token there
                    ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
                    hide = bool(session.token and ci)
                    token = f"?token={session.token}" if session.token and not hide else ""
                    hint = f" (CI is set: the token is in {discovery_path})" if hide else ""
                    _stderr(f"agentwatch: serving {session.url}/{token}{hint}")
            else:
                supervisor.env["AGENTWATCH_RUN_ID"] = run_id
            task_status.started(session)
            if on_ready is not None:
                on_ready(session)
            by_name = {p.name: p for p in procs}
            await nursery.start(supervisor.serve_echo)  # the one writer of our stdout/stderr
            # exited processes started again (SPEC 4) live as long as the run, not the phase
            await nursery.start(supervisor.serve_restarts, nursery, partial(_note_exit, session))
            relay: contextlib.AbstractAsyncContextManager[None] = contextlib.nullcontext()
            if console is not None:  # raw while the agents run; cooked again for the linger
                relay = console.open_relay(interrupts.ctrl_c)
            async with relay, trio.open_nursery() as agents:
                for proc in procs:
                    deps = [by_name[d] for d in proc.spec.depends_on]
                    agents.start_soon(_serve_agent, session, proc, deps)
            while True:
                await supervisor.wait_restarted()
                await supervisor.wait_echoed()
                hub.close()
                await echo_done.wait()
                lingering = partial(linger, hub, opts.linger, interrupts.linger_scope)
                if ctx is None or not await supervisor.unless_restarted(lingering):
                    break
                hub.reopen()  # a restart during the linger: the run is live again
                interrupts.linger_scope = trio.CancelScope()  # a scope is entered once
            supervisor.ending = True  # restarts now answer 409
            if ctx is not None:
                ctx.shutting_down = True
            nursery.cancel_scope.cancel()
    finally:
        for path in (discovery_path, marker_path):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            marker_path.parent.rmdir()  # only if empty: a run that kept no journal here
        watchdog.close()
        if journal is not None:
            journal.close()
    return exit_status(session)


def exit_status(session: Session) -> int:
    """0 when every agent succeeded, else the status of the first that failed.

    A `skipped` agent (its depends_on failed) has no status of its own: the run
    exits with the status of the failure that caused it, and 1 only when nothing
    else failed (a dependency stopped before it started).
    """
    procs = session.supervisor.processes
    for name in session.failures:
        status = procs[name].status
        if status:
            return status
    for proc in procs.values():
        if proc.status:
            return proc.status
    if any(p.state is ProcState.SKIPPED for p in procs.values()):
        return 1
    return 0


def new_token() -> str:
    """A random token for a run's server."""
    return secrets.token_urlsafe(24)


__all__ = ["Echo", "Session", "SessionOptions", "exit_status", "new_token", "run_session"]

if sys.platform == "win32":  # pragma: no cover
    raise ImportError("agentwatch needs a POSIX system")
