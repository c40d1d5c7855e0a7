"""Supervision end to end (SPEC 5): signal forwarding, --grace, tree kill,
children dying with agentwatch (even by SIGKILL), restarts with backoff,
--idle-alert, --max-memory, --stats-interval and waiting for input.

Real children run under the real clock; the pipe-drain timing runs under
trio's MockClock (no child involved)."""

from __future__ import annotations

import contextlib
import datetime as dt
import itertools
import os
import signal
import statistics
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import msgspec
import psutil
import pytest
import trio
import trio.testing

from agentwatch.capture import Pump, drain

if TYPE_CHECKING:
    from conftest import CLI

NAME = "agent"

READY = """
import signal, sys, time
print("ready", flush=True)
time.sleep(30)
"""


@pytest.fixture(autouse=True)
def _journals_follow_the_spec(cli: CLI) -> Iterator[None]:
    yield
    for path in cli.home.glob("*.jsonl"):
        cli.check_journal(path)


def events(path: Path) -> list[dict[str, Any]]:
    """The complete events of a journal being written (a cut last line waits)."""
    data = path.read_bytes() if path.exists() else b""
    return [msgspec.json.decode(line) for line in data[: data.rfind(b"\n") + 1].splitlines()]


def of_type(evs: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e for e in evs if e["type"] == type_]


def outputs(evs: list[dict[str, Any]]) -> list[str]:
    return [e["output"] for e in of_type(evs, "process-output")]


def when(e: dict[str, Any]) -> float:
    return dt.datetime.fromisoformat(e["timestamp"].replace("Z", "+00:00")).timestamp()


def start(
    cli: CLI, journal: Path, argv: list[str], *opts: str, **kw: Any
) -> subprocess.Popen[bytes]:
    return cli.popen(
        "run",
        "--no-server",
        "--quiet",
        "--name",
        NAME,
        "--journal",
        journal,
        *opts,
        "--",
        *argv,
        **kw,
    )


def wait_output(cli: CLI, journal: Path, text: str, timeout: float = 20) -> list[dict[str, Any]]:
    got: list[dict[str, Any]] = cli.wait_for(
        lambda: text in outputs(events(journal)) and events(journal),
        timeout=timeout,
        what=f"output {text!r}",
    )
    return got


def wait_event(
    cli: CLI, journal: Path, type_: str, count: int = 1, timeout: float = 20
) -> list[dict[str, Any]]:
    def found() -> list[dict[str, Any]] | None:
        evs = events(journal)
        return evs if len(of_type(evs, type_)) >= count else None

    got: list[dict[str, Any]] = cli.wait_for(found, timeout=timeout, what=f"{count} {type_} events")
    return got


def finish(proc: subprocess.Popen[bytes], timeout: float = 30) -> int:
    proc.communicate(timeout=timeout)
    return proc.returncode


def gone(pid: int) -> bool:
    """Dead, or a zombie waiting for its parent (or init) to reap it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def agent_tree(cli: CLI, journal: Path, name: str, count: int) -> list[int]:
    """The agent's pid and ``count`` descendants called ``name``, once they exist."""

    def found() -> list[int] | None:
        started = of_type(events(journal), "process-started")
        if not started:
            return None
        pid = started[-1]["pid"]
        try:
            kids = [p.pid for p in psutil.Process(pid).children(recursive=True) if p.name() == name]
        except psutil.Error:
            return None
        return [pid, *kids] if len(kids) >= count else None

    pids: list[int] = cli.wait_for(found, what=f"{count} {name} processes")
    return pids


# ---------------------------------------------------------------------------
# Pipe draining timing, in virtual time (no child)


async def test_drain_waits_for_eof_then_returns(autojump_clock: trio.testing.MockClock) -> None:
    r, w = os.pipe()
    try:
        a, b = Pump(r), Pump(r)
        a.done.set()
        t0 = trio.current_time()

        async def finish_b() -> None:
            await trio.sleep(0.2)
            b.done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(finish_b)
            await drain([a, b], 0.5)
            assert trio.current_time() - t0 == pytest.approx(0.2)
    finally:
        os.close(r)
        os.close(w)


async def test_drain_gives_up_on_idle_empty_pipe_after_grace(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """A leftover grandchild holds the pipe open but writes nothing."""
    r, w = os.pipe()
    try:
        held = Pump(r)
        held.idle = True  # the reader waits, and nothing is in the pipe
        t0 = trio.current_time()
        with trio.fail_after(10):
            await drain([held, Pump(r, idle=True)], 0.5)
        assert 0.5 <= trio.current_time() - t0 < 0.6
    finally:
        os.close(r)
        os.close(w)


async def test_drain_keeps_reading_a_pipe_with_data(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """Bytes still in the pipe (or a reader busy with them) hold the drain."""
    r, w = os.pipe()
    try:
        os.write(w, b"pending output\n")
        full = Pump(r, idle=True)
        busy = Pump(r)  # not idle: publishing what it read
        t0 = trio.current_time()
        with trio.move_on_after(3):
            await drain([full], 0.5)
        assert trio.current_time() - t0 == pytest.approx(3)
        os.read(r, 100)

        async def done_later() -> None:
            await trio.sleep(2)
            busy.done.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(done_later)
            t0 = trio.current_time()
            await drain([busy, full], 0.5)
            assert 2 <= trio.current_time() - t0 <= 2.1  # polled every 50 ms past grace
    finally:
        os.close(r)
        os.close(w)


# ---------------------------------------------------------------------------
# Signals and stopping


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_signal_forwarded_to_child(cli: CLI, sig: signal.Signals) -> None:
    journal = cli.home / "events.jsonl"
    code = f"""
import signal, sys, time
def handler(n, frame):
    print("got", n, flush=True)
    sys.exit(7)
signal.signal({int(sig)}, handler)
print("ready", flush=True)
time.sleep(30)
"""
    proc = start(cli, journal, cli.py(code))
    wait_output(cli, journal, "ready")
    proc.send_signal(sig)
    assert finish(proc) == 7  # the child's own status
    evs = events(journal)
    assert outputs(evs) == ["ready", f"got {int(sig)}"]
    assert evs[-1]["type"] == "process-stopped"
    assert evs[-1]["exitCode"] == 7


def test_child_ignoring_sigterm_killed_after_grace(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    code = "import signal; signal.signal(signal.SIGTERM, signal.SIG_IGN)\n" + READY
    proc = start(cli, journal, cli.py(code), "--grace", "0.5")
    wait_output(cli, journal, "ready")
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 128 + signal.SIGKILL
    assert 0.4 < time.monotonic() - t0 < 10
    stopped = events(journal)[-1]
    assert (stopped["type"], stopped["signal"]) == ("process-stopped", "SIGKILL")


def test_second_sigint_kills_at_once(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    code = """
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
signal.signal(signal.SIGINT, lambda n, f: print("int", flush=True))
print("ready", flush=True)
time.sleep(60)
"""
    proc = start(cli, journal, cli.py(code), "--grace", "60")
    wait_output(cli, journal, "ready")
    proc.send_signal(signal.SIGINT)
    wait_output(cli, journal, "int")  # the first one was forwarded; the child shrugged
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    assert finish(proc) == 128 + signal.SIGKILL
    assert time.monotonic() - t0 < 10


@pytest.mark.parametrize(
    ("script", "opts", "how", "status"),
    [
        ("sleep 60 & sleep 60", ["--timeout", "0.5"], None, 124),
        ("sleep 60 & sleep 60", [], signal.SIGTERM, 128 + signal.SIGTERM),
        # everything ignores SIGTERM: the tree is SIGKILLed after --grace
        ("trap '' TERM; sleep 60 & sleep 60", ["--timeout", "0.5", "--grace", "0.3"], None, 124),
    ],
    ids=["timeout", "sigterm", "grace"],
)
def test_stop_kills_the_whole_tree(
    cli: CLI, script: str, opts: list[str], how: signal.Signals | None, status: int
) -> None:
    journal = cli.home / "events.jsonl"
    proc = start(cli, journal, ["sh", "-c", script], *opts)
    pids = agent_tree(cli, journal, "sleep", 2)
    if how is not None:
        proc.send_signal(how)
    assert finish(proc) == status
    cli.wait_for(lambda: all(gone(p) for p in pids), timeout=5, what="the tree to be gone")
    kinds = [e.get("kind") for e in of_type(events(journal), "process-error")]
    assert kinds == (["timeout"] if status == 124 else [])


ESCAPE = """
import subprocess, time
p = subprocess.Popen(["sleep", "60"], start_new_session=True)
print(p.pid, flush=True)
time.sleep(30)
"""


@pytest.mark.parametrize(
    ("opts", "how", "status"),
    [(["--timeout", "0.3"], None, 124), ([], signal.SIGTERM, 128 + signal.SIGTERM)],
    ids=["timeout", "sigterm"],
)
def test_stop_kills_descendants_in_other_groups(
    cli: CLI, opts: list[str], how: signal.Signals | None, status: int
) -> None:
    """A grandchild in its own session is outside the group, not outside the tree."""
    journal = cli.home / "events.jsonl"
    proc = start(cli, journal, cli.py(ESCAPE), *opts)
    evs = cli.wait_for(lambda: outputs(events(journal)), what="the grandchild's pid")
    grandchild = int(evs[0])
    try:
        if how is not None:
            proc.send_signal(how)
        assert finish(proc) == status
        cli.wait_for(lambda: gone(grandchild), timeout=5, what="the escaped grandchild to die")
    finally:
        with contextlib.suppress(OSError):
            os.kill(grandchild, signal.SIGKILL)


def test_children_die_with_agentwatch_even_by_sigkill(cli: CLI) -> None:
    """PR_SET_PDEATHSIG and the watchdog: children (and grandchildren) of a
    SIGKILLed agentwatch die within about a second, also after the 10 s
    that trio's idle worker threads live (a pdeathsig armed from one of those
    threads once killed every agent 10 s after its start)."""
    journal = cli.home / "events.jsonl"
    t_start = time.monotonic()
    proc = start(cli, journal, ["sh", "-c", "sleep 30 & sleep 30"])
    pids = agent_tree(cli, journal, "sleep", 2)
    time.sleep(max(0.0, t_start + 15 - time.monotonic()))  # outlive the 10 s trap
    assert proc.poll() is None
    assert not any(gone(p) for p in pids), "the agent died before agentwatch did"
    proc.kill()
    t_kill = time.monotonic()
    cli.wait_for(
        lambda: all(gone(p) for p in pids),
        timeout=10,
        interval=0.01,
        what="the agent tree to die with agentwatch",
    )
    assert time.monotonic() - t_kill < 1.0  # SPEC 5: within a second (measured: ~0.03 s)
    finish(proc)


def test_everything_seen_is_journaled_when_killed(cli: CLI) -> None:
    """Write-ahead (SPEC 2): after a SIGKILL mid-stream, every event a
    subscriber (here --json on stdout) was sent is in the journal."""
    journal = cli.home / "events.jsonl"
    code = "import itertools\nfor i in itertools.count():\n    print(i)"
    proc = cli.popen(
        "run", "--no-server", "--json", "--name", NAME, "--journal", journal, "--", *cli.py(code)
    )
    assert proc.stdout is not None
    seen = [proc.stdout.readline() for _ in range(5000)]
    proc.kill()
    rest = proc.stdout.read()  # what readline buffered, then EOF
    proc.wait(timeout=30)
    data = b"".join(seen) + rest
    lines = data[: data.rfind(b"\n") + 1].splitlines()  # a line cut by the kill is no event
    journaled = set(journal.read_bytes().splitlines())
    missing = [line for line in lines if line not in journaled]
    assert not missing, missing[:3]
    seqs = [msgspec.json.decode(line)["seq"] for line in lines]
    assert seqs == list(range(1, len(seqs) + 1))
    assert len(seqs) >= 5000


# ---------------------------------------------------------------------------
# Restarts


def test_crash_loop_restarts_with_backoff_then_gives_up(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    proc = start(
        cli,
        journal,
        cli.py("print('boom'); raise SystemExit(3)"),
        "--restart",
        "on-failure",
        "--max-restarts",
        "2",
        "--backoff",
        "0.2",
    )
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 3
    assert err.decode().count("\n") == 1  # one line about the restart limit
    assert "not restarting" in err.decode()
    evs = events(journal)
    started = of_type(evs, "process-started")
    stopped = of_type(evs, "process-stopped")
    assert [e["restarts"] for e in started] == [0, 1, 2]
    assert [e["willRestart"] for e in stopped] == [True, True, False]
    assert [e["exitCode"] for e in stopped] == [3, 3, 3]
    assert outputs(evs) == ["boom"] * 3
    # Doubling backoff between a stop and the next start.
    assert when(started[1]) - when(stopped[0]) >= 0.19
    assert when(started[2]) - when(stopped[1]) >= 0.39
    (error,) = of_type(evs, "process-error")
    (alert,) = of_type(evs, "system-alert")
    assert error["kind"] == "restart-limit"
    assert (alert["code"], alert["level"], alert["processId"]) == ("restart-limit", "error", NAME)
    assert evs.index(error) > evs.index(stopped[-1])


def test_restart_always_and_last_status(cli: CLI, tmp_path: Path) -> None:
    """--restart always restarts successes too; the run exits with the last status."""
    counter = tmp_path / "count"
    code = f"""
import pathlib, sys
p = pathlib.Path({str(counter)!r})
n = int(p.read_text()) if p.exists() else 0
p.write_text(str(n + 1))
print("run", n)
sys.exit(5 if n == 2 else 0)
"""
    journal = cli.home / "events.jsonl"
    proc = start(
        cli,
        journal,
        cli.py(code),
        "--restart",
        "always",
        "--max-restarts",
        "2",
        "--backoff",
        "0.05",
    )
    assert finish(proc) == 5
    evs = events(journal)
    assert outputs(evs) == ["run 0", "run 1", "run 2"]
    assert [e["exitCode"] for e in of_type(evs, "process-stopped")] == [0, 0, 5]
    assert [e["kind"] for e in of_type(evs, "process-error")] == ["restart-limit"]


def test_on_failure_stops_restarting_after_success(cli: CLI, tmp_path: Path) -> None:
    counter = tmp_path / "count"
    code = f"""
import pathlib, sys
p = pathlib.Path({str(counter)!r})
n = int(p.read_text()) if p.exists() else 0
p.write_text(str(n + 1))
sys.exit(0 if n == 2 else 1)
"""
    journal = cli.home / "events.jsonl"
    proc = start(cli, journal, cli.py(code), "--restart", "on-failure", "--backoff", "0.05")
    assert finish(proc) == 0
    evs = events(journal)
    assert [e["willRestart"] for e in of_type(evs, "process-stopped")] == [True, True, False]
    assert of_type(evs, "process-error") == []
    assert of_type(evs, "system-alert") == []


# ---------------------------------------------------------------------------
# Watching a running agent


def test_idle_alert(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    proc = start(cli, journal, cli.py(READY), "--idle-alert", "0.3")
    evs = wait_event(cli, journal, "system-alert")
    (alert,) = of_type(evs, "system-alert")
    assert (alert["code"], alert["level"], alert["processId"]) == ("idle", "warning", NAME)
    ready = of_type(evs, "process-output")[0]
    assert when(alert) - when(ready) >= 0.25
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 128 + signal.SIGTERM
    assert len(of_type(events(journal), "system-alert")) == 1  # once per silence


ALLOCATE = """
import time
ballast = b"x" * (200 * 1024 * 1024)
print("allocated", flush=True)
time.sleep(30)
"""


def test_memory_alert_only(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    proc = start(cli, journal, cli.py(ALLOCATE), "--max-memory", "64M")
    evs = wait_event(cli, journal, "system-alert")
    (alert,) = of_type(evs, "system-alert")
    assert (alert["code"], alert["level"]) == ("memory-limit", "warning")
    assert of_type(evs, "process-error") == []
    assert proc.poll() is None  # still running
    proc.send_signal(signal.SIGTERM)
    assert finish(proc) == 128 + signal.SIGTERM


def test_kill_on_memory(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    proc = start(cli, journal, cli.py(ALLOCATE), "--max-memory", "64M", "--kill-on-memory")
    assert finish(proc) == 128 + signal.SIGTERM
    evs = events(journal)
    (alert,) = of_type(evs, "system-alert")
    (error,) = of_type(evs, "process-error")
    assert (alert["code"], alert["level"]) == ("memory-limit", "error")
    assert error["kind"] == "memory-limit"
    assert evs[-1]["type"] == "process-stopped"
    assert evs[-1]["signal"] == "SIGTERM"


def test_stats_interval(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    proc = start(cli, journal, ["sh", "-c", "sleep 30 & sleep 30"], "--stats-interval", "0.2")

    def two_children() -> list[dict[str, Any]] | None:
        stats = of_type(events(journal), "process-stats")
        return stats if len([s for s in stats if s["numChildren"] == 2]) >= 2 else None

    stats = cli.wait_for(two_children, what="process-stats of the whole tree")
    for s in stats:
        assert list(s)[4:] == ["cpuPercent", "rssBytes", "numThreads", "numChildren", "numFds"]
        assert s["processId"] == NAME
        assert isinstance(s["cpuPercent"], int | float)
        assert s["rssBytes"] > 0
        assert s["numThreads"] >= 1
        assert s["numFds"] >= 3
    tree = [s for s in stats if s["numChildren"] == 2]
    assert tree[-1]["numThreads"] >= 3  # summed over sh and two sleeps
    gaps = [when(b) - when(a) for a, b in itertools.pairwise(stats)]
    assert statistics.median(gaps) >= 0.15  # one per interval, not a burst
    proc.send_signal(signal.SIGTERM)
    finish(proc)


def test_waiting_for_input_and_resumed(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    code = "print('question?', flush=True); answer = input(); print('got', answer)"
    proc = start(cli, journal, cli.py(code), stdin=subprocess.PIPE)
    assert proc.stdin is not None
    evs = wait_event(cli, journal, "process-waiting")
    assert outputs(evs) == ["question?"]
    waiting = of_type(evs, "process-waiting")[0]
    assert waiting["processId"] == NAME
    assert when(waiting) - when(of_type(evs, "process-output")[0]) >= 1.9
    proc.stdin.write(b"yes\n")
    proc.stdin.flush()
    assert finish(proc) == 0
    evs = events(journal)
    types = [e["type"] for e in evs]
    assert types.count("process-waiting") == 1
    assert types.count("process-resumed") == 1
    assert outputs(evs) == ["question?", "got yes"]
    got = next(i for i, e in enumerate(evs) if e.get("output") == "got yes")
    assert types.index("process-waiting") < got < types.index("process-resumed") < len(evs) - 1
    assert types[-1] == "process-stopped"


# ---------------------------------------------------------------------------
# Several agents under one supervisor (in process, real children, real clock)


async def test_restart_budgets_are_per_process(cli: CLI, tmp_path: Path) -> None:
    """Two crash-looping agents: each gets its own backoff and restart budget."""
    from agentwatch.config import AgentSpec, RestartPolicy, StdinMode
    from agentwatch.runner import Echo, SessionOptions, run_session

    journal = tmp_path / "events.jsonl"
    specs = [
        AgentSpec(
            name=name,
            command=tuple(cli.py("raise SystemExit(4)")),
            restart=RestartPolicy.ON_FAILURE,
            max_restarts=2,
            backoff=0.05,
            stats_interval=0,
            stdin=StdinMode.DEVNULL,
        )
        for name in ("a", "b")
    ]
    opts = SessionOptions(server=None, journal=journal, echo=Echo.NONE, handle_signals=False)
    with trio.fail_after(30):
        status = await run_session(specs, opts)
    assert status == 4
    evs = cli.read_events(journal)
    for name in ("a", "b"):
        mine = [e for e in evs if e["processId"] == name]
        assert [e["restarts"] for e in of_type(mine, "process-started")] == [0, 1, 2], name
        assert [e["willRestart"] for e in of_type(mine, "process-stopped")] == [
            True,
            True,
            False,
        ], name
        assert [e["kind"] for e in of_type(mine, "process-error")] == ["restart-limit"], name
