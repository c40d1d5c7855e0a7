"""A chatty demo agent: prints steps, a warning on stderr, a progress bar,
reports a task through `agentwatch emit`, and exits 0.

    agentwatch run -- python3 examples/chatty_agent.py                # about 30 s
    agentwatch run -- python3 examples/chatty_agent.py --steps 4 --delay 0.1

The defaults leave time to open the dashboard and follow the run live;
``CHATTY_STEPS`` and ``CHATTY_DELAY`` set them too (the tests run it fast).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import time

DEFAULT_STEPS = 10
DEFAULT_DELAY_S = 2.5  # 10 steps and the progress bar: about 30 s


def emit(*args: str) -> None:
    """Publish an event to the agentwatch run that started us (if any)."""
    if not os.environ.get("AGENTWATCH_URL"):
        return
    exe = shutil.which("agentwatch")
    argv = [exe] if exe else [sys.executable, "-m", "agentwatch"]
    subprocess.run([*argv, "emit", *args], check=False, stdout=subprocess.DEVNULL)


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description="A chatty demo agent.")
    parser.add_argument(
        "--steps",
        type=int,
        default=int(os.environ.get("CHATTY_STEPS", DEFAULT_STEPS)),
        help=f"how many steps to print (default {DEFAULT_STEPS})",
    )
    parser.add_argument(
        "--delay",
        type=float,
        default=float(os.environ.get("CHATTY_DELAY", DEFAULT_DELAY_S)),
        metavar="SECONDS",
        help=f"pause after each step (default {DEFAULT_DELAY_S}; about 30 s in all)",
    )
    opts = parser.parse_args(argv)
    if opts.steps < 1 or opts.delay < 0:
        parser.error("--steps must be at least 1 and --delay at least 0")
    return opts


def main() -> None:
    opts = options()
    steps, delay = opts.steps, opts.delay
    emit("task-assigned", "--task", "demo-1", "--title", "Say hello a few times")
    for i in range(1, steps + 1):
        print(
            f"step {i}/{steps}: thinking about {random.choice(['tests', 'types', 'docs'])}",
            flush=True,
        )
        if i == steps // 2:
            print("warning: halfway there, still no coffee", file=sys.stderr, flush=True)
        time.sleep(delay)
    for pct in range(0, 101, 25):
        sys.stdout.write(f"\rprogress {pct:3d}%")
        sys.stdout.flush()
        time.sleep(delay / 2)
    print("\n\x1b[32mdone\x1b[0m", flush=True)
    emit("task-completed", "--task", "demo-1", "--status", "success")


if __name__ == "__main__":
    main()
