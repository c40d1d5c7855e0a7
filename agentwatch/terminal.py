"""agentwatch's own terminal, relayed to an agent's pseudo-terminal (SPEC 5, 11).

When `run` is in the foreground of a terminal, its agent gets a new
pseudo-terminal as stdin and controlling terminal (`spawn.spawn` makes it
from `Console.pty_settings` and hands the master to `Console.attach`), the
way script(1), tmux and docker do it. While the agents run
(`Console.open_relay`), our terminal is raw and every key passes through
agentwatch::

    keys    our stdin -> the pty master; its line discipline echoes them and
            turns Ctrl-C into SIGINT for the agent's foreground group
    screen  the pty master -> our stdout: that echo, and what the agent writes
            to /dev/tty (not journaled). With --tty the master is the agent's
            stdout too, which the supervisor reads and journals; the relay
            then only writes keys to it.
    size    SIGWINCH (`Console.resize`) -> TIOCSWINSZ on the master

So each Ctrl-C is seen here, and ``on_ctrl_c`` counts it: the first starts
the grace period, the second kills the tree, whatever the agent traps.
Output processing stays on in raw mode, so the agent's piped output and our
own lines still start at column 0. The terminal's settings come back on
every way out of `open_relay`.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import struct
import termios
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

import trio

KEY_READ_BYTES = 4096  # per read of our terminal: keys come by the handful, pastes in pieces
SCREEN_READ_BYTES = 64 * 1024  # per read of a pty master
KEY_CHUNKS_BUFFERED = 64  # reads waiting for an agent that reads no keys; then dropped, as a
#                           full terminal drops them (a dropped Ctrl-C is signalled by us)
PTYS_BUFFERED = 4  # ptys waiting for the screen copier: one per spawn, taken at once
DEFAULT_WINSIZE = struct.pack("HHHH", 40, 120, 0, 0)  # SPEC 5: 120x40 when ours has no size
NO_KEY = b"\0"  # _POSIX_VDISABLE on Linux: a special character switched off


def owns_terminal(fd: int = 0) -> bool:
    """Whether ``fd`` is a terminal whose foreground process group is ours."""
    try:
        return os.isatty(fd) and os.tcgetpgrp(fd) == os.getpgrp()
    except OSError:
        return False


def screen_fd(*, stdout_is_data: bool) -> int:
    """Where the agent's pty shows: the first of our stdout and stderr on a terminal.

    ``stdout_is_data`` (--json) keeps stdout for events; with neither on a
    terminal, stdout (else stderr) as script(1) does.
    """
    candidates = (2,) if stdout_is_data else (1, 2)
    for fd in candidates:
        with contextlib.suppress(OSError):
            if os.isatty(fd):
                return fd
    return candidates[0]


@dataclass(frozen=True)
class PtySettings:
    """What a new pseudo-terminal copies from ours: termios settings and window size."""

    attrs: list[Any]
    winsize: bytes  # a packed struct winsize


@dataclass(eq=False)
class _Pty:
    """The master of one agent's pseudo-terminal, owned by the console."""

    fd: int
    relay_output: bool  # False with --tty: the supervisor reads this master
    closed: bool = False

    def interrupt_key(self) -> bytes | None:
        """The key its line discipline turns into SIGINT now, if any."""
        try:
            attrs = termios.tcgetattr(self.fd)
        except termios.error:
            return None
        key = attrs[6][termios.VINTR]
        return key if attrs[3] & termios.ISIG and key != NO_KEY else None


def _raw(attrs: list[Any]) -> list[Any]:
    """``attrs`` made raw for input (as cfmakeraw), with output processing kept."""
    new = [*attrs[:6], list(attrs[6])]
    new[0] &= ~(
        termios.BRKINT
        | termios.ICRNL
        | termios.IGNCR
        | termios.INLCR
        | termios.INPCK
        | termios.ISTRIP
        | termios.IXON
        | termios.PARMRK
    )
    new[2] = (new[2] & ~(termios.CSIZE | termios.PARENB)) | termios.CS8
    new[3] &= ~(termios.ECHO | termios.ECHONL | termios.ICANON | termios.ISIG | termios.IEXTEN)
    new[6][termios.VMIN] = 1
    new[6][termios.VTIME] = 0
    return new


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    with contextlib.suppress(OSError):
        while view:
            view = view[os.write(fd, view) :]


class Console:
    """Our terminal (``fd``) and the pseudo-terminal of the agent it is relayed to.

    ``out_fd`` shows the agent's pty (`screen_fd`). A spawn asks `pty_settings`
    (None unless relaying) and gives the master to `attach`; a restart's new
    pty replaces the old one.
    """

    def __init__(self, fd: int = 0, out_fd: int = 1) -> None:
        self.fd = fd
        self.out_fd = out_fd
        self._saved: list[Any] | None = None  # our settings, while the relay runs
        self._pty: _Pty | None = None
        self._attached: trio.Event | None = None
        self._screens: trio.MemorySendChannel[_Pty] | None = None

    def pty_settings(self) -> PtySettings | None:
        """Settings for an agent's new pty; None when nothing would relay it."""
        if self._saved is None:
            return None
        winsize = DEFAULT_WINSIZE
        with contextlib.suppress(OSError):
            size = fcntl.ioctl(self.fd, termios.TIOCGWINSZ, DEFAULT_WINSIZE)
            rows, cols = struct.unpack("HH", size[:4])
            winsize = size if rows and cols else winsize  # a terminal of size 0x0 says nothing
        return PtySettings(self._saved, winsize)

    def attach(self, master: int, *, relay_output: bool) -> None:
        """Relay to this pty master from now on; the console owns (and closes) it."""
        os.set_blocking(master, False)
        self._retire()
        self._pty = pty = _Pty(master, relay_output)
        if self._attached is not None:
            self._attached.set()
        if relay_output and self._screens is not None:
            try:
                self._screens.send_nowait(pty)
            except (trio.WouldBlock, trio.ClosedResourceError):
                pass  # cannot happen while relaying: one pty per spawn, taken at once

    def resize(self) -> None:
        """Give the agent's pty our window size (on SIGWINCH)."""
        pty = self._pty
        if pty is None or pty.closed:
            return
        with contextlib.suppress(OSError):
            size = fcntl.ioctl(self.fd, termios.TIOCGWINSZ, b"\0" * 8)
            fcntl.ioctl(pty.fd, termios.TIOCSWINSZ, size)  # the kernel SIGWINCHes the agent

    @contextlib.asynccontextmanager
    async def open_relay(self, on_ctrl_c: Callable[[bool], None]) -> AsyncIterator[None]:
        """Our terminal raw and relayed to the agent's pty inside the block.

        ``on_ctrl_c(delivered)`` is called for each Ctrl-C typed: ``delivered``
        when the agent's pty turns it into SIGINT itself, else the caller
        signals. Keys typed before the first agent starts wait for it.
        """
        saved = termios.tcgetattr(self.fd)
        keys_send, keys_receive = trio.open_memory_channel[bytes](KEY_CHUNKS_BUFFERED)
        screens_send, screens_receive = trio.open_memory_channel[_Pty](PTYS_BUFFERED)
        self._saved, self._screens, self._attached = saved, screens_send, trio.Event()
        try:
            termios.tcsetattr(self.fd, termios.TCSANOW, _raw(saved))
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_keys, keys_send, on_ctrl_c, saved[6][termios.VINTR])
                nursery.start_soon(self._write_keys, keys_receive)
                nursery.start_soon(self._copy_screens, screens_receive)
                yield
                self._show_rest()
                nursery.cancel_scope.cancel()
        finally:
            with contextlib.suppress(termios.error):
                termios.tcsetattr(self.fd, termios.TCSANOW, saved)
            self._saved = self._screens = self._attached = None
            self._retire()

    def _retire(self) -> None:
        pty, self._pty = self._pty, None
        if pty is None:
            return
        pty.closed = True
        trio.lowlevel.notify_closing(pty.fd)
        os.close(pty.fd)

    async def _read_keys(
        self, keys: trio.MemorySendChannel[bytes], on_ctrl_c: Callable[[bool], None], intr: bytes
    ) -> None:
        while True:
            await trio.lowlevel.wait_readable(self.fd)
            try:
                data = os.read(self.fd, KEY_READ_BYTES)
            except BlockingIOError:
                continue
            except OSError:
                return  # hung up: its SIGHUP is forwarded
            if not data:
                return
            pty = self._pty
            key = pty.interrupt_key() if pty is not None else intr
            presses = data.count(key) if key is not None and key != NO_KEY else 0
            if pty is None and presses:
                data = data.replace(intr, b"")  # signalled below, never typed into a later agent
            queued = False
            with contextlib.suppress(trio.WouldBlock):
                if data:
                    keys.send_nowait(data)
                    queued = pty is not None
            for _ in range(presses):
                on_ctrl_c(queued)

    async def _write_keys(self, keys: trio.MemoryReceiveChannel[bytes]) -> None:
        assert self._attached is not None
        await self._attached.wait()
        async for data in keys:
            view = memoryview(data)
            pty = self._pty
            while view and pty is not None and not pty.closed:
                try:
                    view = view[os.write(pty.fd, view) :]
                except BlockingIOError:
                    with contextlib.suppress(trio.ClosedResourceError):
                        await trio.lowlevel.wait_writable(pty.fd)
                except OSError:
                    break  # the pty hung up: these keys were for an agent that is gone
                if pty is not self._pty:
                    break  # a restart gave a new pty while we waited

    async def _copy_screens(self, screens: trio.MemoryReceiveChannel[_Pty]) -> None:
        async for pty in screens:
            while not pty.closed:
                try:
                    await trio.lowlevel.wait_readable(pty.fd)
                except trio.ClosedResourceError:
                    break
                if pty.closed:
                    break
                try:
                    data = os.read(pty.fd, SCREEN_READ_BYTES)
                except BlockingIOError:
                    continue
                except OSError:
                    break  # EIO: every holder of the slave closed it
                if not data:
                    break
                await trio.to_thread.run_sync(_write_all, self.out_fd, data)

    def _show_rest(self) -> None:
        """Show what the agent's pty holds still (its last words to /dev/tty)."""
        pty = self._pty
        while pty is not None and pty.relay_output and not pty.closed:
            try:
                data = os.read(pty.fd, SCREEN_READ_BYTES)
            except OSError:
                return
            if not data:
                return
            _write_all(self.out_fd, data)
