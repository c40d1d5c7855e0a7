"""Follow a run of this very program: the hub's events, with no network.

`open_session_follow` (behind `agentwatch.client.follow_session`) is what
an embedding program uses for the run it started with `run_session`::

    session = await nursery.start(run_session, specs, opts)
    async with follow_session(session) as events:
        async for event in events:  # from seq 1; ends when the run is over
            ...

It reads the hub as the server's subscribers do (memory history, else the
journal, else an explicit gap), so it cannot race the server: it has every
event whether the agents end before it starts reading or long after, and
it ends once the hub is finished and everything was delivered, even when
the server has already stopped. It works without a server and without a
journal (``--no-journal``), too.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import trio

from agentwatch.client import Subscription
from agentwatch.hub import Filter, Hub

LOCAL_KEY = "local"  # one ordered stream of the hub, one cursor in `Subscription.cursors`
LOCAL_QUEUE_EVENTS = 1024  # events held for a slow consumer (then the reader waits)
LOCAL_QUEUE_BATCHES = 16  # the same for batches


def hub_filter(sub: Subscription) -> Filter:
    """The hub filter for a subscription (``*`` among the processes: all of them)."""
    pids = None if "*" in sub.process_ids else frozenset(sub.process_ids)
    return Filter(pids, frozenset(sub.types) if sub.types else None, sub.stream)


async def start_cursor(hub: Hub, sub: Subscription, flt: Filter) -> int:
    """Where to start: a resumed cursor, the last ``tail``, after ``since``, or seq 0."""
    if LOCAL_KEY in sub.cursors:
        return sub.cursors[LOCAL_KEY]
    if sub.tail is None:
        return sub.since or 0
    cursor = await hub.tail_cursor(flt, sub.tail)
    return cursor if sub.since is None else max(sub.since, cursor)


def decode(read_batches: list[Any]) -> list[dict[str, Any]]:
    """The event objects of encoded hub batches."""
    return [json.loads(line) for b in read_batches for line in b.lines()]


async def _deliver(
    hub: Hub, sub: Subscription, send: trio.MemorySendChannel[Any], flatten: bool
) -> None:
    flt = hub_filter(sub)
    cursor = await start_cursor(hub, sub, flt)
    with send:
        try:
            while True:
                read = hub.read(cursor, flt)
                batch = decode(read.batches)
                if read.gap is not None:
                    batch.insert(0, {"type": "gap", "fromSeq": read.gap[0], "toSeq": read.gap[1]})
                moved = read.cursor != cursor
                cursor = sub.cursors[LOCAL_KEY] = read.cursor
                if batch:
                    if flatten:
                        for event in batch:
                            await send.send(event)
                    else:
                        await send.send(batch)
                if moved:
                    await trio.lowlevel.checkpoint()  # a long run of filtered-out events
                    continue
                if hub.finished:
                    return
                await hub.wait_beyond(cursor)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            return  # the consumer closed its end: stop quietly


@asynccontextmanager
async def open_session_follow(hub: Hub, sub: Subscription, *, flatten: bool) -> AsyncIterator[Any]:
    """One task reads the hub into a bounded channel; we hand out its receiving end."""
    send, recv = trio.open_memory_channel[Any](
        LOCAL_QUEUE_EVENTS if flatten else LOCAL_QUEUE_BATCHES
    )
    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(_deliver, hub, sub, send, flatten)
            with recv:
                yield recv
            nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        raise single_exception(group) from None


def single_exception(group: BaseExceptionGroup[Any]) -> BaseException:
    """The one exception in a (nested) group, else the group itself.

    The nursery of a follow wraps what the caller's block raises; the caller
    should see its own exception.
    """
    leaves: list[BaseException] = []
    todo: list[BaseException] = [group]
    while todo:
        exc = todo.pop()
        if isinstance(exc, BaseExceptionGroup):
            todo.extend(exc.exceptions)
        else:
            leaves.append(exc)
    return leaves[0] if len(leaves) == 1 else group
