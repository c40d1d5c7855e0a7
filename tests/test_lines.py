"""The sans-IO line splitter (SPEC 1, "Lines"): tables fed whole, one byte at
a time and in the given chunks, `flush_partial`, and hypothesis properties
over arbitrary byte streams cut at arbitrary chunk boundaries."""

from __future__ import annotations

import base64
import itertools
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentwatch.events import encode_output
from agentwatch.proto.lines import (
    DEFAULT_MAX_LINE_BYTES,
    LineSplitter,
    Piece,
    Segment,
    count_events,
)

Event = tuple[str, bool, bytes | None]  # output, continued, raw


def flat(segments: list[Segment]) -> list[Event]:
    """One (output, continued, raw) per event, whatever the segment kind."""
    out: list[Event] = []
    for s in segments:
        if isinstance(s, str):
            out.extend((line, False, None) for line in s.split("\n"))
        else:
            out.append((s.output, s.continued, s.raw))
    return out


def decoded(segments: list[Segment]) -> list[dict[str, Any]]:
    """The segments as encoded `process-output` events, decoded, minus seq/timestamp."""
    buf = bytearray()
    n = encode_output(buf, 1, "2026-11-25T16:40:00.000000Z", "p", "stdout", segments)
    lines = bytes(buf).split(b"\n")
    assert lines.pop() == b""
    assert len(lines) == n == count_events(segments)
    events = []
    for seq, line in enumerate(lines, 1):
        ev = msgspec.json.decode(line)
        assert ev.pop("seq") == seq
        ev.pop("timestamp")
        events.append(ev)
    return events


def split(chunks: list[bytes], limit: int = DEFAULT_MAX_LINE_BYTES) -> list[Segment]:
    sp = LineSplitter(limit)
    out: list[Segment] = []
    for c in chunks:
        out += sp.feed(c)
    out += sp.finish()
    assert sp.pending == 0
    return out


def bytewise(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


def ev(output: str, continued: bool = False, raw: bytes | None = None) -> Event:
    return (output, continued, raw)


# ---------------------------------------------------------------------------
# Tables: (chunks, max_line_bytes, events). Each is also fed whole and bytewise.

BIG = DEFAULT_MAX_LINE_BYTES
EMOJI = "😀".encode()

CASES: list[tuple[list[bytes], int, list[Event]]] = [
    ([b""], BIG, []),
    ([b"a\n"], BIG, [ev("a")]),
    ([b"a"], BIG, [ev("a")]),
    ([b"a\nb"], BIG, [ev("a"), ev("b")]),
    ([b"\n\n"], BIG, [ev(""), ev("")]),
    ([b"a\r\n"], BIG, [ev("a")]),
    ([b"a\r", b"\n"], BIG, [ev("a")]),  # CRLF split across chunks
    ([b"a\r\nb\r", b"\nc\r\n"], BIG, [ev("a"), ev("b"), ev("c")]),
    ([b"\r\n"], BIG, [ev("")]),
    ([b"a\r"], BIG, [ev("a\r")]),  # no LF at EOF: the CR is content
    ([b"a\r\r\n"], BIG, [ev("a\r")]),  # only one trailing CR is removed
    ([b"a\rb\n"], BIG, [ev("a\rb")]),
    ([b'tab\tq"uote\\back\n'], BIG, [ev('tab\tq"uote\\back')]),
    (["é€😀\n".encode()], BIG, [ev("é€😀")]),
    (["é€".encode()[:3], "é€".encode()[3:] + b"\n"], BIG, [ev("é€")]),
    ([b"a\xffb\n"], BIG, [ev("a\ufffdb", raw=b"a\xffb")]),
    ([b"ok\n\xfe\nok2\n"], BIG, [ev("ok"), ev("\ufffd", raw=b"\xfe"), ev("ok2")]),
    ([b"\xe2\x82\n"], BIG, [ev("\ufffd", raw=b"\xe2\x82")]),  # truncated sequence
    ([b"end\xe2\x82"], BIG, [ev("end\ufffd", raw=b"end\xe2\x82")]),  # ... at EOF
    ([b"\x00\x1f\n"], BIG, [ev("\x00\x1f")]),
    # max-line-bytes cuts: every piece but the last is continued
    ([b"abcdefghij\n"], 4, [ev("abcd", True), ev("efgh", True), ev("ij")]),
    ([b"abcd\n"], 4, [ev("abcd")]),
    ([b"abcd\r\n"], 4, [ev("abcd")]),  # the CR of CR LF does not count
    ([b"abcd\r", b"\n"], 4, [ev("abcd")]),
    ([b"abcd\r"], 4, [ev("abcd", True), ev("\r")]),
    ([b"abcde"], 4, [ev("abcd", True), ev("e")]),
    ([b"abc\rdef\n"], 4, [ev("abc", True), ev("\rdef")]),  # never cut CR from its LF
    # never split a UTF-8 sequence: a (1) é (2) € (3) 😀 (4)
    (["aé€😀\n".encode()], 4, [ev("aé", True), ev("€", True), ev("😀")]),
    ([b"abc" + EMOJI + b"\n"], 4, [ev("abc", True), ev("😀")]),
    ([b"abc" + EMOJI], 4, [ev("abc", True), ev("😀")]),
    # invalid bytes are cut at the limit; each piece keeps its exact bytes
    ([b"\xff" * 5 + b"\n"], 4, [ev("\ufffd" * 4, True, b"\xff" * 4), ev("\ufffd", raw=b"\xff")]),
    (
        [b"x\n" + b"y" * 10 + b"\nz\n"],
        4,
        [ev("x"), ev("yyyy", True), ev("yyyy", True), ev("yy"), ev("z")],
    ),
]


@pytest.mark.parametrize(("chunks", "limit", "expected"), CASES)
def test_table(chunks: list[bytes], limit: int, expected: list[Event]) -> None:
    data = b"".join(chunks)
    assert flat(split(chunks, limit)) == expected
    assert flat(split([data], limit)) == expected
    assert flat(split(bytewise(data), limit)) == expected
    assert flat(split([data, b""], limit)) == expected  # an empty read changes nothing
    for output, _, raw in expected:
        assert len(raw if raw is not None else output.encode()) <= limit


def test_fast_path_is_one_block() -> None:
    """Complete valid lines come out as one str block, not per-line pieces."""
    sp = LineSplitter()
    assert sp.feed(b"a\nb\r\nc\nrest") == ["a\nb\nc"]
    assert sp.pending == 4
    assert sp.finish() == [Piece("rest")]
    assert sp.finish() == []


def test_rejects_tiny_limit() -> None:
    with pytest.raises(ValueError, match="at least 4"):
        LineSplitter(3)


def test_count_events() -> None:
    assert count_events([]) == 0
    assert count_events(["a\nb", Piece("c"), ""]) == 4


# ---------------------------------------------------------------------------
# flush_partial: a prompt or progress bar without newline, after a pause

FLUSH = "flush"
FINISH = "finish"

FLUSH_CASES: list[tuple[list[bytes | str], list[Event]]] = [
    ([b"prompt> ", FLUSH, FINISH], [ev("prompt> ", True)]),
    ([b"prompt> ", FLUSH, b"yes\n", FINISH], [ev("prompt> ", True), ev("yes")]),
    ([FLUSH, b"", FLUSH, FINISH], []),
    ([b"x\ny", FLUSH, FINISH], [ev("x"), ev("y", True)]),
    ([b"50%\r", FLUSH, b"\n"], [ev("50%", True), ev("")]),  # a lone CR is kept back
    ([b"\r", FLUSH, b"\n"], [ev("")]),
    ([b"ab\xe2\x82", FLUSH, b"\xac\n"], [ev("ab", True), ev("€")]),  # keep a cut sequence
    ([b"\xe2\x82", FLUSH, FINISH], [ev("\ufffd", raw=b"\xe2\x82")]),
    ([b"bad\xff", FLUSH, FINISH], [ev("bad\ufffd", True, b"bad\xff")]),
    ([b"a", FLUSH, b"b", FLUSH, b"c\n"], [ev("a", True), ev("b", True), ev("c")]),
]


@pytest.mark.parametrize(("ops", "expected"), FLUSH_CASES)
def test_flush_partial(ops: list[bytes | str], expected: list[Event]) -> None:
    sp = LineSplitter()
    out: list[Segment] = []
    for op in ops:
        if op == FLUSH:
            out += sp.flush_partial()
        elif op == FINISH:
            out += sp.finish()
        else:
            assert isinstance(op, bytes)
            out += sp.feed(op)
    assert flat(out) == expected


# ---------------------------------------------------------------------------
# Properties

ATOMS = [
    b"a",
    b"b",
    b"\n",
    b"\r",
    b"\r\n",
    b"\\",
    b'"',
    b"\t",
    b"\x00",
    b"\x1b[0m",
    "é".encode(),
    "€".encode(),
    EMOJI,
    b"\xff",
    b"\x80",
    b"\xe2\x82",
    b"\xf0\x9f",
]
streams = st.lists(st.sampled_from(ATOMS) | st.binary(max_size=4), max_size=60).map(b"".join)
limits = st.sampled_from([4, 5, 7, 8, 16, BIG])


def cut(data: bytes, points: list[int]) -> list[bytes]:
    bounds = sorted({0, len(data), *(p % (len(data) + 1) for p in points)})
    return [data[a:b] for a, b in itertools.pairwise(bounds)]


def restore(events: list[dict[str, Any]], final: list[dict[str, Any]]) -> bytes:
    """Join decoded events back to bytes; ``final`` come from `finish` (no LF)."""
    out = bytearray()
    for i, e in enumerate([*events, *final]):
        raw = e.get("outputBase64")
        out += base64.b64decode(raw) if raw is not None else e["output"].encode()
        if not e.get("continued") and i < len(events):
            out += b"\n"
    return bytes(out)


def check_encoded(events: list[dict[str, Any]], limit: int) -> None:
    for e in events:
        assert list(e)[:4] == ["type", "processId", "stream", "output"]
        assert set(e) <= {"type", "processId", "stream", "output", "continued", "outputBase64"}
        assert e.get("continued", True) is True  # present only when true
        raw = e.get("outputBase64")
        data = base64.b64decode(raw) if raw is not None else e["output"].encode()
        assert len(data) <= limit
        if raw is not None:
            assert e["output"] == data.decode("utf-8", "replace")
            with pytest.raises(UnicodeDecodeError):
                data.decode("utf-8")


@settings(max_examples=300, deadline=None)
@given(data=streams, limit=limits, points=st.lists(st.integers(0, 1000), max_size=12))
def test_any_chunking_same_events(data: bytes, limit: int, points: list[int]) -> None:
    whole = decoded(split([data], limit))
    assert decoded(split(cut(data, points), limit)) == whole
    assert decoded(split(bytewise(data), limit)) == whole
    check_encoded(whole, limit)


@settings(max_examples=300, deadline=None)
@given(
    data=streams,
    limit=limits,
    points=st.lists(st.integers(0, 1000), max_size=12),
    flushes=st.lists(st.booleans(), max_size=12),
)
def test_restores_input(data: bytes, limit: int, points: list[int], flushes: list[bool]) -> None:
    """Pieces plus line breaks give the input back, CR LF as LF, whatever the
    chunking and wherever partial lines were flushed."""
    sp = LineSplitter(limit)
    segs: list[Segment] = []
    for i, chunk in enumerate(cut(data, points)):
        segs += sp.feed(chunk)
        if i < len(flushes) and flushes[i]:
            segs += sp.flush_partial()
    final = decoded(sp.finish())
    events = decoded(segs)
    check_encoded(events + final, limit)
    assert all(not e.get("continued") for e in final[-1:])
    assert restore(events, final) == data.replace(b"\r\n", b"\n")


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from("ab\n\r é€😀"), max_size=60),
    limit=st.integers(4, 9),
    points=st.lists(st.integers(0, 1000), max_size=12),
    flushes=st.lists(st.booleans(), max_size=12),
)
def test_valid_utf8_never_split(
    text: str, limit: int, points: list[int], flushes: list[bool]
) -> None:
    """Cuts for length and partial flushes never split a UTF-8 sequence."""
    sp = LineSplitter(limit)
    segs: list[Segment] = []
    for i, chunk in enumerate(cut(text.encode(), points)):
        segs += sp.feed(chunk)
        if i < len(flushes) and flushes[i]:
            segs += sp.flush_partial()
    segs += sp.finish()
    for output, _, raw in flat(segs):
        assert raw is None
        assert len(output.encode()) <= limit
