"""Capture throughput: 1,000,000 lines of 80 bytes through `agentwatch run`.

Measures a child writing the lines as fast as it can (a) to /dev/null and
(b) under ``agentwatch run --quiet --no-server`` with the journal on, and
prints lines/s for both and their ratio. Run:

    python benchmarks/capture.py [--lines N] [--repeat K]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

CHILD = (
    "import sys\n"
    "line = b'x' * 79 + b'\\n'\n"
    "block = line * 1000\n"
    "w = sys.stdout.buffer.write\n"
    "for _ in range({n} // 1000):\n"
    "    w(block)\n"
    "sys.stdout.buffer.flush()\n"
)


def timed(argv: list[str], **kw: object) -> float:
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, **kw)  # type: ignore[call-overload]
    return time.perf_counter() - t0


def output_span(journal: str) -> tuple[int, float]:
    """Output events in the journal, and seconds from the first one to the last."""
    n = 0
    first = last = ""
    with open(journal, "rb") as f:
        for line in f:
            if b'"process-output"' in line:
                n += 1
                ts = json.loads(line)["timestamp"] if not first or n % 50_000 == 0 else ""
                first = first or ts
                last = ts or last
        # the last event's timestamp, read exactly
    last = _last_output_ts(journal) or last
    return n, (_epoch(last) - _epoch(first)) or 1e-9


def _last_output_ts(journal: str) -> str:
    with open(journal, "rb") as f:
        f.seek(max(os.path.getsize(journal) - 4096, 0))
        lines = [x for x in f.read().splitlines() if b'"process-output"' in x]
    return str(json.loads(lines[-1])["timestamp"]) if lines else ""


def _epoch(ts: str) -> float:
    import datetime as dt

    return dt.datetime.strptime(ts, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC).timestamp()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    child = [sys.executable, "-c", CHILD.format(n=args.lines)]
    bare: list[float] = []
    wrapped: list[float] = []
    steady: list[float] = []
    startup = statistics.median(
        timed(
            [
                sys.executable,
                "-m",
                "agentwatch",
                "run",
                "--quiet",
                "--no-server",
                "--no-journal",
                "--",
                "true",
            ]
        )
        for _ in range(3)
    )
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            with open(os.devnull, "wb") as null:
                bare.append(timed(child, stdout=null))
            journal = os.path.join(tmp, f"events-{i}.jsonl")
            wrapped.append(
                timed(
                    [
                        sys.executable,
                        "-m",
                        "agentwatch",
                        "run",
                        "--quiet",
                        "--no-server",
                        "--stats-interval",
                        "0",
                        "--journal",
                        journal,
                        "--",
                        *child,
                    ]
                )
            )
            n, span = output_span(journal)
            assert n == args.lines, f"journal has {n} output events, expected {args.lines}"
            steady.append(n / span)
            os.unlink(journal)
    b, w = statistics.median(bare), statistics.median(wrapped)
    result = {
        "lines": args.lines,
        "bare_s": round(b, 3),
        "agentwatch_s": round(w, 3),
        "bare_lines_per_s": round(args.lines / b),
        "captured_lines_per_s": round(args.lines / w),
        "slowdown_ratio": round(w / b, 2),
        "agentwatch_startup_s": round(startup, 3),
        "steady_capture_lines_per_s": round(statistics.median(steady)),
    }
    print(json.dumps(result))
    print(
        f"captured and journaled {args.lines / w / 1e6:.2f} M lines/s end to end "
        f"(child alone: {args.lines / b / 1e6:.2f} M lines/s; wall ratio {w / b:.2f}x; "
        f"median of {args.repeat}; includes {startup:.2f} s of agentwatch start-up); "
        f"steady capture rate {statistics.median(steady) / 1e6:.2f} M lines/s "
        "(first to last output event timestamp in the journal)"
    )


if __name__ == "__main__":
    main()
