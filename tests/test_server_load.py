"""1,000 idle WebSocket subscribers on a server in its own process: all held,
and the server's memory per connection measured (printed with ``-s``)."""

from __future__ import annotations

import subprocess
import sys
from functools import partial

import psutil
import trio
from test_server_support import TOKEN, request, wait_for, ws_url
from trio_websocket import open_websocket_url

CONNECTIONS = 1000
MAX_RSS_PER_CONNECTION = 256 * 1024  # generous: the figure measured here is far lower

SERVER = """
import sys, trio
from agentwatch.config import ServerConfig
from agentwatch.hub import Hub
from agentwatch.server import serve
from agentwatch.server.context import ServerContext
from agentwatch.supervisor import Supervisor

async def main():
    hub = Hub(None)
    ctx = ServerContext(hub, Supervisor(hub), ServerConfig(token=sys.argv[1]), "load", "0")
    async with trio.open_nursery() as nursery:
        print(await nursery.start(serve, ctx), flush=True)

trio.run(main)
"""


async def read_line(stream: trio.abc.ReceiveStream) -> str:
    """The first line the server prints (its URL)."""
    buf = b""
    while not buf.endswith(b"\n"):
        chunk = await stream.receive_some(1024)
        assert chunk, "server exited"
        buf += chunk
    return buf.decode().strip()


async def test_thousand_idle_websockets(tmp_path: object) -> None:
    with trio.fail_after(120):
        async with trio.open_nursery() as nursery:
            cmd = [sys.executable, "-c", SERVER, TOKEN]
            server = await nursery.start(
                partial(trio.run_process, cmd, stdout=subprocess.PIPE, check=False)
            )
            assert server.stdout is not None
            url = await read_line(server.stdout)
            rss = psutil.Process(server.pid).memory_info().rss
            opened = 0
            release = trio.Event()
            limiter = trio.CapacityLimiter(64)

            async def hold() -> None:
                nonlocal opened
                async with limiter:
                    ws_cm = open_websocket_url(ws_url(url))
                    ws = await ws_cm.__aenter__()
                    await ws.send_message('{"op":"subscribe","processId":"*"}')
                    assert "subscribed" in str(await ws.get_message())
                opened += 1
                try:
                    await release.wait()
                finally:
                    await ws_cm.__aexit__(None, None, None)

            async with trio.open_nursery() as clients:
                for _ in range(10):  # warm up: first-use allocations are not per connection
                    clients.start_soon(hold)
                await wait_for(lambda: opened == 10)
                base = psutil.Process(server.pid).memory_info().rss
                for _ in range(CONNECTIONS):
                    clients.start_soon(hold)
                await wait_for(lambda: opened == CONNECTIONS + 10)
                listed = (await request(url, "GET", "/api/clients")).json()
                assert len(listed) == CONNECTIONS + 10
                assert {c["transport"] for c in listed} == {"ws"}
                health = await request(url, "GET", "/healthz")
                assert health.status == 200
                after = psutil.Process(server.pid).memory_info().rss
                release.set()
            server.terminate()
    per = (after - base) / CONNECTIONS
    print(
        f"\n{CONNECTIONS} idle /ws subscribers: server RSS {rss / 2**20:.1f} MiB at start, "
        f"{base / 2**20:.1f} -> {after / 2**20:.1f} MiB, {per / 1024:.1f} KiB per connection"
    )
    assert per < MAX_RSS_PER_CONNECTION
