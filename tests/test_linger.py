"""The linger of SPEC 6 (`agentwatch.linger`) over a real hub and fake subscribers.

No child is involved, so trio's MockClock (autojump) runs every wait in
virtual time: the ends asserted are exact, which a poll could not give.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import trio
import trio.testing

from agentwatch.hub import Client, Hub
from agentwatch.linger import CLOSE_GRACE_S, DEFAULT_LINGER_MAX_S, linger


def closed_hub(events: int = 3) -> tuple[Hub, Client]:
    """A hub with ``events`` visible and closed, and one subscriber at seq 0."""
    hub = Hub(None)
    for i in range(events):
        hub.publish("system-alert", None, {"level": "info", "message": str(i)})
    hub.close()
    client = Client("ws-1", "ws", "127.0.0.1:5")
    hub.register(client)
    return hub, client


async def linger_time(hub: Hub, seconds: float | None, scope: trio.CancelScope) -> float:
    start = trio.current_time()
    await linger(hub, seconds, scope)
    return trio.current_time() - start


async def test_ends_as_soon_as_the_last_subscriber_has_everything_and_leaves(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub, client = closed_hub()
    took: list[float] = []

    async def subscriber() -> None:
        await trio.sleep(0.3)
        hub.note_progress(client, 1, 1)  # not everything yet
        await trio.sleep(0.2)
        hub.note_progress(client, hub.last_seq, 2)  # everything
        await trio.sleep(0.113)
        hub.unregister(client)  # and it closes by itself

    async with trio.open_nursery() as nursery:
        nursery.start_soon(subscriber)
        took.append(await linger_time(hub, None, trio.CancelScope()))
    assert took == [pytest.approx(0.613, abs=1e-9)]


async def test_caught_up_subscribers_get_a_grace_to_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub, client = closed_hub()
    hub.note_progress(client, hub.last_seq, hub.last_seq)  # has everything, stays connected
    assert await linger_time(hub, None, trio.CancelScope()) == pytest.approx(CLOSE_GRACE_S)


async def test_no_subscriber_no_linger(autojump_clock: trio.testing.MockClock) -> None:
    hub, client = closed_hub()
    hub.unregister(client)
    assert await linger_time(hub, None, trio.CancelScope()) == 0


async def test_a_subscriber_that_never_catches_up_is_waited_for_at_most_the_default(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub, _ = closed_hub()
    took = await linger_time(hub, None, trio.CancelScope())
    assert took == pytest.approx(DEFAULT_LINGER_MAX_S)


async def test_an_explicit_linger_waits_its_seconds_whatever_the_subscribers(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub, client = closed_hub()
    hub.unregister(client)
    assert await linger_time(hub, 7.5, trio.CancelScope()) == pytest.approx(7.5)


async def test_an_interrupt_ends_an_explicit_linger_at_once(
    autojump_clock: trio.testing.MockClock,
) -> None:
    hub, _ = closed_hub()
    interrupt = trio.CancelScope()
    took: list[float] = []

    async def ctrl_c() -> None:
        await trio.sleep(1.5)
        interrupt.cancel()

    async with trio.open_nursery() as nursery:
        nursery.start_soon(ctrl_c)
        took.append(await linger_time(hub, 60, interrupt))
    assert took == [pytest.approx(1.5)]


async def test_wait_clients_changed_wakes_on_register_progress_and_unregister() -> None:
    hub = Hub(None)
    client = Client("sse-1", "sse", "127.0.0.1:6")
    changes: tuple[Callable[[], object], ...] = (
        lambda: hub.register(client),
        lambda: hub.note_progress(client, 0, 0),
        lambda: hub.unregister(client),
    )
    for change in changes:
        woke = trio.Event()

        async def waiter(woke: trio.Event = woke) -> None:
            await hub.wait_clients_changed()
            woke.set()

        async with trio.open_nursery() as nursery:
            nursery.start_soon(waiter)
            await trio.testing.wait_all_tasks_blocked()
            assert not woke.is_set()
            change()
        assert woke.is_set()
