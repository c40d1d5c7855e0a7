"""Follow a live agentwatch run from Python with the async client.

    python examples/client.py                      # every process of the newest run
    python examples/client.py coder reviewer       # some processes
    python examples/client.py --url http://127.0.0.1:8765 --token T --since 120

Prints each event as it arrives (history first), and when the run ends, a
count per event type and the tasks seen. The client reconnects by itself
and resumes from the last seq it printed, so nothing is missed or repeated.
"""

from __future__ import annotations

import argparse
import collections
import sys

import trio

from agentwatch.client import Server, Subscription, find_server, follow
from agentwatch.errors import ClientError


def line(event: dict[str, object]) -> str:
    """A short human line for one event."""
    kind = event["type"]
    who = event.get("processId") or "-"
    if kind == "process-output":
        return f"[{event['seq']}] {who} | {event['output']}"
    if kind in ("task-assigned", "task-completed"):
        status = event.get("status") or event.get("title") or ""
        return f"[{event['seq']}] {who} {kind} {event['taskId']} {status}"
    if kind == "gap":
        return f"[gap] events {event['fromSeq']}..{event['toSeq']} are gone"
    return f"[{event['seq']}] {who} {kind}"


async def watch(server: Server, sub: Subscription, transport: str) -> int:
    counts: collections.Counter[str] = collections.Counter()
    tasks: dict[str, str] = {}
    async with follow(server, sub, transport=transport) as events:
        async for event in events:  # ends when the run is over
            print(line(event), flush=True)
            counts[str(event["type"])] += 1
            if event["type"] == "task-assigned":
                tasks[str(event["taskId"])] = "assigned"
            elif event["type"] == "task-completed":
                tasks[str(event["taskId"])] = str(event["status"])
    print("-- the run is over:", dict(sorted(counts.items())))
    print("-- tasks:", tasks or "none")
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("process", nargs="*", help="process ids (default: all)")
    parser.add_argument("--url", help="server URL (default: discovered)")
    parser.add_argument("--token", help="server token (default: discovered)")
    parser.add_argument("--since", type=int, help="start after this seq")
    parser.add_argument("--type", action="append", help="event type (repeatable)")
    parser.add_argument("--transport", choices=("ws", "sse"), default="ws")
    args = parser.parse_args()
    try:
        server = find_server(args.url, args.token)  # --url, $AGENTWATCH_URL, or the newest run
    except ClientError as exc:
        print(f"client.py: {exc}", file=sys.stderr)
        return 1
    sub = Subscription(
        process_ids=tuple(args.process) or ("*",),
        types=tuple(args.type) if args.type else None,
        since=args.since,
    )
    try:
        return trio.run(watch, server, sub, args.transport)
    except ClientError as exc:  # e.g. the server went away for good
        print(f"client.py: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
