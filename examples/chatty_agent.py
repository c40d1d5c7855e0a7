"""A chatty demo agent: prints steps, a warning on stderr, a progress bar,
reports a task through `agentwatch emit`, and exits 0.

    agentwatch run -- python examples/chatty_agent.py
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import sys
import time


def emit(*args: str) -> None:
    """Publish an event to the agentwatch run that started us (if any)."""
    if not os.environ.get("AGENTWATCH_URL"):
        return
    exe = shutil.which("agentwatch")
    argv = [exe] if exe else [sys.executable, "-m", "agentwatch"]
    subprocess.run([*argv, "emit", *args], check=False, stdout=subprocess.DEVNULL)


def main() -> None:
    steps = int(os.environ.get("CHATTY_STEPS", "10"))
    delay = float(os.environ.get("CHATTY_DELAY", "0.2"))
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
