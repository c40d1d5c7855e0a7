"""The closing summary of `run --summary` and `up --summary` (SPEC 6), as Markdown.

For a CI log and ``$GITHUB_STEP_SUMMARY``: the run's status and duration,
one row per process (its command line, how it ended, lines, restarts), the
last lines a failed process printed (stderr, else stdout), and where the
whole story is (the journal, and the `agentwatch logs` command to read it).
Read from the hub's history once the run is over; no I/O besides that.
"""

from __future__ import annotations

import re
import shlex
import time
from collections import deque
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from agentwatch.client.exits import ExitTracker
from agentwatch.events import (
    PROCESS_ERROR,
    PROCESS_OUTPUT,
    PROCESS_STARTED,
    PROCESS_STOPPED,
    SYSTEM_ALERT,
    decode_event,
)
from agentwatch.hub import Filter

if TYPE_CHECKING:
    from agentwatch.hub import Hub
    from agentwatch.runner import Session

TAIL_LINES = 20  # the last lines of a failed process shown in the summary
COMMAND_MAX_CHARS = 300  # a longer command line is cut (an inline script, say)
LIFE_CYCLE = frozenset(
    {PROCESS_OUTPUT, PROCESS_STARTED, PROCESS_STOPPED, PROCESS_ERROR, SYSTEM_ALERT}
)


@dataclass
class _Tail:
    """The last `TAIL_LINES` lines of each stream of one process (pieces joined)."""

    lines: dict[str, deque[str]] = field(
        default_factory=lambda: {s: deque(maxlen=TAIL_LINES) for s in ("stdout", "stderr")}
    )
    open_piece: dict[str, bool] = field(default_factory=lambda: {"stdout": False, "stderr": False})

    def add(self, event: dict[str, Any]) -> None:
        stream = event.get("stream")
        if stream not in self.lines:
            return
        text = str(event.get("output", ""))
        kept = self.lines[stream]
        if self.open_piece[stream] and kept:
            kept[-1] += text
        else:
            kept.append(text)
        self.open_piece[stream] = bool(event.get("continued"))


def _history(hub: Hub) -> tuple[ExitTracker, dict[str, _Tail]]:
    """How each process ended (the rule of `run`) and its last lines, from the hub."""
    tracker = ExitTracker(None)
    tails: dict[str, _Tail] = {}
    flt = Filter(types=LIFE_CYCLE)
    cursor = 0
    while True:
        read = hub.read(cursor, flt)
        if read.cursor <= cursor and not read.batches:
            return tracker, tails
        cursor = read.cursor
        for batch in read.batches:
            for line in batch.data.splitlines():
                if not line:
                    continue
                event = decode_event(line)
                tracker.feed(event)
                pid = event.get("processId")
                if event.get("type") == PROCESS_OUTPUT and isinstance(pid, str):
                    tails.setdefault(pid, _Tail()).add(event)


def _ending(name: str, tracker: ExitTracker, exit_code: int | None, sig: str | None) -> str:
    status = tracker.statuses.get(name)
    if tracker.timed_out(name):
        return f"timed out ({status})"
    if sig:
        return f"{sig} ({status})" if status is not None else sig
    if exit_code is not None:
        return str(exit_code)
    return f"not started ({status})" if status else ""


def _code(text: str) -> str:
    """``text`` as one Markdown code span on one line (newlines shown as ``\\n``)."""
    text = text.replace("\n", "\\n")
    if len(text) > COMMAND_MAX_CHARS:
        text = text[: COMMAND_MAX_CHARS - 3] + "..."
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    tick = "`" * (longest + 1)
    return f"{tick} {text} {tick}" if longest else f"`{text}`"


def _fenced(lines: list[str]) -> str:
    longest = max((len(m) for line in lines for m in re.findall(r"`+", line)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}text\n" + "\n".join(lines) + f"\n{fence}\n"


def summary_markdown(session: Session, status: int, now: float | None = None) -> str:
    """The closing summary of a run whose exit status is ``status``."""
    hub = session.hub
    tracker, tails = _history(hub)
    dur = (time.time() if now is None else now) - session.started
    alerts = hub.type_counts.get(SYSTEM_ALERT, 0)
    procs = list(session.supervisor.processes.values())
    out = [
        f"### agentwatch run {session.run_id}: exit status {status}\n",
        f"duration {dur:.1f} s, {hub.last_seq} events, "
        f"{alerts} {'alert' if alerts == 1 else 'alerts'}\n",
        "| process | status | exit | lines (out/err) | restarts |",
        "|---|---|---|---|---|",
    ]
    for p in procs:
        ending = _ending(p.name, tracker, p.exit_code, p.signal)
        out.append(
            f"| {p.name} | {p.state.value} | {ending} | {p.lines['stdout']}/"
            f"{p.lines['stderr']} | {p.restarts} |"
        )
    out.append("")
    for p in procs:
        head = "command" if len(procs) == 1 else f"{p.name}"
        out.append(f"{head}: {_code(shlex.join(p.spec.command))}  ")
    out.append("")
    for p in procs:
        if not tracker.statuses.get(p.name):
            continue
        tail = tails.get(p.name, _Tail())
        stream = "stderr" if tail.lines["stderr"] else "stdout"
        lines = list(tail.lines[stream])
        if lines:
            what = "line" if len(lines) == 1 else f"{len(lines)} lines"
            out.append(f"{p.name}: last {what} of {stream}\n")
            out.append(_fenced(lines))
    journal = hub.journal.path if hub.journal is not None else None
    if journal is None:
        out.append("journal: none (--no-journal)")
    else:
        failed = next((p.name for p in procs if tracker.statuses.get(p.name)), None)
        name = failed or (procs[0].name if len(procs) == 1 else None)
        out.append(f"journal: {journal}  ")
        where = f"--run {session.run_id}" if journal.parent.name == session.run_id else ""
        where = where or f"--journal {shlex.quote(str(journal))}"
        out.append(f"see everything: `agentwatch logs {name + ' ' if name else ''}{where}`")
    return "\n".join(out) + "\n"
