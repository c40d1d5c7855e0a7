"""Engine.IO over WebSocket, spoken raw (SPEC 4.3, 4.4): a WebSocket session,
the polling -> WebSocket upgrade (``2probe``/``3probe``/``5``, the pending
poll answered NOOP), maxPayload, heartbeat, and a client that stops reading."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.lowlevel
from test_server_support import (
    TOKEN,
    masked_frame,
    open_raw_socket,
    read_head,
    running_server,
    upgrade_request,
    wait_for,
)
from test_socketio_support import (
    SIO,
    engine_ws,
    events_of,
    polling_session,
    sessions,
    socketio_clients,
    use_limits,
    ws_frames,
)
from trio_websocket import ConnectionClosed

from agentwatch.events import SYSTEM_ALERT
from agentwatch.hub import Filter

decode = msgspec.json.decode
TIMEOUT_S = 10
CONNECT = '40{"token":"' + TOKEN + '","userId":"ws-user"}'


async def test_websocket_session(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx, engine_ws(ctx) as ws:
            [opening] = await ws_frames(ws, 1)
            assert opening[0] == "0"
            handshake = decode(opening[1:])
            assert handshake["upgrades"] == []
            assert handshake["maxPayload"] == 1_000_000
            await ws.send_message(CONNECT)
            [reply] = await ws_frames(ws, 1)
            assert reply.startswith('40{"sid":')
            [client] = socketio_clients(ctx)
            assert client["userId"] == "ws-user"
            await ws.send_message('420["subscribe-process","p"]')
            assert await ws_frames(ws, 1) == ['430[{"ok":true,"lastSeq":0}]']
            ctx.hub.publish_output("p", "stdout", ["one\ntwo"])
            ctx.hub.publish_output("q", "stdout", ["other room"])
            ctx.hub.publish("task-completed", "q", {"taskId": "t", "status": "success"})
            frames = await ws_frames(ws, 3)
            journal = (tmp_path / "events.jsonl").read_bytes().splitlines()
            assert frames[0].encode() == b'42["process-output",' + journal[0] + b"]"
            assert [n for n, _ in events_of(frames)] == [
                "process-output",
                "process-output",
                "task-completed",
            ]
        await wait_for(lambda: not sessions(ctx) and not socketio_clients(ctx))


async def test_bad_token_over_websocket(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx, engine_ws(ctx) as ws:
            await ws_frames(ws, 1)
            await ws.send_message('40{"token":"nope"}')
            assert await ws_frames(ws, 1) == ['44{"message":"unauthorized"}']
            await ws.send_message('40/other,{"token":"' + TOKEN + '"}')
            assert await ws_frames(ws, 1) == ['44/other,{"message":"Invalid namespace"}']
            assert socketio_clients(ctx) == []


async def test_upgrade_from_polling(tmp_path: Path) -> None:
    """The probe: 2probe -> 3probe, the pending poll gets NOOP, then 5 moves the queue."""
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx, polling_session(ctx) as poller:
            await poller.connect()
            await poller.post('42["subscribe-process","p"]')
            await wait_for(lambda: socketio_clients(ctx)[0]["subscriptions"] == ["p"])
            polls: list[list[str]] = []

            async def long_poll() -> None:
                polls.append(await poller.get())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(long_poll)
                session = sessions(ctx)[poller.sid]
                await wait_for(lambda: session.engine._get_active)
                async with engine_ws(ctx, f"&sid={poller.sid}") as ws:
                    await ws.send_message("2probe")
                    assert await ws.get_message() == "3probe"
                    await wait_for(lambda: bool(polls))
                    assert polls == [["6"]]  # the pending poll ends with NOOP
                    # while probed, polling is paused: events wait for the WebSocket
                    ctx.hub.publish_output("p", "stdout", ["during the upgrade"])
                    assert await poller.get() == ["6"]
                    await ws.send_message("5")
                    frames = await ws_frames(ws, 1)
                    assert events_of(frames)[0][1]["output"] == "during the upgrade"
                    # polling is over for this session
                    resp = await poller.get_raw()
                    assert resp.status == 400
                    ctx.hub.publish_output("p", "stdout", ["after"])
                    assert events_of(await ws_frames(ws, 1))[0][1]["output"] == "after"
                    assert len(socketio_clients(ctx)) == 1
            await wait_for(lambda: not sessions(ctx) and not socketio_clients(ctx))


@pytest.mark.parametrize("probe", [None, "5", "2nope", "4hello"])
async def test_failed_probe_keeps_polling(tmp_path: Path, probe: str | None) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            use_limits(ctx, upgrade_timeout=0.3)
            async with polling_session(ctx) as poller:
                await poller.connect()
                async with engine_ws(ctx, f"&sid={poller.sid}") as ws:
                    if probe is not None:
                        await ws.send_message(probe)
                    with pytest.raises(ConnectionClosed):
                        await ws.get_message()
                session = sessions(ctx)[poller.sid]
                assert session.engine.upgrade.value == "none"
                ctx.hub.publish("system-alert", None, {"level": "info", "message": "still here"})
                [(name, _)] = events_of(await poller.next_frames(1))
                assert name == "system-alert"


async def test_second_upgrade_is_refused(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with (
            running_server(tmp_path) as ctx,
            polling_session(ctx) as poller,
            engine_ws(ctx, f"&sid={poller.sid}"),
        ):
            await wait_for(lambda: sessions(ctx)[poller.sid].engine.upgrade.value != "none")
            stream = await open_raw_socket(ctx)
            await stream.send_all(upgrade_request(f"{SIO}websocket&sid={poller.sid}"))
            head, _ = await read_head(stream)
            assert head.startswith(b"HTTP/1.1 400")
            await stream.aclose()


async def test_max_payload_over_websocket(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            use_limits(ctx, max_payload=1000)
            async with engine_ws(ctx) as ws:
                await ws_frames(ws, 1)
                await ws.send_message(CONNECT)
                await ws_frames(ws, 1)
                await ws.send_message('42["x","' + "a" * 1000 + '"]')
                with pytest.raises(ConnectionClosed) as info:
                    await ws_frames(ws, 1)
                assert info.value.reason is not None
                assert info.value.reason.code == 1009
            await wait_for(lambda: not sessions(ctx) and not socketio_clients(ctx))


async def test_ping_timeout_over_websocket(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            use_limits(ctx, ping_interval_ms=100, ping_timeout_ms=150)
            async with engine_ws(ctx) as ws:
                await ws_frames(ws, 1)
                await ws.send_message(CONNECT)
                await ws_frames(ws, 1)
                for _ in range(3):  # answered pings keep the session
                    assert await ws.get_message() == "2"
                    await ws.send_message("3")
                assert await ws.get_message() == "2"  # this one goes unanswered
                assert await ws.get_message() == "1"  # CLOSE
                with pytest.raises(ConnectionClosed):
                    await ws.get_message()
            assert sessions(ctx) == {}
            assert socketio_clients(ctx) == []


async def test_server_stop_disconnects_websocket_clients(tmp_path: Path) -> None:
    frames: list[Any] = []
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            stream = await open_raw_socket(ctx)
            await stream.send_all(upgrade_request(SIO + "websocket"))
            head, rest = await read_head(stream)
            assert head.startswith(b"HTTP/1.1 101")
            await stream.send_all(masked_frame(CONNECT.encode()))
            await wait_for(lambda: bool(socketio_clients(ctx)))
        data = rest
        while chunk := await stream.receive_some(65536):
            data += chunk
        await stream.aclose()
    # server frames: opcode 0x81 text; the last ones: DISCONNECT, CLOSE, then the close frame
    while data:
        n = data[1] & 0x7F
        frames.append((data[0] & 0x0F, data[2 : 2 + n]))
        data = data[2 + n :]
    texts = [payload for opcode, payload in frames if opcode == 1]
    assert texts[-2:] == [b"41", b"1"]
    assert frames[-1][0] == 8  # the WebSocket close frame
    assert sessions(ctx) == {}


async def test_stalled_websocket_client_is_dropped(tmp_path: Path) -> None:
    """A client that reads nothing for --client-timeout is dropped, with the alert."""
    chunk = "z" * 65_000
    with trio.fail_after(30):
        async with running_server(tmp_path, client_timeout=0.5) as ctx:
            stream = await open_raw_socket(ctx, rcvbuf=4096)
            await stream.send_all(upgrade_request(SIO + "websocket"))
            head, _ = await read_head(stream)
            assert head.startswith(b"HTTP/1.1 101")
            await stream.send_all(masked_frame(CONNECT.encode()))
            await stream.send_all(masked_frame(b'42["subscribe-process","*"]'))
            await wait_for(lambda: bool(socketio_clients(ctx)))
            await wait_for(lambda: socketio_clients(ctx)[0]["subscriptions"] == ["*"])
            [client_id] = [c["clientId"] for c in socketio_clients(ctx)]
            for _ in range(200):  # 13 MB: more than the socket buffers hold
                ctx.hub.publish_output("a", "stdout", [chunk])
                await trio.lowlevel.checkpoint()
            await wait_for(lambda: not socketio_clients(ctx))
            assert sessions(ctx) == {}
            alerts = [
                decode(line)
                for b in ctx.hub.read(0, Filter(types=frozenset({SYSTEM_ALERT})), 100).batches
                for line in b.lines()
            ]
            assert [a["code"] for a in alerts] == ["slow-subscriber"]
            assert client_id in alerts[0]["message"]
            await stream.aclose()
