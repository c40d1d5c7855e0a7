"""The exit status of `agentwatch run` (SPEC 5), defined once; pure, no I/O.

One process's status: its exit code; 128+N when it died of signal N; 124
when its ``--timeout`` stopped it; 126 (not executable) or 127 (not found)
when it could not be started. A run's status: the first failure's, else 0.
The supervisor (from the child's return code), the run (over its agents) and
the client (from a run's events) all answer with these functions.
"""

from __future__ import annotations

import signal as _signal
from collections.abc import Iterable
from typing import Any, Final

TIMED_OUT: Final = 124  # stopped by its --timeout (as timeout(1))
OWN_ERROR: Final = 125  # agentwatch's own error (bad options, port in use, ...)
NOT_EXECUTABLE: Final = 126
NOT_FOUND: Final = 127
SIGNAL_BASE: Final = 128  # + N: died of signal N (as a shell reports it)

# The start of a spawn-failed message that means 126; every other one means 127.
# Journals written before `exitStatus` was published are read with this rule.
NOT_EXECUTABLE_TEXT: Final = "cannot execute"


def process_status(
    exit_code: int | None,
    signal: int | None = None,
    *,
    timed_out: bool = False,
    spawn_failed: int | None = None,
) -> int:
    """The status one process ended with (SPEC 5).

    ``spawn_failed`` is the status of a start that failed (126 or 127; see
    `SpawnError.exit_code`); ``signal`` the number of the signal it died of.
    """
    if spawn_failed is not None:
        return spawn_failed
    if timed_out:
        return TIMED_OUT
    if signal is not None:
        return SIGNAL_BASE + signal
    return exit_code or 0


def status_of_returncode(returncode: int, *, timed_out: bool = False) -> int:
    """`process_status` from a `Popen.returncode` (negative: killed by that signal)."""
    if returncode < 0:
        return process_status(None, -returncode, timed_out=timed_out)
    return process_status(returncode, timed_out=timed_out)


def spawn_failed_status(event: dict[str, Any]) -> int:
    """The status of a `process-error` event of kind ``spawn-failed``.

    Its ``exitStatus`` when it carries one, else (older journals) the rule of
    its message: ``cannot execute ...`` is 126, anything else 127.
    """
    status = event.get("exitStatus")
    if isinstance(status, int) and not isinstance(status, bool):
        return process_status(None, spawn_failed=status)
    text = str(event.get("error", ""))
    return process_status(
        None, spawn_failed=NOT_EXECUTABLE if NOT_EXECUTABLE_TEXT in text else NOT_FOUND
    )


def run_status(statuses: Iterable[int | None]) -> int:
    """A run's status from its processes' statuses in order: the first failure's, else 0."""
    return next((s for s in statuses if s), 0)


def signal_number(name: str) -> int:
    """``SIGTERM`` -> 15, ``KILL`` -> 9 (0 if unknown)."""
    sig = getattr(_signal.Signals, name if name.startswith("SIG") else "SIG" + name, None)
    return int(sig) if sig is not None else 0


__all__ = [
    "NOT_EXECUTABLE",
    "NOT_EXECUTABLE_TEXT",
    "NOT_FOUND",
    "OWN_ERROR",
    "SIGNAL_BASE",
    "TIMED_OUT",
    "process_status",
    "run_status",
    "signal_number",
    "spawn_failed_status",
    "status_of_returncode",
]
