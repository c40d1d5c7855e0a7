"""The native /ws protocol over real sockets (SPEC 4.1, 4.4)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.lowlevel
import trio_websocket
from test_server_support import (
    TOKEN,
    FrameReader,
    masked_frame,
    open_raw_socket,
    raw_exchange,
    read_head,
    request,
    running_server,
    short_limits,
    upgrade_request,
    wait_for,
    ws_url,
)
from trio_websocket import ConnectionClosed, open_websocket_url

from agentwatch.events import SYSTEM_ALERT
from agentwatch.hub import Filter
from agentwatch.server.context import ServerContext
from agentwatch.server.limits import FRAME_MAX_EVENTS

decode = msgspec.json.decode


async def get_json(ws: trio_websocket.WebSocketConnection) -> Any:
    """The next message, decoded."""
    return decode(await ws.get_message())


async def send_json(ws: trio_websocket.WebSocketConnection, obj: Any) -> None:
    """Send one JSON message."""
    await ws.send_message(msgspec.json.encode(obj).decode())


async def send_and_receive(ws: trio_websocket.WebSocketConnection, message: str) -> None:
    """Send a message and wait for an answer (the connection may close first)."""
    await ws.send_message(message)
    await ws.get_message()


async def receive_forever(ws: trio_websocket.WebSocketConnection, seqs: list[int]) -> None:
    """Append the seq of every event until the connection closes."""
    while True:
        seqs.append((await get_json(ws))["seq"])


async def collect_events(
    ws: trio_websocket.WebSocketConnection, until_seq: int, batch: bool
) -> list[dict[str, Any]]:
    """Events received until one with seq ``until_seq`` (controls fail the test)."""
    events: list[dict[str, Any]] = []
    while not events or events[-1]["seq"] < until_seq:
        msg = await get_json(ws)
        if batch:
            assert isinstance(msg, list), msg
            assert 1 <= len(msg) <= FRAME_MAX_EVENTS
            events += msg
        else:
            assert isinstance(msg, dict), msg
            assert "seq" in msg, msg
            events.append(msg)
    return events


async def test_ping_and_bad_messages_keep_the_connection(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx, open_websocket_url(ws_url(ctx)) as ws:
            await send_json(ws, {"op": "ping"})
            assert await get_json(ws) == {"type": "pong"}
            for bad, code in [
                ("{nope", "invalid-json"),
                ("[1]", "invalid-json"),
                ('{"op":"dance"}', "unknown-op"),
                ('{"op":"subscribe","processId":""}', "invalid-field"),
                ('{"op":"subscribe","processId":"a","since":-1}', "invalid-field"),
                ('{"op":"publish","event":{"type":"process-output"}}', "reserved-type"),
            ]:
                await ws.send_message(bad)
                reply = await get_json(ws)
                assert reply["type"] == "error"
                assert reply["code"] == code
                assert reply["message"]
            await ws.send_message(b'{"op":"ping"}')  # a binary frame works too
            assert await get_json(ws) == {"type": "pong"}


async def test_frame_over_1mib_closes_1009(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            async with open_websocket_url(ws_url(ctx), max_message_size=4 << 20) as ws:
                with pytest.raises(ConnectionClosed) as info:
                    await send_and_receive(ws, "x" * (2 * 1024 * 1024))
                assert info.value.reason is not None
                assert info.value.reason.code == 1009
                # trio-websocket 0.12 skips closing its socket when the peer closed
                # with an error first; close it ourselves (else a ResourceWarning)
                await ws._stream.aclose()
            assert (await request(ctx, "GET", "/healthz")).status == 200


async def test_publish_op(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx, open_websocket_url(ws_url(ctx)) as ws:
            await send_json(ws, {"op": "subscribe", "processId": "*"})
            assert (await get_json(ws))["type"] == "subscribed"
            event = {"type": "x-tokens", "processId": "a", "n": 5}
            await send_json(ws, {"op": "publish", "event": event})
            first, second = await get_json(ws), await get_json(ws)
            # the reply and the event itself may come in either order
            reply, echoed = (first, second) if first["type"] == "published" else (second, first)
            assert reply == {"type": "published", "seq": 1}
            assert echoed["seq"] == 1
            assert echoed["type"] == "x-tokens"
            assert echoed["n"] == 5


async def publisher(ctx: ServerContext, total: int, pids: tuple[str, ...] = ("a",)) -> None:
    """Publish ``total`` output events in chunks of varying size, yielding between."""
    n = 0
    i = 0
    while n < total:
        size = min(1 + i % 7, total - n)
        pid = pids[i % len(pids)]
        ctx.hub.publish_output(pid, "stdout", ["\n".join(f"line {n + k}" for k in range(size))])
        n += size
        i += 1
        await trio.lowlevel.checkpoint()


@pytest.mark.parametrize("batch", [False, True])
async def test_subscribe_since_no_gap_no_duplicate_while_live(tmp_path: Path, batch: bool) -> None:
    total = 3000
    query = "&batch=1" if batch else ""
    with trio.fail_after(30):
        async with running_server(tmp_path) as ctx, trio.open_nursery() as nursery:
            await publisher(ctx, 500)
            nursery.start_soon(publisher, ctx, total - 500)
            async with open_websocket_url(ws_url(ctx, query)) as ws:
                await send_json(ws, {"op": "subscribe", "processId": "*", "since": 123})
                reply = await get_json(ws)
                assert reply["type"] == "subscribed"
                assert reply["lastSeq"] >= 500
                events = await collect_events(ws, total, batch)
            assert [e["seq"] for e in events] == list(range(124, total + 1))
            assert events[0]["output"] == "line 123"


@pytest.mark.parametrize("batch", [False, True])
async def test_subscribe_tail_no_gap_no_duplicate_while_live(tmp_path: Path, batch: bool) -> None:
    total = 3000
    query = "&batch=1" if batch else ""
    with trio.fail_after(30):
        async with running_server(tmp_path) as ctx, trio.open_nursery() as nursery:
            await publisher(ctx, 400, pids=("a", "b"))
            nursery.start_soon(publisher, ctx, total - 400, ("a", "b"))
            async with open_websocket_url(ws_url(ctx, query)) as ws:
                await send_json(ws, {"op": "subscribe", "processId": "a", "tail": 50})
                reply = await get_json(ws)
                assert reply["type"] == "subscribed"
                assert reply["processId"] == "a"
                await wait_for(lambda: not nursery.child_tasks)
                only_a = Filter(frozenset({"a"}))
                expected = [
                    seq
                    for b in ctx.hub.read(0, only_a, 10**6).batches
                    for seq in range(b.first_seq, b.last_seq + 1)
                ]
                events = await collect_events(ws, expected[-1], batch)
            assert {e["processId"] for e in events} == {"a"}
            before = [s for s in expected if s <= reply["lastSeq"]]
            assert [e["seq"] for e in events] == expected[len(before) - 50 :]


async def test_batch_frames_stay_under_1mib(tmp_path: Path) -> None:
    line = "y" * 100_000
    with trio.fail_after(20):
        async with running_server(tmp_path) as ctx:
            ctx.hub.publish_output("a", "stdout", ["\n".join([line] * 40)])  # 40 x 100 kB
            ctx.hub.publish_output("a", "stdout", ["\n".join(["short"] * 1000)])
            async with open_websocket_url(ws_url(ctx, "&batch=1")) as ws:
                await send_json(ws, {"op": "subscribe", "processId": "a", "since": 0})
                assert (await get_json(ws))["type"] == "subscribed"
                seqs: list[int] = []
                while len(seqs) < 1040:
                    raw = await ws.get_message()
                    assert isinstance(raw, str)
                    assert len(raw.encode()) < 1024 * 1024
                    frame = decode(raw)
                    assert 1 <= len(frame) <= FRAME_MAX_EVENTS
                    seqs += [e["seq"] for e in frame]
            assert seqs == list(range(1, 1041))


async def test_several_subscriptions_and_unsubscribe(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx, open_websocket_url(ws_url(ctx)) as ws:
            await send_json(ws, {"op": "subscribe", "processId": "a"})
            await send_json(ws, {"op": "subscribe", "processId": "later", "types": ["x-hello"]})
            replies = [await get_json(ws), await get_json(ws)]
            assert [r["processId"] for r in replies] == ["a", "later"]
            clients = (await request(ctx, "GET", "/api/clients")).json()
            assert len(clients) == 1
            assert clients[0]["transport"] == "ws"
            assert clients[0]["subscriptions"] == ["a", "later"]
            assert clients[0]["remote"].startswith("127.0.0.1:")
            assert clients[0]["clientId"]
            ctx.hub.publish("x-hello", "later", {})  # 1: a process that is not known yet
            ctx.hub.publish("x-other", "later", {})  # 2: filtered out by type
            ctx.hub.publish("x-hello", "a", {})  # 3
            got = [await get_json(ws), await get_json(ws)]
            assert sorted(e["seq"] for e in got) == [1, 3]
            await send_json(ws, {"op": "unsubscribe", "processId": "a"})
            assert await get_json(ws) == {"type": "unsubscribed", "processId": "a"}
            ctx.hub.publish("x-hello", "a", {})  # 4: no longer wanted
            ctx.hub.publish("x-hello", "later", {})  # 5
            assert (await get_json(ws))["seq"] == 5
            await send_json(ws, {"op": "ping"})
            assert await get_json(ws) == {"type": "pong"}


async def test_listed_as_client_only_while_subscribed(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx, open_websocket_url(ws_url(ctx)) as ws:
            await send_json(ws, {"op": "ping"})
            assert await get_json(ws) == {"type": "pong"}
            assert (await request(ctx, "GET", "/api/clients")).json() == []
            await send_json(ws, {"op": "subscribe", "processId": "a"})
            assert (await get_json(ws))["type"] == "subscribed"
            listed = (await request(ctx, "GET", "/api/clients")).json()
            assert [c["subscriptions"] for c in listed] == [["a"]]
            assert listed[0]["queued"] == 0
            await send_json(ws, {"op": "unsubscribe", "processId": "a"})
            assert (await get_json(ws))["type"] == "unsubscribed"
            assert (await request(ctx, "GET", "/api/clients")).json() == []


async def test_gap_is_explicit(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path, journal=False, history_events=20) as ctx:
            for i in range(100):
                ctx.hub.publish("x-n", "a", {"i": i})
            async with open_websocket_url(ws_url(ctx)) as ws:
                await send_json(ws, {"op": "subscribe", "processId": "*", "since": 0})
                assert (await get_json(ws))["type"] == "subscribed"
                gap = await get_json(ws)
                assert gap["type"] == "gap"
                assert gap["fromSeq"] == 1
                first = await get_json(ws)
                assert first["seq"] == gap["toSeq"] + 1


async def test_origin_and_token_on_upgrade(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path, cors_origins=("http://ok.example",)) as ctx:
            url = ws_url(ctx)
            # raw upgrades: trio-websocket leaks its socket when it is rejected
            evil = [("Origin", "http://evil.example")]
            raw = await raw_exchange(ctx, upgrade_request(f"/ws?token={TOKEN}", evil))
            assert raw.startswith(b"HTTP/1.1 403 ")
            assert b"forbidden-origin" in raw
            raw = await raw_exchange(ctx, upgrade_request("/ws"))
            assert raw.startswith(b"HTTP/1.1 401 ")
            no_token = url.split("?")[0]
            good = [(b"origin", b"http://ok.example")]
            async with open_websocket_url(url, extra_headers=good) as ws:
                await send_json(ws, {"op": "ping"})
                assert await get_json(ws) == {"type": "pong"}
            bearer = [(b"authorization", f"Bearer {TOKEN}".encode())]
            async with open_websocket_url(no_token, extra_headers=bearer) as ws:
                await send_json(ws, {"op": "ping"})
                assert await get_json(ws) == {"type": "pong"}


async def test_server_pings_and_drops_silent_peers(tmp_path: Path) -> None:
    limits = short_limits(ws_ping_interval=0.2, ws_pong_timeout=0.3)
    with trio.fail_after(10):
        async with running_server(tmp_path, limits=limits) as ctx:
            stream = await open_raw_socket(ctx)
            await stream.send_all(upgrade_request(f"/ws?token={TOKEN}"))
            head, rest = await read_head(stream)
            assert head.startswith(b"HTTP/1.1 101")
            frames = FrameReader(stream, rest)
            opcodes = []
            start = trio.current_time()
            while (frame := await frames.next()) is not None:
                opcodes.append(frame[0])
            assert 0x9 in opcodes  # the server pinged; we never answered
            assert trio.current_time() - start < 2.0
            await stream.aclose()
            # a peer that answers (trio-websocket does) stays connected
            async with open_websocket_url(ws_url(ctx)) as ws:
                await trio.sleep(1.0)
                await send_json(ws, {"op": "ping"})
                assert await get_json(ws) == {"type": "pong"}


async def test_run_end_closes_after_everything(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx, open_websocket_url(ws_url(ctx)) as ws:
            await send_json(ws, {"op": "subscribe", "processId": "*"})
            assert (await get_json(ws))["type"] == "subscribed"
            for i in range(10):
                ctx.hub.publish("x-n", None, {"i": i})
            ctx.hub.close()
            seqs: list[int] = []
            with pytest.raises(ConnectionClosed) as info:
                await receive_forever(ws, seqs)
            assert seqs == list(range(1, 11))
            assert info.value.reason is not None
            assert info.value.reason.code == 1000
            assert info.value.reason.reason == "run finished"
            await ws._stream.aclose()  # trio-websocket leaks it when the server closes first


async def stall_sse(ctx: ServerContext) -> trio.SocketStream:
    """An SSE subscriber that reads its response head and then nothing."""
    stream = await open_raw_socket(ctx, rcvbuf=4096)
    await stream.send_all(
        f"GET /api/events/stream?token={TOKEN}&since=0 HTTP/1.1\r\nHost: x\r\n\r\n".encode()
    )
    head, _ = await read_head(stream)
    assert head.startswith(b"HTTP/1.1 200")
    return stream


async def stall_ws(ctx: ServerContext) -> trio.SocketStream:
    """A /ws subscriber that subscribes and then reads nothing."""
    stream = await open_raw_socket(ctx, rcvbuf=4096)
    await stream.send_all(upgrade_request(f"/ws?token={TOKEN}"))
    head, _ = await read_head(stream)
    assert head.startswith(b"HTTP/1.1 101")
    await stream.send_all(masked_frame(b'{"op":"subscribe","processId":"*","since":0}'))
    return stream


@pytest.mark.parametrize("stall", [stall_sse, stall_ws])
async def test_stalled_subscriber_is_dropped_and_never_blocks(tmp_path: Path, stall: Any) -> None:
    chunk = "z" * 65_000
    with trio.fail_after(30):
        async with running_server(tmp_path, client_timeout=1.0) as ctx:
            async with open_websocket_url(ws_url(ctx, "&batch=1")) as healthy:
                await send_json(healthy, {"op": "subscribe", "processId": "*", "since": 0})
                assert (await get_json(healthy))["type"] == "subscribed"
                await wait_for(lambda: len(ctx.hub.clients) == 1)
                healthy_id = next(iter(ctx.hub.clients))
                stalled = await stall(ctx)
                await wait_for(lambda: len(ctx.hub.clients) == 2)
                stalled_id = next(c for c in ctx.hub.clients if c != healthy_id)
                start = trio.current_time()
                for _ in range(400):  # 26 MB: far more than the socket buffers hold
                    ctx.hub.publish_output("a", "stdout", [chunk])
                    await trio.lowlevel.checkpoint()
                publish_time = trio.current_time() - start
                got: list[dict[str, Any]] = []
                while not got or got[-1]["type"] != SYSTEM_ALERT:  # the healthy one gets all
                    got += decode(await healthy.get_message())
                assert [e["seq"] for e in got] == list(range(1, 402))
                assert got[-1]["code"] == "slow-subscriber"
                await wait_for(lambda: stalled_id not in ctx.hub.clients)
                dropped_after = trio.current_time() - start
                alerts = [
                    decode(line)
                    for b in ctx.hub.read(0, Filter(types=frozenset({SYSTEM_ALERT})), 100).batches
                    for line in b.lines()
                ]
                assert [a["code"] for a in alerts] == ["slow-subscriber"]
                assert stalled_id in alerts[0]["message"]
            await stalled.aclose()
    print(
        f"\npublish 26 MB: {publish_time:.2f} s; stalled subscriber dropped after "
        f"{dropped_after:.2f} s (client_timeout 1 s)"
    )
    assert 1.0 <= dropped_after < 10.0
