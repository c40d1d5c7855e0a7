"""Follow a run of this very program: the hub's events, with no network.

`follow_session` is what an embedding program uses for the run it started with `run_session`::

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
from contextlib import AbstractAsyncContextManager
from typing import TYPE_CHECKING, Any

import trio

from agentwatch.client.channel import Put, open_channel
from agentwatch.client.subscription import Subscription
from agentwatch.hub import Filter, Hub

if TYPE_CHECKING:
    from agentwatch.runner import Session

LOCAL_KEY = "local"  # one ordered stream of the hub, one cursor in `Subscription.cursors`


def follow_session(
    session: Session, sub: Subscription | None = None
) -> AbstractAsyncContextManager[trio.abc.ReceiveChannel[dict[str, Any]]]:
    """The events of a run this program started, read from its hub (no network).

    ``async with follow_session(session) as events: async for event in
    events: ...``, right after ``session = await nursery.start(run_session,
    ...)``. Like `follow`: from the run's first event (or ``sub.since`` /
    ``sub.tail``), in ``seq`` order, each once, ``{"type":"gap",...}`` for
    events gone from memory and journal; the channel ends once the run is
    over and everything was delivered, however short the run and whether or
    not it serves.
    """
    return open_session_follow(session.hub, sub or Subscription(), flatten=True)


def open_session_follow(
    hub: Hub, sub: Subscription, *, flatten: bool
) -> AbstractAsyncContextManager[Any]:
    """One task reads the hub into a bounded channel; we hand out its receiving end."""

    async def produce(put: Put) -> None:
        await _deliver(hub, sub, put)

    return open_channel(produce, flatten=flatten)


def _hub_filter(sub: Subscription) -> Filter:
    """The hub filter for a subscription (``*`` among the processes: all of them)."""
    pids = None if "*" in sub.process_ids else frozenset(sub.process_ids)
    return Filter(pids, frozenset(sub.types) if sub.types else None, sub.stream)


async def _start_cursor(hub: Hub, sub: Subscription, flt: Filter) -> int:
    """Where to start: a resumed cursor, the last ``tail``, after ``since``, or seq 0."""
    start = dict(sub.start(LOCAL_KEY))
    if "tail" not in start:
        return start["since"]
    cursor = await hub.tail_cursor(flt, start["tail"])
    return max(start["since"], cursor) if "since" in start else cursor


def _decode(read_batches: list[Any]) -> list[dict[str, Any]]:
    """The event objects of encoded hub batches."""
    return [json.loads(line) for b in read_batches for line in b.lines()]


async def _deliver(hub: Hub, sub: Subscription, put: Put) -> None:
    flt = _hub_filter(sub)
    cursor = await _start_cursor(hub, sub, flt)
    while True:
        read = hub.read(cursor, flt)
        batch = _decode(read.batches)
        if read.gap is not None:
            batch.insert(0, {"type": "gap", "fromSeq": read.gap[0], "toSeq": read.gap[1]})
        moved = read.cursor != cursor
        cursor = sub.cursors[LOCAL_KEY] = read.cursor
        if batch:
            await put(batch)
        if moved:
            await trio.lowlevel.checkpoint()  # a long run of filtered-out events
            continue
        if hub.finished:
            return
        await hub.wait_beyond(cursor)
