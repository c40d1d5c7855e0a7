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


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lines", type=int, default=1_000_000)
    ap.add_argument("--repeat", type=int, default=5)
    args = ap.parse_args()
    child = [sys.executable, "-c", CHILD.format(n=args.lines)]
    bare, wrapped = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.repeat):
            with open(os.devnull, "wb") as null:
                bare.append(timed(child, stdout=null))
            journal = os.path.join(tmp, f"events-{i}.jsonl")
            wrapped.append(timed([sys.executable, "-m", "agentwatch", "run", "--quiet",
                                  "--no-server", "--stats-interval", "0", "--journal", journal,
                                  "--", *child]))
            with open(journal, "rb") as f:
                n = sum(1 for line in f if b'"process-output"' in line)
            assert n == args.lines, f"journal has {n} output events, expected {args.lines}"
            os.unlink(journal)
    b, w = statistics.median(bare), statistics.median(wrapped)
    result = {
        "lines": args.lines,
        "bare_s": round(b, 3),
        "agentwatch_s": round(w, 3),
        "bare_lines_per_s": round(args.lines / b),
        "captured_lines_per_s": round(args.lines / w),
        "slowdown_ratio": round(w / b, 2),
    }
    print(json.dumps(result))
    print(f"captured and journaled {args.lines / w / 1e6:.2f} M lines/s "
          f"(child alone: {args.lines / b / 1e6:.2f} M lines/s; wall ratio {w / b:.2f}x; "
          f"median of {args.repeat}; includes agentwatch start-up)")


if __name__ == "__main__":
    main()
