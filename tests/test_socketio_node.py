"""The real npm socket.io-client v4 against agentwatch (SPEC 4.3), both ways:
WebSocket only (the original design's client) and the client's default,
long-polling first, then the upgrade to WebSocket."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.lowlevel
from test_server_support import TOKEN, running_server, wait_for
from test_socketio_support import (
    TRANSPORTS,
    node_peer,
    sessions,
    sio_driver,
    socketio_clients,
)

from agentwatch.config import AgentSpec, StdinMode

TIMEOUT_S = 30
LINES = ["compiling", "linking", "done: 3 files"]


def is_event(name: str) -> Any:
    """Report predicate: a server event named ``name``."""
    return lambda r: r["kind"] == "event" and r["name"] == name


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_original_client_gets_process_output(tmp_path: Path, transport: str) -> None:
    """The original design's client: auth {userId}, subscribe-process, process-output."""
    code = "".join(f"print({line!r}, flush=True)\n" for line in LINES)
    spec = AgentSpec(
        name="builder",
        command=(sys.executable, "-u", "-c", code),
        stdin=StdinMode.DEVNULL,
        stats_interval=0,
    )
    options = {**TRANSPORTS[transport], "auth": {"userId": "alice", "token": TOKEN}}
    with trio.fail_after(TIMEOUT_S):
        async with (
            running_server(tmp_path) as ctx,
            node_peer(sio_driver(ctx, options)) as peer,
            trio.open_nursery() as nursery,
        ):
            connected = await peer.expect_kind("connect")
            assert connected["transport"] == transport
            if transport == "polling":
                assert (await peer.expect_kind("upgrade"))["transport"] == "websocket"
            # Subscribing to a process that has not started yet is allowed.
            await peer.emit("subscribe-process", "builder", ack=True)
            ack = await peer.expect_kind("ack")
            assert ack["args"] == [{"ok": True, "lastSeq": ctx.hub.last_seq}]
            [client] = socketio_clients(ctx)
            assert (client["userId"], client["transport"]) == ("alice", "socketio")
            assert client["subscriptions"] == ["builder"]

            nursery.start_soon(ctx.supervisor.serve_process, ctx.supervisor.add(spec))
            started = await peer.expect(is_event("process-started"))
            assert started["args"][0]["processId"] == "builder"
            outputs = []
            for _ in LINES:
                report = await peer.expect(is_event("process-output"))
                assert len(report["args"]) == 1
                outputs.append(report["args"][0])
            assert [e["output"] for e in outputs] == LINES
            for event in outputs:
                assert event["processId"] == "builder"
                assert event["type"] == "process-output"
                assert event["timestamp"].endswith("Z")
            stopped = await peer.expect(is_event("process-stopped"))
            assert stopped["args"][0]["exitCode"] == 0
            seqs = [e["seq"] for e in outputs]
            assert seqs == sorted(seqs)

            await peer.send({"op": "exit"})
            assert await peer.wait() == 0
            await wait_for(lambda: not sessions(ctx) and not socketio_clients(ctx))


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_rooms_and_broadcasts(tmp_path: Path, transport: str) -> None:
    """Process events go to their room only; task-* and system-alert to everyone."""
    hub_opts = {**TRANSPORTS[transport], "auth": {"token": TOKEN}}
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            hub = ctx.hub
            async with (
                node_peer(
                    sio_driver(ctx, {**hub_opts, "auth": {"token": TOKEN, "userId": "a"}})
                ) as a,
                node_peer(
                    sio_driver(ctx, {**hub_opts, "auth": {"token": TOKEN, "userId": "b"}})
                ) as b,
            ):
                for peer, pid in ((a, "p1"), (b, "p2")):
                    await peer.expect_kind("connect")
                    await peer.emit("subscribe-process", pid, ack=True)
                    assert (await peer.expect_kind("ack"))["args"][0]["ok"] is True
                hub.publish_output("p1", "stdout", ["one\ntwo"])
                hub.publish_output("p2", "stderr", ["three"])
                hub.publish("task-assigned", "p1", {"taskId": "t1", "title": "build"})
                hub.publish("system-alert", None, {"level": "warning", "message": "careful"})
                hub.publish("x-tokens-used", "p2", {"data": {"n": 3}})

                async def names(peer: Any, last: str) -> list[tuple[str, Any]]:
                    got: list[tuple[str, Any]] = []
                    while not got or got[-1][0] != last:
                        report = await peer.expect_kind("event")
                        got.append((report["name"], report["args"][0]))
                    return got

                got_a = await names(a, "system-alert")
                assert [(n, e.get("output")) for n, e in got_a] == [
                    ("process-output", "one"),
                    ("process-output", "two"),
                    ("task-assigned", None),
                    ("system-alert", None),
                ]
                got_b = await names(b, "x-tokens-used")
                assert [n for n, _ in got_b] == [
                    "process-output",
                    "task-assigned",
                    "system-alert",
                    "x-tokens-used",
                ]
                assert got_b[0][1]["stream"] == "stderr"

                # unsubscribe-process: no more p1 events; a broadcast marks the end
                await a.emit("unsubscribe-process", "p1", ack=True)
                assert (await a.expect_kind("ack"))["args"][0]["ok"] is True
                hub.publish_output("p1", "stdout", ["hidden"])
                hub.publish("task-completed", None, {"taskId": "t1", "status": "success"})
                report = await a.expect_kind("event")
                assert report["name"] == "task-completed"
                users = sorted(c["userId"] for c in socketio_clients(ctx))
                assert users == ["a", "b"]


@pytest.mark.parametrize("transport", list(TRANSPORTS))
async def test_bad_token_gets_connect_error(tmp_path: Path, transport: str) -> None:
    options = {**TRANSPORTS[transport], "auth": {"token": "wrong", "userId": "mallory"}}
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx, node_peer(sio_driver(ctx, options)) as peer:
            error = await peer.expect_kind("connect_error")
            assert error["message"] == "unauthorized"
            assert socketio_clients(ctx) == []
            # the client gives up its Engine.IO session: nothing stays behind
            await wait_for(lambda: not sessions(ctx))


async def test_token_on_the_handshake_query(tmp_path: Path) -> None:
    """``io(url, {query: {token}})``: the HTTP request carries the token, CONNECT does not."""
    with trio.fail_after(TIMEOUT_S):
        async with (
            running_server(tmp_path) as ctx,
            node_peer(sio_driver(ctx, {"query": {"token": TOKEN}})) as peer,
        ):
            await peer.expect_kind("connect")
            await peer.emit("subscribe-process", "*", ack=True)
            assert (await peer.expect_kind("ack"))["args"][0]["ok"] is True
            ctx.hub.publish_output("anything", "stdout", ["hi"])
            report = await peer.expect(is_event("process-output"))
            assert report["args"][0]["output"] == "hi"


async def test_many_events_in_order_through_the_upgrade(tmp_path: Path) -> None:
    """Broadcasts published from the moment the client joined, while its transport
    upgrades from polling to WebSocket, arrive once each and in order."""
    total = 20_000
    with trio.fail_after(60):
        async with (
            running_server(tmp_path) as ctx,
            node_peer(sio_driver(ctx, {"auth": {"token": TOKEN}})) as peer,
        ):
            await wait_for(lambda: bool(socketio_clients(ctx)), poll=0.001)
            for i in range(total):
                ctx.hub.publish("task-assigned", None, {"taskId": f"t{i}"})
                if i % 500 == 0:
                    await trio.lowlevel.checkpoint()
            ids: list[str] = []
            while len(ids) < total:
                report = await peer.expect(is_event("task-assigned"))
                ids.append(report["args"][0]["taskId"])
            assert ids == [f"t{i}" for i in range(total)]
            assert [r["transport"] for r in peer.reports if r["kind"] == "upgrade"] == ["websocket"]
            await wait_for(lambda: socketio_clients(ctx)[0]["queued"] == 0)
