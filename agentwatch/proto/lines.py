"""Pipe bytes to lines: the sans-IO line splitter (SPEC 1, "Lines").

`LineSplitter.feed` takes raw bytes as read from a pipe and returns
segments ready to become `process-output` events:

- a ``str`` is a block of one or more complete lines joined by ``\\n``, all
  valid UTF-8, none longer than the limit, line endings removed (the fast
  path: one decode and one split per chunk, never per-line work);
- a `Piece` is a single line or piece of one that needs special handling:
  ``continued`` (a long line cut at the limit, a partial line flushed after
  a pause) or ``raw`` (the exact bytes, when they are not valid UTF-8).

Rules: split on ``\\n``, drop one trailing ``\\r``; a piece cut for length
never splits a UTF-8 sequence nor a ``\\r\\n`` pair; `finish` emits a last
line without newline. Joining every piece back (``raw`` where present)
with ``\\n`` after each non-continued line restores the input, except that
``\\r\\n`` becomes ``\\n``.
"""

from __future__ import annotations

DEFAULT_MAX_LINE_BYTES = 256 * 1024  # SPEC default for --max-line-bytes


class Piece:
    """One line or piece of a line that is not part of a fast block."""

    __slots__ = ("continued", "output", "raw")

    def __init__(self, output: str, *, continued: bool = False, raw: bytes | None = None) -> None:
        self.output = output
        self.continued = continued
        self.raw = raw

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Piece):
            return NotImplemented
        return (self.output, self.continued, self.raw) == (other.output, other.continued, other.raw)

    def __repr__(self) -> str:
        return f"Piece({self.output!r}, continued={self.continued}, raw={self.raw!r})"


Segment = str | Piece


def count_events(segments: list[Segment]) -> int:
    """How many events these segments make."""
    return sum(s.count("\n") + 1 if isinstance(s, str) else 1 for s in segments)


def _piece(raw: bytes, *, continued: bool) -> Piece:
    try:
        return Piece(raw.decode("utf-8"), continued=continued)
    except UnicodeDecodeError:
        return Piece(raw.decode("utf-8", "replace"), continued=continued, raw=raw)


def _utf8_cut(data: bytes | bytearray, limit: int) -> int:
    """Largest cut <= limit that splits neither a UTF-8 sequence nor CR LF."""
    cut = limit
    # Back off over continuation bytes (10xxxxxx), at most 3, to a lead byte.
    back = 0
    while back < 3 and cut - back > 0 and (data[cut - back] & 0xC0) == 0x80:
        back += 1
    if back and (data[cut - back] & 0xC0) == 0xC0:
        cut -= back
    if cut > 1 and data[cut - 1] == 0x0D:
        cut -= 1
    return cut if cut > 0 else limit


class LineSplitter:
    """Incremental splitter of one output stream into line segments."""

    def __init__(self, max_line_bytes: int = DEFAULT_MAX_LINE_BYTES) -> None:
        if max_line_bytes < 4:
            raise ValueError("max_line_bytes must be at least 4")
        self.max_line_bytes = max_line_bytes
        self._pending = b""
        self._held = 0

    @property
    def pending(self) -> int:
        """Bytes held back waiting for a newline."""
        return len(self._pending)

    def feed(self, data: bytes) -> list[Segment]:
        """Split newly read bytes; complete lines come out, the rest waits."""
        held = len(self._pending)
        if held:
            data = self._pending + data
            self._pending = b""
        self._held = held
        out: list[Segment] = []
        end = data.rfind(b"\n")
        if end < 0:
            self._pending = data
            self._cut_long(out)
            return out
        self._pending = data[end + 1 :]
        self._block(data[:end], out)
        self._cut_long(out)
        return out

    def flush_partial(self) -> list[Segment]:
        """Emit pending bytes as a ``continued`` piece (after a pause)."""
        data = self._pending
        if not data:
            return []
        cut = len(data)
        if data[-1] == 0x0D:  # keep a lone CR: its LF may follow
            cut -= 1
        else:
            cut = _utf8_tail_cut(data)
        if cut <= 0:
            return []
        self._pending = data[cut:]
        return [_piece(data[:cut], continued=True)]

    def finish(self) -> list[Segment]:
        """Emit what is left at EOF as a last line (no newline needed)."""
        out: list[Segment] = []
        self._cut_long(out, final=True)
        data, self._pending = self._pending, b""
        if data:
            out.append(_piece(data, continued=False))
        return out

    def _cut_long(self, out: list[Segment], *, final: bool = False) -> None:
        limit = self.max_line_bytes
        # A trailing CR may be the first half of a CR LF line ending, which a
        # line does not count: cut only once the line is longer without it,
        # so that the pieces do not depend on where the reads were cut.
        while len(self._pending) - (not final and self._pending.endswith(b"\r")) > limit:
            cut = _utf8_cut(self._pending, limit)
            out.append(_piece(self._pending[:cut], continued=True))
            self._pending = self._pending[cut:]

    def _block(self, block: bytes, out: list[Segment]) -> None:
        """Turn complete lines (without the final LF) into segments."""
        limit = self.max_line_bytes
        if len(block) > limit and not self._short_lines(block):
            self._lines_slow(block.split(b"\n"), out)
            return
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError:
            self._lines_slow(block.split(b"\n"), out)
            return
        if "\r" in text:
            text = text.replace("\r\n", "\n")
            if text.endswith("\r"):
                text = text[:-1]
        out.append(text)

    def _short_lines(self, block: bytes) -> bool:
        """Whether no line of ``block`` exceeds the limit.

        Lines after the first lie inside the newly read bytes, so when that
        read is no longer than the limit only the first line (held bytes plus
        the head of the read) needs measuring: no per-line work.
        """
        limit = self.max_line_bytes
        first = block.find(b"\n")
        if (first if first >= 0 else len(block)) > limit:
            return False
        if len(block) - self._held <= limit:
            return True
        return max(map(len, block.split(b"\n"))) <= limit

    def _lines_slow(self, lines: list[bytes], out: list[Segment]) -> None:
        limit = self.max_line_bytes
        for line in lines:
            if line.endswith(b"\r"):
                line = line[:-1]
            while len(line) > limit:
                cut = _utf8_cut(line, limit)
                out.append(_piece(line[:cut], continued=True))
                line = line[cut:]
            out.append(_piece(line, continued=False))


def _utf8_tail_cut(data: bytes) -> int:
    """Length of ``data`` without an incomplete UTF-8 sequence at its end."""
    n = len(data)
    for back in range(1, min(4, n + 1)):
        b = data[n - back]
        if b & 0xC0 == 0x80:
            continue
        if 0xC2 <= b <= 0xF4:  # a lead byte (others never start a valid sequence)
            need = 2 if b < 0xE0 else 3 if b < 0xF0 else 4
            return n - back if need > back else n
        return n
    return n
