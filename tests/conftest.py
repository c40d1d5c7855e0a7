"""Shared fixtures: an isolated AGENTWATCH_HOME and `python -m agentwatch` runs.

`home` points AGENTWATCH_HOME at the test's tmp_path and clears the other
AGENTWATCH_* variables. `cli` runs ``python -m agentwatch ARGS`` as a real
subprocess (`cli.run`, like `subprocess.run`, or `cli.popen` for a process
the test talks to); every process it started is killed at teardown.
"""

from __future__ import annotations

import contextlib
import os
import re
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
    """The complete events of a JSONL journal, also while it is being written."""
    data = path.read_bytes()
    return [msgspec.json.decode(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]


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


COMMON_FIELDS = ["seq", "type", "timestamp", "processId"]
TIMESTAMP_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
NUMBER = (int, float)
OPTIONAL_STR = (str, type(None))
OPTIONAL_INT = (int, type(None))
# SPEC 1: type -> {field: (allowed python types, required)}
SPEC_FIELDS: dict[str, dict[str, tuple[tuple[type, ...], bool]]] = {
    "process-started": {
        "pid": ((int,), True),
        "command": ((list,), True),
        "cwd": ((str,), True),
        "restarts": ((int,), True),
    },
    "process-output": {
        "stream": ((str,), True),
        "output": ((str,), True),
        "continued": ((bool,), False),
        "outputBase64": ((str,), False),
    },
    "process-stopped": {
        "pid": ((int,), True),
        "exitCode": (OPTIONAL_INT, True),
        "signal": (OPTIONAL_STR, True),
        "durationMs": ((int,), True),
        "willRestart": ((bool,), True),
    },
    "process-error": {
        "error": ((str,), True),
        "kind": ((str,), True),
        "exitStatus": ((int,), False),  # spawn-failed: 126 or 127, the status `run` gives
    },
    "process-waiting": {},
    "process-resumed": {},
    "process-stats": {
        "cpuPercent": (NUMBER, True),
        "rssBytes": ((int,), True),
        "numThreads": ((int,), True),
        "numChildren": ((int,), True),
        "numFds": ((int,), True),
    },
    "system-alert": {"level": ((str,), True), "message": ((str,), True), "code": ((str,), False)},
}
ERROR_KINDS = {"spawn-failed", "crashed", "restart-limit", "timeout", "memory-limit"}


def check_event(e: dict[str, Any]) -> None:
    """One event against SPEC 1: common fields first, then its type's fields."""
    assert list(e)[:4] == COMMON_FIELDS, e
    assert isinstance(e["seq"], int), e
    assert e["seq"] >= 1, e
    assert TIMESTAMP_RE.fullmatch(e["timestamp"]), e
    assert e["processId"] is None or isinstance(e["processId"], str), e
    spec = SPEC_FIELDS.get(e["type"])
    if spec is None:
        assert e["type"].startswith(("x-", "task-")), e
        return
    extra = set(e) - set(COMMON_FIELDS) - set(spec)
    assert not extra, (e["type"], extra)
    for name, (types, required) in spec.items():
        if name in e:
            assert isinstance(e[name], types), (name, e)
        else:
            assert not required, (name, e)
    if e["type"].startswith("process-"):
        assert isinstance(e["processId"], str), e
    if e["type"] == "process-output":
        assert e["stream"] in ("stdout", "stderr"), e
        assert e.get("continued", True) is True, e  # present only when true
    elif e["type"] == "process-error":
        assert e["kind"] in ERROR_KINDS, e
    elif e["type"] == "system-alert":
        assert e["level"] in ("info", "warning", "error"), e


def check_journal(path: Path) -> list[dict[str, Any]]:
    """A journal: JSON Lines, ``seq`` first, 1..N without holes, SPEC 1 fields."""
    raw = path.read_bytes()
    assert raw.endswith(b"\n") or not raw
    events = []
    for line in raw.split(b"\n")[:-1]:
        assert line.startswith(b'{"seq":'), line[:80]
        events.append(msgspec.json.decode(line))
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    for e in events:
        check_event(e)
    return events


class CLI:
    """Runs ``python -m agentwatch`` in a subprocess with the test's environment."""

    py = staticmethod(py)
    check_event = staticmethod(check_event)
    check_journal = staticmethod(check_journal)
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
