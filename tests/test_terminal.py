"""`agentwatch run` in a terminal (SPEC 5 and 11): the agent runs on a
pseudo-terminal that agentwatch relays, so Ctrl-C works as in a shell *and*
twice kills an agent that traps it, the agent can still read the keyboard,
and the terminal comes back as it was.

Each test is the person at the keyboard: agentwatch runs on a pseudo-terminal
of the test's own (the slave as its stdin, stdout and stderr and its
controlling terminal), and the test types into the master and reads what the
screen would show.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import select
import signal
import struct
import subprocess
import termios
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest
from conftest import CLI
from test_cli_support import agent_env

pytestmark = pytest.mark.timeout(120)

WAIT_S = 20.0  # for a marker on the screen: generous, the machine is shared
CTRL_C = b"\x03"


def _set_size(fd: int, rows: int, cols: int) -> None:
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))


def _become_controlling_terminal() -> None:  # in the child, a session leader by then
    fcntl.ioctl(0, termios.TIOCSCTTY, 0)


class Screen:
    """agentwatch on a pseudo-terminal; the test types and reads the screen."""

    def __init__(self, cli: CLI, *args: str | os.PathLike[str], rows: int = 30, cols: int = 100):
        self.master, self.slave = os.openpty()
        _set_size(self.slave, rows, cols)
        self.attrs_before = self.attrs()
        self._data = bytearray()
        self._cond = threading.Condition()
        self._stop = False
        self.proc = subprocess.Popen(
            cli.argv(*args),
            stdin=self.slave,
            stdout=self.slave,
            stderr=self.slave,
            start_new_session=True,
            preexec_fn=_become_controlling_terminal,
            env=agent_env(),
            cwd=cli.home,
        )
        cli.procs.append(self.proc)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        while not self._stop:
            ready, _, _ = select.select([self.master], [], [], 0.05)
            if not ready:
                continue
            try:
                data = os.read(self.master, 65536)
            except OSError:
                return
            with self._cond:
                self._data += data
                self._cond.notify_all()

    @property
    def text(self) -> str:
        with self._cond:
            return self._data.decode("utf-8", "replace")

    def wait_for(self, marker: str, timeout: float = WAIT_S, *, count: int = 1) -> None:
        """Wait until ``marker`` is on the screen (``count`` times)."""
        needle = marker.encode()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._data.count(needle) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    pytest.fail(f"{marker!r} not on the screen after {timeout} s: {self.text!r}")
                self._cond.wait(left)

    def agent_pid(self) -> int:
        """The pid the agent printed as ``pid N`` on a line of its own."""
        self.wait_for("pid ")
        deadline = time.monotonic() + WAIT_S
        while not (found := re.search(r"pid (\d+)\r?\n", self.text)):
            assert time.monotonic() < deadline, self.text
            with self._cond:
                self._cond.wait(0.1)
        return int(found.group(1))

    def type(self, keys: bytes) -> None:
        os.write(self.master, keys)

    def attrs(self) -> list[Any]:
        return termios.tcgetattr(self.slave)

    def wait_exit(self, timeout: float = WAIT_S) -> int:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"agentwatch still running after {timeout} s: {self.text!r}")

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self._stop = True
        self._reader.join(5)
        os.close(self.master)
        os.close(self.slave)


def no_server_run(*args: str | os.PathLike[str]) -> tuple[str | os.PathLike[str], ...]:
    """The argv of ``agentwatch run --no-server ARGS``."""
    return ("run", "--no-server", *args)


@contextlib.contextmanager
def screen(cli: CLI, *args: str | os.PathLike[str], **kw: int) -> Any:
    s = Screen(cli, *args, **kw)
    try:
        yield s
    finally:
        s.close()


def gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def lines(cli: CLI, journal: Path, stream: str = "stdout") -> list[str]:
    """The journaled lines of ``stream``, partial pieces joined to their line."""
    out, piece = [], ""
    for e in cli.read_events(journal):
        if e["type"] == "process-output" and e["stream"] == stream:
            piece += e["output"]
            if not e.get("continued"):
                out.append(piece)
                piece = ""
    return out + ([piece] if piece else [])


def raw(attrs: list[Any]) -> bool:
    """Whether a terminal's settings are raw: no line editing, echo or signal keys."""
    return not attrs[3] & (termios.ICANON | termios.ECHO | termios.ISIG)


TRAPS = """
import os, signal, sys
n = 0
def trap(signum, frame):
    global n
    n += 1
    print("trapped", n, flush=True)
signal.signal(signal.SIGINT, trap)
print("pid", os.getpid(), flush=True)
for line in sys.stdin:
    print("pong", line.strip(), n, flush=True)
"""


def test_ctrl_c_reaches_the_agent_and_twice_kills_it(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    args = no_server_run("--journal", journal, "--grace", "60", "--", *cli.py(TRAPS))
    with screen(cli, *args) as s:
        pid = s.agent_pid()
        s.type(CTRL_C)
        s.wait_for("trapped 1")  # the first Ctrl-C reached the agent, which shrugged
        s.type(b"ping\r")  # it still reads the keyboard, and got one SIGINT, not two
        s.wait_for("pong ping 1")
        assert s.proc.poll() is None
        t0 = time.monotonic()
        s.type(CTRL_C)  # the second one kills the tree, trap or not
        assert s.wait_exit() == 128 + signal.SIGKILL
        assert time.monotonic() - t0 < 5
        assert gone(pid)
        assert s.attrs() == s.attrs_before
    # the second Ctrl-C may reach the agent too, just before the SIGKILL
    assert lines(cli, journal)[1:3] == ["trapped 1", "pong ping 1"]


ASKS = """
name = input("name? ")
print("hello", name)
"""


@pytest.mark.parametrize("opts", [[], ["--quiet"]], ids=["echo", "quiet"])
def test_the_agent_reads_the_keyboard(cli: CLI, opts: list[str]) -> None:
    journal = cli.home / "events.jsonl"
    args = no_server_run(*opts, "--journal", journal, "--", *cli.py(ASKS))
    with screen(cli, *args) as s:
        if not opts:
            s.wait_for("name? ")
        s.type(b"bob\r")  # with --quiet, typed ahead of the prompt
        assert s.wait_exit() == 0
        if not opts:
            s.wait_for("hello bob")
        assert s.attrs() == s.attrs_before
    assert lines(cli, journal) == ["name? hello bob"]


SAME_PTY = """
import os, sys
print("same", os.ttyname(0) == os.ttyname(1), flush=True)
sys.stdout.write("name? ")
sys.stdout.flush()
print("hello", sys.stdin.readline().strip(), flush=True)
"""


def test_tty_is_one_pseudo_terminal_for_stdin_and_stdout(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    args = no_server_run("--tty", "--journal", journal, "--", *cli.py(SAME_PTY))
    with screen(cli, *args) as s:
        s.wait_for("name? ")
        s.type(b"bob\r")
        assert s.wait_exit() == 0
        s.wait_for("hello bob")
    # the pseudo-terminal's echo of the keys is part of the agent's stdout now
    assert lines(cli, journal) == ["same True", "name? bob", "hello bob"]


def test_ctrl_c_ends_a_linger_at_once(cli: CLI) -> None:
    args = ("run", "--port", "0", "--linger", "15", "--", *cli.py("print('done')"))
    with screen(cli, *args) as s:
        s.wait_for("done")
        deadline = time.monotonic() + WAIT_S
        while raw(s.attrs()) or s.attrs() != s.attrs_before:
            assert time.monotonic() < deadline, "the terminal stayed raw after the agent ended"
            time.sleep(0.02)
        t0 = time.monotonic()
        s.type(CTRL_C)
        assert s.wait_exit() == 0  # the agent's status: it had ended well
        assert time.monotonic() - t0 < 3
        assert s.attrs() == s.attrs_before


SLEEPS = "import time; print('up', flush=True); time.sleep(60)"


@pytest.mark.parametrize(
    ("how", "status"),
    [("exit", 0), ("sigterm", 128 + signal.SIGTERM), ("not-found", 127)],
)
def test_the_terminal_is_raw_while_relaying_and_restored_after(
    cli: CLI, how: str, status: int
) -> None:
    command = {"exit": cli.py("input(); print('up')"), "sigterm": cli.py(SLEEPS)}
    argv = command.get(how, ["no-such-command-here"])
    with screen(cli, "run", "--no-server", "--", *argv) as s:
        if how == "exit":
            deadline = time.monotonic() + WAIT_S
            while not raw(s.attrs()):
                assert time.monotonic() < deadline, "the terminal never went raw"
                time.sleep(0.02)
            s.type(b"\r")
        elif how == "sigterm":
            s.wait_for("up")
            assert raw(s.attrs())  # every key goes through agentwatch
            s.proc.send_signal(signal.SIGTERM)  # from outside: forwarded as before
        assert s.wait_exit() == status
        assert s.attrs() == s.attrs_before


SIZES = """
import os, signal, sys
FD = int(sys.argv[1])
def show(*_):
    size = os.get_terminal_size(FD)
    print("size", size.columns, size.lines, flush=True)
signal.signal(signal.SIGWINCH, show)
show()
sys.stdin.readline()
"""


@pytest.mark.parametrize("opts", [[], ["--tty"]], ids=["stdin", "tty"])
def test_window_size_follows_the_terminal(cli: CLI, opts: list[str]) -> None:
    fd = "1" if opts else "0"
    with screen(cli, "run", "--no-server", *opts, "--", *cli.py(SIZES), fd) as s:
        s.wait_for("size 100 30")
        _set_size(s.master, 50, 132)  # the kernel sends SIGWINCH to agentwatch
        s.wait_for("size 132 50")
        s.type(b"\r")
        assert s.wait_exit() == 0


def test_stdin_not_a_terminal_passes_through_unchanged(cli: CLI) -> None:
    data = bytes(range(256)) * 64 + b"\x03\r\n\x04 end"
    res = cli.run("run", "--no-server", "--no-journal", "--", "cat", input=data, stdin=None)
    assert res.returncode == 0, res.stderr
    assert res.stdout == data


def test_grace_after_one_ctrl_c_kills_a_trapping_agent(cli: CLI) -> None:
    with screen(cli, "run", "--no-server", "--grace", "1", "--", *cli.py(TRAPS)) as s:
        s.wait_for("pid ")
        s.type(CTRL_C)
        s.wait_for("trapped 1")
        t0 = time.monotonic()
        assert s.wait_exit() == 128 + signal.SIGKILL  # --grace after the first Ctrl-C
        assert 0.5 < time.monotonic() - t0 < 10
        assert s.attrs() == s.attrs_before


ECHOES = """
import sys
print("ask", flush=True)
print("got", sys.stdin.readline().strip(), flush=True)
"""


def test_a_restarted_agent_gets_the_keyboard_too(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    args = no_server_run("--journal", journal, "--restart", "always", "--backoff", "0")
    with screen(cli, *args, "--max-restarts", "1", "--", *cli.py(ECHOES)) as s:
        s.wait_for("ask")
        s.type(b"one\r")
        s.wait_for("got one")
        # The second run, on a new pty of its own. Its "ask" and the old pty's echo
        # of the typed keys reach the screen by two paths, in either order.
        s.wait_for("ask", count=2)
        s.type(b"two\r")
        s.wait_for("got two")
        assert s.wait_exit() == 0
        assert s.attrs() == s.attrs_before
    got = [line for line in lines(cli, journal) if line.startswith("got")]
    assert got == ["got one", "got two"]


def test_the_relayed_agent_dies_with_agentwatch(cli: CLI) -> None:
    code = "import os, time; print('pid', os.getpid(), flush=True); time.sleep(60)"
    with screen(cli, "run", "--no-server", "--", *cli.py(code)) as s:
        pid = s.agent_pid()
        s.proc.kill()  # no chance to clean up: the watchdog and PR_SET_PDEATHSIG act
        s.wait_exit()
        deadline = time.monotonic() + 5
        while not gone(pid):
            assert time.monotonic() < deadline, "the agent outlived agentwatch"
            time.sleep(0.02)
