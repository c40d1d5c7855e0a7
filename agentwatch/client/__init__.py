"""The client side: find a server, call its REST API, follow its events.

`find_server` resolves where a client command talks to (SPEC 3). `api`
makes one blocking REST call (client commands need no event loop). `follow`
is the async subscribe client for trio programs::

    server = find_server()                      # or Server(url, token)
    async with follow(server, Subscription(("builder",))) as events:
        async for event in events:
            print(event["seq"], event["type"])

It speaks the native WebSocket protocol (batched frames) or SSE, reconnects
with backoff and resumes from the last ``seq`` it delivered, so nothing is
missed or repeated; it ends when the run ends (the server closes the stream
once everything was sent) and raises `ClientError` when the server stays
unreachable for `RECONNECT_GIVE_UP_S`.

A program that started the run itself (`agentwatch.run_session`) follows it
with `follow_session` instead: the same events from the hub, no network, so
it cannot miss the start or the end of a short run.

The modules: `discovery` (live runs, run ids, `Server`), `rest` (`api`,
`history`), `subscription` (what to follow, de-duplication by seq),
`connect` (TCP/TLS, reconnect backoff), `ws` and `sse` (the transports),
`remote` (`follow`: the reconnecting channel), `local` (`follow_session`), `offline`
(journals of ended runs), `exits` (the status a run gives). The follow
machinery needs trio: it is imported on first use, so ``find_server`` and
``api`` stay cheap for the CLI.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentwatch.client.discovery import Server, find_server
from agentwatch.client.rest import api, history, processes
from agentwatch.client.subscription import Subscription
from agentwatch.lazy import lazy_getattr

_LAZY: dict[str, str] = {
    "RECONNECT_GIVE_UP_S": "agentwatch.client.connect",
    "follow": "agentwatch.client.remote",
    "follow_batches": "agentwatch.client.remote",
    "follow_session": "agentwatch.client.local",
}

__all__ = [
    "RECONNECT_GIVE_UP_S",
    "Server",
    "Subscription",
    "api",
    "find_server",
    "follow",
    "follow_batches",
    "follow_session",
    "history",
    "processes",
]


__getattr__ = lazy_getattr(globals(), _LAZY)


if TYPE_CHECKING:  # at run time __getattr__ imports these on first use
    from agentwatch.client.connect import RECONNECT_GIVE_UP_S
    from agentwatch.client.local import follow_session
    from agentwatch.client.remote import follow, follow_batches
