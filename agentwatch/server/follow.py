"""The follow loop every streaming transport shares (SSE, /ws, Socket.IO).

A subscription is a cursor and a filter over the hub (SPEC 4.4)::

    async with open_subscriber(ctx, "ws", remote, stream) as subscriber:
        sub = await subscriber.subscribe("builder", make_filter(["builder"]), since=None, tail=10)
        await follow(ctx.hub, sub, sink, progress=subscriber.progress)

`follow` reads what is after the cursor (memory history, else journal,
else an explicit gap), hands it to the sink, which awaits the socket, and
waits on the hub when caught up. The hub never waits for anyone: a slow
peer only falls behind, and its memory is its cursor. A peer that reads
nothing for ``--client-timeout`` makes the socket's send raise `Stalled`
(`agentwatch.server.netstream`); `open_subscriber` then publishes the
``slow-subscriber`` alert as the connection goes away.

`split_frames` cuts what one read returned into frames of at most
``max_events`` events and ``max_bytes`` bytes, without touching the JSON.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Protocol

import trio

from agentwatch.events import SYSTEM_ALERT, EventBatch
from agentwatch.hub import READ_MAX_BYTES, READ_MAX_EVENTS, Client, Filter, Hub
from agentwatch.server.context import ServerContext
from agentwatch.server.netstream import ConnStream

ALL_PROCESSES = "*"


class Sink(Protocol):
    """Where `follow` delivers: a transport's framing of events and gaps."""

    async def send_events(self, batches: list[EventBatch]) -> None:
        """Send consecutive events (already encoded) in order."""

    async def send_gap(self, from_seq: int, to_seq: int) -> None:
        """Say that events ``from_seq..to_seq`` are gone."""


@dataclass(slots=True)
class Subscription:
    """One cursor over the hub: ``key`` is the processId or ``"*"``."""

    key: str
    flt: Filter
    cursor: int
    active: bool = True
    _wait_scope: trio.CancelScope | None = None

    def stop(self) -> None:
        """End `follow` at its next safe point (never in the middle of a send).

        Cancelling a task while it writes would cut a frame in half on a
        connection that stays open; stopping is cooperative instead.
        """
        self.active = False
        if self._wait_scope is not None:
            self._wait_scope.cancel()


def make_filter(
    process_ids: Iterable[str] | None = None,
    types: Iterable[str] | None = None,
    stream: str | None = None,
) -> Filter:
    """A hub filter; ``None`` or ``"*"`` among the process ids means every process."""
    pids = None if process_ids is None else frozenset(process_ids)
    if pids is not None and (not pids or ALL_PROCESSES in pids):
        pids = None
    kinds = None if types is None else frozenset(types) or None
    return Filter(pids, kinds, stream)


async def start_cursor(hub: Hub, flt: Filter, since: int | None, tail: int | None) -> int:
    """Where a new subscription starts: after ``since``, the last ``tail``, or live.

    With both, the last ``tail`` events after ``since``; with neither, only
    events published from now on. A ``tail`` may scan the journal (in a
    worker thread, see `Hub.tail_cursor`).
    """
    if tail is None:
        return hub.last_seq if since is None else since
    cursor = await hub.tail_cursor(flt, tail)
    return cursor if since is None else max(since, cursor)


async def follow(
    hub: Hub,
    sub: Subscription,
    sink: Sink,
    *,
    progress: Callable[[int], None] | None = None,
    idle_interval: float | None = None,
    on_idle: Callable[[], Awaitable[None]] | None = None,
    max_events: int = READ_MAX_EVENTS,
    max_bytes: int = READ_MAX_BYTES,
) -> None:
    """Deliver every event after ``sub.cursor`` that passes ``sub.flt``, in order.

    Returns once the hub is finished and everything was delivered, or once
    ``sub.stop()`` was called. Calls ``progress(sent)`` after each read, and
    ``on_idle()`` after ``idle_interval`` seconds without events (SSE
    keep-alive comments). Whatever the sink raises (a closed or stalled
    socket) propagates.
    """
    while sub.active:
        read = hub.read(sub.cursor, sub.flt, max_events, max_bytes)
        if read.gap is not None:
            await sink.send_gap(*read.gap)
        if read.batches:
            await sink.send_events(read.batches)
        moved = read.cursor != sub.cursor
        sub.cursor = read.cursor
        if progress is not None:
            progress(read.count)
        if moved:
            if not read.batches and read.gap is None:
                await trio.lowlevel.checkpoint()  # a long run of filtered-out events
            continue
        if hub.finished:
            return
        with trio.CancelScope() as scope:
            sub._wait_scope = scope
            if idle_interval is not None:
                scope.deadline = trio.current_time() + idle_interval
            await hub.wait_beyond(sub.cursor)
        sub._wait_scope = None
        if scope.cancelled_caught and sub.active and on_idle is not None:
            await on_idle()


class Subscriber:
    """A registered client (``/api/clients``) and its subscriptions."""

    def __init__(self, ctx: ServerContext, client: Client) -> None:
        self.ctx = ctx
        self.client = client
        self.subscriptions: dict[str, Subscription] = {}

    async def subscribe(
        self, key: str, flt: Filter, *, since: int | None = None, tail: int | None = None
    ) -> Subscription:
        """Add (or replace) the subscription ``key``, starting at its cursor."""
        cursor = await start_cursor(self.ctx.hub, flt, since, tail)
        self.unsubscribe(key)
        sub = Subscription(key, flt, cursor)
        self.subscriptions[key] = sub
        self._update()
        return sub

    def unsubscribe(self, key: str) -> None:
        """Stop and forget the subscription ``key`` (if any)."""
        sub = self.subscriptions.pop(key, None)
        if sub is not None:
            sub.stop()
            self._update()

    def _update(self) -> None:
        """Listed in ``/api/clients`` while subscribed to something.

        A connection without a subscription is no subscriber: it has nothing
        queued, and ``--linger`` must not wait for it.
        """
        self.client.subscriptions = list(self.subscriptions)
        hub = self.ctx.hub
        if not self.subscriptions:
            hub.unregister(self.client)
            return
        if self.client.client_id not in hub.clients:
            hub.register(self.client)
        self.progress(0)

    @property
    def cursor(self) -> int:
        """The oldest cursor of the subscriptions (the hub's newest when none)."""
        subs = self.subscriptions.values()
        return min((s.cursor for s in subs), default=self.ctx.hub.last_seq)

    def progress(self, sent: int) -> None:
        """Record events sent and the cursor for ``/api/clients`` and metrics."""
        self.ctx.hub.note_progress(self.client, self.cursor, sent)

    def report_stalled(self) -> None:
        """Publish the ``slow-subscriber`` alert of SPEC 4.4."""
        c = self.client
        timeout = self.ctx.config.client_timeout
        self.ctx.hub.publish(
            SYSTEM_ALERT,
            None,
            {
                "level": "warning",
                "code": "slow-subscriber",
                "message": (
                    f"disconnected subscriber {c.client_id} ({c.transport} from "
                    f"{c.remote}): it read nothing for {timeout:g} s with "
                    f"{max(self.ctx.hub.last_seq - self.cursor, 0)} events pending"
                ),
            },
        )


@asynccontextmanager
async def open_subscriber(
    ctx: ServerContext,
    transport: str,
    remote: str,
    stream: ConnStream | None = None,
    user_id: str | None = None,
) -> AsyncIterator[Subscriber]:
    """A client, registered (``/api/clients``) while it has a subscription.

    On exit it is unregistered; if ``stream`` stalled (the peer read nothing
    for ``--client-timeout``), the ``slow-subscriber`` alert is published.
    """
    client = Client(ctx.new_client_id(transport), transport, remote, user_id=user_id)
    client.cursor = ctx.hub.last_seq
    subscriber = Subscriber(ctx, client)
    try:
        yield subscriber
    finally:
        ctx.hub.unregister(client)
        if stream is not None and stream.stalled and subscriber.subscriptions:
            subscriber.report_stalled()


def _fit(batch: EventBatch, max_events: int, max_bytes: int) -> tuple[int, int]:
    """How many leading events of ``batch`` fit, and their byte length."""
    data = batch.data
    k = min(max_events, batch.count)
    if k <= 0:
        return 0, 0
    end = len(data) - len(data.split(b"\n", k)[-1])  # one C-level split, not k finds
    if end <= max_bytes:
        return k, end
    n = end = 0
    while n < k:
        nxt = data.index(b"\n", end) + 1
        if nxt > max_bytes:
            break
        n, end = n + 1, nxt
    return n, end


def split_frames(
    batches: list[EventBatch], max_events: int, max_bytes: int
) -> list[list[EventBatch]]:
    """Group batches into frames of at most ``max_events`` and ``max_bytes``.

    Batches are cut between events where needed; an event larger than
    ``max_bytes`` travels alone in its frame.
    """
    frames: list[list[EventBatch]] = []
    cur: list[EventBatch] = []
    n = size = 0
    for batch in batches:
        b = batch
        while b.count:
            if n + b.count <= max_events and size + b.nbytes <= max_bytes:
                cur.append(b)
                n, size = n + b.count, size + b.nbytes
                break
            k, cut = _fit(b, max_events - n, max_bytes - size)
            if k == 0 and not cur:
                k, cut = 1, b.data.index(b"\n") + 1
            if k:
                cur.append(EventBatch(b.first_seq, k, b.type, b.process_id, b.stream, b.data[:cut]))
                b = EventBatch(
                    b.first_seq + k, b.count - k, b.type, b.process_id, b.stream, b.data[cut:]
                )
            frames.append(cur)
            cur, n, size = [], 0, 0
    if cur:
        frames.append(cur)
    return frames
