"""`depends_on` conditions through the library (SPEC 6, 7): `AgentSpec` takes names
or ``{name: condition}``, `run_session` honours them, and the API shows a waiting
agent as `pending` and one whose dependency failed as `skipped`.

Real children under the real clock, a real server on 127.0.0.1; every wait is
for a condition under `trio.fail_after`.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
from conftest import py, read_events
from test_server_support import TOKEN, quiet_options, request, wait_for

import agentwatch
from agentwatch.config import AgentSpec, DependencyCondition, StdinMode
from agentwatch.errors import ConfigError
from agentwatch.runner import Session, SessionOptions, run_session
from agentwatch.supervisor import ManagedProcess, ProcState

WAIT_FOR = """
import os, sys, time
print("ready", flush=True)
while not os.path.exists(sys.argv[1]):
    time.sleep(0.02)
raise SystemExit(int(sys.argv[2]) if len(sys.argv) > 2 else 0)
"""


def spec(name: str, code: str, *args: str | Path, **kw: Any) -> AgentSpec:
    return AgentSpec(
        name, (*py(code), *map(str, args)), stats_interval=0, stdin=StdinMode.DEVNULL, **kw
    )


def test_spec_takes_names_or_conditions() -> None:
    listed = AgentSpec("a", ("true",), depends_on=("x", "y", "x"))  # the old form
    assert listed.dependencies == {
        "x": DependencyCondition.STARTED,
        "y": DependencyCondition.STARTED,
    }
    assert list(listed.depends_on) == ["x", "y"]
    mapped = AgentSpec(
        "a", ("true",), depends_on={"x": "succeeded", "y": DependencyCondition.COMPLETED}
    )
    assert mapped.dependencies == {
        "x": DependencyCondition.SUCCEEDED,
        "y": DependencyCondition.COMPLETED,
    }
    assert AgentSpec("a", ("true",)).dependencies == {}
    assert agentwatch.DependencyCondition is DependencyCondition  # public, with AgentSpec
    with pytest.raises(ConfigError, match="a: depends_on: x: unknown condition 'done'"):
        AgentSpec("a", ("true",), depends_on={"x": "done"})
    with pytest.raises(ConfigError, match="list of names or a mapping"):
        AgentSpec("a", ("true",), depends_on="x")


def options(tmp_path: Path) -> SessionOptions:
    return quiet_options(tmp_path, TOKEN)


def journal_of(tmp_path: Path, session: Session) -> list[dict[str, Any]]:
    return read_events(tmp_path / "runs" / session.run_id / "events.jsonl")


async def states(session: Session) -> dict[str, str]:
    """processId -> state, from GET /api/processes."""
    res = await request(session.url or "", "GET", "/api/processes")
    assert res.status == 200
    return {p["processId"]: p["state"] for p in res.json()}


async def test_run_session_pending_then_started_in_order(tmp_path: Path) -> None:
    go = tmp_path / "go"
    specs = [
        spec("slow", WAIT_FOR, go),
        spec("waiter", "pass", depends_on={"slow": DependencyCondition.SUCCEEDED}),
        spec("early", "pass", depends_on=["slow"]),  # a list: once slow runs
    ]
    seen: list[dict[str, str]] = []
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            session: Session = await nursery.start(run_session, specs, options(tmp_path))
            assert (await states(session))["waiter"] == "pending"  # from the first request

            async def early_done() -> bool:
                seen.append(await states(session))
                return seen[-1]["early"] == "exited"

            while not await early_done():  # noqa: ASYNC110 - polls the API under fail_after
                await trio.sleep(0.02)
            assert seen[-1] == {"slow": "running", "waiter": "pending", "early": "exited"}
            go.touch()
    assert session.supervisor.processes["waiter"].state is ProcState.EXITED
    events = journal_of(tmp_path, session)
    order = [(e["type"], e["processId"]) for e in events if e["type"].startswith("process-s")]
    assert order.index(("process-stopped", "slow")) < order.index(("process-started", "waiter"))
    assert order.index(("process-started", "slow")) < order.index(("process-started", "early"))


async def test_run_session_skips_and_keeps_the_first_failure(tmp_path: Path) -> None:
    specs = [
        spec("bad", "raise SystemExit(7)"),
        spec("needs", "pass", depends_on={"bad": "succeeded"}),
        spec("after", "pass", depends_on={"bad": "completed"}),
    ]
    opts = options(tmp_path)
    with trio.fail_after(60):
        status = await run_session(specs, opts)
    assert status == 7
    [run] = (tmp_path / "runs").iterdir()
    events = read_events(run / "events.jsonl")
    started = [e["processId"] for e in events if e["type"] == "process-started"]
    assert started == ["bad", "after"]
    [alert] = [e for e in events if e["type"] == "system-alert"]
    assert (alert["processId"], alert["code"]) == ("needs", "dependency-failed")


@asynccontextmanager
async def pending_waiter_told(
    tmp_path: Path, condition: str, action: str
) -> AsyncIterator[tuple[Session, ManagedProcess]]:
    """A run where "waiter" waits on "slow" (until tmp_path/go exists) for ``condition``,
    and POST /api/processes/waiter/``action`` was accepted (202) while it is pending."""
    specs = [
        spec("slow", WAIT_FOR, tmp_path / "go"),
        spec("waiter", "pass", depends_on={"slow": condition}),
    ]
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            session: Session = await nursery.start(run_session, specs, options(tmp_path))
            waiter = session.supervisor.processes["waiter"]
            res = await request(session.url or "", "POST", f"/api/processes/waiter/{action}")
            assert res.status == 202
            yield session, waiter


async def test_stop_a_pending_agent(tmp_path: Path) -> None:
    """A stop ends the wait at once: the agent never starts, whatever its dependency does."""
    go = tmp_path / "go"
    async with pending_waiter_told(tmp_path, "completed", "stop") as (session, waiter):
        await wait_for(lambda: waiter.done_event.is_set())
        assert (await states(session))["waiter"] == "exited"
        assert session.supervisor.processes["slow"].state is ProcState.RUNNING
        go.touch()
    events = journal_of(tmp_path, session)
    assert [e["processId"] for e in events if e["type"] == "process-started"] == ["slow"]


async def test_restart_a_pending_agent_keeps_it_waiting(tmp_path: Path) -> None:
    """Restart of a pending agent is no start: it still waits for its depends_on."""
    go = tmp_path / "go"
    async with pending_waiter_told(tmp_path, "succeeded", "restart") as (session, waiter):
        # still pending after the restart (the API says so too); if the restart
        # skipped depends_on, the order below would show the waiter starting first
        await wait_for(lambda: waiter.state is ProcState.PENDING)
        assert (await states(session))["waiter"] == "pending"
        go.touch()
    events = journal_of(tmp_path, session)
    order = [(e["type"], e["processId"]) for e in events if e["type"].startswith("process-s")]
    assert order[-2:] == [("process-started", "waiter"), ("process-stopped", "waiter")]
    assert order.index(("process-stopped", "slow")) < order.index(("process-started", "waiter"))
