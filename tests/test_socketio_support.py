"""Helpers for the Socket.IO tests (no tests here): a raw Engine.IO polling
client over h11, a raw WebSocket Engine.IO peer, and Node peers (the real
npm ``socket.io-client``, the examples) spoken to in JSON lines.

Imported by the ``test_socketio_*.py`` modules (pytest puts ``tests/`` on
``sys.path``).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import replace
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from test_server_support import TOKEN, HTTPClient, Response, port_of
from trio_websocket import WebSocketConnection, open_websocket_url

from agentwatch.proto import engineio as eio
from agentwatch.server.context import ServerContext
from agentwatch.server.socketio_session import Session, SessionRegistry, registry_of

ROOT = Path(__file__).resolve().parent.parent
JS_DIR = ROOT / "tests" / "js"
VUE_DIR = ROOT / "examples" / "vue"
SIO = "/socket.io/?EIO=4&transport="
decode = msgspec.json.decode


def use_limits(ctx: ServerContext, **changes: Any) -> SessionRegistry:
    """Give ``ctx`` these Socket.IO limits (``socketio_*`` fields of `Limits`, before any
    request); its session registry."""
    assert ctx.socketio is None or not ctx.socketio.sessions
    ctx.limits = replace(ctx.limits, **{f"socketio_{name}": v for name, v in changes.items()})
    return registry_of(ctx)


def sessions(ctx: ServerContext) -> dict[str, Session]:
    """The server's open Socket.IO sessions."""
    return {} if ctx.socketio is None else ctx.socketio.sessions


def socketio_clients(ctx: ServerContext) -> list[dict[str, Any]]:
    """``/api/clients`` entries of Socket.IO clients, as the API lists them."""
    last = ctx.hub.last_seq
    return [c.as_json(last) for c in ctx.hub.clients.values() if c.transport == "socketio"]


# -- raw Engine.IO over HTTP long-polling -----------------------------------------------


class Poller:
    """One Engine.IO polling session driven with h11 (two connections: GET and POST)."""

    def __init__(self, ctx: ServerContext, query: str = "", *, bearer: bool = False) -> None:
        self.ctx = ctx
        self.query = query
        self.bearer = bearer  # the handshake carries the token in an Authorization header
        self.sid = ""
        self.handshake: dict[str, Any] = {}
        self._get: HTTPClient | None = None
        self._post: HTTPClient | None = None

    def path(self) -> str:
        """The polling URL of this session."""
        return f"{SIO}polling&sid={self.sid}{self.query}"

    async def open(self) -> dict[str, Any]:
        """Handshake: the OPEN packet's data."""
        self._get = await HTTPClient.connect(self.ctx)
        self._post = await HTTPClient.connect(self.ctx)
        resp = await self._get.request("GET", SIO + "polling" + self.query, auth=self.bearer)
        assert resp.status == 200, resp.body
        assert resp.headers["content-type"].startswith("text/plain")
        packets = eio.decode_payload(resp.body)
        assert packets[0].type is eio.PacketType.OPEN
        assert isinstance(packets[0].data, str)
        self.handshake = decode(packets[0].data)
        self.sid = self.handshake["sid"]
        return self.handshake

    async def get_raw(self) -> Response:
        """One long poll, as it comes."""
        assert self._get is not None
        return await self._get.request("GET", self.path(), auth=False)

    async def get(self) -> list[str]:
        """One long poll's packets, as text frames (``42[...]``, ``2``, ``6``)."""
        resp = await self.get_raw()
        assert resp.status == 200, resp.body
        return resp.body.decode().split("\x1e")

    async def post_raw(self, body: bytes) -> Response:
        """POST a raw body."""
        assert self._post is not None
        return await self._post.request("POST", self.path(), body=body, auth=False)

    async def post(self, *frames: str) -> None:
        """POST frames (``40{...}``, ``3``), expecting ``ok``."""
        resp = await self.post_raw("\x1e".join(frames).encode())
        assert (resp.status, resp.body) == (200, b"ok"), resp.body

    async def connect(self, auth: dict[str, Any] | None = None) -> str:
        """CONNECT to ``/`` with ``auth`` (default: the test token); the reply frame."""
        auth = {"token": TOKEN} if auth is None else auth
        await self.post("40" + msgspec.json.encode(auth).decode())
        return (await self.next_frames(1))[0]

    async def next_frames(self, n: int, *, pong: bool = True) -> list[str]:
        """The next ``n`` frames other than PING (answered with PONG) and NOOP."""
        out: list[str] = []
        while len(out) < n:
            for frame in await self.get():
                if frame == "2" and pong:
                    await self.post("3")
                elif frame != "6":
                    out.append(frame)
        assert len(out) == n, out
        return out

    async def aclose(self) -> None:
        """Close both connections."""
        for client in (self._get, self._post):
            if client is not None:
                await client.aclose()


@asynccontextmanager
async def polling_session(ctx: ServerContext, query: str = "") -> AsyncIterator[Poller]:
    """An open `Poller`."""
    poller = Poller(ctx, query)
    try:
        await poller.open()
        yield poller
    finally:
        await poller.aclose()


def events_of(frames: list[str]) -> list[tuple[str, Any]]:
    """``42["name",arg]`` frames -> (name, arg)."""
    out = []
    for frame in frames:
        assert frame.startswith("42["), frame
        name, arg = decode(frame[2:])
        out.append((name, arg))
    return out


# -- raw Engine.IO over WebSocket ---------------------------------------------------------


@asynccontextmanager
async def engine_ws(ctx: ServerContext, query: str = "") -> AsyncIterator[WebSocketConnection]:
    """A trio-websocket connection to ``/socket.io/?EIO=4&transport=websocket``."""
    url = f"ws://127.0.0.1:{port_of(ctx)}{SIO}websocket{query}"
    async with open_websocket_url(url) as ws:
        try:
            yield ws
        finally:
            # trio-websocket's client leaves its socket open when the server
            # closes first (it waits for a TCP close it then never does)
            await ws._stream.aclose()


async def ws_frames(ws: WebSocketConnection, n: int) -> list[str]:
    """The next ``n`` text frames, answering PINGs."""
    out: list[str] = []
    while len(out) < n:
        frame = await ws.get_message()
        assert isinstance(frame, str)
        if frame == "2":
            await ws.send_message("3")
        else:
            out.append(frame)
    return out


# -- Node peers -------------------------------------------------------------------------


def node_modules(directory: Path, package: str) -> Path:
    """``directory/node_modules``, failing clearly when ``package`` is not installed."""
    if shutil.which("node") is None:
        pytest.fail("node is not installed (the Socket.IO tests drive the npm socket.io-client)")
    modules = directory / "node_modules"
    if not (modules / package / "package.json").exists():
        pytest.fail(
            f"{package} is missing: run `npm install` in {directory} (scripts/test.sh does)"
        )
    return modules


def node_env() -> dict[str, str]:
    """The environment for Node peers: ``require`` finds tests/js/node_modules."""
    env = dict(os.environ)
    env["NODE_PATH"] = str(node_modules(JS_DIR, "socket.io-client"))
    for name in ("AGENTWATCH_URL", "AGENTWATCH_TOKEN"):
        env.pop(name, None)
    return env


class NodePeer:
    """A Node process reporting JSON lines on stdout and taking them on stdin."""

    def __init__(self, process: trio.Process) -> None:
        self.process = process
        self.reports: list[dict[str, Any]] = []
        self._buf = b""

    async def next(self) -> dict[str, Any]:
        """The next report; AssertionError at EOF."""
        assert self.process.stdout is not None
        while b"\n" not in self._buf:
            data = await self.process.stdout.receive_some(65536)
            if not data:
                raise AssertionError(f"node exited ({self.process.returncode}): {self.reports}")
            self._buf += data
        line, self._buf = self._buf.split(b"\n", 1)
        report: dict[str, Any] = decode(line)
        self.reports.append(report)
        return report

    async def expect(self, predicate: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """Skip reports until one satisfies ``predicate`` (bound it with ``fail_after``)."""
        while True:
            report = await self.next()
            if predicate(report):
                return report

    async def expect_kind(self, kind: str) -> dict[str, Any]:
        """The next report of this kind."""
        return await self.expect(lambda r: r["kind"] == kind)

    async def send(self, command: dict[str, Any]) -> None:
        """One command line on stdin."""
        assert self.process.stdin is not None
        await self.process.stdin.send_all(msgspec.json.encode(command) + b"\n")

    async def emit(self, *args: Any, ack: bool = False) -> None:
        """``socket.emit(...args)`` in the driver."""
        await self.send({"op": "emit", "args": list(args), "ack": ack})

    async def wait(self) -> int:
        """Wait for the exit status."""
        return await self.process.wait()


@asynccontextmanager
async def node_peer(argv: list[str], *, cwd: Path = ROOT) -> AsyncIterator[NodePeer]:
    """Run ``node argv``; killed at the end of the block if still running."""
    process = await trio.lowlevel.open_process(
        ["node", *argv], stdin=-1, stdout=-1, env=node_env(), cwd=cwd
    )
    try:
        yield NodePeer(process)
    finally:
        with trio.CancelScope(shield=True):
            if process.returncode is None:
                process.kill()
            await process.wait()
            for pipe in (process.stdin, process.stdout):
                if pipe is not None:
                    await pipe.aclose()


def sio_driver(ctx: ServerContext, options: dict[str, Any], url: str | None = None) -> list[str]:
    """argv of tests/js/sio_driver.js: ``io(url, options)`` with its line protocol."""
    return [str(JS_DIR / "sio_driver.js"), url or ctx.url, msgspec.json.encode(options).decode()]


TRANSPORTS = {
    "websocket": {"transports": ["websocket"]},  # the original design's client
    "polling": {},  # socket.io-client's default: long-polling, then the upgrade
}
