"""Reading runs and journals from disk, without a server (`logs`, `runs`)."""

from __future__ import annotations

import contextlib
from collections import deque
from pathlib import Path
from typing import Any

from agentwatch.errors import ClientError
from agentwatch.events import decode_event
from agentwatch.journal import read_journal
from agentwatch.paths import pid_alive, read_discovery, runs_dir

SCAN_FOR_PROCESSES_BYTES = 4 * 1024 * 1024  # `runs` reads this much of a journal for names


def run_journal(run_id: str, home: Path | None = None) -> Path | None:
    """The journal of run ``run_id``, if it exists."""
    path = runs_dir(home) / run_id / "events.jsonl"
    return path if path.exists() else None


def journal_events(path: Path, process: str | None, since: int | None = None,
                   tail: int | None = None) -> list[dict[str, Any]]:
    """Events of ``process`` (all if None or ``*``) from a journal file.

    A last line cut by a crash is skipped; so is any line that is not JSON.
    """
    if not path.exists():
        raise ClientError(f"journal not found: {path}")
    keep: deque[dict[str, Any]] = deque(maxlen=tail if tail else None)
    for line in read_journal(path):
        try:
            event = decode_event(line)
        except ValueError:
            continue
        if since is not None and int(event.get("seq", 0)) <= since:
            continue
        if process not in (None, "*") and event.get("processId") != process:
            continue
        keep.append(event)
    return list(keep)


def _processes_in(path: Path) -> list[str]:
    names: list[str] = []
    read = 0
    with contextlib.suppress(Exception):
        for line in read_journal(path):
            read += len(line)
            if b'"process-started"' in line:
                pid = decode_event(line).get("processId")
                if isinstance(pid, str) and pid not in names:
                    names.append(pid)
            if read > SCAN_FOR_PROCESSES_BYTES:
                break
    return names


def list_runs(home: Path | None = None) -> list[dict[str, Any]]:
    """Every run under the state folder, newest first."""
    base = runs_dir(home)
    out: list[dict[str, Any]] = []
    if not base.is_dir():
        return out
    for d in sorted(base.iterdir(), reverse=True):
        if not d.is_dir():
            continue
        journal = d / "events.jsonl"
        info = read_discovery(d / "server.json")
        live = info is not None and pid_alive(info.pid)
        if info is not None and not live:
            with contextlib.suppress(OSError):
                (d / "server.json").unlink()
        started = info.started_at if info else _started_from_id(d.name)
        out.append({
            "runId": d.name,
            "startedAt": started,
            "state": "running" if live else "ended",
            "processes": info.processes if (info and live) else _processes_in(journal),
            "journalBytes": journal.stat().st_size if journal.exists() else 0,
            "url": info.url if (info and live) else None,
        })
    return out


def _started_from_id(run_id: str) -> str:
    stamp = run_id.split("-", 1)[0]
    if len(stamp) == 16 and stamp[8] == "T":
        return (f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:"
                f"{stamp[13:15]}Z")
    return ""
