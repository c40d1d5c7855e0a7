"""The one exit-status rule (SPEC 5), and the trackers that use it."""

from __future__ import annotations

from typing import Any

import pytest

from agentwatch.client.exits import ExitTracker
from agentwatch.exitcodes import (
    process_status,
    run_status,
    spawn_failed_status,
    status_of_returncode,
)


@pytest.mark.parametrize(
    ("args", "kwargs", "status"),
    [
        ((0,), {}, 0),
        ((3,), {}, 3),
        ((None,), {}, 0),
        ((None, 9), {}, 137),
        ((None, 15), {"timed_out": True}, 124),
        ((0,), {"timed_out": True}, 124),
        ((None,), {"spawn_failed": 126}, 126),
        ((None,), {"spawn_failed": 127, "timed_out": True}, 127),
    ],
)
def test_process_status(args: tuple[Any, ...], kwargs: dict[str, Any], status: int) -> None:
    assert process_status(*args, **kwargs) == status


@pytest.mark.parametrize(
    ("rc", "timed_out", "status"),
    [(0, False, 0), (2, False, 2), (-9, False, 137), (-15, True, 124), (1, True, 124)],
)
def test_status_of_returncode(rc: int, timed_out: bool, status: int) -> None:
    assert status_of_returncode(rc, timed_out=timed_out) == status


@pytest.mark.parametrize(
    ("event", "status"),
    [
        ({"error": "command not found: nope"}, 127),
        ({"error": "cannot execute ./x: Permission denied"}, 126),
        # the field wins over the message (a journal written since it exists)
        ({"error": "cannot execute ./x: Not a directory", "exitStatus": 127}, 127),
        ({"error": "command not found: nope", "exitStatus": 126}, 126),
        ({"error": "command not found: nope", "exitStatus": True}, 127),  # not an int
    ],
)
def test_spawn_failed_status(event: dict[str, Any], status: int) -> None:
    event = {"type": "process-error", "kind": "spawn-failed", **event}
    assert spawn_failed_status(event) == status
    tracker = ExitTracker(waiting_for=None)
    tracker.feed({**event, "processId": "a"})
    assert tracker.statuses == {"a": status}


def test_run_status_is_the_first_failure() -> None:
    assert run_status([]) == 0
    assert run_status([0, None, 0]) == 0
    assert run_status([0, 2, 137]) == 2


def test_tracker_seed_uses_the_rule() -> None:
    tracker = ExitTracker(waiting_for=None)
    tracker.seed({"processId": "k", "state": "failed", "signal": "SIGKILL", "exitCode": None})
    tracker.seed({"processId": "e", "state": "failed", "signal": None, "exitCode": 3})
    tracker.seed({"processId": "n", "state": "failed", "pid": None})
    tracker.seed({"processId": "o", "state": "exited", "exitCode": 0})
    assert tracker.statuses == {"k": 137, "e": 3, "n": 127, "o": 0}
    assert tracker.status == 137
