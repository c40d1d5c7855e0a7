"""Independent clients against the server: npm ``ws@8`` and ``eventsource@3``.

The Node scripts in ``tests/js/`` drop their connection part-way through a
live stream, resume (``since`` / ``Last-Event-ID``) and fail on any gap or
duplicate. Set up once with ``npm install --prefix tests/js``.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import trio
from test_server_support import TOKEN, port_of, running_server, ws_url

from agentwatch.server.context import ServerContext

JS = Path(__file__).parent / "js"
NODE = shutil.which("node")

pytestmark = pytest.mark.skipif(
    NODE is None
    or not (JS / "node_modules" / "ws").is_dir()
    or not (JS / "node_modules" / "eventsource").is_dir(),
    reason="needs node and `npm install --prefix tests/js`",
)

TOTAL = 1500


async def publish_live(ctx: ServerContext, total: int) -> None:
    """Publish ``total`` events over about two seconds, some in chunks."""
    n = 0
    while n < total:
        if n % 3:
            ctx.hub.publish("x-tick", "a", {"n": n})
            n += 1
        else:
            size = min(5, total - n)
            ctx.hub.publish_output("a", "stdout", ["\n".join(f"l{n + k}" for k in range(size))])
            n += size
        await trio.sleep(0.004)


async def run_node(ctx: ServerContext, script: str, *args: str) -> list[dict[str, Any]]:
    """Run a Node client while events are published; return its JSON lines."""
    assert NODE is not None
    result: list[subprocess.CompletedProcess[bytes]] = []

    async def client() -> None:
        result.append(
            await trio.run_process(
                [NODE, str(JS / script), *args],
                capture_stdout=True,
                capture_stderr=True,
                check=False,
            )
        )

    async with trio.open_nursery() as nursery:
        nursery.start_soon(client)
        await publish_live(ctx, TOTAL)
    proc = result[0]
    assert proc.returncode == 0, proc.stderr.decode()
    return [json.loads(line) for line in proc.stdout.decode().splitlines()]


@pytest.mark.parametrize("query", ["", "&batch=1"])
async def test_npm_ws_resumes_without_gap_or_duplicate(tmp_path: Path, query: str) -> None:
    with trio.fail_after(60):
        async with running_server(tmp_path) as ctx:
            lines = await run_node(ctx, "ws_resume.js", ws_url(ctx, query), str(TOTAL), "400")
    summary = lines.pop()
    assert summary == {"done": True, "connections": 2, "received": TOTAL}
    assert [e["seq"] for e in lines] == list(range(1, TOTAL + 1))


async def test_npm_eventsource_resumes_with_last_event_id(tmp_path: Path) -> None:
    with trio.fail_after(60):
        async with running_server(tmp_path) as ctx:
            url = f"http://127.0.0.1:{port_of(ctx)}/api/events/stream?token={TOKEN}&since=0"
            lines = await run_node(ctx, "sse_resume.js", url, str(TOTAL), "400")
    summary = lines.pop()
    assert summary["done"] is True
    assert summary["connections"] == 2
    first, resumed = summary["lastEventIdsSent"]
    assert first is None
    assert int(resumed) >= 400
    assert [e["data"]["seq"] for e in lines] == list(range(1, TOTAL + 1))
    assert {e["event"] for e in lines} == {"x-tick", "process-output"}
