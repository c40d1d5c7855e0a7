"""Helpers for the CLI end-to-end tests (no tests here): a live `agentwatch run`
or `up` in the background, discovery by polling, a TCP proxy that can cut
connections, and checks on error output.

Imported by ``test_cli_*.py``, ``test_examples.py``, ``test_completions.py``
and ``test_client.py`` (pytest puts ``tests/`` on ``sys.path``).
"""

from __future__ import annotations

import contextlib
import json
import os
import queue
import re
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI, ROOT, read_events, wait_for

VENV_BIN = Path(sys.executable).parent
TOKEN = "cli-test-token"


def agent_env(**extra: str) -> dict[str, str]:
    """The test's environment with the venv's bin first on PATH (agents call `agentwatch`)."""
    env = dict(os.environ)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    env.update(extra)
    return env


def one_error_line(res: subprocess.CompletedProcess[bytes], status: int, *words: str) -> str:
    """The command failed with ``status`` and one clear stderr line holding ``words``."""
    err = res.stderr.decode()
    assert res.returncode == status, (res.returncode, err, res.stdout[-500:])
    assert "Traceback" not in err
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("agentwatch: "), lines[0]
    for word in words:
        assert word in lines[0], (word, lines[0])
    return lines[0]


def discoveries(home: Path) -> list[dict[str, Any]]:
    """Every readable ``server.json`` under ``home``, newest run first."""
    found = []
    for f in sorted((home / "runs").glob("*/server.json"), reverse=True):
        with contextlib.suppress(OSError, ValueError):
            found.append(json.loads(f.read_text()))
    return found


@dataclass
class Live:
    """A background `agentwatch run`/`up` and its discovery file."""

    proc: subprocess.Popen[bytes]
    info: dict[str, Any]
    home: Path

    @property
    def run_id(self) -> str:
        return str(self.info["runId"])

    @property
    def url(self) -> str:
        return str(self.info["url"])

    @property
    def journal(self) -> Path:
        return self.home / "runs" / self.run_id / "events.jsonl"

    def events(self) -> list[dict[str, Any]]:
        return read_events(self.journal) if self.journal.exists() else []

    def wait_event(self, pred: Any, timeout: float = 30.0, what: str = "") -> dict[str, Any]:
        """The first journaled event for which ``pred(event)`` is true."""

        def find() -> dict[str, Any] | None:
            return next((e for e in self.events() if pred(e)), None)

        return wait_for(find, timeout, 0.05, what or "an event")  # type: ignore[no-any-return]

    def wait_output(self, text: str, timeout: float = 30.0) -> dict[str, Any]:
        return self.wait_event(
            lambda e: e["type"] == "process-output" and e["output"] == text, timeout, text
        )

    def finish(self, timeout: float = 60.0) -> int:
        """Wait for the run to end; its exit status."""
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            pytest.fail(f"agentwatch did not end within {timeout} s")


def start(cli: CLI, *args: str | os.PathLike[str], timeout: float = 30.0, **kw: Any) -> Live:
    """``agentwatch ARGS`` in the background; returns once its run is discoverable."""
    before = {d["runId"] for d in discoveries(cli.home)}
    kw.setdefault("stdout", subprocess.DEVNULL)
    kw.setdefault("stderr", subprocess.PIPE)
    kw.setdefault("env", agent_env())
    proc = cli.popen(*args, **kw)

    def found() -> dict[str, Any] | None:
        if proc.poll() is not None:
            err = proc.stderr.read().decode() if proc.stderr else ""
            pytest.fail(f"agentwatch exited with {proc.returncode} before serving: {err}")
        return next((d for d in discoveries(cli.home) if d["runId"] not in before), None)

    info = wait_for(found, timeout, 0.05, "the run's server.json")
    return Live(proc, info, cli.home)


def start_run(
    cli: CLI, code: str, *opts: str, name: str = "agent", extra: list[str] | None = None, **kw: Any
) -> Live:
    """`agentwatch run --quiet --token T --name NAME OPTS -- python -c CODE EXTRA` in the
    background (no process-stats unless OPTS ask for them)."""
    return start(
        cli,
        "run",
        "--quiet",
        "--quiet-server",
        "--token",
        TOKEN,
        "--name",
        name,
        "--stats-interval",
        "0",
        *opts,
        "--",
        *cli.py(code),
        *(extra or []),
        **kw,
    )


def start_up(cli: CLI, toml: Path, *opts: str, **kw: Any) -> Live:
    """`agentwatch up -f TOML OPTS` in the background."""
    return start(cli, "up", "-q", "--quiet-server", "-f", toml, *opts, **kw)


def client(
    cli: CLI, *args: str | os.PathLike[str], **kw: Any
) -> subprocess.CompletedProcess[bytes]:
    """A client command (``ps``, ``logs``, ...) run to completion."""
    kw.setdefault("env", agent_env())
    return cli.run(*args, **kw)


def json_lines(data: bytes) -> list[dict[str, Any]]:
    return [json.loads(line) for line in data.splitlines() if line.strip()]


def ps_json(cli: CLI, *args: str) -> list[dict[str, Any]]:
    res = client(cli, "ps", "--json", *args)
    assert res.returncode == 0, res.stderr
    procs = json.loads(res.stdout)
    assert isinstance(procs, list)
    return procs


def wait_state(
    cli: CLI, name: str, state: str, *args: str, timeout: float = 30.0
) -> dict[str, Any]:
    """Poll `ps --json` until process ``name`` is in ``state``."""

    def check() -> dict[str, Any] | None:
        return next(
            (p for p in ps_json(cli, *args) if p["processId"] == name and p["state"] == state),
            None,
        )

    return wait_for(check, timeout, 0.2, f"{name} {state}")  # type: ignore[no-any-return]


class Reader:
    """A subscriber subprocess whose stdout lines are read by a thread."""

    def __init__(self, cli: CLI, *args: str) -> None:
        self.proc = cli.popen(*args, env=agent_env())
        self.lines: queue.Queue[bytes] = queue.Queue()
        self.got: list[bytes] = []
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.put(line)

    def wait_line(self, pattern: str, timeout: float = 30.0) -> bytes:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(deadline - time.monotonic(), 0.01))
            except queue.Empty:
                pytest.fail(f"no line matching {pattern!r} within {timeout} s: {self.got[-5:]}")
            self.got.append(line)
            if re.search(pattern, line.decode()):
                return line

    def wait_lines(self, patterns: list[str], timeout: float = 30.0) -> None:
        """Read until each pattern has matched a line (in any order)."""
        todo = [p for p in patterns if not any(re.search(p, x.decode()) for x in self.got)]
        deadline = time.monotonic() + timeout
        while todo:
            either = "|".join(f"(?:{p})" for p in todo)
            line = self.wait_line(either, max(deadline - time.monotonic(), 0.1)).decode()
            todo = [p for p in todo if not re.search(p, line)]

    def finish(self, timeout: float = 60.0) -> tuple[int, list[bytes], bytes]:
        """Wait for the exit; the status, every line it printed, and its stderr."""
        rc = self.proc.wait(timeout=timeout)
        self.thread.join(timeout=30)  # EOF: every line is in the queue
        while not self.lines.empty():
            self.got.append(self.lines.get_nowait())
        err = self.proc.stderr.read() if self.proc.stderr else b""
        return rc, self.got, err


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def seqs(events: list[dict[str, Any]]) -> list[int]:
    return [e["seq"] for e in events if "seq" in e]


def monotonic_ms() -> float:
    return time.monotonic() * 1000


__all__ = ["ROOT"]
