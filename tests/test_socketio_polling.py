"""Engine.IO long-polling and the Socket.IO layer, spoken raw with an h11 client
(SPEC 4.3, 4.4): handshake, errors, CONNECT and auth, rooms and acks, event
framing, backpressure, maxPayload, heartbeat and the session's end."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.testing
from test_server_support import TOKEN, HTTPClient, raw_exchange, request, running_server, wait_for
from test_socketio_support import (
    SIO,
    Poller,
    events_of,
    polling_session,
    sessions,
    socketio_clients,
    use_limits,
)

decode = msgspec.json.decode
TIMEOUT_S = 10


async def test_handshake(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx, polling_session(ctx) as poller:
            assert poller.handshake == {
                "sid": poller.sid,
                "upgrades": ["websocket"],
                "pingInterval": 25000,
                "pingTimeout": 20000,
                "maxPayload": 1000000,
            }
            assert len(poller.sid) >= 20
            assert list(sessions(ctx)) == [poller.sid]
            # an Engine.IO session alone is not a subscriber: CONNECT makes one
            assert socketio_clients(ctx) == []


@pytest.mark.parametrize(
    ("method", "query", "status", "code"),
    [
        ("GET", "EIO=3&transport=polling", 400, 5),
        ("GET", "EIO=3&transport=websocket", 400, 5),
        ("GET", "transport=polling", 400, 5),
        ("GET", "EIO=4", 400, 0),
        ("GET", "EIO=4&transport=flash", 400, 0),
        ("GET", "EIO=4&transport=polling&sid=nope", 400, 1),
        ("POST", "EIO=4&transport=polling&sid=nope", 400, 1),
        ("POST", "EIO=4&transport=polling", 400, 2),
        ("GET", "EIO=4&transport=websocket", 400, 3),
        ("GET", "EIO=4&transport=polling&j=1", 400, 3),
        ("PUT", "EIO=4&transport=polling&sid=x", 400, 1),
    ],
)
async def test_http_errors(tmp_path: Path, method: str, query: str, status: int, code: int) -> None:
    """Errors answer with engine.io's ``{code, message}`` and SPEC 4's ``error`` object."""
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            resp = await request(ctx, method, "/socket.io/?" + query, auth=False)
            assert resp.status == status
            assert resp.headers["content-type"] == "application/json"
            body = resp.json()
            assert body["code"] == code
            assert body["message"] == body["error"]["message"]
            assert isinstance(body["error"]["code"], str)
            if query.startswith("EIO=3"):
                assert "socket.io-client v3+/v4" in body["message"]
            assert sessions(ctx) == {}


async def test_eio3_upgrade_is_refused_before_the_handshake(tmp_path: Path) -> None:
    """A WebSocket upgrade with a bad query gets HTTP 400, never 101."""
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            for query in ("EIO=3&transport=websocket", "EIO=4&transport=websocket&sid=nope"):
                raw = await raw_exchange(
                    ctx,
                    (
                        f"GET /socket.io/?{query} HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\n"
                        "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                        "Sec-WebSocket-Version: 13\r\nConnection: close\r\n\r\n"
                    ).encode(),
                )
                head, _, body = raw.partition(b"\r\n\r\n")
                assert head.startswith(b"HTTP/1.1 400"), raw
                assert decode(body)["code"] in (1, 5)


async def test_other_paths_and_origins(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            resp = await request(ctx, "GET", "/socket.io/x?EIO=4&transport=polling", auth=False)
            assert resp.status == 404
            evil = [("origin", "http://evil.example")]
            resp = await request(ctx, "GET", SIO + "polling", headers=evil, auth=False)
            assert resp.status == 403
            assert sessions(ctx) == {}


async def test_connect_auth_and_namespaces(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx, polling_session(ctx) as poller:
            # namespace "/" only
            await poller.post('40/admin,{"token":"' + TOKEN + '"}')
            assert await poller.next_frames(1) == ['44/admin,{"message":"Invalid namespace"}']
            # bad token, no token, non-string token
            for auth in ({"token": "wrong"}, {}, {"token": 7}):
                reply = await poller.connect(auth)
                assert reply == '44{"message":"unauthorized"}'
            await poller.post("40")
            assert await poller.next_frames(1) == ['44{"message":"unauthorized"}']
            assert socketio_clients(ctx) == []
            # the same Engine.IO session may try again
            reply = await poller.connect({"token": TOKEN, "userId": "u-7"})
            assert reply.startswith('40{"sid":"')
            socket_sid = decode(reply[2:])["sid"]
            assert socket_sid != poller.sid
            [client] = socketio_clients(ctx)
            assert (client["userId"], client["transport"]) == ("u-7", "socketio")
            assert client["remote"].startswith("127.0.0.1:")
            listed = (await request(ctx, "GET", "/api/clients")).json()
            assert [c["userId"] for c in listed if c["transport"] == "socketio"] == ["u-7"]
            # DISCONNECT from "/" leaves: the client is gone, the session stays
            await poller.post("41")
            await wait_for(lambda: socketio_clients(ctx) == [])
            assert poller.sid in sessions(ctx)


@pytest.mark.parametrize("where", ["query", "header", "no-auth"])
async def test_http_level_token_is_enough(tmp_path: Path, where: str) -> None:
    query = f"&token={TOKEN}" if where == "query" else ""
    token = None if where == "no-auth" else TOKEN
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path, token=token) as ctx:
            poller = Poller(ctx, query, bearer=where == "header")
            try:
                await poller.open()
                reply = await poller.connect({"userId": 42})
                assert reply.startswith('40{"sid":'), reply
                assert socketio_clients(ctx)[0]["userId"] == "42"
            finally:
                await poller.aclose()


async def test_subscribe_ack_rooms_and_framing(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx, polling_session(ctx) as poller:
            hub = ctx.hub
            hub.publish_output("p1", "stdout", ["before connect"])
            await poller.connect()
            hub.publish_output("p1", "stdout", ["before subscribe"])
            hub.publish("task-assigned", None, {"taskId": "t0"})
            [(name, event)] = events_of(await poller.next_frames(1))
            assert (name, event["taskId"], event["seq"]) == ("task-assigned", "t0", 3)
            await poller.post('421["subscribe-process","p1"]')
            assert await poller.next_frames(1) == ['431[{"ok":true,"lastSeq":3}]']
            await poller.post('42["subscribe-process",{"processId":"p2"}]')  # no ack asked
            await poller.post('422["subscribe-process","no spaces"]', '423["nope","p1"]')
            acks = [decode(f[3:])[0] for f in await poller.next_frames(2)]
            assert [a["ok"] for a in acks] == [False, False]
            assert "processId" in acks[0]["error"]
            assert "unknown event" in acks[1]["error"]
            await wait_for(lambda: socketio_clients(ctx)[0]["subscriptions"] == ["p1", "p2"])

            hub.publish_output("p1", "stdout", ['quote " and \\ and \x1e'])
            hub.publish_output("p3", "stdout", ["not subscribed"])
            hub.publish_output("p2", "stderr", ["two"])
            frames = await poller.next_frames(2)
            journal = (tmp_path / "events.jsonl").read_bytes().splitlines()
            # each frame splices the journal's bytes: 42["type",<journal line>]
            assert frames[0].encode() == b'42["process-output",' + journal[3] + b"]"
            assert frames[1].encode() == b'42["process-output",' + journal[5] + b"]"
            assert events_of(frames)[0][1]["output"] == 'quote " and \\ and \x1e'

            await poller.post('424["unsubscribe-process","p1"]')
            assert await poller.next_frames(1) == ['434[{"ok":true,"lastSeq":6}]']
            hub.publish_output("p1", "stdout", ["gone"])
            hub.publish("system-alert", "p1", {"level": "info", "message": "to all"})
            [frame] = await poller.next_frames(1)
            assert events_of([frame])[0][0] == "system-alert"


async def test_wildcard_room_and_run_wide_events(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx, polling_session(ctx) as poller:
            await poller.connect()
            await poller.post('42["subscribe-process","*"]')
            await wait_for(lambda: socketio_clients(ctx)[0]["subscriptions"] == ["*"])
            ctx.hub.publish_output("a", "stdout", ["x"])
            ctx.hub.publish("x-custom", None, {"data": {}})
            ctx.hub.publish("x-custom", "b", {"data": {}})
            names = [(n, e["processId"]) for n, e in events_of(await poller.next_frames(3))]
            assert names == [("process-output", "a"), ("x-custom", None), ("x-custom", "b")]


async def test_polling_backpressure(tmp_path: Path) -> None:
    """A client that does not poll costs one poll response of memory; the hub runs on."""
    max_payload = 20_000
    total = 2_000
    with trio.fail_after(30):
        async with running_server(tmp_path) as ctx:
            registry = use_limits(ctx, max_payload=max_payload)
            async with polling_session(ctx) as poller:
                await poller.connect()
                await poller.post('42["subscribe-process","p"]')
                await wait_for(lambda: socketio_clients(ctx)[0]["subscriptions"] == ["p"])
                for i in range(total):
                    ctx.hub.publish_output("p", "stdout", [f"line {i:05}"])
                session = registry.sessions[poller.sid]
                await wait_for(lambda: session.engine.queued_frames > 0)
                await trio.testing.wait_all_tasks_blocked()  # the session did all it can
                # one read's worth is queued, no more, and the cursor waits for the poll
                assert 0 < session.engine.queued_bytes <= max_payload
                assert socketio_clients(ctx)[0]["queued"] > total - 200
                outputs: list[str] = []
                while len(outputs) < total:
                    resp = await poller.get_raw()
                    assert len(resp.body) <= max_payload
                    frames = resp.body.decode().split("\x1e")
                    outputs += [e["output"] for n, e in events_of(frames) if n == "process-output"]
                    assert session.engine.queued_bytes <= max_payload
                assert outputs == [f"line {i:05}" for i in range(total)]
                await wait_for(lambda: socketio_clients(ctx)[0]["queued"] == 0)


async def test_max_payload_closes_the_session(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            use_limits(ctx, max_payload=1000)
            async with polling_session(ctx) as poller:
                await poller.connect()
                resp = await poller.post_raw(b'42["x","' + b"a" * 1000 + b'"]')
                assert resp.status == 413
                assert "maxPayload" in resp.json()["message"]
                assert (sessions(ctx), socketio_clients(ctx)) == ({}, [])
                assert (await poller.get_raw()).json()["code"] == 1  # unknown sid now


async def test_bad_packets_close_the_session(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            for body in (b"9", b"0", b"4\xff", b"42[", b"45-[]"):
                async with polling_session(ctx) as poller:
                    resp = await poller.post_raw(body)
                    if resp.status == 200:  # a bad Socket.IO packet inside a good one
                        assert body.startswith(b"4")
                    else:
                        assert resp.status == 400
                    sid = poller.sid

                    def gone(sid: str | None = sid) -> bool:
                        return sid not in sessions(ctx)

                    await wait_for(gone)


async def test_overlapping_polls_close_the_session(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx, polling_session(ctx) as poller:
            await poller.connect()
            got: list[Any] = []

            async def first_poll() -> None:
                got.append(await poller.get())

            async with trio.open_nursery() as nursery:
                nursery.start_soon(first_poll)
                session = sessions(ctx)[poller.sid]
                await wait_for(lambda: session.engine._get_active)
                second = await HTTPClient.connect(ctx)
                resp = await second.request("GET", poller.path(), auth=False)
                await second.aclose()
                assert resp.status == 400
            assert got == [["1"]]  # the pending poll is answered CLOSE
            assert (sessions(ctx), socketio_clients(ctx)) == ({}, [])


async def test_heartbeat_and_ping_timeout(tmp_path: Path) -> None:
    """Pings are answered: the session lives; they are not: it is closed and freed."""
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            use_limits(ctx, ping_interval_ms=100, ping_timeout_ms=200)
            async with polling_session(ctx) as poller:
                assert poller.handshake["pingInterval"] == 100
                await poller.connect()
                pings = 0
                while pings < 3:
                    frames = await poller.get()
                    assert frames in (["2"], ["6"])
                    if frames == ["2"]:
                        pings += 1
                        await poller.post("3")
                assert poller.sid in sessions(ctx)
                # now stop answering: the next ping goes unanswered
                assert await poller.get() == ["2"]
                await wait_for(lambda: poller.sid not in sessions(ctx))
                assert socketio_clients(ctx) == []
                assert (await poller.get_raw()).status == 400


async def test_connect_timeout(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            use_limits(ctx, connect_timeout=0.2)
            async with polling_session(ctx) as poller:
                assert await poller.get() == ["1"]
                assert sessions(ctx) == {}


async def test_client_close_frees_the_session(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx, polling_session(ctx) as poller:
            await poller.connect()
            await poller.post("1")
            assert (sessions(ctx), socketio_clients(ctx)) == ({}, [])


async def test_server_stop_sends_goodbye_on_a_pending_poll(tmp_path: Path) -> None:
    got: list[list[str]] = []
    with trio.fail_after(TIMEOUT_S):
        async with trio.open_nursery() as outer, running_server(tmp_path) as ctx:
            poller = Poller(ctx)
            await poller.open()
            await poller.connect()

            async def pending() -> None:
                got.append(await poller.get())

            outer.start_soon(pending)
            session = sessions(ctx)[poller.sid]
            await wait_for(lambda: session.engine._get_active)
            # running_server cancelled the server
        await poller.aclose()
    assert got == [["41", "1"]]
    assert (sessions(ctx), ctx.hub.clients) == ({}, {})


async def test_run_finished_disconnects(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx, polling_session(ctx) as poller:
            await poller.connect()
            await poller.post('42["subscribe-process","p"]')
            await wait_for(lambda: socketio_clients(ctx)[0]["subscriptions"] == ["p"])
            ctx.hub.publish_output("p", "stdout", ["last words"])
            ctx.hub.close()
            frames = await poller.next_frames(2)
            assert events_of(frames[:1])[0][1]["output"] == "last words"
            assert frames[1] == "41"  # DISCONNECT: socket.io-client will not reconnect
            await wait_for(lambda: not sessions(ctx))  # closed once the DISCONNECT was polled
            assert socketio_clients(ctx) == []
