"""Reading a process's output pipes, and echoing them (SPEC 1 "Lines", SPEC 5).

Both output pipes of a process are read by one loop (`PipeSet`): each
round reads every open fd once without blocking, at most `READ_BYTES` per
fd, so that a flood on one stream cannot starve the other; when a round
finds nothing, a ``select.epoll`` holding both fds is awaited through
trio. What was read is journaled first; only then is it handed to the
run's single `EchoWriter`, whose byte-bounded buffer keeps the order of
writes across both streams and never holds back the journal: when it is
full the reader stops reading the pipes (the agent is slowed as a paused
terminal would slow it), with what it already read journaled.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import select
import stat
import sys
import termios
from collections import deque
from dataclasses import dataclass, field

import trio

from agentwatch.proto.prefix import Prefixer

READ_BYTES = 256 * 1024  # per fd per round; <= the line limit keeps the splitter's fast path
PARTIAL_FLUSH_S = 0.5  # SPEC 1: pending bytes without newline are flushed after this
DRAIN_AFTER_EXIT_S = 0.5  # SPEC 1: output of leftover grandchildren waited for
# Bytes read but not yet echoed, over every process of the run, before the
# pipes wait: about a second of a chatty agent ahead of a slow terminal, and
# enough that an echo nobody reads leaves the journal a pipe-full ahead.
ECHO_BUFFER_BYTES = 1024 * 1024


@dataclass
class Pump:
    """One output pipe being read: done at EOF, idle while waiting for data."""

    fd: int
    done: trio.Event = field(default_factory=trio.Event)
    idle: bool = False

    def empty(self) -> bool:
        """Whether the reader waits and nothing is left in the pipe."""
        if self.done.is_set():
            return True
        if not self.idle:
            return False
        try:
            buf = fcntl.ioctl(self.fd, termios.FIONREAD, b"\0\0\0\0")
        except OSError:
            return True
        return int.from_bytes(buf, sys.byteorder) == 0


async def drain(pumps: list[Pump], grace: float) -> None:
    """Wait for EOF on every pump; after ``grace``, stop once they sit empty.

    Output written before the exit is always read in full; a leftover
    grandchild that keeps a pipe open only delays the return by ``grace``.
    """
    deadline = trio.current_time() + grace
    while not all(p.done.is_set() for p in pumps):
        if trio.current_time() >= deadline and all(p.empty() for p in pumps):
            return
        with trio.move_on_at(max(deadline, trio.current_time() + 0.05)):
            for p in pumps:
                await p.done.wait()


class PipeSet:
    """Non-blocking read ends of one process's pipes, waited on together."""

    def __init__(self, fds: list[int]) -> None:
        self.open = list(fds)
        self._ep = select.epoll() if hasattr(select, "epoll") else None
        for fd in fds:
            os.set_blocking(fd, False)
            if self._ep is not None:
                self._ep.register(fd, select.EPOLLIN)

    async def wait(self) -> None:
        """Return once an open fd is readable (or at EOF)."""
        if self._ep is not None:
            await trio.lowlevel.wait_readable(self._ep.fileno())
            return
        async with trio.open_nursery() as nursery:  # pragma: no cover - not Linux
            for fd in self.open:
                nursery.start_soon(self._wake, fd, nursery.cancel_scope)

    @staticmethod
    async def _wake(fd: int, scope: trio.CancelScope) -> None:  # pragma: no cover
        await trio.lowlevel.wait_readable(fd)
        scope.cancel()

    def read(self, fd: int, limit: int) -> bytes | None:
        """Up to ``limit`` bytes; ``b""`` at EOF (the fd is closed); None if nothing yet."""
        try:
            data = os.read(fd, limit)
        except BlockingIOError:
            return None
        except OSError as exc:  # EIO: the slave side of a pty closed, i.e. EOF
            if exc.errno == errno.EINTR:
                return None
            data = b""
        if not data:
            self._close(fd)
        return data

    def _close(self, fd: int) -> None:
        if fd in self.open:
            self.open.remove(fd)
            if self._ep is not None:
                with contextlib.suppress(OSError, ValueError):
                    self._ep.unregister(fd)
            with contextlib.suppress(OSError):
                os.close(fd)

    def close(self) -> None:
        """Close every fd still open, and the epoll."""
        for fd in list(self.open):
            self._close(fd)
        if self._ep is not None:
            self._ep.close()


def blocks(fd: int) -> bool:
    """Whether writing to ``fd`` may block (pipe, socket, terminal)."""
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        return False
    return not (stat.S_ISREG(mode) or (stat.S_ISCHR(mode) and not os.isatty(fd)))


def write_all(fd: int, data: bytes) -> None:
    """Write every byte of ``data`` to a blocking ``fd``."""
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


class EchoWriter:
    """The one writer of agentwatch's stdout (fd 1) and stderr (fd 2).

    `put` never blocks: it queues bytes in the order they were read, across
    processes and streams. `serve` writes them, in a worker thread where the
    target may block (a pipe, a terminal), coalescing what is queued for
    one fd into one write. With ``prefix`` every line gets ``name | ``.
    """

    def __init__(self, *, prefix: bool = False) -> None:
        self.enabled = True
        self.running = False
        self.buffered = 0  # bytes queued, not yet written
        self._queue: deque[tuple[int, bytes]] = deque()
        self._queued = trio.Event()
        self._room = trio.Event()
        self._idle = trio.Event()
        self._idle.set()
        self._blocks = {1: blocks(1), 2: blocks(2)}
        self._lock = trio.StrictFIFOLock()  # one writer, even without `serve`
        self._prefixers: dict[int, Prefixer] | None = None
        if prefix:
            self._prefixers = {fd: Prefixer(colour=_isatty(fd)) for fd in (1, 2)}

    def add_name(self, name: str) -> None:
        """Register an agent whose lines will be prefixed (padding, colour)."""
        if self._prefixers is not None:
            for p in self._prefixers.values():
                p.add(name)

    @property
    def full(self) -> bool:
        """Whether readers should wait before reading more."""
        return self.enabled and self.buffered >= ECHO_BUFFER_BYTES

    def put(self, fd: int, data: bytes, name: str) -> None:
        """Queue ``data`` (read from agent ``name``) for fd 1 or 2."""
        if not self.enabled or not data:
            return
        if self._prefixers is not None:
            data = self._prefixers[fd].feed(name, data)
        self._queue.append((fd, data))
        self.buffered += len(data)
        self._idle = trio.Event() if self._idle.is_set() else self._idle
        self._queued.set()

    async def wait_room(self) -> None:
        """Wait until the buffer has room again (or echo is off)."""
        while self.full:
            await self._room.wait()

    async def wait_echoed(self) -> None:
        """Wait until everything queued was written (or echo is off)."""
        while self.running and not self._idle.is_set():
            await self._idle.wait()

    async def write_now(self, fd: int, data: bytes, name: str) -> None:
        """Echo without the writer task (an embedder that runs none): write, then return."""
        self.put(fd, data, name)
        await self._write_queued()

    async def serve(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Write queued bytes until cancelled."""
        self.running = True
        task_status.started()
        try:
            while True:
                await self._queued.wait()
                await self._write_queued()
        finally:
            self.running = False

    async def _write_queued(self) -> None:
        async with self._lock:
            await self._write_locked()

    async def _write_locked(self) -> None:
        while self._queue:
            self._queued = trio.Event()
            fd, data = self._queue.popleft()
            if self._queue and self._queue[0][0] == fd:  # coalesce a run for one fd
                parts = [data]
                while self._queue and self._queue[0][0] == fd:
                    parts.append(self._queue.popleft()[1])
                data = b"".join(parts)
            try:
                if self._blocks[fd]:
                    await trio.to_thread.run_sync(write_all, fd, data)
                else:
                    write_all(fd, data)
            except OSError:
                self._disable()  # our own stdout is gone; keep capturing
                return
            self.buffered -= len(data)
            self._wake_room()
        self._idle.set()

    def _wake_room(self) -> None:
        if not self.full:
            self._room.set()
            self._room = trio.Event()

    def _disable(self) -> None:
        self.enabled = False
        self._queue.clear()
        self.buffered = 0
        self._room.set()
        self._idle.set()


def _isatty(fd: int) -> bool:
    try:
        return os.isatty(fd)
    except OSError:
        return False
