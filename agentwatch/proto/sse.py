"""Server-Sent Events framing, sans-IO (WHATWG HTML, "Server-sent events").

The server side encodes blocks with :func:`encode_event`, :func:`encode_retry`
and :func:`encode_comment`; the client side feeds whatever bytes arrive to an
:class:`SSEParser` and gets :class:`SSEMessage` objects back::

    parser = SSEParser()
    for chunk in chunks:
        for message in parser.feed(chunk):
            handle(message)

No I/O and no trio here: bytes in, messages out.
"""

from __future__ import annotations

import codecs
import re
from dataclasses import dataclass

from agentwatch.errors import ProtocolError

__all__ = [
    "DEFAULT_MAX_EVENT_CHARS",
    "SSEMessage",
    "SSEParser",
    "encode_comment",
    "encode_event",
    "encode_retry",
]

# A bound on one pending event (its unfinished line plus its data), in
# characters: far above the event of a 256 KiB output line with its base64
# copy, so only a broken or hostile server reaches it.
DEFAULT_MAX_EVENT_CHARS = 16 * 1024 * 1024

_EOL_BYTES = re.compile(rb"\r\n|\r|\n")
_EOL = re.compile(r"\r\n|\r|\n")


# ---------------------------------------------------------------------------
# Encoding (server side)


def _check_field(name: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise ValueError(f"SSE {name} must not contain a line break: {value!r}")


def encode_event(data: bytes, *, event: str | None = None, id: int | str | None = None) -> bytes:
    """Frame one event: ``id: 5\\nevent: log\\ndata: {...}\\n\\n``.

    ``data`` is already encoded (normally one JSON line); if it holds line
    breaks (``\\n``, ``\\r\\n`` or ``\\r``) it becomes several ``data:`` lines,
    which a client joins back with ``\\n``. ``event`` and ``id`` are omitted
    when None or empty; a line break in either (or NUL in ``id``) is a
    ValueError, since it would corrupt the stream.
    """
    head = b""
    if id is not None:
        id_text = str(id)
        _check_field("id", id_text)
        if "\0" in id_text:
            raise ValueError(f"SSE id must not contain NUL: {id_text!r}")
        if id_text:
            head = b"id: " + id_text.encode() + b"\n"
    if event:
        _check_field("event", event)
        head += b"event: " + event.encode() + b"\n"
    if b"\n" not in data and b"\r" not in data:
        return head + b"data: " + data + b"\n\n"
    lines = _EOL_BYTES.split(data)
    return head + b"".join(b"data: " + line + b"\n" for line in lines) + b"\n"


def encode_retry(ms: int) -> bytes:
    """Frame a reconnection delay in milliseconds: ``retry: 1000\\n\\n``."""
    if isinstance(ms, bool) or not isinstance(ms, int) or ms < 0:
        raise ValueError(f"SSE retry must be a non-negative int, not {ms!r}")
    return b"retry: %d\n\n" % ms


def encode_comment(text: str) -> bytes:
    """Frame a comment, e.g. ``: keepalive\\n\\n``; clients ignore it."""
    lines = _EOL.split(text)
    return "".join(f": {line}\n" for line in lines).encode() + b"\n"


# ---------------------------------------------------------------------------
# Parsing (client side)


@dataclass(frozen=True, slots=True, kw_only=True)
class SSEMessage:
    """One dispatched event, as a browser's EventSource would see it.

    ``id`` is the last event ID in effect when the event was dispatched (it
    persists across events until an ``id`` field changes it): None if the
    stream never set one, ``""`` if it was reset with an empty ``id``.
    ``retry`` is the reconnection delay in effect (ms), None if never set.
    """

    event: str = "message"
    data: str
    id: str | None = None
    retry: int | None = None


class SSEParser:
    """Incremental ``text/event-stream`` parser; feed it bytes cut anywhere.

    Follows the WHATWG algorithm: UTF-8 with replacement, one leading BOM
    dropped, lines ending in CRLF, LF or CR, comments and unknown fields
    ignored, an event dispatched only on a blank line and only if it has
    data. An unfinished event at end of stream is discarded, as the spec
    says, so there is nothing to flush.
    """

    def __init__(self, *, max_event_chars: int = DEFAULT_MAX_EVENT_CHARS) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8-sig")(errors="replace")
        self._max_event_chars = max_event_chars
        self._pending = ""  # the unfinished line
        self._skip_lf = False  # the last chunk ended with CR: a LF next is its pair
        self._data: list[str] = []
        self._data_chars = 0
        self._event_type = ""
        self._id_buffer: str | None = None
        self.last_event_id: str | None = None
        """The stream's last event ID (sent back as ``Last-Event-ID``)."""
        self.retry: int | None = None
        """The reconnection delay in ms the server asked for, if any."""

    def feed(self, data: bytes) -> list[SSEMessage]:
        """Take the next bytes of the stream; return the events they complete.

        Raises ProtocolError (code ``event-too-large``) if one event grows
        beyond ``max_event_chars``.
        """
        text = self._decoder.decode(data)
        if not text:
            return []
        if self._skip_lf:
            self._skip_lf = False
            if text[0] == "\n":
                text = text[1:]
        out: list[SSEMessage] = []
        pos = 0
        pending = self._pending
        for match in _EOL.finditer(text):
            line = text[pos : match.start()]
            if pending:
                line = pending + line
                pending = ""
            pos = match.end()
            self._line(line, out)
        self._pending = pending + text[pos:]
        self._skip_lf = text.endswith("\r")
        if len(self._pending) + self._data_chars > self._max_event_chars:
            raise ProtocolError(
                f"SSE event larger than {self._max_event_chars} characters",
                code="event-too-large",
            )
        return out

    def _line(self, line: str, out: list[SSEMessage]) -> None:
        if not line:
            self._dispatch(out)
            return
        if line[0] == ":":
            return
        field, colon, value = line.partition(":")
        if colon and value[:1] == " ":
            value = value[1:]
        if field == "data":
            self._data.append(value)
            self._data_chars += len(value) + 1
            if self._data_chars > self._max_event_chars:
                raise ProtocolError(
                    f"SSE event larger than {self._max_event_chars} characters",
                    code="event-too-large",
                )
        elif field == "event":
            self._event_type = value
        elif field == "id":
            if "\0" not in value:
                self._id_buffer = value
        elif field == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)

    def _dispatch(self, out: list[SSEMessage]) -> None:
        self.last_event_id = self._id_buffer
        if self._data:
            out.append(
                SSEMessage(
                    event=self._event_type or "message",
                    data="\n".join(self._data),
                    id=self.last_event_id,
                    retry=self.retry,
                )
            )
        self._data = []
        self._data_chars = 0
        self._event_type = ""
