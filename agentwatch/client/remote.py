"""Follow a run over the network: connect, push, reconnect, resume.

`follow` and `follow_batches` run one task (`open_channel`) that connects
over the native WebSocket (batched frames) or SSE, pushes what arrives,
reconnects with backoff and resumes from the last ``seq`` delivered. When
a local run ends while we are disconnected, the rest comes from its journal.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any

import trio

from agentwatch.client.channel import Put, open_channel
from agentwatch.client.connect import RECONNECT_GIVE_UP_S, Attempt, Backoff
from agentwatch.client.discovery import Server, live_discovery
from agentwatch.client.sse import SSE_KEY, sse_session
from agentwatch.client.subscription import Subscription, key_for
from agentwatch.client.ws import ws_session
from agentwatch.errors import ClientError, ConnectionLost
from agentwatch.paths import JOURNAL_FILE

TRANSPORTS = {"ws": ws_session, "sse": sse_session}
REPLAY_BATCH_EVENTS = 1000  # events per batch when finishing from the journal


def follow(
    server: Server,
    sub: Subscription | None = None,
    *,
    transport: str = "ws",
    give_up_after: float = RECONNECT_GIVE_UP_S,
) -> AbstractAsyncContextManager[trio.abc.ReceiveChannel[dict[str, Any]]]:
    """A channel of events, live, reconnecting and resuming until the run ends.

    ``async with follow(server) as events: async for event in events: ...``.
    Events arrive in ``seq`` order per subscribed process (``*``: all of
    them), each once; ``{"type":"gap",...}`` says when some are gone for
    good. The channel ends when the run is over; leaving the block closes
    the connection. Raises `ClientError` (bad token, server gone for
    ``give_up_after`` seconds).
    """
    return _open_follow(server, sub or Subscription(), transport, give_up_after, flatten=True)


def follow_batches(
    server: Server,
    sub: Subscription | None = None,
    *,
    transport: str = "ws",
    give_up_after: float = RECONNECT_GIVE_UP_S,
) -> AbstractAsyncContextManager[trio.abc.ReceiveChannel[list[dict[str, Any]]]]:
    """Like `follow`, but a list of events at a time (as they arrived): the fast path."""
    return _open_follow(server, sub or Subscription(), transport, give_up_after, flatten=False)


@asynccontextmanager
async def _open_follow(
    server: Server, sub: Subscription, transport: str, give_up_after: float, *, flatten: bool
) -> AsyncIterator[Any]:
    if transport not in TRANSPORTS:
        raise ClientError(f"invalid transport {transport!r}: use ws or sse")

    async def produce(put: Put) -> None:
        await _deliver(server, sub, transport, Backoff(give_up_after), put)

    async with open_channel(produce, flatten=flatten) as channel:
        yield channel


async def _deliver(
    server: Server, sub: Subscription, transport: str, backoff: Backoff, put: Put
) -> None:
    """Connect, push what arrives, reconnect with backoff and resume (see `follow`)."""
    session = TRANSPORTS[transport]
    while True:
        attempt = Attempt()
        try:
            await session(server, sub, attempt, put)
            return  # a clean end: the run is over and everything was sent
        except ConnectionLost as exc:
            if _run_over(server):
                await _replay(server, sub, transport, put, exc)
                return
            delay = backoff.next_delay(attempt)
            if delay is None:
                raise ClientError(f"lost the connection to {server.url}: {exc}") from None
            await trio.sleep(delay)


def _run_over(server: Server) -> bool:
    """Whether a local run has ended (its discovery file, or its pid, is gone)."""
    path = server.discovery
    return path is not None and live_discovery(path) is None


async def _replay(
    server: Server, sub: Subscription, transport: str, put: Put, why: ClientError
) -> None:
    """The run ended while we were disconnected: deliver the rest from its journal."""
    from agentwatch.journal import read_journal

    assert server.discovery is not None
    journal = server.discovery.with_name(JOURNAL_FILE)
    if not journal.is_file():
        raise ClientError(f"the run ended while disconnected ({why}), and {journal} is missing")
    keys = [SSE_KEY] if transport == "sse" else sub.keys()
    batch: list[dict[str, Any]] = []
    for line in read_journal(journal):
        try:
            event = json.loads(line)
        except ValueError:
            continue
        if not isinstance(event, dict) or not sub.matches(event):
            continue
        if sub.accept(key_for(event, keys), event):
            batch.append(event)
        if len(batch) >= REPLAY_BATCH_EVENTS:
            await put(batch)
            batch = []
            await trio.lowlevel.checkpoint()
    if batch:
        await put(batch)
