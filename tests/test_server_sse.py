"""Server-Sent Events endpoints over real sockets (SPEC 4.2)."""

from __future__ import annotations

import json
from pathlib import Path

import trio
from test_server_support import (
    SSEReader,
    request,
    running_server,
    short_limits,
    wait_for,
)

from agentwatch.config import AgentSpec
from agentwatch.proto.sse import SSEMessage
from agentwatch.server.context import ServerContext


def add(ctx: ServerContext, pid: str) -> None:
    """Register a process that is never started."""
    ctx.supervisor.add(AgentSpec(name=pid, command=("true",)))


async def take(reader: SSEReader, n: int) -> list[SSEMessage]:
    """The next ``n`` messages (the stream must not end first)."""
    out = []
    for _ in range(n):
        msg = await reader.next()
        assert msg is not None
        out.append(msg)
    return out


async def test_process_stream_framing(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            add(ctx, "a")
            reader, status, headers = await SSEReader.open(ctx, "/api/processes/a/logs/stream")
            assert status == 200
            assert headers["content-type"] == "text/event-stream"
            assert headers["cache-control"] == "no-cache"
            assert headers["x-accel-buffering"] == "no"
            hello = await reader.next()
            assert hello is not None
            assert hello.event == "connected"
            assert hello.id is None
            assert reader.parser.retry == 1000
            data = json.loads(hello.data)
            assert data["processId"] == "a"
            assert data["streamId"].startswith("sse-")
            ctx.hub.publish_output("b", "stdout", ["not mine"])  # 1
            ctx.hub.publish_output("a", "stdout", ["one\ntwo"])  # 2, 3
            ctx.hub.publish("x-note", "a", {"k": 1})  # 4
            ctx.hub.publish_output("a", "stderr", ["err"])  # 5
            msgs = await take(reader, 4)
            assert [(m.event, m.id) for m in msgs] == [
                ("log", "2"),
                ("log", "3"),
                ("x-note", "4"),
                ("log", "5"),
            ]
            assert [json.loads(m.data)["seq"] for m in msgs] == [2, 3, 4, 5]
            assert json.loads(msgs[1].data)["output"] == "two"
            clients = (await request(ctx, "GET", "/api/clients")).json()
            assert [(c["transport"], c["subscriptions"]) for c in clients] == [("sse", ["a"])]
            await reader.aclose()
            await wait_for(lambda: not ctx.hub.clients)


async def test_firehose_filters_and_names(tmp_path: Path) -> None:
    path = "/api/events/stream?processId=a&processId=b&type=process-output&type=x-one&since=0"
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            ctx.hub.publish_output("a", "stdout", ["a1"])  # 1
            ctx.hub.publish_output("c", "stdout", ["c1"])  # 2: other process
            ctx.hub.publish("x-one", "b", {})  # 3
            ctx.hub.publish("x-two", "b", {})  # 4: other type
            reader, status, _ = await SSEReader.open(ctx, path)
            assert status == 200
            ctx.hub.publish_output("b", "stderr", ["b1"])  # 5
            msgs = await take(reader, 3)
            assert [(m.event, m.id) for m in msgs] == [
                ("process-output", "1"),
                ("x-one", "3"),
                ("process-output", "5"),
            ]
            await reader.aclose()


async def test_resume_with_last_event_id_and_since(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            add(ctx, "a")
            for i in range(20):
                ctx.hub.publish_output("a", "stdout", [f"line {i}"])
            reader, _, _ = await SSEReader.open(ctx, "/api/processes/a/logs/stream?since=0")
            first = await take(reader, 8)  # connected + 7 events
            await reader.aclose()
            last_id = first[-1].id
            assert last_id == "7"
            # a reconnecting EventSource sends Last-Event-ID; it wins over ?since=
            headers = [("last-event-id", last_id)]
            reader, _, _ = await SSEReader.open(
                ctx, "/api/processes/a/logs/stream?since=0", headers
            )
            second = await take(reader, 14)  # connected + 13 events
            await reader.aclose()
            seqs = [int(m.id) for m in first[1:] + second[1:] if m.id]
            assert seqs == list(range(1, 21))
            reader, _, _ = await SSEReader.open(ctx, "/api/events/stream?since=18")
            assert [m.id for m in await take(reader, 2)] == ["19", "20"]
            await reader.aclose()
            reader, _, _ = await SSEReader.open(ctx, "/api/events/stream?tail=3")
            assert [m.id for m in await take(reader, 3)] == ["18", "19", "20"]
            await reader.aclose()


async def test_keepalive_comments(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path, limits=short_limits(sse_keepalive=0.1)) as ctx:
            reader, _, _ = await SSEReader.open(ctx, "/api/events/stream")
            with trio.move_on_after(0.1):
                await reader.next()  # nothing comes: only comments
            while reader.comments < 2:
                with trio.move_on_after(0.05):
                    await reader.next()
            ctx.hub.publish("x-late", None, {})
            msg = await reader.next()
            assert msg is not None
            assert msg.event == "x-late"
            await reader.aclose()


async def test_gap_event(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path, journal=False, history_events=10) as ctx:
            for i in range(50):
                ctx.hub.publish("x-n", None, {"i": i})
            reader, _, _ = await SSEReader.open(ctx, "/api/events/stream?since=0")
            gap = await reader.next()
            assert gap is not None
            assert gap.event == "gap"
            body = json.loads(gap.data)
            assert body["type"] == "gap"
            assert body["fromSeq"] == 1
            assert gap.id == str(body["toSeq"])
            nxt = await reader.next()
            assert nxt is not None
            assert nxt.id == str(body["toSeq"] + 1)
            await reader.aclose()


async def test_stream_errors(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            resp = await request(ctx, "GET", "/api/processes/ghost/logs/stream")
            assert resp.status == 404
            resp = await request(
                ctx, "GET", "/api/events/stream", headers=[("last-event-id", "abc")]
            )
            assert resp.status == 400
            resp = await request(ctx, "GET", "/api/events/stream?stream=stdin")
            assert resp.status == 400
            resp = await request(ctx, "GET", "/api/events/stream", auth=False)
            assert resp.status == 401


async def test_stream_ends_when_the_run_is_over(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            reader, _, _ = await SSEReader.open(ctx, "/api/events/stream?since=0")
            for i in range(5):
                ctx.hub.publish("x-n", None, {"i": i})
            ctx.hub.close()
            msgs = []
            while (msg := await reader.next()) is not None:
                msgs.append(msg)
            assert [m.id for m in msgs] == ["1", "2", "3", "4", "5"]
            assert reader.ended
            await reader.aclose()
