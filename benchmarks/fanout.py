"""Fan-out throughput and latency of the one-port server.

1. Throughput: a child writes 1,000,000 lines as fast as it can under
   `agentwatch run`; 1, 10 and 100 batched WebSocket subscribers
   (`/ws?batch=1`, npm `ws` clients from tests/js, so that the server is what
   is measured; 100 subscribers get 200,000 lines each) and 1 SSE subscriber
   follow from seq 0. Prints events/s delivered per subscriber and summed,
   and the child's wall time against a run with no subscriber (was the child
   slowed?).
2. Latency: a child writes 1,000 timestamped lines/s for 10 s; one batched
   WebSocket subscriber prints p50/p99 of receive time minus write time.

    python benchmarks/fanout.py [--lines N] [--subscribers 1 10 100] [--skip-latency]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Any

import trio
import trio_websocket as tws

FAST_CHILD = (
    "import sys, time\n"
    "t0 = time.time()\n"
    "line = b'x' * 79 + b'\\n'\n"
    "block = line * 1000\n"
    "for _ in range({n} // 1000):\n"
    "    sys.stdout.buffer.write(block)\n"
    "sys.stdout.buffer.flush()\n"
    "open({wall!r}, 'w').write('%.6f' % (time.time() - t0))\n"
)
TIMED_CHILD = (
    "import sys, time\n"
    "time.sleep(1.0)\n"
    "start = time.time()\n"
    "for i in range({n}):\n"
    "    target = start + i / {rate}\n"
    "    d = target - time.time()\n"
    "    if d > 0: time.sleep(d)\n"
    "    sys.stdout.write('t=%.6f\\n' % time.time()); sys.stdout.flush()\n"
)
SEQ_RE = re.compile(rb'\{"seq":')
HERE = os.path.dirname(os.path.abspath(__file__))
MAX_DELIVERIES = 20_000_000  # per measurement: 100 subscribers get lines / 10 each


def start_run(child: str, home: str, *extra: str) -> tuple[subprocess.Popen[bytes], str]:
    """Start `agentwatch run` with a child that waits for a go file, return (proc, url)."""
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "agentwatch",
            "run",
            "--quiet",
            "--stats-interval",
            "0",
            "--linger",
            "120",
            *extra,
            "--",
            sys.executable,
            "-c",
            child,
        ],
        stderr=subprocess.PIPE,
        env={**os.environ, "AGENTWATCH_HOME": home},
    )
    assert proc.stderr is not None
    line = proc.stderr.readline().decode()
    m = re.search(r"serving (http://\S+)", line)
    if not m:
        proc.kill()
        raise SystemExit(f"no serving line: {line!r}")
    return proc, m.group(1)


async def sse_subscriber(url: str, want: int, out: list[dict[str, Any]]) -> None:
    """Count events over the SSE firehose."""
    base, token = url.split("/?token=")
    host, port = base.replace("http://", "").split(":")
    stream = await trio.open_tcp_stream(host, int(port))
    req = (
        f"GET /api/events/stream?since=0&type=process-output&token={token} HTTP/1.1\r\n"
        f"Host: {host}\r\n\r\n"
    ).encode()
    await stream.send_all(req)
    got = 0
    first = last = 0.0
    tail = b""
    while got < want:
        data = await stream.receive_some(1 << 16)
        if not data:
            break
        chunk = tail + data
        n = chunk.count(b"\nid: ") + chunk.startswith(b"id: ")
        tail = chunk[-8:]
        n = len(SEQ_RE.findall(chunk)) - len(SEQ_RE.findall(tail))
        if n and not first:
            first = time.perf_counter()
        got += n
        last = time.perf_counter()
    await stream.aclose()
    out.append({"events": got, "seconds": last - first})


def child_wall(path: str, timeout: float = 120.0) -> float:
    """The child's own wall time, which it writes to ``path`` when done."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with open(path) as f:
                text = f.read()
            if text:
                return float(text)
        except OSError:
            pass
        time.sleep(0.05)
    return float("nan")


def throughput(lines: int, subs: int, sse: bool, home: str) -> dict[str, Any]:
    """Deliveries to ``subs`` subscribers while the child writes ``lines`` lines."""
    wall_file = os.path.join(home, f"wall-{subs}-{sse}")
    child = FAST_CHILD.format(n=lines, wall=wall_file)
    go = os.path.join(home, f"go-{subs}-{sse}")
    gated = f"import os, time\nwhile not os.path.exists({go!r}): time.sleep(0.01)\n" + child
    proc, url = start_run(gated, home)
    results: list[dict[str, Any]] = []
    if sse:

        async def main() -> None:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(sse_subscriber, url, lines, results)
                await trio.sleep(0.5)
                await trio.Path(go).touch()

        trio.run(main)
    else:  # npm ws clients, so that the server, not a Python client, is measured
        base, token = url.split("/?token=")
        ws_url = base.replace("http://", "ws://") + f"/ws?batch=1&token={token}"
        node = subprocess.Popen(
            ["node", os.path.join(HERE, "ws_count.js"), ws_url, str(subs), str(lines)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        assert node.stderr is not None
        assert node.stdout is not None
        node.stderr.readline()  # "ready": every connection subscribed
        open(go, "w").close()
        results = json.loads(node.stdout.read() or b"[]")
        node.wait()
    wall = child_wall(wall_file)
    proc.terminate()
    proc.wait()
    total_events = sum(r["events"] for r in results)
    span = max(r["seconds"] for r in results)
    return {
        "subscribers": subs,
        "transport": "sse" if sse else "ws-batch",
        "lines": lines,
        "per_subscriber_events_per_s": round(
            statistics.median(r["events"] / r["seconds"] for r in results)
        ),
        "total_deliveries_per_s": round(total_events / span),
        "child_wall_s": round(wall, 3),
    }


def latency(rate: int, seconds: int, home: str) -> dict[str, Any]:
    n = rate * seconds
    proc, url = start_run(TIMED_CHILD.format(n=n, rate=rate), home)
    delays: list[float] = []

    async def main() -> None:
        base, token = url.split("/?token=")
        ws_url = base.replace("http://", "ws://") + f"/ws?batch=1&token={token}"
        async with tws.open_websocket_url(ws_url) as ws:
            await ws.send_message(
                json.dumps({"op": "subscribe", "processId": "*", "types": ["process-output"]})
            )
            while len(delays) < n:
                msg = await ws.get_message()
                now = time.time()
                obj = json.loads(msg)
                for e in obj if isinstance(obj, list) else [obj]:
                    out = e.get("output", "")
                    if out.startswith("t="):
                        delays.append(now - float(out[2:]))

    trio.run(main)
    proc.terminate()
    proc.wait()
    delays.sort()
    return {
        "rate_lines_per_s": rate,
        "events": len(delays),
        "p50_ms": round(delays[len(delays) // 2] * 1000, 3),
        "p99_ms": round(delays[int(len(delays) * 0.99)] * 1000, 3),
        "max_ms": round(delays[-1] * 1000, 3),
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--subscribers", type=int, nargs="*", default=[1, 10, 100])
    ap.add_argument("--skip-latency", action="store_true")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as home:
        rows = []
        for subs in args.subscribers:
            lines = min(args.lines, MAX_DELIVERIES // subs)
            rows.append(throughput(lines, subs, False, home))
            print(json.dumps(rows[-1]), flush=True)
        rows.append(throughput(args.lines, 1, True, home))
        print(json.dumps(rows[-1]), flush=True)
        alone = throughput_alone(args.lines, home)
        print(json.dumps({"subscribers": 0, "child_wall_s": round(alone, 3)}), flush=True)
        if not args.skip_latency:
            print(json.dumps(latency(1000, 10, home)), flush=True)


def throughput_alone(lines: int, home: str) -> float:
    """The child's wall time under `agentwatch run` with no subscriber."""
    wall_file = os.path.join(home, "wall-alone")
    subprocess.run(
        [
            sys.executable,
            "-m",
            "agentwatch",
            "run",
            "--quiet",
            "--quiet-server",
            "--stats-interval",
            "0",
            "--",
            sys.executable,
            "-c",
            FAST_CHILD.format(n=lines, wall=wall_file),
        ],
        env={**os.environ, "AGENTWATCH_HOME": home},
        check=True,
    )
    return child_wall(wall_file)


if __name__ == "__main__":
    main()
