"""The linger of SPEC 6: after the agents end, the server stays up a little.

By default it stays until every connected subscriber was sent the last
event (at most `DEFAULT_LINGER_MAX_S`), then gives those subscribers
`CLOSE_GRACE_S` to close by themselves. ``--linger S`` stays ``S``
seconds instead, and a signal (Ctrl-C) ends that at once. Every wait is on
an event of the hub (a new event, a subscriber's cursor moving, one
leaving), never a poll.
"""

from __future__ import annotations

import trio

from agentwatch.hub import Hub

DEFAULT_LINGER_MAX_S = 2.0  # SPEC 6: wait for connected subscribers at most this long
CLOSE_GRACE_S = 0.5  # then at most this long for caught-up subscribers to close


async def linger(hub: Hub, seconds: float | None, interrupt: trio.CancelScope) -> None:
    """Linger after ``hub`` was closed: ``seconds`` (ended by ``interrupt``), or
    by default until the subscribers have everything."""
    with trio.move_on_after(DEFAULT_LINGER_MAX_S):  # the last events must be journaled,
        while not hub.finished:  # so visible to subscribers, before we look at cursors
            await hub.wait_beyond(hub.last_seq)
    if seconds is not None:
        with interrupt:  # a signal ends an explicit --linger
            await trio.sleep(seconds)
        return
    with trio.move_on_after(DEFAULT_LINGER_MAX_S):
        await wait_subscribers_have_everything(hub)
        # Subscribers that have everything close by themselves (a /ws close 1000, the end of
        # an SSE stream): cancelling the server at once could cut that close short.
        with trio.move_on_after(CLOSE_GRACE_S):
            await wait_no_subscribers(hub)


async def wait_subscribers_have_everything(hub: Hub) -> None:
    """Return once every connected subscriber's cursor is at the newest event."""
    while any(c.cursor < hub.last_seq for c in hub.clients.values()):
        await hub.wait_clients_changed()


async def wait_no_subscribers(hub: Hub) -> None:
    """Return once no subscriber is connected."""
    while hub.clients:
        await hub.wait_clients_changed()
