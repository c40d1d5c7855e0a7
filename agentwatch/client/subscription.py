"""What a client follows, where it starts, and the one de-duplication by seq.

A `Subscription` is shared by every way of reading a run (the REST history,
the /ws and SSE transports, the hub of a local run, the journal of an ended
one): they all start where `start` says and keep an event only when
`accept` does, so a reconnect resumes without a gap or a repeat.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

ALL = "*"  # every process (a subscription key, too)


@dataclass
class Subscription:
    """What to follow: processes (``*`` for all), types, stream, where to start.

    With neither ``since`` nor ``tail`` it starts at the run's first event.
    ``cursors`` holds the last seq delivered per subscribed key; a reconnect
    resumes from there.
    """

    process_ids: tuple[str, ...] = (ALL,)
    types: tuple[str, ...] | None = None
    stream: str | None = None
    since: int | None = None
    tail: int | None = None
    cursors: dict[str, int] = field(default_factory=dict)

    def start(self, key: str | None) -> list[tuple[str, int]]:
        """Where reading for ``key`` starts: its cursor, else the last ``tail``, else ``since``."""
        if key is not None and key in self.cursors:
            return [("since", self.cursors[key])]
        if self.tail is not None:
            return [("tail", self.tail)] + ([] if self.since is None else [("since", self.since)])
        return [("since", self.since or 0)]

    def named(self) -> list[str]:
        """The processes named, each once; none for ``*`` (every process)."""
        return [] if ALL in self.process_ids else list(dict.fromkeys(self.process_ids))

    def keys(self) -> list[str]:
        """One key per subscribed process, or only ``*`` (it has every process)."""
        return self.named() or [ALL]

    def filter_params(self) -> list[tuple[str, str]]:
        """The query parameters of the process, type and stream filters."""
        params = [("processId", pid) for pid in self.named()]
        params += [("type", t) for t in self.types or ()]
        return params + ([("stream", self.stream)] if self.stream else [])

    def message(self, pid: str) -> dict[str, Any]:
        """The /ws subscribe operation for one processId, resuming if possible."""
        msg: dict[str, Any] = {"op": "subscribe", "processId": pid, **dict(self.start(pid))}
        if self.types:
            msg["types"] = list(self.types)
        return msg

    def matches(self, event: dict[str, Any]) -> bool:
        """Whether an event passes the process and type filters (as the server applies them)."""
        if ALL not in self.process_ids and event.get("processId") not in self.process_ids:
            return False
        return not self.types or event.get("type") in self.types

    def accept(self, key: str, event: dict[str, Any]) -> bool:
        """Record an event's seq; False for a duplicate or a filtered-out stream."""
        seq = event.get("seq")
        if not isinstance(seq, int) and event.get("type") == "gap":
            seq = event.get("toSeq")
        if isinstance(seq, int):
            if seq <= self.cursors.get(key, -1):
                return False
            self.cursors[key] = seq
        return self.in_stream(event)

    def in_stream(self, event: dict[str, Any]) -> bool:
        """Whether an event passes the stream filter (it applies to output only)."""
        return not (
            self.stream
            and event.get("type") == "process-output"
            and event.get("stream") != self.stream
        )

    def select(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """What this subscription takes from a finished list of events (an ended run's)."""
        kept = [
            e
            for e in events
            if self.matches(e)
            and (self.since is None or int(e.get("seq") or 0) > self.since)
            and self.in_stream(e)
        ]
        if self.tail is not None:
            kept = kept[len(kept) - self.tail :] if self.tail else []
        return kept


def key_for(event: dict[str, Any], keys: list[str]) -> str:
    """The subscription key an event belongs to: its process, else ``*``."""
    if len(keys) == 1:
        return keys[0]
    pid = event.get("processId")
    if isinstance(pid, str) and pid in keys:
        return pid
    return ALL if ALL in keys else keys[0]
