"""The steps `run_session` composes: `open_*` resources and `serve_*` tasks.

Each resource is a context manager that undoes itself on exit; each task is
started with ``nursery.start`` and reports, through ``task_status.started``,
what the next step needs (the bound URL, the echo's end). `run_session`
(in `runner`) lists them in the order a run takes them.
"""

from __future__ import annotations

import contextlib
import os
import signal
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from agentwatch import spawn as sp
from agentwatch.errors import JournalError
from agentwatch.hub import Filter, Hub
from agentwatch.journal import Journal
from agentwatch.paths import DISCOVERY_FILE, RUN_MARKER_FILE, Discovery, write_discovery
from agentwatch.supervisor import Supervisor
from agentwatch.terminal import Console

if TYPE_CHECKING:
    from agentwatch.server.context import ServerContext


def log(message: str) -> None:
    """One line of agentwatch's own on stderr (``agentwatch: message``); never raises."""
    with contextlib.suppress(OSError):
        os.write(2, f"agentwatch: {message}\n".encode("utf-8", "replace"))


@contextlib.contextmanager
def open_journal(path: Path | None) -> Iterator[Journal | None]:
    """The run's journal at ``path`` (None: ``--no-journal``), closed on exit.

    One that cannot be opened is None too: the run keeps its events in
    memory and says so here (and the caller publishes the alert).
    """
    journal = None
    if path is not None:
        try:
            journal = Journal(path)
            journal.open()
        except JournalError as exc:
            log(f"{exc}; keeping events in memory only")
            journal = None
    try:
        yield journal
    finally:
        if journal is not None:
            journal.close()


@contextlib.contextmanager
def open_watchdog(*, subreaper: bool) -> Iterator[sp.Watchdog]:
    """The helper that kills the agents' trees if we die (and, with ``subreaper``,
    orphaned descendants are ours to find); stopped on exit."""
    if subreaper:
        sp.become_subreaper()
    watchdog = sp.Watchdog()
    watchdog.start()
    try:
        yield watchdog
    finally:
        watchdog.close()


@dataclass(frozen=True)
class RunFiles:
    """A run's directory under ``<home>/runs``: ``run.json`` marks every live run,
    served or not (for `agentwatch runs`); ``server.json`` says where it serves."""

    directory: Path

    @property
    def marker(self) -> Path:
        """``run.json``."""
        return self.directory / RUN_MARKER_FILE

    @property
    def discovery(self) -> Path:
        """``server.json``."""
        return self.directory / DISCOVERY_FILE


@contextlib.contextmanager
def open_run_files(directory: Path, info: Discovery) -> Iterator[RunFiles]:
    """Mark the run live (best effort); on exit remove both files, and the
    directory when that leaves it empty (a run that kept no journal there)."""
    files = RunFiles(directory)
    with contextlib.suppress(OSError):
        write_discovery(files.marker, info)
    try:
        yield files
    finally:
        for path in (files.discovery, files.marker):
            with contextlib.suppress(OSError):
                path.unlink()
        with contextlib.suppress(OSError):
            directory.rmdir()  # only if empty


@dataclass
class Interrupts:
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


async def serve_signals(
    interrupts: Interrupts,
    console: Console | None,
    *,
    task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
) -> None:
    """The one place signals arrive: started once they are caught, until cancelled."""
    signums = [signal.SIGINT, signal.SIGTERM, signal.SIGHUP]
    if console is not None:
        signums.append(signal.SIGWINCH)  # our terminal was resized: so is the agent's
    with trio.open_signal_receiver(*signums) as signals:
        task_status.started()
        async for signum in signals:
            if signum == signal.SIGWINCH and console is not None:
                console.resize()
            else:
                interrupts.signal(signum)


class JsonEcho:
    """`run --json`: every event on our stdout as a JSON line, for the whole run.

    It follows the hub through a restart during the linger too (`Hub.reopen`),
    and `wait_written` tells when everything of the finished hub is written.
    """

    def __init__(self, hub: Hub) -> None:
        self.hub = hub
        self.cursor = 0
        self._progress = trio.Event()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write events as they become visible, until cancelled."""
        task_status.started()
        hub, flt = self.hub, Filter()
        while True:
            read = hub.read(self.cursor, flt)
            if read.batches:
                data = b"".join(b.data for b in read.batches)
                await trio.to_thread.run_sync(_write_stdout, data)
            moved = read.cursor != self.cursor
            self.cursor = read.cursor
            if moved:
                self._note_progress()
            elif hub.finished:
                self._note_progress()
                await hub.wait_reopened()
            else:
                await hub.wait_beyond(self.cursor)

    def _note_progress(self) -> None:
        self._progress.set()
        self._progress = trio.Event()

    async def wait_written(self) -> None:
        """Return once the hub is finished and every event of it is on stdout."""
        while not (self.hub.finished and self.cursor >= self.hub.last_seq):
            await self._progress.wait()


def _write_stdout(data: bytes) -> None:
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(1, view) :]


async def serve_server(
    ctx: ServerContext,
    files: RunFiles,
    info: Discovery,
    *,
    quiet: bool,
    task_status: trio.TaskStatus[str] = trio.TASK_STATUS_IGNORED,
) -> None:
    """Serve ``ctx`` until cancelled. Once bound: write ``server.json``, print the
    serving line (unless ``quiet``), and report the URL."""
    from agentwatch.server import serve

    token = ctx.config.token
    async with trio.open_nursery() as nursery:
        url: str = await nursery.start(serve, ctx)
        write_discovery(files.discovery, replace(info, url=url, token=token))
        if not quiet:
            log(serving_line(url, token, files.discovery))
        task_status.started(url)


def serving_line(url: str, token: str | None, discovery: Path) -> str:
    """Where the run serves; CI logs are often public, so no token there."""
    ci = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")
    hide = bool(token and ci)
    query = f"?token={token}" if token and not hide else ""
    hint = f" (CI is set: the token is in {discovery})" if hide else ""
    return f"serving {url}/{query}{hint}"
