"""The channel a follow hands out: one task pushes into it, the caller reads.

`follow` (over the network) and `follow_session` (from the hub) both run
one task that produces events into a bounded memory channel and hand out
its receiving end. No async generator yields across a nursery: the
producer lives in that task, the caller only reads the channel.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import trio

QUEUE_EVENTS = 1024  # events held for a slow consumer (then the producer waits)
QUEUE_BATCHES = 16  # the same for batches (`follow_batches`), in received frames

Put = Callable[[list[dict[str, Any]]], Awaitable[None]]
Producer = Callable[[Put], Awaitable[None]]


class ConsumerGone(Exception):
    """The receiving end of a follow channel was closed: stop quietly."""


@asynccontextmanager
async def open_channel(produce: Producer, *, flatten: bool) -> AsyncIterator[Any]:
    """Run ``produce(put)`` in a task; yield the channel ``put`` fills.

    ``flatten``: the channel carries events one by one, else the batches as
    ``put`` got them. The producer's end closes when it returns; leaving the
    block cancels it. What the block raises comes out as itself, not in a group.
    """
    send, recv = trio.open_memory_channel[Any](QUEUE_EVENTS if flatten else QUEUE_BATCHES)

    async def put(batch: list[dict[str, Any]]) -> None:
        try:
            if flatten:
                for event in batch:
                    await send.send(event)
            else:
                await send.send(batch)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            raise ConsumerGone from None

    async def run() -> None:
        with send, contextlib.suppress(ConsumerGone):
            await produce(put)

    try:
        async with trio.open_nursery() as nursery:
            nursery.start_soon(run)
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
