"""Starting children and ending process trees (SPEC 5), Linux first.

Children are forked from the main thread with ``subprocess.Popen``: a
`PR_SET_PDEATHSIG` set in the child fires when the *forking thread* exits,
and trio's worker threads exit after 10 s idle. Each child gets its own
process group; one relayed from our terminal (`agentwatch.terminal`) leads
a new session on its own pseudo-terminal, its group id still its pid. A
small `Watchdog` process, in its own session, holds the read end of a pipe
that only agentwatch can write: if agentwatch dies, even by SIGKILL, the
read returns EOF and the watchdog SIGKILLs every registered process group.
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import fcntl
import os
import signal
import struct
import subprocess
import sys
import termios
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from agentwatch.config import StdinMode
from agentwatch.errors import SpawnError
from agentwatch.exitcodes import NOT_EXECUTABLE, NOT_EXECUTABLE_TEXT, NOT_FOUND

if TYPE_CHECKING:
    from agentwatch.terminal import Console, PtySettings

PR_SET_PDEATHSIG = 1
PR_SET_CHILD_SUBREAPER = 36
F_SETPIPE_SZ = 1031
PIPE_BYTES = 1024 * 1024  # larger pipes: fewer wake-ups for chatty agents
DEFAULT_WINSIZE = (40, 120)  # rows, columns when agentwatch has no terminal

_WATCHDOG_CODE = r"""
import os, signal, sys
groups = set()
signal.signal(signal.SIGINT, signal.SIG_IGN)
signal.signal(signal.SIGHUP, signal.SIG_IGN)
f = sys.stdin.buffer
for line in iter(f.readline, b""):
    line = line.strip()
    if line[:1] == b"+": groups.add(int(line[1:]))
    elif line[:1] == b"-": groups.discard(int(line[1:]))
for g in groups:
    try: os.killpg(g, signal.SIGKILL)
    except OSError: pass
"""


def _libc() -> ctypes.CDLL | None:
    if not sys.platform.startswith("linux"):
        return None
    try:
        return ctypes.CDLL(None, use_errno=True)
    except OSError:
        return None


def become_subreaper() -> None:
    """Adopt orphaned descendants (Linux) so tree kills can find them."""
    libc = _libc()
    if libc is not None:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


class Watchdog:
    """A helper process that kills registered process groups if we die."""

    def __init__(self) -> None:
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        """Start the watchdog (no-op where it cannot work)."""
        if not sys.platform.startswith("linux"):
            return
        self._proc = subprocess.Popen(
            [sys.executable, "-S", "-c", _WATCHDOG_CODE],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
            close_fds=True,
        )

    def _send(self, line: bytes) -> None:
        if self._proc is not None and self._proc.stdin is not None:
            with contextlib.suppress(OSError):
                self._proc.stdin.write(line)
                self._proc.stdin.flush()

    def add(self, pgid: int) -> None:
        """Kill this group if agentwatch dies."""
        self._send(b"+%d\n" % pgid)

    def remove(self, pgid: int) -> None:
        """Stop watching this group."""
        self._send(b"-%d\n" % pgid)

    def close(self) -> None:
        """Stop the watchdog without killing anything."""
        proc, self._proc = self._proc, None
        if proc is None:
            return
        with contextlib.suppress(OSError):
            proc.kill()
        with contextlib.suppress(OSError):
            if proc.stdin is not None:
                proc.stdin.close()
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=1)


@dataclass
class Spawned:
    """A started child and the read ends of its output."""

    popen: subprocess.Popen[bytes]
    stdout_fd: int
    stderr_fd: int
    pidfd: int
    tty: bool

    @property
    def pid(self) -> int:
        """The child's pid (also its process group id)."""
        return self.popen.pid


def _winsize() -> tuple[int, int]:
    for fd in (0, 1, 2):
        with contextlib.suppress(OSError):
            rows, cols = os.get_terminal_size(fd).lines, os.get_terminal_size(fd).columns
            if rows and cols:
                return rows, cols
    return DEFAULT_WINSIZE


def _make_preexec(controlling_terminal: bool) -> Callable[[], None]:
    libc = _libc()

    def preexec() -> None:  # runs in the child, after setsid or setpgid
        if libc is not None:
            libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        signal.signal(signal.SIGPIPE, signal.SIG_DFL)
        if controlling_terminal:  # stdin is the new pty, and we lead a new session
            with contextlib.suppress(OSError):
                fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    return preexec


def _open_pty(settings: PtySettings | None) -> tuple[int, int]:
    """A new pseudo-terminal (master, slave) with ``settings``, else ours or 120x40."""
    master, slave = os.openpty()
    if settings is not None:
        termios.tcsetattr(slave, termios.TCSANOW, settings.attrs)
        fcntl.ioctl(slave, termios.TIOCSWINSZ, settings.winsize)
    else:
        rows, cols = _winsize()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
    return master, slave


def _grow_pipe(fd: int) -> None:
    with contextlib.suppress(OSError):
        fcntl.fcntl(fd, F_SETPIPE_SZ, PIPE_BYTES)


def spawn(
    argv: Iterable[str],
    *,
    cwd: str | None,
    env: dict[str, str],
    stdin: StdinMode,
    tty: bool,
    console: Console | None = None,
) -> Spawned:
    """Start ``argv`` in its own process group; raise `SpawnError` on failure.

    With a relaying ``console`` and ``stdin`` inherited, the child's stdin (and
    with ``tty`` its stdout) is a new pseudo-terminal, its controlling
    terminal in a new session, and the master goes to ``console.attach``.
    Otherwise stdin is ours or /dev/null, and ``tty`` makes stdout a pty.
    """
    argv = list(argv)
    relayed = console.pty_settings() if console is not None and stdin is StdinMode.INHERIT else None
    pty = _open_pty(relayed) if relayed is not None or tty else None
    if tty and pty is not None:
        out_r, out_w = pty
    else:
        out_r, out_w = os.pipe()
        _grow_pipe(out_w)
    err_r, err_w = os.pipe()
    _grow_pipe(err_w)
    ours = {out_r, out_w, err_r, err_w, *(pty or ())}
    child_stdin: int | None = None if stdin is StdinMode.INHERIT else subprocess.DEVNULL
    if relayed is not None and pty is not None:
        child_stdin = pty[1]
    try:
        popen = subprocess.Popen(
            argv,
            cwd=cwd,
            env=env,
            stdin=child_stdin,
            stdout=out_w,
            stderr=err_w,
            close_fds=True,
            start_new_session=relayed is not None,  # a session leader's pid is its group's
            process_group=None if relayed is not None else 0,
            preexec_fn=_make_preexec(controlling_terminal=relayed is not None),
        )
    except FileNotFoundError as exc:
        _close(ours)
        where = f" (in {cwd})" if cwd and not os.path.isdir(cwd) else ""
        raise SpawnError(f"command not found: {argv[0]}{where}", exit_code=NOT_FOUND) from exc
    except (PermissionError, OSError) as exc:
        _close(ours)
        denied = isinstance(exc, PermissionError) or exc.errno == errno.ENOEXEC
        code = NOT_EXECUTABLE if denied else NOT_FOUND
        message = f"{NOT_EXECUTABLE_TEXT} {argv[0]}: {exc.strerror}"
        raise SpawnError(message, exit_code=code) from exc
    _close({out_w, err_w, *(pty[1:] if pty else ())})  # the child's ends
    pidfd = os.pidfd_open(popen.pid)
    if console is not None and relayed is not None and pty is not None:
        # with --tty the supervisor reads (and closes) the master: the console gets its own
        console.attach(os.dup(pty[0]) if tty else pty[0], relay_output=not tty)
    return Spawned(popen, out_r, err_r, pidfd, tty)


def _close(fds: Iterable[int]) -> None:
    for fd in fds:
        with contextlib.suppress(OSError):
            os.close(fd)


def signal_group(pgid: int, sig: int) -> bool:
    """Send ``sig`` to a process group; False if it is gone."""
    try:
        os.killpg(pgid, sig)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False
    return True


def tree_pids(pid: int) -> list[int]:
    """The pids of ``pid``'s descendants (psutil), deepest last."""
    import psutil

    try:
        return [p.pid for p in psutil.Process(pid).children(recursive=True)]
    except psutil.Error:
        return []


def kill_tree(pid: int, pgid: int, extra: Iterable[int] = ()) -> None:
    """SIGKILL a process, its descendants and its process group."""
    pids = {pid, *tree_pids(pid), *extra}
    signal_group(pgid, signal.SIGKILL)
    for p in pids:
        with contextlib.suppress(OSError):
            os.kill(p, signal.SIGKILL)
