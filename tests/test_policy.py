"""Restart decisions (SPEC 5): no / on-failure / always, the restart budget,
doubling backoff capped at 60 s, and the reset after 60 s of uptime."""

from __future__ import annotations

import pytest

from agentwatch.config import BACKOFF_CAP_S, BACKOFF_RESET_S, RestartPolicy
from agentwatch.policy import Backoff, GiveUp, Restart, decide

NO, ON_FAILURE, ALWAYS = RestartPolicy.NO, RestartPolicy.ON_FAILURE, RestartPolicy.ALWAYS


def test_constants_match_spec() -> None:
    assert BACKOFF_CAP_S == 60.0
    assert BACKOFF_RESET_S == 60.0


# (policy, failed, stopped_by_user, state, max_restarts, base, uptime) -> (action, new state)
CASES = [
    # --restart no never restarts
    (NO, True, False, Backoff(), 5, 1.0, 0.1, GiveUp(), Backoff()),
    (NO, False, False, Backoff(), 5, 1.0, 0.1, GiveUp(), Backoff()),
    # on-failure restarts failures only
    (ON_FAILURE, False, False, Backoff(), 5, 1.0, 0.1, GiveUp(), Backoff()),
    (ON_FAILURE, True, False, Backoff(), 5, 1.0, 0.1, Restart(1.0), Backoff(1, 1)),
    (ON_FAILURE, True, False, Backoff(1, 1), 5, 1.0, 0.1, Restart(2.0), Backoff(2, 2)),
    (ON_FAILURE, True, False, Backoff(2, 2), 5, 1.0, 0.1, Restart(4.0), Backoff(3, 3)),
    (ON_FAILURE, True, False, Backoff(2, 2), 5, 0.1, 0.1, Restart(0.4), Backoff(3, 3)),
    # always restarts successes too
    (ALWAYS, False, False, Backoff(), 5, 1.0, 0.1, Restart(1.0), Backoff(1, 1)),
    (ALWAYS, True, False, Backoff(3, 3), 5, 0.5, 0.1, Restart(4.0), Backoff(4, 4)),
    # a stop asked by a person (or a signal, a timeout) is never restarted
    (ALWAYS, False, True, Backoff(), 5, 1.0, 0.1, GiveUp(), Backoff()),
    (ON_FAILURE, True, True, Backoff(1, 1), 5, 1.0, 0.1, GiveUp(), Backoff(1, 1)),
    # the budget: max_restarts consecutive restarts, then restart-limit
    (ON_FAILURE, True, False, Backoff(2, 2), 2, 1.0, 0.1, GiveUp(True), Backoff(2, 2)),
    (ALWAYS, False, False, Backoff(5, 5), 5, 1.0, 0.1, GiveUp(True), Backoff(5, 5)),
    (ON_FAILURE, True, False, Backoff(), 0, 1.0, 0.1, GiveUp(True), Backoff()),
    # doubling is capped at 60 s
    (ALWAYS, True, False, Backoff(6, 6), 100, 1.0, 0.1, Restart(60.0), Backoff(7, 7)),
    (ALWAYS, True, False, Backoff(40, 40), 100, 1.0, 0.1, Restart(60.0), Backoff(41, 41)),
    (ALWAYS, True, False, Backoff(), 5, 90.0, 0.1, Restart(60.0), Backoff(1, 1)),
    # 60 s of uptime resets the delay and the budget (restarts keep counting)
    (ON_FAILURE, True, False, Backoff(4, 4), 5, 1.0, 60.0, Restart(1.0), Backoff(5, 1)),
    (ON_FAILURE, True, False, Backoff(5, 5), 5, 1.0, 61.0, Restart(1.0), Backoff(6, 1)),
    (ON_FAILURE, True, False, Backoff(5, 5), 5, 1.0, 59.9, GiveUp(True), Backoff(5, 5)),
    (ON_FAILURE, True, False, Backoff(3, 3), 5, 1.0, 59.9, Restart(8.0), Backoff(4, 4)),
    # base delay 0: restart at once
    (ALWAYS, True, False, Backoff(3, 3), 5, 0.0, 0.1, Restart(0.0), Backoff(4, 4)),
]


@pytest.mark.parametrize(
    ("policy", "failed", "stopped", "state", "max_restarts", "base", "uptime", "action", "after"),
    CASES,
)
def test_decide(
    policy: RestartPolicy,
    failed: bool,
    stopped: bool,
    state: Backoff,
    max_restarts: int,
    base: float,
    uptime: float,
    action: Restart | GiveUp,
    after: Backoff,
) -> None:
    got = decide(
        policy,
        failed=failed,
        stopped_by_user=stopped,
        state=state,
        max_restarts=max_restarts,
        base_delay=base,
        uptime=uptime,
    )
    assert got == (action, after)


def run_loop(
    policy: RestartPolicy, max_restarts: int, base: float, outcomes: list[tuple[bool, float]]
) -> list[Restart | GiveUp]:
    """Feed a sequence of exits (failed, uptime) as the supervisor does."""
    state = Backoff()
    actions: list[Restart | GiveUp] = []
    for failed, uptime in outcomes:
        action, state = decide(
            policy,
            failed=failed,
            stopped_by_user=False,
            state=state,
            max_restarts=max_restarts,
            base_delay=base,
            uptime=uptime,
        )
        actions.append(action)
        if isinstance(action, GiveUp):
            break
    return actions


def test_crash_loop_ends_in_restart_limit() -> None:
    actions = run_loop(ON_FAILURE, 5, 1.0, [(True, 0.1)] * 10)
    assert actions == [
        Restart(1.0),
        Restart(2.0),
        Restart(4.0),
        Restart(8.0),
        Restart(16.0),
        GiveUp(limit_reached=True),
    ]


def test_long_uptime_forgives_a_crash_loop() -> None:
    exits = [(True, 0.1)] * 3 + [(True, 120.0)] + [(True, 0.1)] * 10
    actions = run_loop(ON_FAILURE, 3, 0.5, exits)
    assert actions == [
        Restart(0.5),
        Restart(1.0),
        Restart(2.0),  # budget spent ...
        Restart(0.5),  # ... but it stayed up 120 s: start over
        Restart(1.0),
        Restart(2.0),
        GiveUp(limit_reached=True),
    ]


def test_on_failure_stops_after_success() -> None:
    assert run_loop(ON_FAILURE, 5, 1.0, [(True, 1.0), (True, 1.0), (False, 1.0)]) == [
        Restart(1.0),
        Restart(2.0),
        GiveUp(),
    ]
