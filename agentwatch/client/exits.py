"""The status `agentwatch run` gives, followed from a run's events; pure, no I/O.

For ``subscribe --until-exit``, an ended run read from its journal, and the
closing summary.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from agentwatch.exitcodes import (
    NOT_FOUND,
    process_status,
    run_status,
    signal_number,
    spawn_failed_status,
)


@dataclass
class ExitTracker:
    """Follows process ends to give the status `run` would (for `--until-exit`)."""

    waiting_for: set[str] | None  # None: every process seen
    statuses: dict[str, int] = field(default_factory=dict)
    order: list[str] = field(default_factory=list)
    seen: set[str] = field(default_factory=set)
    _timed_out: set[str] = field(default_factory=set)

    def feed(self, event: dict[str, Any]) -> None:
        """Take one event into account."""
        pid = event.get("processId")
        if not isinstance(pid, str):
            return
        self.seen.add(pid)
        kind = event.get("type")
        if kind == "process-started":
            self.statuses.pop(pid, None)
            self._timed_out.discard(pid)
        elif kind == "process-error":
            if event.get("kind") == "timeout":
                self._timed_out.add(pid)
            elif event.get("kind") == "spawn-failed":
                self._final(pid, spawn_failed_status(event))
        elif kind == "system-alert" and event.get("code") == "dependency-failed":
            self._final(pid, 1)  # `up` did not start it: what it depends on did not start
        elif kind == "process-stopped" and not event.get("willRestart"):
            signal = event.get("signal")
            status = process_status(
                int(event.get("exitCode") or 0),
                signal_number(str(signal)) if signal else None,
                timed_out=pid in self._timed_out,
            )
            self._final(pid, status)

    def timed_out(self, pid: str) -> bool:
        """Whether the last run of ``pid`` was stopped by its ``--timeout``."""
        return pid in self._timed_out

    def seed(self, process: dict[str, Any]) -> None:
        """Take a process already over (from `/api/processes`) into account."""
        pid = process.get("processId")
        if not isinstance(pid, str):
            return
        self.seen.add(pid)
        if process.get("state") == "skipped":  # `up` did not start it: a dependency failed
            self._final(pid, 1)
        elif process.get("state") in ("exited", "failed"):
            signal, code = process.get("signal"), process.get("exitCode")
            if signal or code is not None:
                number = signal_number(str(signal)) if signal else None
                self._final(pid, process_status(int(code or 0), number))
            elif process.get("state") == "failed":
                self._final(pid, NOT_FOUND if process.get("pid") is None else 1)  # never started
            else:
                self._final(pid, 0)

    def _final(self, pid: str, status: int) -> None:
        if pid not in self.statuses:
            self.order.append(pid)
        self.statuses[pid] = status

    @property
    def pending(self) -> list[str]:
        """The followed processes that have not ended for good."""
        targets = self.waiting_for if self.waiting_for is not None else self.seen
        return sorted(p for p in targets if p not in self.statuses)

    @property
    def done(self) -> bool:
        """Whether every followed process has ended for good."""
        targets = self.waiting_for if self.waiting_for is not None else self.seen
        return bool(targets) and all(p in self.statuses for p in targets)

    @property
    def status(self) -> int:
        """0 if all succeeded, else the status of the first that failed."""
        return run_status(self.statuses.get(pid) for pid in self.order)


__all__ = ["ExitTracker", "signal_number"]
