"""The client library (SPEC 3, 7): discovery, the REST helper, the async
subscribe client over WebSocket and SSE, resume after a broken connection,
and the lazy public API."""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
import trio
import trio_websocket
from conftest import py, read_events
from net_support import TcpProxy, proxy_to
from test_server_support import quiet_options

import agentwatch
from agentwatch.client import Server, Subscription, api, find_server, follow
from agentwatch.client.discovery import live_runs, resolve_run_id
from agentwatch.client.sse import stream_path
from agentwatch.config import AgentSpec
from agentwatch.errors import ClientError
from agentwatch.paths import Discovery, write_discovery
from agentwatch.runner import Session, SessionOptions, run_session

TOKEN = "client-test-token"


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def fake_run(
    home: Path,
    run_id: str,
    *,
    pid: int | None = None,
    url: str = "",
    started: str = "",
    token: str | None = "tok",
) -> Path:
    path = home / "runs" / run_id / "server.json"
    write_discovery(
        path,
        Discovery(
            run_id,
            url or f"http://127.0.0.1:1{run_id[-4:]}",
            token,
            pid or os.getpid(),
            started or run_id,
            ["agent"],
        ),
    )
    return path


# ---------------------------------------------------------------------------
# find_server: flags, then environment, then discovery (SPEC 3)


def test_none_running(tmp_path: Path) -> None:
    with pytest.raises(ClientError, match="no running agentwatch server") as info:
        find_server(home=tmp_path, environ={})
    assert info.value.exit_code == 1


def test_newest_live_run_and_stale_files_cleaned(tmp_path: Path) -> None:
    old = fake_run(tmp_path, "20261125T100000Z-aaaa", started="2026-11-25T10:00:00.000001Z")
    new = fake_run(tmp_path, "20261125T100000Z-0000", started="2026-11-25T10:00:00.000002Z")
    stale = fake_run(tmp_path, "20261125T110000Z-bbbb", pid=dead_pid())
    server = find_server(home=tmp_path, environ={})
    assert server.run_id == "20261125T100000Z-0000"  # newest by start time, not by name
    assert server.token == "tok"
    assert not stale.exists()  # its pid is gone: ignored and removed
    assert old.exists()
    assert new.exists()
    assert [d.run_id for d in live_runs(tmp_path)] == [
        "20261125T100000Z-0000",
        "20261125T100000Z-aaaa",
    ]


def test_precedence(tmp_path: Path) -> None:
    fake_run(tmp_path, "20261125T100000Z-aaaa", url="http://127.0.0.1:1111", token="t-a")
    fake_run(tmp_path, "20261125T110000Z-bbbb", url="http://127.0.0.1:2222", token="t-b")
    env = {"AGENTWATCH_URL": "http://127.0.0.1:3333", "AGENTWATCH_TOKEN": "t-env"}
    # --url wins; the token of a local run at that URL is found by itself
    s = find_server("http://127.0.0.1:1111", home=tmp_path, environ=env)
    assert (s.url, s.token, s.run_id) == ("http://127.0.0.1:1111", "t-a", "20261125T100000Z-aaaa")
    assert find_server("127.0.0.1:9/?token=q", home=tmp_path, environ={}).token == "q"
    assert find_server("http://127.0.0.1:1111", "flag", home=tmp_path, environ={}).token == "flag"
    # --run beats $AGENTWATCH_URL (a flag wins over the variable), by id or unique prefix
    s = find_server(run_id="20261125T10", home=tmp_path, environ=env)
    assert (s.url, s.token) == ("http://127.0.0.1:1111", "t-a")
    # then $AGENTWATCH_URL with $AGENTWATCH_TOKEN
    s = find_server(home=tmp_path, environ=env)
    assert (s.url, s.token) == ("http://127.0.0.1:3333", "t-env")
    # inside an agent: its own run, never another one
    s = find_server(home=tmp_path, environ={"AGENTWATCH_RUN_ID": "20261125T100000Z-aaaa"})
    assert s.url == "http://127.0.0.1:1111"
    os.makedirs(tmp_path / "runs" / "20261125T120000Z-cccc")  # a --no-server run
    with pytest.raises(ClientError, match=r"AGENTWATCH_RUN_ID\) is not serving"):
        find_server(home=tmp_path, environ={"AGENTWATCH_RUN_ID": "20261125T120000Z-cccc"})


def test_run_ids(tmp_path: Path) -> None:
    for rid in ("20261125T100000Z-aaaa", "20261125T100000Z-abcd", "20261126T000000Z-ffff"):
        os.makedirs(tmp_path / "runs" / rid)
    assert resolve_run_id("20261126", tmp_path) == "20261126T000000Z-ffff"
    assert resolve_run_id("20261125T100000Z-aaaa", tmp_path) == "20261125T100000Z-aaaa"
    for bad, words in [("20261125T1", "ambiguous"), ("2027", "no run"), ("../x", "invalid")]:
        with pytest.raises(ClientError, match=words) as info:
            resolve_run_id(bad, tmp_path)
        assert info.value.exit_code == 4
    with pytest.raises(ClientError, match="has ended, or runs with --no-server"):
        find_server(run_id="20261126", home=tmp_path, environ={})


def test_api_errors() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens once closed
    with pytest.raises(ClientError, match="cannot reach") as info:
        api(Server(f"http://127.0.0.1:{port}"), "GET", "/api/processes")
    assert info.value.exit_code == 1


# ---------------------------------------------------------------------------
# Subscriptions (resume points, duplicates) and the SSE URL


def test_subscription_messages_resume() -> None:
    sub = Subscription(("a", "b"), types=("process-output",), tail=5)
    assert sub.message("a") == {
        "op": "subscribe",
        "processId": "a",
        "tail": 5,
        "types": ["process-output"],
    }
    assert sub.accept("a", {"seq": 7, "type": "process-output", "stream": "stdout"})
    assert not sub.accept("a", {"seq": 7, "type": "process-output"})  # duplicate
    assert not sub.accept("a", {"seq": 3, "type": "process-output"})  # older
    assert sub.message("a")["since"] == 7
    assert "tail" not in sub.message("a")
    assert Subscription().message("*") == {"op": "subscribe", "processId": "*", "since": 0}
    assert Subscription(since=9).message("*")["since"] == 9
    gap = {"type": "gap", "fromSeq": 8, "toSeq": 20}
    assert sub.accept("a", gap)
    assert sub.cursors["a"] == 20
    assert not sub.accept("a", gap)
    only_err = Subscription(stream="stderr")
    assert not only_err.accept("*", {"seq": 1, "type": "process-output", "stream": "stdout"})
    assert only_err.accept("*", {"seq": 2, "type": "process-output", "stream": "stderr"})
    assert only_err.accept("*", {"seq": 3, "type": "process-stopped"})


def test_stream_path() -> None:
    sub = Subscription(("a", "b"), ("x-1",), "stdout", tail=3)
    assert stream_path(sub) == (
        "/api/events/stream?processId=a&processId=b&type=x-1&stream=stdout&tail=3"
    )
    sub.cursors["sse"] = 42
    assert stream_path(sub).endswith("&since=42")
    assert stream_path(Subscription()) == "/api/events/stream?since=0"


# ---------------------------------------------------------------------------
# The async client against a real run (in process: run_session + follow)

TALKER = """
import os, sys, time
go = sys.argv[1]
for i in range(600):
    print(f"line {i}", flush=True)
    if i % 50 == 0:
        print(f"err {i}", file=sys.stderr, flush=True)
    time.sleep(0.001)
while not os.path.exists(go):
    time.sleep(0.01)
print("bye", flush=True)
"""


def talker_session(tmp_path: Path, go: Path) -> tuple[list[AgentSpec], SessionOptions]:
    spec = AgentSpec("talker", (*py(TALKER), str(go)), stats_interval=0)
    return [spec], quiet_options(tmp_path, TOKEN)


@asynccontextmanager
async def talker_run(tmp_path: Path, go: Path) -> AsyncIterator[Session]:
    """A running talker session (60 s at most); it ends once ``go`` exists."""
    specs, opts = talker_session(tmp_path, go)
    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            yield await nursery.start(run_session, specs, opts)


def journal_of(tmp_path: Path, session: Session) -> list[dict[str, Any]]:
    return read_events(tmp_path / "runs" / session.run_id / "events.jsonl")


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_resume_after_disconnect_no_gap_no_duplicate(tmp_path: Path, transport: str) -> None:
    go = tmp_path / "go"
    specs, opts = talker_session(tmp_path, go)
    got: list[dict[str, Any]] = []
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            session: Session = await nursery.start(run_session, specs, opts)
            assert session.url is not None
            with proxy_to(session.url) as proxy:
                server = Server(proxy.url, TOKEN)
                async with follow(server, Subscription(), transport=transport) as events:
                    async for event in events:
                        got.append(event)
                        if len(got) in (50, 300):
                            proxy.cut()  # the connection breaks mid-stream
                        if event.get("output") == "line 599":
                            go.touch()
                assert proxy.accepted >= 3  # it reconnected after each cut
    journal = journal_of(tmp_path, session)
    assert [e["seq"] for e in got] == [e["seq"] for e in journal]  # every event, once, in order
    assert got == journal
    assert got[-1]["type"] == "process-stopped"


async def test_filters_and_the_end_of_the_run(tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.touch()
    async with talker_run(tmp_path, go) as session:
        server = Server(session.url or "", TOKEN)
        sub = Subscription(("talker",), types=("process-output",), stream="stderr")
        async with follow(server, sub) as events:
            got = [e async for e in events]  # ends by itself with the run
    assert [e["output"] for e in got] == [f"err {i}" for i in range(0, 600, 50)]
    assert {e["stream"] for e in got} == {"stderr"}


async def drain(server: Server, transport: str, on_event: Any = None) -> None:
    """Follow to the end; ``on_event()`` after each event."""
    async with follow(server, transport=transport, give_up_after=1.0) as events:
        async for _ in events:
            if on_event is not None:
                on_event()  # e.g. the server goes away for good: connections refused


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_wrong_token_and_give_up(tmp_path: Path, transport: str) -> None:
    go = tmp_path / "go"
    async with talker_run(tmp_path, go) as session:
        url = session.url or ""
        with pytest.raises(ClientError, match="unauthorized"):
            await drain(Server(url, "wrong"), transport)
        proxy = TcpProxy(int(url.rsplit(":", 1)[1]))
        t0 = trio.current_time()
        with pytest.raises(ClientError, match="lost the connection"):
            await drain(Server(proxy.url, TOKEN), transport, proxy.close)
        assert trio.current_time() - t0 < 30
        go.touch()


def test_lazy_public_api() -> None:
    code = (
        "import sys, agentwatch\n"
        "assert 'trio' not in sys.modules and 'psutil' not in sys.modules\n"
        "names = [getattr(agentwatch, n) for n in agentwatch.__all__]\n"
        "assert 'trio' in sys.modules\n"
        "print(len(names))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert int(out.stdout) == len(agentwatch.__all__)
    for name in (
        "Hub",
        "Supervisor",
        "AgentSpec",
        "ServerConfig",
        "SessionOptions",
        "run_session",
        "serve",
        "follow",
        "Subscription",
        "find_server",
        "Server",
    ):
        assert name in agentwatch.__all__
    with pytest.raises(AttributeError):
        agentwatch.nothing_here  # noqa: B018


def test_follow_rejects_a_bad_transport() -> None:
    async def main() -> None:
        async with follow(Server("http://127.0.0.1:1"), transport="carrier-pigeon"):
            pass

    with pytest.raises(ClientError, match="invalid transport"):
        trio.run(main)


def test_discovery_file_is_private(tmp_path: Path) -> None:
    path = fake_run(tmp_path, "20261125T100000Z-aaaa")
    assert path.stat().st_mode & 0o777 == 0o600
    assert json.loads(path.read_text())["runId"] == "20261125T100000Z-aaaa"


@pytest.mark.parametrize("transport", ["ws", "sse"])
async def test_run_ends_while_disconnected_rest_from_the_journal(
    tmp_path: Path, transport: str
) -> None:
    go = tmp_path / "go"
    specs, opts = talker_session(tmp_path, go)
    got: list[dict[str, Any]] = []
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            session: Session = await nursery.start(run_session, specs, opts)
            assert session.url is not None
            discovery = tmp_path / "runs" / session.run_id / "server.json"
            proxy = TcpProxy(int(session.url.rsplit(":", 1)[1]))
            server = Server(proxy.url, TOKEN, session.run_id, discovery)
            sub = Subscription(("talker",))
            async with follow(server, sub, transport=transport) as events:
                async for event in events:
                    got.append(event)
                    if len(got) == 100:
                        proxy.close()  # we cannot reach the server any more...
                        go.touch()  # ... and the run ends meanwhile
    journal = journal_of(tmp_path, session)
    assert got == [e for e in journal if e["processId"] == "talker"]
    assert got[-1]["type"] == "process-stopped"


# ---------------------------------------------------------------------------
# Retryable WebSocket failures, the server's close codes, follow_session


async def test_a_failed_websocket_handshake_is_retried(monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that hangs up during the handshake: retried, then a clean ClientError.

    (Once, every retryable WebSocket failure crashed with a TypeError instead.)
    """
    monkeypatch.setattr("agentwatch.client.connect.CONNECT_TIMEOUT_S", 0.5)
    accepted = 0

    async def hang_up(stream: trio.SocketStream) -> None:
        nonlocal accepted
        accepted += 1
        await stream.receive_some(4096)  # the upgrade request...
        await stream.aclose()  # ... and no answer

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            listeners = await nursery.start(
                functools.partial(trio.serve_tcp, hang_up, 0, host="127.0.0.1")
            )
            port = listeners[0].socket.getsockname()[1]
            with pytest.raises(ClientError, match="lost the connection") as info:
                await drain(Server(f"http://127.0.0.1:{port}"), "ws")
            assert accepted >= 2  # it did retry
            assert info.value.exit_code == 1
            nursery.cancel_scope.cancel()


QUICK = "print('hello'); print('bye')"


def quick_session(tmp_path: Path, **kw: Any) -> tuple[list[AgentSpec], SessionOptions]:
    spec = AgentSpec("quick", tuple(py(QUICK)), stats_interval=0)
    return [spec], quiet_options(tmp_path, TOKEN, **kw)


async def test_follow_session_has_every_event_of_a_short_run(tmp_path: Path) -> None:
    """The agent may end before the follower reads anything: it still gets it all."""
    for i in range(5):
        specs, opts = quick_session(tmp_path / str(i))
        with trio.fail_after(30):
            async with trio.open_nursery() as nursery:
                session: Session = await nursery.start(run_session, specs, opts)
                await session.supervisor.processes["quick"].done_event.wait()  # over already
                async with agentwatch.follow_session(session) as events:
                    got = [e async for e in events]
        assert got == journal_of(tmp_path / str(i), session)
        assert [e["output"] for e in got if e["type"] == "process-output"] == ["hello", "bye"]


async def test_follow_session_filters_tail_and_no_server(tmp_path: Path) -> None:
    specs, opts = quick_session(tmp_path, no_journal=True)
    opts = dataclasses.replace(opts, server=None)
    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            session: Session = await nursery.start(run_session, specs, opts)
            sub = Subscription(types=("process-output",), tail=1)
            await session.supervisor.processes["quick"].done_event.wait()
            async with agentwatch.follow_session(session, sub) as events:
                got = [e["output"] async for e in events]
    assert got == ["bye"]


async def read_until_closed(ws: trio_websocket.WebSocketConnection) -> None:
    while True:
        await ws.get_message()


async def test_server_stop_tells_a_client_without_everything_1001(tmp_path: Path) -> None:
    """1000 means "the run is over and you have everything": never say it otherwise.

    A /ws client that has not subscribed yet when the server stops is told
    1001 (going away), so `follow` reconnects or reads the journal instead of
    ending with nothing (it used to get 1000).
    """
    go = tmp_path / "go"
    async with talker_run(tmp_path, go) as session:
        host, port = (session.url or "").removeprefix("http://").rsplit(":", 1)
        headers = [(b"authorization", f"Bearer {TOKEN}".encode())]
        # our own TCP stream: trio-websocket leaves it open when the server closes
        async with (
            await trio.open_tcp_stream(host, int(port)) as stream,
            trio.open_nursery() as ws_nursery,
        ):
            ws = await trio_websocket.wrap_client_stream(
                ws_nursery, stream, f"{host}:{port}", "/ws?batch=1", extra_headers=headers
            )
            go.touch()  # the run ends while this client has asked for nothing
            with pytest.raises(trio_websocket.ConnectionClosed) as info:
                await read_until_closed(ws)
            ws_nursery.cancel_scope.cancel()
        assert info.value.reason is not None
        assert info.value.reason.code == 1001


async def test_a_caught_up_client_is_told_1000_and_follow_ends(tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.touch()
    async with talker_run(tmp_path, go) as session:
        server = Server(session.url or "", TOKEN)  # no discovery: only the server's word
        async with follow(server, give_up_after=1.0) as events:
            got = [e async for e in events]
    assert got == journal_of(tmp_path, session)
