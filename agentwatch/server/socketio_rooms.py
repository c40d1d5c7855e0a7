"""The Socket.IO namespace ``/`` of agentwatch: members, rooms and client events.

A client that joined ``/`` (CONNECT with a good token) is a `Member`: one
hub client (listed by ``/api/clients`` with its ``userId``), one cursor and
the rooms it subscribed to. Its `RoomFilter` lets through:

- ``task-*`` and ``system-alert``: every client gets them;
- run-wide events (``processId`` null, e.g. an ``x-*`` event without a process);
- the events of a process only to the room ``process-<id>``: the clients that
  sent ``subscribe-process`` with that id (``"*"``: every process). A process
  that has not started yet may be subscribed to.

A room applies from the member's cursor, which is the hub's newest event
unless the client is behind. Nothing here waits: the session
(`agentwatch.server.socketio_session`) calls in as packets arrive.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import trio

from agentwatch.config import NAME_RE
from agentwatch.events import SYSTEM_ALERT
from agentwatch.hub import Client, Filter
from agentwatch.server.auth import token_matches
from agentwatch.server.context import ServerContext
from agentwatch.server.follow import ALL_PROCESSES, Subscriber, Subscription

TRANSPORT_NAME = "socketio"  # Client.transport in /api/clients and /metrics, whatever the transport
MAX_ROOMS = 1_000  # rooms one client may join: its filter stays small
SUBSCRIBE = "subscribe-process"
UNSUBSCRIBE = "unsubscribe-process"
_BAD_PROCESS_ID = 'the argument must be a processId (a process name) or "*"'


@dataclass(frozen=True, slots=True)
class RoomFilter(Filter):
    """What one Socket.IO client receives; ``process_ids`` are its rooms (module docstring)."""

    def matches(self, type_: str, process_id: str | None, stream: str | None) -> bool:
        """Broadcasts and run-wide events always; process events by room."""
        if process_id is None or type_ == SYSTEM_ALERT or type_.startswith("task-"):
            return True
        rooms = self.process_ids
        return rooms is not None and (process_id in rooms or ALL_PROCESSES in rooms)


@dataclass(slots=True)
class Member:
    """A client joined to ``/``: its hub registration, its one cursor, its rooms.

    ``sid`` is the Socket.IO id given in the CONNECT answer; ``scope`` ends
    the member's delivery when it leaves.
    """

    subscriber: Subscriber
    sub: Subscription
    sid: str
    rooms: set[str] = field(default_factory=set)
    scope: trio.CancelScope = field(default_factory=trio.CancelScope)

    @property
    def client(self) -> Client:
        """The hub client listed by ``/api/clients``."""
        return self.subscriber.client


def authorized(ctx: ServerContext, auth: dict[str, Any], http_authenticated: bool) -> bool:
    """Whether a CONNECT may join: its auth ``token``, or the HTTP request's token."""
    token = auth.get("token")
    return http_authenticated or token_matches(
        ctx.config.token, token if isinstance(token, str) else None
    )


def join(ctx: ServerContext, remote: str, auth: dict[str, Any], sid: str) -> Member:
    """Register a member (``userId`` from ``auth``) whose cursor starts at the newest event."""
    user = auth.get("userId")
    user_id = str(user) if isinstance(user, str | int) and not isinstance(user, bool) else None
    hub = ctx.hub
    client = Client(ctx.new_client_id(TRANSPORT_NAME), TRANSPORT_NAME, remote, user_id=user_id)
    client.cursor = hub.last_seq
    subscriber = Subscriber(ctx, client)
    sub = Subscription("/", RoomFilter(frozenset()), hub.last_seq)
    subscriber.subscriptions["/"] = sub  # one cursor; client.subscriptions lists the rooms
    hub.register(client)
    return Member(subscriber, sub, sid)


def leave(ctx: ServerContext, member: Member) -> None:
    """Unregister a member and end its delivery."""
    member.scope.cancel()
    ctx.hub.unregister(member.client)


def on_event(ctx: ServerContext, member: Member, name: Any, args: list[Any]) -> dict[str, Any]:
    """Handle a client event; the payload of its ack: ``{ok, lastSeq}`` (plus ``error``).

    ``subscribe-process`` / ``unsubscribe-process`` take a processId, or
    ``{"processId": id}``; other events are refused.
    """
    last_seq = ctx.hub.last_seq
    if name not in (SUBSCRIBE, UNSUBSCRIBE):
        return {"ok": False, "error": f"unknown event {name!r}", "lastSeq": last_seq}
    pid = args[0] if args else None
    if isinstance(pid, dict):
        pid = pid.get("processId")
    if not isinstance(pid, str) or not (pid == ALL_PROCESSES or NAME_RE.fullmatch(pid)):
        return {"ok": False, "error": _BAD_PROCESS_ID, "lastSeq": last_seq}
    rooms = member.rooms
    if name == UNSUBSCRIBE:
        rooms.discard(pid)
    elif pid not in rooms:
        if len(rooms) >= MAX_ROOMS:
            message = f"too many subscriptions (at most {MAX_ROOMS})"
            return {"ok": False, "error": message, "lastSeq": last_seq}
        rooms.add(pid)
    member.sub.flt = RoomFilter(frozenset(rooms))
    member.client.subscriptions = sorted(rooms)
    return {"ok": True, "lastSeq": last_seq}
