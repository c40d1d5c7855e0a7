"""The event vocabulary and its JSON encoding (SPEC 1); no I/O.

Every event is encoded to JSON bytes exactly once, here: the journal line
is the wire form, and transports only frame those bytes. Events travel in
`EventBatch` objects: consecutive events of one type, process and stream
(a chunk of output lines, or a single event), stored as JSON Lines.

Encoded objects always start with ``{"seq":N,`` so a reader can find an
event's sequence number without parsing the whole line.
"""

from __future__ import annotations

import base64
import datetime as _dt
from dataclasses import dataclass, field
from typing import Any, Final

import msgspec

from agentwatch.proto.lines import Piece, Segment

PROCESS_STARTED: Final = "process-started"
PROCESS_OUTPUT: Final = "process-output"
PROCESS_STOPPED: Final = "process-stopped"
PROCESS_ERROR: Final = "process-error"
PROCESS_WAITING: Final = "process-waiting"
PROCESS_RESUMED: Final = "process-resumed"
PROCESS_STATS: Final = "process-stats"
TASK_ASSIGNED: Final = "task-assigned"
TASK_COMPLETED: Final = "task-completed"
SYSTEM_ALERT: Final = "system-alert"

# SPEC 1's types in its order (for --type checks, completion and help)
EVENT_TYPES: Final = (
    PROCESS_STARTED,
    PROCESS_OUTPUT,
    PROCESS_STOPPED,
    PROCESS_ERROR,
    PROCESS_WAITING,
    PROCESS_RESUMED,
    PROCESS_STATS,
    TASK_ASSIGNED,
    TASK_COMPLETED,
    SYSTEM_ALERT,
)
PROCESS_TYPES: Final = frozenset(t for t in EVENT_TYPES if t.startswith("process-"))
BROADCAST_TYPES: Final = frozenset({TASK_ASSIGNED, TASK_COMPLETED, SYSTEM_ALERT})

_encode: Final = msgspec.json.Encoder().encode
_decode_any: Final = msgspec.json.Decoder().decode


def format_timestamp(t: float) -> str:
    """RFC 3339 UTC with microseconds, e.g. ``2026-11-25T16:40:00.123456Z``."""
    return _dt.datetime.fromtimestamp(t, _dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def encode_event(
    seq: int, type_: str, timestamp: str, process_id: str | None, fields: dict[str, Any]
) -> bytes:
    """Encode one event as a JSON line (with its trailing ``\\n``)."""
    obj: dict[str, Any] = {"seq": seq, "type": type_, "timestamp": timestamp}
    obj["processId"] = process_id
    for k, v in fields.items():
        if k not in obj:
            obj[k] = v
    return _encode(obj) + b"\n"


def encode_output(
    buf: bytearray,
    first_seq: int,
    timestamp: str,
    process_id: str,
    stream: str,
    segments: list[Segment],
) -> int:
    """Append `process-output` events for ``segments`` to ``buf``; return the count.

    The fast path encodes a whole block of lines as one JSON string and
    splits the result, which is exact when the text has no backslash (the
    only escape that contains ``\\n`` is then the line break itself).
    """
    head = (
        b',"type":"process-output","timestamp":"'
        + timestamp.encode()
        + b'","processId":'
        + _encode(process_id)
        + b',"stream":"'
        + stream.encode()
        + b'","output":'
    )
    fast = b'{"seq":%d' + head.replace(b"%", b"%%") + b'"%s"}\n'
    seq = first_seq
    for seg in segments:
        if isinstance(seg, str):
            if "\\" not in seg:
                parts = _encode(seg)[1:-1].split(b"\\n")
                seqs = range(seq, seq + len(parts))
                buf += b"".join(map(fast.__mod__, zip(seqs, parts, strict=True)))
                seq += len(parts)
            else:
                for line in seg.split("\n"):
                    buf += b'{"seq":%d' % seq
                    buf += head
                    buf += _encode(line)
                    buf += b"}\n"
                    seq += 1
        else:
            buf += b'{"seq":%d' % seq
            buf += head
            buf += _encode(seg.output)
            if seg.continued:
                buf += b',"continued":true'
            if seg.raw is not None:
                buf += b',"outputBase64":"' + base64.b64encode(seg.raw) + b'"'
            buf += b"}\n"
            seq += 1
    return seq - first_seq


def seq_of_line(line: bytes) -> int:
    """The ``seq`` of an encoded event line (which starts with ``{"seq":``)."""
    end = line.index(b",", 7)
    return int(line[7:end])


class EventMeta(msgspec.Struct):
    """The routing fields of an event, decoded cheaply from its JSON."""

    seq: int
    type: str
    processId: str | None = None
    stream: str | None = None


_decode_meta: Final = msgspec.json.Decoder(EventMeta).decode


def decode_meta(line: bytes) -> EventMeta:
    """Decode only the routing fields of one encoded event."""
    return _decode_meta(line)


def decode_event(line: bytes) -> dict[str, Any]:
    """Decode one encoded event to a dict."""
    obj = _decode_any(line)
    if not isinstance(obj, dict):
        raise ValueError("event is not a JSON object")
    return obj


@dataclass(slots=True)
class EventBatch:
    """Consecutive events sharing type, process and stream, as JSON Lines."""

    first_seq: int
    count: int
    type: str
    process_id: str | None
    stream: str | None
    data: bytes
    _items: bytes | None = field(default=None, repr=False, compare=False)

    @property
    def last_seq(self) -> int:
        """Sequence number of the last event in the batch."""
        return self.first_seq + self.count - 1

    @property
    def nbytes(self) -> int:
        """Size of the encoded events."""
        return len(self.data)

    def lines(self) -> list[bytes]:
        """The encoded events, one per item, without line breaks."""
        return self.data.split(b"\n")[: self.count]

    def since(self, seq: int) -> EventBatch:
        """The part of this batch with sequence numbers above ``seq``."""
        if seq < self.first_seq:
            return self
        skip = seq - self.first_seq + 1
        if skip >= self.count:
            return EventBatch(self.last_seq + 1, 0, self.type, self.process_id, self.stream, b"")
        parts = self.data.split(b"\n", skip)
        return EventBatch(
            seq + 1, self.count - skip, self.type, self.process_id, self.stream, parts[-1]
        )

    def head(self, n: int) -> EventBatch:
        """The first ``n`` events of this batch."""
        if n >= self.count:
            return self
        cut = 0
        for _ in range(n):
            cut = self.data.index(b"\n", cut) + 1
        return EventBatch(
            self.first_seq, n, self.type, self.process_id, self.stream, self.data[:cut]
        )

    def array_items(self) -> bytes:
        """The events joined by commas (the inside of a JSON array), computed once.

        History batches are shared by every subscriber, so each subscriber's
        batched frame reuses this instead of rewriting the bytes again.
        """
        items = self._items
        if items is None:
            items = self._items = self.data[:-1].replace(b"\n", b",")
        return items

    def json_array(self) -> bytes:
        """The events as one JSON array (for batched WebSocket frames)."""
        return b"[" + self.array_items() + b"]"


def json_array(batches: list[EventBatch]) -> bytes:
    """Several batches as one JSON array."""
    return b"[" + b",".join([b.array_items() for b in batches if b.count]) + b"]"


def gap_message(from_seq: int, to_seq: int) -> bytes:
    """The explicit loss marker of SPEC 4.1."""
    return b'{"type":"gap","fromSeq":%d,"toSeq":%d}' % (from_seq, to_seq)


def single(
    seq: int, type_: str, process_id: str | None, line: bytes, stream: str | None = None
) -> EventBatch:
    """A batch of one already-encoded event line (ending in ``\\n``)."""
    return EventBatch(seq, 1, type_, process_id, stream, line)


__all__ = [
    "BROADCAST_TYPES",
    "EVENT_TYPES",
    "PROCESS_TYPES",
    "EventBatch",
    "EventMeta",
    "Piece",
    "decode_event",
    "decode_meta",
    "encode_event",
    "encode_output",
    "format_timestamp",
    "gap_message",
    "json_array",
    "seq_of_line",
    "single",
]
