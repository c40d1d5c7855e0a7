"""SSE framing: encoder tables, a parser table fed whole / bytewise / cut at
random, and encode -> parse round trips."""

from __future__ import annotations

import itertools
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentwatch.errors import ProtocolError
from agentwatch.proto.sse import (
    SSEMessage,
    SSEParser,
    encode_comment,
    encode_event,
    encode_retry,
)


def M(
    data: str, event: str = "message", id: str | None = None, retry: int | None = None
) -> SSEMessage:
    return SSEMessage(event=event, data=data, id=id, retry=retry)


# ---------------------------------------------------------------------------
# Encoder

ENCODE_CASES = [
    ((b'{"a":1}', None, None), b'data: {"a":1}\n\n'),
    ((b"{}", "log", 5), b"id: 5\nevent: log\ndata: {}\n\n"),
    ((b"{}", None, "abc"), b"id: abc\ndata: {}\n\n"),
    ((b"{}", "", ""), b"data: {}\n\n"),
    ((b"", None, None), b"data: \n\n"),
    ((b"a\nb", None, None), b"data: a\ndata: b\n\n"),
    ((b"a\r\nb\rc\n", None, None), b"data: a\ndata: b\ndata: c\ndata: \n\n"),
    ((b" lead", None, None), b"data:  lead\n\n"),
    (("é✓".encode(), "x-ü", "ß"), "id: ß\nevent: x-ü\ndata: é✓\n\n".encode()),
]


@pytest.mark.parametrize(("args", "expected"), ENCODE_CASES)
def test_encode_event(args: tuple[bytes, str | None, int | str | None], expected: bytes) -> None:
    data, event, id = args
    assert encode_event(data, event=event, id=id) == expected


@pytest.mark.parametrize(
    "kwargs",
    [{"event": "a\nb"}, {"event": "a\rb"}, {"id": "1\n"}, {"id": "1\r2"}, {"id": "a\0b"}],
)
def test_encode_event_refuses_fields_that_break_framing(kwargs: dict[str, str]) -> None:
    with pytest.raises(ValueError, match="SSE"):
        encode_event(b"{}", **kwargs)


def test_encode_retry() -> None:
    assert encode_retry(1000) == b"retry: 1000\n\n"
    assert encode_retry(0) == b"retry: 0\n\n"


@pytest.mark.parametrize("bad", [-1, True, 1.5, "10"])
def test_encode_retry_refuses(bad: object) -> None:
    with pytest.raises(ValueError, match="retry"):
        encode_retry(bad)  # type: ignore[arg-type]


def test_encode_comment() -> None:
    assert encode_comment("keepalive") == b": keepalive\n\n"
    assert encode_comment("a\nb\r\nc") == b": a\n: b\n: c\n\n"
    assert encode_comment("") == b": \n\n"


# ---------------------------------------------------------------------------
# Parser table: (stream, messages, last_event_id, retry at the end)

PARSE_CASES: list[tuple[bytes, list[SSEMessage], str | None, int | None]] = [
    (b"data: hello\n\n", [M("hello")], None, None),
    (b"data: hello\n", [], None, None),
    (b"data: hello", [], None, None),
    (b"data: a\ndata: b\n\n", [M("a\nb")], None, None),
    (b"data: a\r\ndata: b\r\n\r\n", [M("a\nb")], None, None),
    (b"data: a\rdata: b\r\r", [M("a\nb")], None, None),
    (b"data: a\r\ndata: b\rdata: c\n\r\n", [M("a\nb\nc")], None, None),
    (b"data: a\r\r\ndata: b\n\r\n", [M("a"), M("b")], None, None),
    (b"data: a\n\r\n\n\r\r", [M("a")], None, None),
    (b"\n\n\r\n\r\r", [], None, None),
    (b"data: YHOO\ndata: +2\ndata: 10\n\n", [M("YHOO\n+2\n10")], None, None),
    (b"data:test\n\ndata: test\n\n", [M("test"), M("test")], None, None),
    (b"data:  x\n\n", [M(" x")], None, None),
    (b"data: a:b: c\n\n", [M("a:b: c")], None, None),
    (b"data\n\n", [M("")], None, None),
    (b"data\ndata\ndata\n\n", [M("\n\n")], None, None),
    (b"data:\n\n", [M("")], None, None),
    (b"data: \ndata: x\n\n", [M("\nx")], None, None),
    (b"event: log\ndata: x\n\n", [M("x", "log")], None, None),
    (b"event: log\ndata: x\n\ndata: y\n\n", [M("x", "log"), M("y")], None, None),
    (b"event\ndata: x\n\n", [M("x")], None, None),
    (b"event: a\nevent: b\ndata: x\n\n", [M("x", "b")], None, None),
    # an event with no data is not dispatched, and its type does not leak
    (b"event: foo\n\n", [], None, None),
    (b"event: foo\n\ndata: x\n\n", [M("x")], None, None),
    # comments and unknown or miscased fields are ignored
    (b": hi\ndata: x\n:\n: more\n\n", [M("x")], None, None),
    (b":\n\n", [], None, None),
    (b"foo: bar\ndata: x\nbar\n\n", [M("x")], None, None),
    (b"Data: x\nDATA: y\n\n", [], None, None),
    (b" data: x\n\n", [], None, None),
    # the last event id persists until changed; empty id resets it
    (
        b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 2\ndata: d\n\n",
        [M("a", id="1"), M("b", id="1"), M("c", id=""), M("d", id="2")],
        "2",
        None,
    ),
    (b"id: 7\n\ndata: x\n\n", [M("x", id="7")], "7", None),
    (b"id: 7\n\n", [], "7", None),
    (b"id: 7\ndata: x\n", [], None, None),
    (b"id:  5\ndata: x\n\n", [M("x", id=" 5")], " 5", None),
    (b"id: 1\n\nid: 2\x003\ndata: x\n\n", [M("x", id="1")], "1", None),
    (b"id: a:b\ndata: x\n\n", [M("x", id="a:b")], "a:b", None),
    # retry applies when all ASCII digits, and stays in effect
    (b"retry: 1000\n\ndata: x\n\n", [M("x", retry=1000)], None, 1000),
    (
        b"retry: 1000\ndata: x\n\nretry: 5\ndata: y\n\n",
        [M("x", retry=1000), M("y", retry=5)],
        None,
        5,
    ),
    (b"retry: 10a\n\nretry: -1\nretry: 1.5\nretry:\nretry\ndata: x\n\n", [M("x")], None, None),
    (b"retry: 100\nretry:  200\ndata: x\n\n", [M("x", retry=100)], None, 100),
    ("retry: ١٢\ndata: x\n\n".encode(), [M("x")], None, None),
    # one BOM at the very start is dropped; a second one is part of a name
    (b"\xef\xbb\xbfdata: x\n\n", [M("x")], None, None),
    (b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", [], None, None),
    (b"data: \xef\xbb\xbfx\n\n", [M("\ufeffx")], None, None),
    # UTF-8, with replacement for bad bytes
    ("data: héllo ✓ 😀\n\n".encode(), [M("héllo ✓ 😀")], None, None),
    (b"data: \xff\xfe\n\n", [M("\ufffd\ufffd")], None, None),
    (b"data: \xe2\x9c\n\n", [M("\ufffd")], None, None),
    # only CR and LF end lines, not the other Unicode line breaks
    ("data: a\x85b\u2028c\x0bd\x1ce\n\n".encode(), [M("a\x85b\u2028c\x0bd\x1ce")], None, None),
]


def feed_all(chunks: list[bytes]) -> tuple[list[SSEMessage], SSEParser]:
    parser = SSEParser()
    out: list[SSEMessage] = []
    for chunk in chunks:
        out.extend(parser.feed(chunk))
    return out, parser


def check(
    chunks: list[bytes], expected: list[SSEMessage], last_id: str | None, retry: int | None
) -> None:
    out, parser = feed_all(chunks)
    assert out == expected
    assert parser.last_event_id == last_id
    assert parser.retry == retry


@pytest.mark.parametrize(("stream", "expected", "last_id", "retry"), PARSE_CASES)
def test_parse_whole(
    stream: bytes, expected: list[SSEMessage], last_id: str | None, retry: int | None
) -> None:
    check([stream], expected, last_id, retry)


@pytest.mark.parametrize(("stream", "expected", "last_id", "retry"), PARSE_CASES)
def test_parse_bytewise(
    stream: bytes, expected: list[SSEMessage], last_id: str | None, retry: int | None
) -> None:
    check([stream[i : i + 1] for i in range(len(stream))], expected, last_id, retry)


def cut(stream: bytes, points: list[int]) -> list[bytes]:
    bounds = [0, *sorted(points), len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


@pytest.mark.parametrize(("stream", "expected", "last_id", "retry"), PARSE_CASES)
@settings(max_examples=30)  # per case: ~1500 cut streams in all
@given(data=st.data())
def test_parse_random_cuts(
    stream: bytes,
    expected: list[SSEMessage],
    last_id: str | None,
    retry: int | None,
    data: st.DataObject,
) -> None:
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=8))
    check(cut(stream, points), expected, last_id, retry)


def test_parse_trailing_data_waits_for_more() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\n\ndata: b\n") == [M("a")]
    assert parser.feed(b"") == []
    assert parser.feed(b"\n") == [M("b")]


def test_parse_cr_at_chunk_end_dispatches_at_once() -> None:
    parser = SSEParser()
    assert parser.feed(b"data: a\r\r") == [M("a")]
    assert parser.feed(b"\ndata: b\r\n\r\n") == [M("b")]


def test_parse_bounds_one_event() -> None:
    with pytest.raises(ProtocolError) as info:
        SSEParser(max_event_chars=10).feed(b"data: " + b"x" * 20)
    assert info.value.code == "event-too-large"
    with pytest.raises(ProtocolError):
        SSEParser(max_event_chars=10).feed(b"data: xxxx\n" * 5)
    parser = SSEParser(max_event_chars=10)
    for _ in range(100):  # the bound is per event, not per stream
        assert parser.feed(b"data: xxxx\n\n") == [M("xxxx")]


# ---------------------------------------------------------------------------
# Round trip

no_breaks = st.text().filter(lambda s: "\r" not in s and "\n" not in s)
ids = st.none() | st.integers(0, 2**63) | no_breaks.filter(lambda s: "\0" not in s)
blocks = st.lists(
    st.tuples(st.text(), st.none() | no_breaks, ids) | st.sampled_from(["retry", "comment"]),
    max_size=6,
)


@settings(max_examples=300)
@given(blocks=blocks, data=st.data())
def test_round_trip(
    blocks: list[tuple[str, str | None, int | str | None] | str], data: st.DataObject
) -> None:
    stream = b""
    expected: list[SSEMessage] = []
    last_id: str | None = None
    retry: int | None = None
    for n, block in enumerate(blocks):
        if block == "retry":
            retry = 1000 + n
            stream += encode_retry(retry)
        elif block == "comment":
            stream += encode_comment(f"keepalive {n}\nmore")
        else:
            assert isinstance(block, tuple)
            text, event, id = block
            stream += encode_event(text.encode(), event=event, id=id)
            if id is not None and str(id):
                last_id = str(id)
            expected.append(M(re.sub(r"\r\n|\r", "\n", text), event or "message", last_id, retry))
    points = data.draw(st.lists(st.integers(0, len(stream)), max_size=10))
    out, parser = feed_all(cut(stream, points))
    assert out == expected
    assert parser.retry == retry


# ---------------------------------------------------------------------------
