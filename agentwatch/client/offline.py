"""Reading runs and journals from disk, without a server (`logs`, `runs`).

A journal may end in a line cut short by a crash (agentwatch killed in the
middle of a write): that line is skipped, as is any line that is not JSON.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentwatch.client.discovery import EXIT_NOT_FOUND, live_discovery, resolve_run_id
from agentwatch.client.exits import ExitTracker
from agentwatch.errors import ClientError, JournalError
from agentwatch.events import decode_event
from agentwatch.journal import read_journal
from agentwatch.paths import DISCOVERY_FILE, JOURNAL_FILE, RUN_MARKER_FILE, runs_dir

SCAN_FOR_PROCESSES_BYTES = 4 * 1024 * 1024  # `runs` reads this much of a journal for names


def run_journal(run_id: str, home: Path | None = None) -> Path:
    """The journal of run ``run_id`` (an id or a unique prefix); ClientError if none."""
    run_id = resolve_run_id(run_id, home)
    path = runs_dir(home) / run_id / JOURNAL_FILE
    if not path.exists():
        raise ClientError(
            f"run {run_id} has no journal in {path.parent} (--journal elsewhere, or --no-journal)",
            exit_code=EXIT_NOT_FOUND,
        )
    return path


@dataclass
class JournalRead:
    """What `journal_events` found."""

    events: list[dict[str, Any]]
    processes: list[str] = field(default_factory=list)  # every processId in the journal
    skipped: int = 0  # lines that were not events (a cut last line, garbage)


def journal_events(
    path: Path,
    process: str | None,
    since: int | None = None,
    tail: int | None = None,
) -> JournalRead:
    """Events of ``process`` (every event if None or ``*``) from a journal file."""
    if path.is_dir():
        raise ClientError(f"{path} is a folder, not a journal file")
    if not path.exists():
        raise ClientError(f"journal not found: {path}", exit_code=EXIT_NOT_FOUND)
    keep: deque[dict[str, Any]] = deque(maxlen=tail if tail is not None else None)
    names: dict[str, None] = {}
    skipped = 0
    try:
        for line in read_journal(path):
            try:
                event = decode_event(line)
            except ValueError:
                skipped += 1
                continue
            pid = event.get("processId")
            if isinstance(pid, str):
                names.setdefault(pid)
            seq = event.get("seq")
            if since is not None and isinstance(seq, int) and seq <= since:
                continue
            if process not in (None, "*") and pid != process:
                continue
            keep.append(event)
    except JournalError as exc:
        raise ClientError(str(exc)) from None
    return JournalRead(list(keep), list(names), skipped)


def _processes_in(path: Path) -> list[str]:
    names: dict[str, None] = {}
    read = 0
    try:
        for line in read_journal(path):
            read += len(line)
            if b'"process-started"' in line or b'"process-error"' in line:  # spawn failures
                try:
                    pid = decode_event(line).get("processId")
                except ValueError:
                    continue
                if isinstance(pid, str):
                    names.setdefault(pid)
            if read > SCAN_FOR_PROCESSES_BYTES:
                break
    except JournalError:
        pass
    return list(names)


def list_runs(home: Path | None = None) -> list[dict[str, Any]]:
    """Every run under the state folder, newest first (stale discovery files removed)."""
    base = runs_dir(home)
    if not base.is_dir():
        return []
    out: list[dict[str, Any]] = []
    for d in sorted(base.iterdir(), reverse=True):
        if not d.is_dir():
            continue
        journal = d / JOURNAL_FILE
        info = live_discovery(d / DISCOVERY_FILE)
        marker = info or live_discovery(d / RUN_MARKER_FILE)  # a live run without a server
        try:
            size = journal.stat().st_size
        except OSError:
            size = None
        out.append(
            {
                "runId": d.name,
                "startedAt": info.started_at
                if info
                else _first_timestamp(journal) or _started_from_id(d.name),
                "state": "running" if marker else "ended",
                "processes": marker.processes if marker else _processes_in(journal),
                "journal": str(journal) if size is not None else None,
                "journalBytes": size or 0,
                "url": info.url if info else None,
                "pid": info.pid if info else None,
            }
        )
    # Newest first. Ids sort by their second; within one second, by the exact start.
    out.sort(key=lambda r: (r["runId"][:16], r["startedAt"] or ""), reverse=True)
    return out


def _first_timestamp(journal: Path) -> str:
    """The timestamp of a journal's first event (microseconds), or ``""``."""
    try:
        with journal.open("rb") as f:
            line = f.readline(64 * 1024)
        ts = decode_event(line).get("timestamp")
    except (OSError, ValueError):
        return ""
    return ts if isinstance(ts, str) else ""


def _started_from_id(run_id: str) -> str:
    stamp = run_id.split("-", 1)[0]
    if len(stamp) == 16 and stamp[8] == "T" and stamp[15] == "Z":
        return (
            f"{stamp[0:4]}-{stamp[4:6]}-{stamp[6:8]}T{stamp[9:11]}:{stamp[11:13]}:{stamp[13:15]}Z"
        )
    return ""


@dataclass
class EndedRun:
    """A run that has ended, with what its journal says about some processes."""

    run_id: str
    journal: Path
    events: list[dict[str, Any]]
    status: int | None  # None: the journal ends before the processes did (a crash)
    pending: list[str] = field(default_factory=list)


def _has(names: tuple[str, ...], processes: list[str]) -> bool:
    return bool(processes) if "*" in names else all(n in processes for n in names)


def live_run_with(names: tuple[str, ...], home: Path | None = None) -> str | None:
    """The id of a live run (serving or not, starting or ending) that has ``names``."""
    base = runs_dir(home)
    if not base.is_dir():
        return None
    for d in sorted(base.iterdir(), reverse=True):
        for file in (DISCOVERY_FILE, RUN_MARKER_FILE):
            info = live_discovery(d / file)
            if info is not None and _has(names, info.processes):
                return d.name
    return None


def ended_run_with(
    names: tuple[str, ...], home: Path | None = None, run_id: str | None = None
) -> EndedRun | None:
    """The newest ended run that has ``names`` (``*``: any process), from its journal.

    ``run_id`` (an id or a unique prefix) looks at that run only. The status
    follows `agentwatch run`'s rule (`ExitTracker`).
    """
    base = runs_dir(home)
    if run_id is not None:
        candidates = [base / resolve_run_id(run_id, home)]
    elif base.is_dir():
        candidates = sorted(  # newest first: ids sort by their second, then the exact start
            (d for d in base.iterdir() if d.is_dir()),
            key=lambda d: (d.name[:16], _first_timestamp(d / JOURNAL_FILE)),
            reverse=True,
        )
    else:
        return None
    for d in candidates:
        journal = d / JOURNAL_FILE
        if live_discovery(d / DISCOVERY_FILE) or live_discovery(d / RUN_MARKER_FILE):
            continue
        if not journal.is_file():
            continue
        if run_id is None and not _has(names, _processes_in(journal)):  # a quick look first
            continue
        found = journal_events(journal, None)
        if not _has(names, found.processes):
            continue
        events = found.events
        tracker = ExitTracker(None if "*" in names else set(names))
        for event in events:
            tracker.feed(event)
        status = tracker.status if tracker.done else None
        return EndedRun(d.name, journal, events, status, tracker.pending)
    return None
