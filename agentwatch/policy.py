"""Restart and backoff as a pure state machine (SPEC 5); no I/O, no clock.

`decide` takes the policy, the restart history and how the child exited,
and returns what to do next. Time comes in as numbers.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentwatch.config import BACKOFF_CAP_S, BACKOFF_RESET_S, RestartPolicy


@dataclass(frozen=True, slots=True)
class Restart:
    """Start the child again after ``delay`` seconds."""

    delay: float


@dataclass(frozen=True, slots=True)
class GiveUp:
    """Do not restart; ``limit_reached`` when the restart budget is spent."""

    limit_reached: bool = False


@dataclass(frozen=True, slots=True)
class Backoff:
    """Restart bookkeeping: restarts made so far and the current delay."""

    restarts: int = 0
    consecutive: int = 0  # restarts since the child last stayed up long enough


def decide(
    policy: RestartPolicy,
    *,
    failed: bool,
    stopped_by_user: bool,
    state: Backoff,
    max_restarts: int,
    base_delay: float,
    uptime: float,
) -> tuple[Restart | GiveUp, Backoff]:
    """What to do after a child exited, and the new bookkeeping."""
    if stopped_by_user or policy is RestartPolicy.NO:
        return GiveUp(), state
    if policy is RestartPolicy.ON_FAILURE and not failed:
        return GiveUp(), state
    consecutive = 0 if uptime >= BACKOFF_RESET_S else state.consecutive
    if consecutive >= max_restarts:
        return GiveUp(limit_reached=True), state
    delay = min(base_delay * (2**consecutive), BACKOFF_CAP_S)
    return Restart(delay), Backoff(state.restarts + 1, consecutive + 1)
