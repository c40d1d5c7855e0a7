"""Shared fixtures: an isolated AGENTWATCH_HOME and `python -m agentwatch` runs.

`home` points AGENTWATCH_HOME at the test's tmp_path and clears the other
AGENTWATCH_* variables. `cli` runs ``python -m agentwatch ARGS`` as a real
subprocess (`cli.run`, like `subprocess.run`, or `cli.popen` for a process
the test talks to); every process it started is killed at teardown.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TIMEOUT_S = 60.0  # per subprocess: a hung run fails the test, never the suite

ENV_VARS = (
    "AGENTWATCH_URL",
    "AGENTWATCH_TOKEN",
    "AGENTWATCH_HOST",
    "AGENTWATCH_PORT",
    "AGENTWATCH_CORS_ORIGIN",
    "AGENTWATCH_RUN_ID",
    "AGENTWATCH_PROCESS_ID",
    "AGENTWATCH_DEBUG",
    "GITHUB_STEP_SUMMARY",
)


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """AGENTWATCH_HOME set to ``tmp_path``; other AGENTWATCH_* variables unset."""
    for name in ENV_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AGENTWATCH_HOME", str(tmp_path))
    return tmp_path


def py(code: str) -> list[str]:
    """argv running ``code`` in an unbuffered Python child."""
    return [sys.executable, "-u", "-c", code]


def read_events(path: Path) -> list[dict[str, Any]]:
    """Every event of a JSONL journal (or of --json output saved to a file)."""
    return [msgspec.json.decode(line) for line in path.read_bytes().splitlines() if line]


def decode_lines(data: bytes) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for line in data.splitlines() if line]


def wait_for(
    condition: Callable[[], Any], timeout: float = 20.0, interval: float = 0.02, what: str = ""
) -> Any:
    """Poll ``condition`` until it returns something truthy; fail after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what or condition}")
        time.sleep(interval)


class CLI:
    """Runs ``python -m agentwatch`` in a subprocess with the test's environment."""

    py = staticmethod(py)
    read_events = staticmethod(read_events)
    decode_lines = staticmethod(decode_lines)
    wait_for = staticmethod(wait_for)

    def __init__(self, home: Path) -> None:
        self.home = home
        self.procs: list[subprocess.Popen[bytes]] = []

    def argv(self, *args: str | os.PathLike[str]) -> list[str]:
        return [sys.executable, "-m", "agentwatch", *map(str, args)]

    def run(
        self, *args: str | os.PathLike[str], timeout: float = DEFAULT_TIMEOUT_S, **kw: Any
    ) -> subprocess.CompletedProcess[bytes]:
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("capture_output", True)
        kw.setdefault("cwd", ROOT)
        return subprocess.run(self.argv(*args), timeout=timeout, check=False, **kw)

    def popen(self, *args: str | os.PathLike[str], **kw: Any) -> subprocess.Popen[bytes]:
        kw.setdefault("stdin", subprocess.DEVNULL)
        kw.setdefault("stdout", subprocess.PIPE)
        kw.setdefault("stderr", subprocess.PIPE)
        kw.setdefault("cwd", ROOT)
        kw.setdefault("start_new_session", True)  # our signals stay ours
        proc = subprocess.Popen(self.argv(*args), **kw)
        self.procs.append(proc)
        return proc

    def runs(self) -> list[Path]:
        """The run folders under AGENTWATCH_HOME/runs."""
        base = self.home / "runs"
        return sorted(p for p in base.iterdir() if p.is_dir()) if base.is_dir() else []

    def close(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                with contextlib.suppress(OSError):
                    proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.communicate(timeout=10)


@pytest.fixture
def cli(home: Path) -> Iterator[CLI]:
    """``python -m agentwatch`` as a subprocess, with AGENTWATCH_HOME = tmp_path."""
    runner = CLI(home)
    try:
        yield runner
    finally:
        runner.close()


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    with contextlib.suppress(OSError):
        os.kill(pid, sig)
