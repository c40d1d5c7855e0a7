"""Human rendering of events; pure, no I/O."""

from __future__ import annotations

import datetime as _dt
import json
from dataclasses import dataclass, field
from typing import Any

COLOURS = (36, 33, 32, 35, 34, 91, 92, 93, 94, 95, 96)  # ANSI foreground codes
DIM = "\x1b[2m"
RESET = "\x1b[0m"


@dataclass
class Renderer:
    """Formats events as ``HH:MM:SS.mmm name | line``, one colour per process.

    Times are local. ``names`` known in advance (the processes of a run)
    fix the width of the name column from the first line.
    """

    colour: bool = False
    names: list[str] = field(default_factory=list)
    width: int = 0  # name column width, grows as names appear
    _colours: dict[str, int] = field(default_factory=dict)
    _clock_cache: tuple[str, str] = ("", "")

    def __post_init__(self) -> None:
        for name in self.names:
            self._name(name)

    def _name(self, pid: str | None) -> str:
        name = pid or "agentwatch"
        self.width = max(self.width, len(name))
        text = name.ljust(self.width)
        if not self.colour:
            return text
        code = self._colours.setdefault(name, COLOURS[len(self._colours) % len(COLOURS)])
        return f"\x1b[{code}m{text}{RESET}"

    def clock(self, timestamp: str) -> str:
        """``2026-11-25T16:40:00.123456Z`` -> ``17:40:00.123`` in local time."""
        head, _, frac = timestamp.removesuffix("Z").partition(".")
        if self._clock_cache[0] != head:
            try:
                t = _dt.datetime.strptime(head, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=_dt.UTC)
                local = t.astimezone().strftime("%H:%M:%S")
            except ValueError:
                return timestamp[11:23]
            self._clock_cache = (head, local)
        return f"{self._clock_cache[1]}.{(frac[:3] or '000').ljust(3, '0')}"

    def line(self, event: dict[str, Any]) -> str | None:
        """One printable line for an event (None for events not worth a line)."""
        kind = event.get("type")
        if kind == "process-stats":
            return None
        clock = self.clock(str(event.get("timestamp", "")))
        pid = event.get("processId")
        name = self._name(pid if isinstance(pid, str) else None)
        if kind == "process-output":
            text = str(event.get("output", ""))
            if "\r" in text:  # progress bars: show what a terminal would, the last rewrite
                text = next((part for part in reversed(text.split("\r")) if part), "")
            if event.get("stream") == "stderr" and self.colour:
                text = f"\x1b[31m{text}{RESET}"
            return f"{clock} {name} | {text}"
        note = describe(event)
        if self.colour:
            note = f"{DIM}{note}{RESET}"
        return f"{clock} {name} | {note}"


def describe(event: dict[str, Any]) -> str:
    """A short human description of a non-output event."""
    kind = event.get("type")
    if kind == "process-started":
        extra = f" (restart {event.get('restarts')})" if event.get("restarts") else ""
        return f"-- started pid {event.get('pid')}{extra}"
    if kind == "process-stopped":
        how = (
            f"signal {event['signal']}"
            if event.get("signal")
            else f"exit code {event.get('exitCode')}"
        )
        again = ", restarting" if event.get("willRestart") else ""
        return f"-- stopped ({how}, {event.get('durationMs')} ms{again})"
    if kind == "process-error":
        return f"-- error [{event.get('kind')}]: {event.get('error')}"
    if kind == "process-waiting":
        return "-- waiting for input"
    if kind == "process-resumed":
        return "-- resumed"
    if kind == "system-alert":
        return f"-- {event.get('level')}: {event.get('message')}"
    if kind == "task-assigned":
        to = f" to {event['assignee']}" if event.get("assignee") else ""
        title = f": {event['title']}" if event.get("title") else ""
        return f"-- task {event.get('taskId')} assigned{to}{title}"
    if kind == "task-completed":
        result = f": {_compact(event['result'])}" if event.get("result") is not None else ""
        return f"-- task {event.get('taskId')} {event.get('status')}{result}"
    if kind == "gap":
        return f"-- events {event.get('fromSeq')}..{event.get('toSeq')} are no longer available"
    fields = {k: v for k, v in event.items() if k not in _COMMON}
    return f"-- {kind} {_compact(fields)}" if fields else f"-- {kind}"


_COMMON = frozenset({"seq", "type", "timestamp", "processId"})
DESCRIBE_MAX_CHARS = 200  # a custom event's fields are cut to this on a human line


def _compact(value: Any) -> str:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return text if len(text) <= DESCRIBE_MAX_CHARS else text[: DESCRIBE_MAX_CHARS - 3] + "..."
