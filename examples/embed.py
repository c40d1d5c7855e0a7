"""Embed agentwatch in a trio program (SPEC 7).

Runs two agents under one supervisor and one server (one journal, one seq),
follows their events with the async client as any subscriber would, stops
the endless agent once the other one is done, publishes a task event of its
own, and exits with the run's status.

    python examples/embed.py

While it runs, the printed URL serves the dashboard, and `agentwatch ps`,
`agentwatch subscribe` and friends find it like any run.
"""

from __future__ import annotations

import sys

import trio

import agentwatch as aw

WORKER = """
import time
for i in range(1, 6):
    print(f"step {i}/5", flush=True)
    time.sleep(0.05)
"""
TICKER = """
import itertools, signal, sys, time
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))  # a clean stop is a success
for i in itertools.count():
    print(f"tick {i}", flush=True)
    time.sleep(0.2)
"""


def describe(event: dict[str, object]) -> str:
    """One short line per event."""
    what = event.get("output") or event.get("message") or event.get("taskId") or ""
    return f"{event['seq']:>4} {event['type']:<16} {event.get('processId') or '-':<8} {what}"


async def main() -> int:
    specs = [
        aw.AgentSpec("worker", (sys.executable, "-u", "-c", WORKER)),
        aw.AgentSpec("ticker", (sys.executable, "-u", "-c", TICKER), grace=2.0),
    ]
    opts = aw.SessionOptions(
        server=aw.ServerConfig(port=0, token="embed-demo-token"),  # port 0: any free port
        echo=aw.Echo.NONE,  # we print events ourselves
    )
    async with trio.open_nursery() as nursery:
        # run_session starts the journal, the server and the agents; `started`
        # hands over the live Session (hub, supervisor, URL, token).
        session: aw.Session = await nursery.start(aw.run_session, specs, opts)
        print(f"serving {session.url}/?token={session.token} (run {session.run_id})")
        # The run's own discovery entry: if the connection is lost after the run
        # ended, `follow` finishes from the journal. (`aw.follow_session(session)`
        # reads the hub directly, with no network at all.)
        server = aw.find_server(run_id=session.run_id, home=opts.home)
        subscription = aw.Subscription(
            types=("process-output", "process-stopped", "task-completed")
        )
        async with aw.follow(server, subscription) as events:
            async for event in events:  # ends when the run is over
                print(describe(event))
                if event["type"] == "process-stopped" and event["processId"] == "worker":
                    session.hub.publish(
                        "task-completed", "worker", {"taskId": "demo", "status": "success"}
                    )
                    session.supervisor.stop("ticker")  # SIGTERM, SIGKILL after its grace
    status = aw.exit_status(session)
    print(f"run {session.run_id} ended with status {status}")
    return status


if __name__ == "__main__":
    sys.exit(trio.run(main))
