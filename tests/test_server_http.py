"""The one-port server over real sockets: routes, statuses, auth, origins,
CORS, keep-alive, limits and timeouts (SPEC 4, 4.0)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio
from test_server_support import (
    TOKEN,
    HTTPClient,
    break_route,
    port_of,
    raw_exchange,
    request,
    running_server,
    short_limits,
    wait_for,
)

from agentwatch.config import AgentSpec, ServerConfig, StdinMode
from agentwatch.errors import ConfigError
from agentwatch.server import api, serve
from agentwatch.server.context import ServerContext
from agentwatch.supervisor import ProcState


def status_of(raw: bytes) -> int:
    """The status code of a raw response."""
    return int(raw.split(b" ", 2)[1])


async def test_healthz_needs_no_token(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            resp = await request(ctx, "GET", "/healthz", auth=False)
            assert resp.status == 200
            assert resp.json() == {"status": "ok", "runId": "run-1", "version": "9.9"}
            assert resp.headers["content-type"] == "application/json"


@pytest.mark.parametrize(
    ("headers", "path", "status"),
    [
        ([], "/api/processes", 401),
        ([("authorization", "Bearer nope")], "/api/processes", 401),
        ([("authorization", "Basic " + TOKEN)], "/api/processes", 401),
        ([("authorization", "Bearer " + TOKEN)], "/api/processes", 200),
        ([("authorization", "bearer " + TOKEN)], "/api/processes", 200),
        ([], "/api/processes?token=" + TOKEN, 200),
        ([], "/api/processes?token=wrong", 401),
        ([("cookie", "agentwatch_token=" + TOKEN)], "/api/processes", 200),
        ([("cookie", "a=b; agentwatch_token=" + TOKEN + "; c=d")], "/api/processes", 200),
        ([("cookie", "agentwatch_token=wrong")], "/api/processes", 401),
        ([], "/metrics", 401),
        ([], "/ws", 401),
        ([], "/nowhere", 401),
    ],
)
async def test_auth_variants(
    tmp_path: Path, headers: list[tuple[str, str]], path: str, status: int
) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            resp = await request(ctx, "GET", path, headers=headers, auth=False)
            assert resp.status == status
            if status == 401:
                assert resp.json()["error"]["code"] == "unauthorized"
                assert resp.headers["www-authenticate"] == "Bearer"


async def test_no_auth_mode(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path, token=None) as ctx:
            assert (await request(ctx, "GET", "/api/processes", auth=False)).status == 200


async def test_dashboard_sets_cookie(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "dashboard_page", lambda: b"<html>dash</html>")
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            assert (await request(ctx, "GET", "/", auth=False)).status == 401
            resp = await request(ctx, "GET", "/?token=" + TOKEN, auth=False)
            assert resp.status == 200
            assert resp.body == b"<html>dash</html>"
            assert resp.headers["content-type"].startswith("text/html")
            cookie = resp.headers["set-cookie"]
            assert cookie.startswith("agentwatch_token=" + TOKEN + ";")
            assert {"HttpOnly", "SameSite=Strict", "Path=/"} <= {
                p.strip() for p in cookie.split(";")
            }
            jar = [("cookie", cookie.split(";")[0])]
            assert (
                await request(ctx, "GET", "/api/clients", headers=jar, auth=False)
            ).status == 200
            # a bearer request does not get a cookie
            resp = await request(ctx, "GET", "/")
            assert resp.status == 200
            assert "set-cookie" not in resp.headers


async def test_no_dashboard_is_404(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(api, "dashboard_page", lambda: None)
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            resp = await request(ctx, "GET", "/")
            assert resp.status == 404
            assert resp.json()["error"]["code"] == "not-found"


@pytest.mark.parametrize(
    ("origin", "cors", "allowed"),
    [
        ("http://evil.example", (), False),
        ("null", (), False),
        ("http://127.0.0.1:{port}", (), True),
        ("http://127.0.0.1:1", (), False),
        ("https://127.0.0.1:{port}", (), False),
        ("http://app.example:3000", ("http://app.example:3000",), True),
        ("http://app.example:3000/", ("http://app.example:3000",), True),
        ("http://other.example", ("http://app.example:3000",), False),
        ("http://anything.example", ("*",), True),
    ],
)
async def test_origins(tmp_path: Path, origin: str, cors: tuple[str, ...], allowed: bool) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path, cors_origins=cors) as ctx:
            origin = origin.format(port=port_of(ctx))
            resp = await request(ctx, "GET", "/api/processes", headers=[("origin", origin)])
            if allowed:
                assert resp.status == 200
                assert resp.headers["access-control-allow-origin"] == origin
                assert resp.headers["access-control-allow-credentials"] == "true"
            else:
                assert resp.status == 403
                assert resp.json()["error"]["code"] == "forbidden-origin"
                assert "access-control-allow-origin" not in resp.headers
            health = await request(ctx, "GET", "/healthz", headers=[("origin", origin)])
            assert health.status == (200 if allowed else 403)


async def test_origin_by_host_header(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            port = port_of(ctx)
            own = [("host", f"localhost:{port}"), ("origin", f"http://localhost:{port}")]
            assert (await request(ctx, "GET", "/api/processes", headers=own)).status == 200
            # DNS rebinding: the attacker's name resolves to 127.0.0.1
            evil = [("host", f"evil.example:{port}"), ("origin", f"http://evil.example:{port}")]
            assert (await request(ctx, "GET", "/api/processes", headers=evil)).status == 403


async def test_cors_preflight(tmp_path: Path) -> None:
    cors = ("http://app.example",)
    with trio.fail_after(10):
        async with running_server(tmp_path, cors_origins=cors) as ctx:
            headers = [
                ("origin", "http://app.example"),
                ("access-control-request-method", "POST"),
                ("access-control-request-headers", "authorization, content-type"),
            ]
            resp = await request(ctx, "OPTIONS", "/api/events", headers=headers, auth=False)
            assert resp.status == 204
            assert resp.headers["access-control-allow-origin"] == "http://app.example"
            assert "POST" in resp.headers["access-control-allow-methods"]
            assert resp.headers["access-control-allow-headers"] == "authorization, content-type"
            assert int(resp.headers["access-control-max-age"]) > 0
            bad = [("origin", "http://evil.example"), ("access-control-request-method", "GET")]
            resp = await request(ctx, "OPTIONS", "/api/events", headers=bad, auth=False)
            assert resp.status == 403


async def test_keep_alive_many_requests_one_connection(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            client = await HTTPClient.connect(ctx)
            paths = ["/healthz", "/api/processes", "/nope", "/api/clients", "/metrics"]
            statuses = [(await client.request("GET", path)).status for path in paths]
            resp = await client.request(
                "POST", "/api/events", body=b'{"type":"x-ping","processId":null}'
            )
            statuses.append(resp.status)
            statuses.append((await client.request("GET", "/healthz")).status)
            assert statuses == [200, 200, 404, 200, 200, 201, 200]
            await client.aclose()


async def test_pipelined_requests(tmp_path: Path) -> None:
    one = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"
    last = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            raw = await raw_exchange(ctx, one * 3 + last)
            assert raw.count(b"HTTP/1.1 200 OK") == 4


@pytest.mark.parametrize(
    "data",
    [
        b"GARBAGE\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Line\r\n\r\n",
        b"GET / HTTP/9.9\r\nHost: x\r\n\r\n",
        b"GET /healthz HTTP/1.1\r\n\r\n",  # HTTP/1.1 needs Host
        b"POST /api/events HTTP/1.1\r\nHost: x\r\nContent-Length: abc\r\n\r\n",
    ],
)
async def test_malformed_request_is_400(tmp_path: Path, data: bytes) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            raw = await raw_exchange(ctx, data)
            assert status_of(raw) == 400
            assert b'"code":"bad-request"' in raw
            # the server is still fine
            assert (await request(ctx, "GET", "/healthz")).status == 200


async def test_huge_headers_431(tmp_path: Path) -> None:
    big = b"X-Big: " + b"a" * (100 * 1024) + b"\r\n"
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            raw = await raw_exchange(ctx, b"GET /healthz HTTP/1.1\r\nHost: x\r\n" + big + b"\r\n")
            assert status_of(raw) == 431
            assert b'"code":"headers-too-large"' in raw


async def test_body_over_1mib_413(tmp_path: Path) -> None:
    body = b"x" * (2 * 1024 * 1024)
    head = (
        b"POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    chunked = (
        b"POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            # declared length: refused before the body is read
            raw = await raw_exchange(ctx, head)
            assert status_of(raw) == 413
            assert b'"code":"too-large"' in raw
            # chunked: refused once 1 MiB has arrived
            stream = await trio.open_tcp_stream("127.0.0.1", port_of(ctx))
            await stream.send_all(chunked)
            out = bytearray()
            with trio.move_on_after(5):
                try:
                    for _ in range(32):
                        await stream.send_all(b"10000\r\n" + b"y" * 0x10000 + b"\r\n")
                except trio.BrokenResourceError:
                    pass
            while chunk := await stream.receive_some(65536):
                out += chunk
            assert status_of(bytes(out)) == 413
            await stream.aclose()


async def test_expect_100_continue(tmp_path: Path) -> None:
    body = b'{"type":"x-hello","processId":null}'
    head = (
        b"POST /api/events HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
        + TOKEN.encode()
        + b"\r\nExpect: 100-continue\r\nConnection: close\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            stream = await trio.open_tcp_stream("127.0.0.1", port_of(ctx))
            await stream.send_all(head)
            first = await stream.receive_some(65536)
            assert first.startswith(b"HTTP/1.1 100")
            await stream.send_all(body)
            out = bytearray()
            while chunk := await stream.receive_some(65536):
                out += chunk
            assert b"HTTP/1.1 201" in out
            await stream.aclose()


async def test_slowloris_does_not_block_others(tmp_path: Path) -> None:
    limits = short_limits(request_timeout=0.5, keepalive_timeout=1.0)
    with trio.fail_after(20):
        async with running_server(tmp_path, limits=limits) as ctx:
            slow = await trio.open_tcp_stream("127.0.0.1", port_of(ctx))
            idle = await trio.open_tcp_stream("127.0.0.1", port_of(ctx))
            await slow.send_all(b"GET /healthz HTTP/1.1\r\n")
            start = trio.current_time()
            closed = trio.Event()

            async def drip() -> None:
                try:
                    for _ in range(100):
                        await slow.send_all(b"X")
                        await trio.sleep(0.05)
                except trio.BrokenResourceError:
                    pass

            async def watch() -> None:
                assert await slow.receive_some(65536) in (b"",)
                closed.set()

            async with trio.open_nursery() as nursery:
                nursery.start_soon(drip)
                nursery.start_soon(watch)
                # meanwhile other clients are served at once
                for _ in range(20):
                    with trio.fail_after(1):
                        assert (await request(ctx, "GET", "/healthz")).status == 200
                await closed.wait()
                nursery.cancel_scope.cancel()
            elapsed = trio.current_time() - start
            assert 0.4 < elapsed < 3.0
            # an idle keep-alive connection is closed after keepalive_timeout
            with trio.fail_after(3):
                assert await idle.receive_some(100) == b""
            await slow.aclose()
            await idle.aclose()


async def test_not_found_and_method_not_allowed(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            resp = await request(ctx, "GET", "/api/nothing")
            assert resp.status == 404
            assert resp.json() == {
                "error": {"code": "not-found", "message": "no route /api/nothing"}
            }
            resp = await request(ctx, "PUT", "/api/events")
            assert resp.status == 405
            assert resp.headers["allow"] == "GET, POST"
            assert resp.json()["error"]["code"] == "method-not-allowed"
            assert (await request(ctx, "DELETE", "/api/processes")).status == 405
            assert (await request(ctx, "GET", "/api/processes/nobody")).status == 404
            assert (await request(ctx, "GET", "/api/processes/nobody/logs")).status == 404
            assert (await request(ctx, "GET", "/api/processes/nobody/logs/stream")).status == 404
            assert (await request(ctx, "POST", "/api/processes/nobody/stop")).status == 404
            resp = await request(ctx, "GET", "/ws")
            assert resp.status == 426


async def test_shutting_down_503(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            ctx.shutting_down = True
            resp = await request(ctx, "GET", "/api/processes")
            assert resp.status == 503
            assert resp.json()["error"]["code"] == "shutting-down"
            health = await request(ctx, "GET", "/healthz", auth=False)
            assert health.status == 503
            assert health.json()["status"] == "shutting-down"


async def test_publish_route(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            body = b'{"type":"task-assigned","taskId":"t1","title":"build","processId":"a"}'
            resp = await request(ctx, "POST", "/api/events", body=body)
            assert resp.status == 201
            seq = resp.json()["seq"]
            assert seq == ctx.hub.last_seq
            cases = [
                (b"{not json", "invalid-json"),
                (b"[1,2]", "invalid-json"),
                (b'{"type":"process-output","output":"x"}', "reserved-type"),
                (b'{"type":"nonsense"}', "invalid-type"),
                (b'{"type":"task-completed","taskId":"t","status":"meh"}', "invalid-field"),
            ]
            for bad, code in cases:
                resp = await request(ctx, "POST", "/api/events", body=bad)
                assert resp.status == 400, bad
                assert resp.json()["error"]["code"] == code
            assert ctx.hub.last_seq == seq


def add_output(ctx: ServerContext, pid: str, stream: str, lines: list[str]) -> None:
    """Register ``pid`` (if needed) and publish output lines for it."""
    if pid not in ctx.supervisor.processes:
        ctx.supervisor.add(AgentSpec(name=pid, command=("true",)))
    ctx.hub.publish_output(pid, stream, ["\n".join(lines)])


async def test_logs_route(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            add_output(ctx, "a", "stdout", [f"out{i}" for i in range(5)])  # 1..5
            add_output(ctx, "b", "stdout", ["other"])  # 6
            add_output(ctx, "a", "stderr", ["err0", "err1"])  # 7, 8
            ctx.hub.publish("x-note", "a", {"n": 1})  # 9

            async def logs(query: str) -> dict[str, object]:
                resp = await request(ctx, "GET", "/api/processes/a/logs" + query)
                assert resp.status == 200
                assert resp.headers["content-type"] == "application/json"
                body = resp.json()
                assert isinstance(body, dict)
                return body

            body = await logs("")
            seqs = [e["seq"] for e in body["events"]]  # type: ignore[attr-defined]
            assert seqs == [1, 2, 3, 4, 5, 7, 8, 9]
            assert body["lastSeq"] == 9
            assert body["more"] is False
            assert body["events"][0]["output"] == "out0"  # type: ignore[index]
            body = await logs("?limit=3")
            assert [e["seq"] for e in body["events"]] == [1, 2, 3]  # type: ignore[attr-defined]
            assert body["lastSeq"] == 3
            assert body["more"] is True
            body = await logs("?since=3&limit=2")
            assert [e["seq"] for e in body["events"]] == [4, 5]  # type: ignore[attr-defined]
            body = await logs("?tail=2")
            assert [e["seq"] for e in body["events"]] == [8, 9]  # type: ignore[attr-defined]
            body = await logs("?stream=stderr&type=process-output")
            assert [e["output"] for e in body["events"]] == ["err0", "err1"]  # type: ignore[attr-defined]
            body = await logs("?since=9")
            assert body["events"] == []
            assert body["lastSeq"] == 9
            for bad in ["?limit=-1", "?since=x", "?tail=1.5", "?stream=stdin"]:
                resp = await request(ctx, "GET", "/api/processes/a/logs" + bad)
                assert resp.status == 400, bad
            big = await logs("?limit=999999")
            assert len(big["events"]) == 8  # type: ignore[arg-type]


async def test_logs_gap_without_journal(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path, journal=False, history_events=10) as ctx:
            add_output(ctx, "a", "stdout", [f"l{i}" for i in range(30)])
            for i in range(30):
                add_output(ctx, "a", "stdout", [f"m{i}"])
            body = (await request(ctx, "GET", "/api/processes/a/logs?limit=100")).json()
            assert body["gaps"]
            gap = body["gaps"][0]
            assert gap["fromSeq"] == 1
            seqs = [e["seq"] for e in body["events"]]
            assert seqs[0] == gap["toSeq"] + 1
            assert seqs[-1] == 60


async def test_processes_and_control_routes(tmp_path: Path) -> None:
    code = (
        "import signal, sys, time\n"
        "signal.signal(signal.SIGUSR1, lambda *a: print('got usr1', flush=True))\n"
        "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
        "print('ready', flush=True)\n"
        "while True: time.sleep(0.05)\n"
    )
    spec = AgentSpec(
        name="agent",
        command=(sys.executable, "-u", "-c", code),
        stdin=StdinMode.DEVNULL,
        grace=3,  # it ignores SIGTERM: long enough to see it `stopping` on a loaded machine
        stats_interval=0,
    )
    with trio.fail_after(30):
        async with running_server(tmp_path) as ctx, trio.open_nursery() as nursery:
            proc = ctx.supervisor.add(spec)
            nursery.start_soon(ctx.supervisor.serve_process, proc)
            await wait_for(lambda: proc.lines["stdout"] >= 1)
            listing = (await request(ctx, "GET", "/api/processes")).json()
            assert [p["processId"] for p in listing] == ["agent"]
            one = (await request(ctx, "GET", "/api/processes/agent")).json()
            assert set(one) >= {
                "processId",
                "pid",
                "state",
                "command",
                "cwd",
                "startedAt",
                "exitCode",
                "signal",
                "restarts",
                "lastSeq",
                "lines",
                "stats",
            }
            assert one["state"] == "running"
            assert one["pid"] == proc.pid
            path = "/api/processes/agent/"
            resp = await request(ctx, "POST", path + "signal", body=b'{"signal":"USR1"}')
            assert (resp.status, resp.json()) == (202, {"ok": True})
            await wait_for(lambda: proc.lines["stdout"] >= 2)
            for bad in [b'{"signal":"NOPE"}', b'{"signal":true}', b"{oops", b"{}"]:
                resp = await request(ctx, "POST", path + "signal", body=bad)
                assert resp.status == 400, bad
            first_pid = proc.pid
            assert (await request(ctx, "POST", path + "restart")).status == 202
            await wait_for(
                lambda: (
                    proc.restarts == 1 and proc.pid != first_pid and proc.state is ProcState.RUNNING
                )
            )
            # its SIGTERM handler is in place once it printed "ready" again
            await wait_for(lambda: proc.lines["stdout"] >= 3)
            assert (await request(ctx, "POST", path + "stop")).status == 202
            assert proc.state is ProcState.STOPPING
            resp = await request(ctx, "POST", path + "restart")
            assert resp.status == 409
            assert resp.json()["error"]["code"] == "conflict"
            await proc.done_event.wait()
            assert (await request(ctx, "POST", path + "stop")).status == 409
            assert (
                await request(ctx, "POST", path + "signal", body=b'{"signal":"TERM"}')
            ).status == 409
            metrics = (await request(ctx, "GET", "/metrics")).body.decode()
            assert 'agentwatch_process_restarts_total{process="agent"} 1' in metrics
            assert 'agentwatch_process_state{process="agent",state="exited"} 1' in metrics


async def test_metrics(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            add_output(ctx, "w.e-i_rd", "stdout", ["a", "b", "c"])
            resp = await request(ctx, "GET", "/metrics")
            assert resp.status == 200
            assert resp.headers["content-type"] == "text/plain; version=0.0.4; charset=utf-8"
            text = resp.body.decode()
            names = set()
            for line in text.splitlines():
                if line.startswith("# TYPE "):
                    _, _, name, kind = line.split(" ")
                    assert kind in ("gauge", "counter")
                    names.add(name)
                    assert f"# HELP {name} " in text
                elif not line.startswith("# HELP "):
                    assert line.startswith("agentwatch_")
            assert {
                "agentwatch_process_state",
                "agentwatch_process_restarts_total",
                "agentwatch_process_lines_total",
                "agentwatch_process_output_bytes_total",
                "agentwatch_process_cpu_percent",
                "agentwatch_process_rss_bytes",
                "agentwatch_subscribers",
                "agentwatch_events_published_total",
                "agentwatch_events_sent_total",
                "agentwatch_subscriber_catchups_total",
                "agentwatch_journal_bytes",
            } <= names
            assert 'agentwatch_process_state{process="w.e-i_rd",state="starting"} 1' in text
            assert "agentwatch_events_published_total 3" in text
            journal_line = next(
                ln for ln in text.splitlines() if ln.startswith("agentwatch_journal_bytes ")
            )
            assert int(journal_line.split()[1]) > 0


async def test_handler_error_is_500_and_server_survives(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    break_route(monkeypatch, "/api/clients", RuntimeError("boom"))
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            resp = await request(ctx, "GET", "/api/clients")
            assert resp.status == 500
            assert resp.json()["error"]["code"] == "internal-error"
            assert (await request(ctx, "GET", "/healthz")).status == 200
    out, err = capfd.readouterr()
    assert out == ""
    assert len(err.strip().splitlines()) == 1
    assert "boom" in err


async def test_port_in_use_is_config_error(tmp_path: Path) -> None:
    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            other = ServerContext(
                ctx.hub, ctx.supervisor, ServerConfig(port=port_of(ctx)), "run-2", "9.9"
            )
            with pytest.raises(ConfigError, match="in use"):
                await serve(other)


async def test_socketio_hook(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """``/socket.io/`` goes to ``agentwatch.server.socketio``: polling, upgrades, origins."""
    from trio_websocket import open_websocket_url

    from agentwatch.server import socketio
    from agentwatch.server.http import HTTPConnection, Request
    from agentwatch.server.upgrade import ServerWebSocket

    seen: list[tuple[str, bool, bytes]] = []

    async def handle_http(
        ctx: ServerContext, conn: HTTPConnection, request: Request, body: bytes
    ) -> None:
        seen.append((request.method, request.authenticated, body))
        await conn.send_response(200, b"ok", content_type="text/plain")

    async def handle_websocket(ctx: ServerContext, ws: ServerWebSocket, request: Request) -> None:
        seen.append(("WS", request.authenticated, b""))
        message = await ws.get_message()
        await ws.send_frames([b"echo:" + str(message).encode()])

    with trio.fail_after(10):
        async with running_server(tmp_path) as ctx:
            monkeypatch.setattr(socketio, "handle_http", handle_http)
            monkeypatch.setattr(socketio, "handle_websocket", handle_websocket)
            monkeypatch.setattr(socketio, "accepts_websocket", lambda ctx, request: True)
            resp = await request(
                ctx, "POST", "/socket.io/?EIO=4&transport=polling", body=b"40", auth=False
            )
            assert (resp.status, resp.body) == (200, b"ok")
            assert (await request(ctx, "GET", "/socket.io/?EIO=4")).status == 200
            url = f"ws://127.0.0.1:{port_of(ctx)}/socket.io/?EIO=4&transport=websocket"
            async with open_websocket_url(url) as ws:
                await ws.send_message("2probe")
                assert await ws.get_message() == "echo:2probe"
            evil = [("origin", "http://evil.example")]
            assert (await request(ctx, "GET", "/socket.io/?EIO=4", headers=evil)).status == 403
    assert seen == [("POST", False, b"40"), ("GET", True, b""), ("WS", False, b"")]
