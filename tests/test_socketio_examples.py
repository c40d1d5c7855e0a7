"""The Socket.IO examples against a live agentwatch: ``examples/socketio_client.js``
with a real ``agentwatch run``, its ``.html`` twin in Chromium, and the Vue 3
composable ``examples/vue/useWebSocket.js`` under Node (Vue's reactivity runs
there without a DOM)."""

from __future__ import annotations

import contextlib
import functools
import http.server
import os
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
from browser_support import CHROMIUM_ARGS, AgentwatchRun, browser_unavailable, chromium_path
from test_server_support import TOKEN, running_server, wait_for
from test_socketio_support import (
    JS_DIR,
    ROOT,
    VUE_DIR,
    node_env,
    node_modules,
    node_peer,
    sessions,
    socketio_clients,
)

TIMEOUT_S = 60
EXAMPLE_JS = ROOT / "examples" / "socketio_client.js"
EXAMPLE_HTML = ROOT / "examples" / "socketio_client.html"
LINES = [f"step {i}" for i in range(5)]
# The agent waits (up to 30 s) until a Socket.IO client subscribed to it, then
# prints LINES and exits: the run ends, and the server disconnects the client.
AGENT = f"""
import json, os, time, urllib.request
url, token = os.environ["AGENTWATCH_URL"], os.environ["AGENTWATCH_TOKEN"]
auth = {{"Authorization": "Bearer " + token}}
request = urllib.request.Request(url + "/api/clients", headers=auth)
deadline = time.monotonic() + 30
while time.monotonic() < deadline:
    clients = json.load(urllib.request.urlopen(request))
    if any(c["transport"] == "socketio" and c["subscriptions"] for c in clients):
        break
    time.sleep(0.02)
for line in {LINES!r}:
    print(line, flush=True)
"""


@pytest.fixture
def agent_run(home: Path) -> Iterator[AgentwatchRun]:
    run = AgentwatchRun(home, [sys.executable, "-u", "-c", AGENT], name="ticker")
    try:
        run.wait_serving()
        yield run
    finally:
        run.close()


@pytest.mark.parametrize("polling", [False, True], ids=["websocket", "polling"])
def test_example_client_follows_a_run(agent_run: AgentwatchRun, polling: bool) -> None:
    argv = ["node", str(EXAMPLE_JS), "--url", agent_run.origin, "--token", agent_run.token]
    argv += ["--user", "ci", "--json", "ticker", *(["--polling"] if polling else [])]
    done = subprocess.run(argv, env=node_env(), capture_output=True, timeout=TIMEOUT_S, check=False)
    assert done.returncode == 0, done.stderr.decode()
    events = [msgspec.json.decode(line) for line in done.stdout.splitlines()]
    outputs = [e for e in events if e["type"] == "process-output"]
    assert [e["output"] for e in outputs] == LINES
    assert {e["processId"] for e in outputs} == {"ticker"}
    assert all(e["timestamp"].endswith("Z") for e in outputs)
    assert events[-1]["type"] == "process-stopped"
    assert agent_run.wait_exit(TIMEOUT_S) == 0


async def test_example_client_refused_with_a_bad_token(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            argv = ["node", str(EXAMPLE_JS), "--url", ctx.url, "--token", "wrong", "x"]
            done = await trio.run_process(
                argv, env=node_env(), capture_stdout=True, capture_stderr=True, check=False
            )
    assert done.returncode == 1
    assert b"unauthorized" in done.stderr


# -- the Vue composable ------------------------------------------------------------------


def vue_argv(ctx: Any, token: str, *extra: str) -> list[str]:
    node_modules(VUE_DIR, "vue")
    node_modules(VUE_DIR, "socket.io-client")
    return [str(VUE_DIR / "run.js"), "--url", ctx.url, "--token", token, *extra]


@pytest.mark.parametrize("polling", [False, True], ids=["websocket", "polling"])
async def test_vue_composable(tmp_path: Path, polling: bool) -> None:
    extra = ["--process", "p1", "--count", "3", *(["--polling"] if polling else [])]
    with trio.fail_after(TIMEOUT_S):
        async with running_server(tmp_path) as ctx:
            async with node_peer(vue_argv(ctx, TOKEN, *extra), cwd=VUE_DIR) as peer:
                assert await peer.next() == {"kind": "connected", "value": True}
                ack = await peer.expect_kind("ack")
                assert ack["processId"] == "p1"
                assert ack["ack"] == {"ok": True, "lastSeq": 0}
                [client] = socketio_clients(ctx)
                assert client["userId"] == "vue-demo"
                ctx.hub.publish_output("p2", "stdout", ["not for p1"])
                ctx.hub.publish_output("p1", "stdout", ["a\nb\nc"])
                outputs = []
                for _ in range(3):
                    report = await peer.expect_kind("event")
                    assert report["name"] == "process-output"
                    outputs.append(report["event"])
                assert [(e["processId"], e["output"]) for e in outputs] == [
                    ("p1", "a"),
                    ("p1", "b"),
                    ("p1", "c"),
                ]
                # --count reached: disconnect() turns `connected` false
                assert await peer.next() == {"kind": "connected", "value": False}
                assert await peer.wait() == 0
            await wait_for(lambda: not sessions(ctx) and not socketio_clients(ctx))


async def test_vue_composable_bad_token_sets_error(tmp_path: Path) -> None:
    with trio.fail_after(TIMEOUT_S):
        async with (
            running_server(tmp_path) as ctx,
            node_peer(vue_argv(ctx, "wrong"), cwd=VUE_DIR) as peer,
        ):
            assert await peer.next() == {"kind": "error", "message": "unauthorized"}
            assert await peer.wait() == 2
            assert socketio_clients(ctx) == []


# -- the browser twin ------------------------------------------------------------------------

VENDORED = ROOT / "examples" / "socket.io.min.js"
# <script src=https://...>, <link href=//...>, import ... from "https://...", url(https://...)
REMOTE_LOAD = re.compile(
    r"""(?:\b(?:src|href)\s*=\s*["']?|\bfrom\s+["']|\bimport\(\s*["']|url\(\s*["']?)"""
    r"""(?:https?:)?//""",
    re.IGNORECASE,
)


def test_no_page_loads_anything_from_another_site() -> None:
    """Every page and script of the repository works offline: no CDN, no https:// load."""
    pages = [
        p
        for p in ROOT.rglob("*")
        if p.suffix in (".html", ".htm", ".vue")
        and "node_modules" not in p.parts
        and ".venv" not in p.parts
        and ".git" not in p.parts
    ]
    assert EXAMPLE_HTML in pages
    for page in pages:
        found = REMOTE_LOAD.search(page.read_text())
        assert found is None, f"{page.relative_to(ROOT)} loads {found and found.group(0)!r}"


def test_vendored_client_is_npm_socket_io_client_with_its_licence() -> None:
    text = VENDORED.read_text()
    assert "Permission is hereby granted, free of charge" in text  # the MIT licence, whole
    assert "Copyright (c) 2014-present Guillermo Rauch and Socket.IO contributors" in text
    npm = node_modules(JS_DIR, "socket.io-client") / "socket.io-client/dist/socket.io.min.js"
    upstream = npm.read_text().replace("//# sourceMappingURL=socket.io.min.js.map", "").strip()
    assert text.rstrip().endswith(upstream)


@contextlib.contextmanager
def static_site(directory: Path) -> Iterator[str]:
    """``directory`` served on a loopback port (a page origin other than agentwatch's)."""
    handler = functools.partial(_QuietHandler, directory=str(directory))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.mark.parametrize("transport", ["websocket", "polling"])
def test_html_twin_in_chromium(home: Path, transport: str) -> None:
    why = browser_unavailable()
    if why and os.environ.get("CI"):  # CI must not skip: scripts/test.sh installs both
        raise RuntimeError(f"needs Playwright and chromium: {why}")
    if why:
        pytest.skip(f"needs Playwright and chromium: {why}")
    from playwright.sync_api import expect, sync_playwright

    command = [sys.executable, "-u", "-c", AGENT]
    with static_site(EXAMPLE_HTML.parent) as site:
        # a cross-origin page: agentwatch lets it in only through --cors-origin
        run = AgentwatchRun(home, command, name="ticker", extra_args=["--cors-origin", site])
        try:
            query = f"url={run.origin}&token={run.token}&process=ticker&user=browser"
            if transport == "polling":
                query += "&transport=polling"
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=chromium_path(), args=CHROMIUM_ARGS)
                try:
                    page = browser.new_page()
                    errors: list[str] = []
                    page.on("pageerror", lambda exc: errors.append(str(exc)))
                    elsewhere: list[str] = []  # offline: nothing but the two local origins

                    def offline(route: Any) -> None:
                        if route.request.url.startswith(("http://127.0.0.1:", "ws://127.0.0.1:")):
                            route.continue_()
                        else:
                            elsewhere.append(route.request.url)
                            route.abort("internetdisconnected")

                    page.route("**/*", offline)
                    page.goto(f"{site}/{EXAMPLE_HTML.name}?{query}")
                    log = page.locator("#log")
                    for line in LINES:
                        expect(log).to_contain_text(f"ticker | {line}", timeout=30_000)
                    expect(page.locator("#status")).to_have_text(
                        "disconnected: io server disconnect", timeout=30_000
                    )
                    assert not errors
                    assert elsewhere == []
                finally:
                    browser.close()
            assert run.wait_exit(TIMEOUT_S) == 0
        finally:
            run.close()
