"""The native WebSocket protocol on ``/ws`` (SPEC 4.1).

One connection holds any number of subscriptions, one per processId (or
``"*"``); each is a cursor followed by its own task (`follow`). Every write
goes through the socket's one lock, so frames never interleave, and a
subscription is stopped only between writes. Events are sent as encoded:
one event per text frame, or with ``?batch=1`` JSON arrays of up to
``frame_max_events`` events and ``frame_max_bytes`` bytes. Control
messages (``subscribed``, ``unsubscribed``, ``published``, ``pong``,
``error``, ``gap``) are JSON objects.
"""

from __future__ import annotations

import trio
from trio_websocket import ConnectionClosed

from agentwatch.errors import ProtocolError
from agentwatch.events import EventBatch, gap_message, json_array
from agentwatch.proto.wsops import (
    ClientMessage,
    Ping,
    Publish,
    Subscribe,
    error_reply,
    parse_client_message,
    reply,
)
from agentwatch.server.context import ServerContext
from agentwatch.server.follow import (
    ALL_PROCESSES,
    Subscriber,
    Subscription,
    follow,
    make_filter,
    open_subscriber,
    split_frames,
)
from agentwatch.server.http import HTTPConnection, Request
from agentwatch.server.limits import Limits
from agentwatch.server.upgrade import ServerWebSocket, accept_websocket

RUN_FINISHED = "run finished"  # close reason once every subscription has everything
CLOSE_FINISHED = 1000  # the run is over and every subscription has everything: do not retry
CLOSE_GOING_AWAY = 1001  # the server stops before that: a client reconnects or reads the journal
GOING_AWAY = "server shutting down"


class WSSink:
    """Frames events for one /ws connection (one per frame, or arrays)."""

    def __init__(self, ws: ServerWebSocket, batch: bool, limits: Limits) -> None:
        self.ws = ws
        self.batch = batch
        self.limits = limits

    async def send_events(self, batches: list[EventBatch]) -> None:
        """One frame per event, or arrays of events with ``batch=1``."""
        if self.batch:
            frames = split_frames(
                batches, self.limits.frame_max_events, self.limits.frame_max_bytes
            )
            await self.ws.send_frames([json_array(f) for f in frames])
        else:
            await self.ws.send_frames([line for b in batches for line in b.lines()])

    async def send_gap(self, from_seq: int, to_seq: int) -> None:
        """``{"type":"gap","fromSeq":a,"toSeq":b}``."""
        await self.ws.send_frames([gap_message(from_seq, to_seq)])


class WSSession:
    """The client messages of one connection and its subscriptions."""

    def __init__(
        self, ctx: ServerContext, ws: ServerWebSocket, subscriber: Subscriber, sink: WSSink
    ) -> None:
        self.ctx = ctx
        self.ws = ws
        self.subscriber = subscriber
        self.sink = sink
        self.following = 0

    async def receive_loop(self, nursery: trio.Nursery) -> None:
        """Answer client messages until the connection closes."""
        while True:
            try:
                text = await self.ws.get_message()
            except ConnectionClosed:
                return
            try:
                message = parse_client_message(text)
            except ProtocolError as exc:
                await self.ws.send_frames([error_reply(exc)])
                continue
            await self.dispatch(message, nursery)

    async def dispatch(self, message: ClientMessage, nursery: trio.Nursery) -> None:
        """Carry out one parsed client message and reply."""
        hub = self.ctx.hub
        if isinstance(message, Ping):
            await self.ws.send_frames([b'{"type":"pong"}'])
        elif isinstance(message, Publish):
            event = dict(message.event)
            kind, pid = event.pop("type"), event.pop("processId")
            seq = hub.publish(kind, pid, event)
            await self.ws.send_frames([reply({"type": "published", "seq": seq})])
        elif isinstance(message, Subscribe):
            key = message.process_id
            flt = make_filter(None if key == ALL_PROCESSES else [key], message.types)
            sub = await self.subscriber.subscribe(key, flt, since=message.since, tail=message.tail)
            subscribed = {"type": "subscribed", "processId": key, "lastSeq": hub.last_seq}
            subscribed["runEnded"] = hub.closed  # every agent ended: the history is all there is
            await self.ws.send_frames([reply(subscribed)])
            nursery.start_soon(self.run_subscription, sub)
        else:
            self.subscriber.unsubscribe(message.process_id)
            await self.ws.send_frames(
                [reply({"type": "unsubscribed", "processId": message.process_id})]
            )

    async def run_subscription(self, sub: Subscription) -> None:
        """Follow one subscription; close the connection when the run is over."""
        lost = False
        self.following += 1
        try:
            await follow(self.ctx.hub, sub, self.sink, progress=self.subscriber.progress)
        except ConnectionClosed:  # gone, or stalled
            lost = True
        finally:
            self.following -= 1
        if lost:
            await self.ws.aclose()  # ends the receive loop, hence the connection
        elif self.ctx.hub.finished and sub.active and self.following == 0:
            await self.ws.aclose(CLOSE_FINISHED, RUN_FINISHED)

    def final_close(self) -> tuple[int, str]:
        """The close code when the connection ends under us (the server stops).

        1000 says "the run is over, you have everything", so a client ends
        instead of reconnecting: only true when the hub is finished and every
        subscription was sent its last event. A connection that has not
        subscribed yet, or is behind, is told 1001 (going away).
        """
        hub = self.ctx.hub
        subs = self.subscriber.subscriptions.values()
        if hub.finished and subs and all(s.cursor >= hub.last_seq for s in subs):
            return CLOSE_FINISHED, RUN_FINISHED
        return CLOSE_GOING_AWAY, GOING_AWAY


async def handle_ws(ctx: ServerContext, conn: HTTPConnection, request: Request) -> None:
    """Serve one ``/ws`` connection (already authorized) until it closes."""
    batch = request.param("batch") in ("1", "true")
    async with (
        accept_websocket(conn, request, ctx.limits) as ws,
        open_subscriber(ctx, "ws", request.remote, ws.stream) as subscriber,
    ):
        session = WSSession(ctx, ws, subscriber, WSSink(ws, batch, ctx.limits))
        async with trio.open_nursery() as nursery:
            try:
                await session.receive_loop(nursery)
            except ConnectionClosed:
                pass
            finally:  # cancelled (the server stops): say whether the client has everything
                if ws.closed is None:
                    with trio.CancelScope(shield=True):
                        await ws.aclose(*session.final_close())
            nursery.cancel_scope.cancel()
