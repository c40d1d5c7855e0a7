"""Cancelling a run from the program that embeds it stops every agent (SPEC 7).

The shape of trio's own `run_process`: on cancellation, SIGTERM to the
process group, the agent's grace, then SIGKILL to the whole tree, reaped
before the cancelled call returns."""

from __future__ import annotations

import sys
from pathlib import Path

import psutil
import pytest
import trio

from agentwatch.config import AgentSpec, StdinMode
from agentwatch.runner import Echo, Session, SessionOptions, run_session

pytestmark = pytest.mark.timeout(60)

STUBBORN = """
import signal, subprocess, sys, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("ready", kid.pid, flush=True)
time.sleep(60)
"""
POLITE = """
import subprocess, sys, time
kid = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
print("ready", kid.pid, flush=True)
time.sleep(60)
"""


def gone(pid: int) -> bool:
    """Dead, or a zombie waiting for its parent (or init) to reap it."""
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def agent(name: str, code: str, grace: float) -> AgentSpec:
    return AgentSpec(
        name,
        (sys.executable, "-u", "-c", code),
        grace=grace,
        stats_interval=0,
        stdin=StdinMode.DEVNULL,
    )


def options(home: Path) -> SessionOptions:
    return SessionOptions(
        server=None, home=home, no_journal=True, echo=Echo.NONE, handle_signals=False
    )


async def tree_when_ready(session: Session, names: list[str]) -> list[int]:
    """Each agent's pid and its child's, once every agent printed "ready"."""
    with trio.fail_after(20):
        while True:
            procs = [session.supervisor.processes[n] for n in names]
            if all(p.lines["stdout"] >= 1 and p.pid is not None for p in procs):
                break
            await trio.sleep(0.02)
    pids: list[int] = []
    for p in procs:
        assert p.pid is not None
        pids += [p.pid, *(c.pid for c in psutil.Process(p.pid).children())]
    assert len(pids) == 2 * len(names)
    return pids


async def test_cancel_stops_agents_that_trap_sigterm_and_those_that_do_not(
    tmp_path: Path,
) -> None:
    specs = [agent("stubborn", STUBBORN, grace=1.0), agent("polite", POLITE, grace=1.0)]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            session: Session = await nursery.start(run_session, specs, options(tmp_path))
            pids = await tree_when_ready(session, ["stubborn", "polite"])
            nursery.cancel_scope.cancel()
            start = trio.current_time()
    took = trio.current_time() - start
    assert [pid for pid in pids if not gone(pid)] == []
    assert 0.9 <= took < 5  # the stubborn one had its grace, then SIGKILL


async def test_cancel_does_not_wait_the_grace_for_an_agent_that_obeys_sigterm(
    tmp_path: Path,
) -> None:
    specs = [agent("polite", POLITE, grace=20.0)]
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            session: Session = await nursery.start(run_session, specs, options(tmp_path))
            pids = await tree_when_ready(session, ["polite"])
            nursery.cancel_scope.cancel()
            start = trio.current_time()
    took = trio.current_time() - start
    assert [pid for pid in pids if not gone(pid)] == []
    assert took < 5  # not the 20 s grace
