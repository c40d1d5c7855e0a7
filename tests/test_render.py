"""Human rendering of events and the `--until-exit` status (pure)."""

from __future__ import annotations

import re
import time
from collections.abc import Iterator
from typing import Any

import pytest

from agentwatch.cli.render import Renderer, describe
from agentwatch.client.exits import ExitTracker, signal_number


@pytest.fixture
def utc(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    yield
    monkeypatch.undo()
    time.tzset()


def ev(seq: int, type_: str, proc: str | None = "agent", **fields: Any) -> dict[str, Any]:
    return {
        "seq": seq,
        "type": type_,
        "timestamp": "2026-11-25T16:40:00.123456Z",
        "processId": proc,
        **fields,
    }


def test_output_line(utc: None) -> None:
    r = Renderer()
    line = r.line(ev(1, "process-output", stream="stdout", output="hello"))
    assert line == "16:40:00.123 agent | hello"


def test_local_time(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "IST-5:30")  # POSIX form: +05:30, no tzdata needed
    time.tzset()
    try:
        assert Renderer().clock("2026-11-25T16:40:00.123456Z") == "22:10:00.123"
        assert Renderer().clock("2026-11-25T16:40:00Z") == "22:10:00.000"
    finally:
        monkeypatch.undo()
        time.tzset()


def test_names_known_in_advance_align(utc: None) -> None:
    r = Renderer(names=["planner", "a"])
    lines = [
        r.line(ev(1, "process-output", "a", stream="stdout", output="x")),
        r.line(ev(2, "process-output", "planner", stream="stdout", output="y")),
    ]
    assert [str(line).index("|") for line in lines] == [21, 21]


def test_colour_per_process() -> None:
    r = Renderer(colour=True)
    a = str(r.line(ev(1, "process-output", "a", stream="stdout", output="x")))
    b = str(r.line(ev(2, "process-output", "b", stream="stderr", output="y")))
    assert a.count("\x1b[") >= 2
    assert b.count("\x1b[") >= 4
    assert re.search(r"\x1b\[(\d+)m", a).group(1) != re.search(r"\x1b\[(\d+)m", b).group(1)  # type: ignore[union-attr]


def test_progress_bar_shows_the_last_rewrite(utc: None) -> None:
    out = ev(1, "process-output", stream="stdout", output="\rprogress 10%\rprogress 90%\r")
    assert str(Renderer().line(out)).endswith("| progress 90%")


def test_stats_are_not_printed() -> None:
    assert Renderer().line(ev(1, "process-stats", cpuPercent=1.0)) is None


@pytest.mark.parametrize(
    ("event", "text"),
    [
        (ev(1, "process-started", pid=42, restarts=0), "-- started pid 42"),
        (ev(1, "process-started", pid=42, restarts=2), "-- started pid 42 (restart 2)"),
        (
            ev(1, "process-stopped", exitCode=3, signal=None, durationMs=5, willRestart=True),
            "-- stopped (exit code 3, 5 ms, restarting)",
        ),
        (ev(1, "process-stopped", exitCode=None, signal="SIGKILL", durationMs=5), "signal SIGKILL"),
        (
            ev(1, "process-error", kind="timeout", error="timed out"),
            "-- error [timeout]: timed out",
        ),
        (ev(1, "process-waiting"), "-- waiting for input"),
        (ev(1, "process-resumed"), "-- resumed"),
        (ev(1, "system-alert", None, level="warning", message="slow"), "-- warning: slow"),
        (
            ev(1, "task-assigned", taskId="T-1", title="parse", assignee="coder"),
            "-- task T-1 assigned to coder: parse",
        ),
        (
            ev(1, "task-completed", taskId="T-1", status="success", result={"files": 2}),
            '-- task T-1 success: {"files":2}',
        ),
        ({"type": "gap", "fromSeq": 3, "toSeq": 9}, "-- events 3..9 are no longer available"),
        (ev(1, "x-tokens-used", input=1200), '-- x-tokens-used {"input":1200}'),
        (ev(1, "x-ping"), "-- x-ping"),
    ],
)
def test_describe(event: dict[str, Any], text: str) -> None:
    assert text in describe(event)


def test_custom_event_fields_are_cut() -> None:
    text = describe(ev(1, "x-big", blob="z" * 1000))
    assert len(text) < 260
    assert text.endswith("...")


def stopped(pid: str, *, code: int | None = 0, sig: str | None = None, again: bool = False) -> Any:
    return ev(1, "process-stopped", pid, exitCode=code, signal=sig, willRestart=again)


def test_tracker_statuses() -> None:
    t = ExitTracker({"a", "b"})
    t.feed(ev(1, "process-started", "a"))
    t.feed(stopped("a", code=3, again=True))  # restarting: not final
    assert not t.done
    t.feed(stopped("a", code=0))
    t.feed(stopped("b", sig="SIGKILL"))
    assert t.done
    assert t.status == 128 + 9
    t2 = ExitTracker({"a"})
    t2.feed(ev(1, "process-error", "a", kind="timeout", error="x"))
    t2.feed(stopped("a", sig="SIGTERM"))
    assert (t2.done, t2.status) == (True, 124)
    t3 = ExitTracker({"a"})
    t3.feed(ev(1, "process-error", "a", kind="spawn-failed", error="command not found: x"))
    assert (t3.done, t3.status) == (True, 127)


def test_tracker_all_processes_and_first_failure() -> None:
    t = ExitTracker(None)
    for name in ("a", "b", "c"):
        t.seed({"processId": name, "state": "starting", "pid": None})
    t.feed(stopped("b", code=5))
    t.feed(stopped("a", code=0))
    assert not t.done  # c has not ended
    t.feed(stopped("c", code=7))
    assert (t.done, t.status) == (True, 5)  # the first that failed


def test_tracker_seeded_from_processes() -> None:
    t = ExitTracker(None)
    t.seed({"processId": "a", "state": "exited", "exitCode": 0, "signal": None, "pid": 1})
    t.seed({"processId": "b", "state": "failed", "exitCode": None, "signal": "SIGSEGV", "pid": 2})
    t.seed({"processId": "c", "state": "failed", "exitCode": None, "signal": None, "pid": None})
    assert t.done
    assert t.statuses == {"a": 0, "b": 128 + 11, "c": 127}


def test_signal_number() -> None:
    assert (signal_number("SIGTERM"), signal_number("KILL"), signal_number("SIGNOPE")) == (15, 9, 0)
