"""The event encoder (SPEC 1): every line valid JSON with ``seq`` first and the
fields of its type; output blocks, pieces, bytes that are not UTF-8; batches."""

from __future__ import annotations

import base64
import json
import re
from typing import Any

import msgspec
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentwatch.events import (
    EventBatch,
    decode_event,
    decode_meta,
    encode_event,
    encode_output,
    format_timestamp,
    gap_message,
    json_array,
    seq_of_line,
    single,
)
from agentwatch.proto.lines import Piece, Segment

TS = "2026-11-25T16:40:00.123456Z"
TS_RE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
COMMON = ["seq", "type", "timestamp", "processId"]
OUTPUT_REQUIRED = {*COMMON, "stream", "output"}
OUTPUT_ALLOWED = {*OUTPUT_REQUIRED, "continued", "outputBase64"}


def lines_of(buf: bytes | bytearray) -> list[bytes]:
    parts = bytes(buf).split(b"\n")
    assert parts.pop() == b"", "every event line ends with a line break"
    return parts


def check_line(line: bytes) -> dict[str, Any]:
    """Valid JSON (for msgspec and the stdlib), ``seq`` first, common fields typed."""
    assert line.startswith(b'{"seq":')
    obj: dict[str, Any] = msgspec.json.decode(line)
    assert json.loads(line) == obj
    assert list(obj)[:4] == COMMON
    assert isinstance(obj["seq"], int)
    assert obj["seq"] >= 1
    assert TS_RE.fullmatch(obj["timestamp"])
    assert obj["processId"] is None or isinstance(obj["processId"], str)
    assert seq_of_line(line) == obj["seq"]
    meta = decode_meta(line)
    assert (meta.seq, meta.type, meta.processId) == (obj["seq"], obj["type"], obj["processId"])
    return obj


def check_output(obj: dict[str, Any]) -> None:
    assert obj["type"] == "process-output"
    assert OUTPUT_REQUIRED <= set(obj) <= OUTPUT_ALLOWED
    assert obj["stream"] in ("stdout", "stderr")
    assert isinstance(obj["output"], str)
    assert obj.get("continued", True) is True
    if "outputBase64" in obj:
        raw = base64.b64decode(obj["outputBase64"], validate=True)
        assert raw.decode("utf-8", "replace") == obj["output"]


def encode(
    segments: list[Segment], first: int = 1, pid: str = "agent", stream: str = "stdout"
) -> list[dict[str, Any]]:
    buf = bytearray(b"")
    n = encode_output(buf, first, TS, pid, stream, segments)
    objs = [check_line(line) for line in lines_of(buf)]
    assert n == len(objs)
    assert [o["seq"] for o in objs] == list(range(first, first + n))
    for o in objs:
        check_output(o)
        assert (o["timestamp"], o["processId"], o["stream"]) == (TS, pid, stream)
    return objs


def out(output: str, **extra: Any) -> dict[str, Any]:
    return {"output": output, **extra}


# ---------------------------------------------------------------------------
# encode_output

OUTPUT_CASES: list[tuple[list[Segment], list[dict[str, Any]]]] = [
    ([], []),
    ([""], [out("")]),
    (["a\nb\nc"], [out("a"), out("b"), out("c")]),
    (["\n"], [out(""), out("")]),
    (['say "hi"\tnow'], [out('say "hi"\tnow')]),
    (["back\\slash\nlit \\n not a break"], [out("back\\slash"), out("lit \\n not a break")]),
    (["\\"], [out("\\")]),
    (["ctl \x00\x01\x1b[31m\x7f"], [out("ctl \x00\x01\x1b[31m\x7f")]),
    (["lone\rcr"], [out("lone\rcr")]),
    (["é€😀\u2028\u2029"], [out("é€😀\u2028\u2029")]),
    (["100%s %d %%"], [out("100%s %d %%")]),  # no printf-style accidents
    ([Piece("part", continued=True)], [out("part", continued=True)]),
    ([Piece("whole")], [out("whole")]),
    (
        [Piece("a\ufffdb", raw=b"a\xffb")],
        [out("a\ufffdb", outputBase64=base64.b64encode(b"a\xffb").decode())],
    ),
    (
        [Piece("\ufffd", continued=True, raw=b"\xe2\x82")],
        [out("\ufffd", continued=True, outputBase64="4oI=")],
    ),
    (
        ["x\ny", Piece("z", continued=True), "w\\", Piece("v")],
        [out("x"), out("y"), out("z", continued=True), out("w\\"), out("v")],
    ),
]


@pytest.mark.parametrize(("segments", "expected"), OUTPUT_CASES)
def test_encode_output(segments: list[Segment], expected: list[dict[str, Any]]) -> None:
    objs = encode(segments, first=41)
    assert [{k: o[k] for k in o if k not in (*COMMON, "stream")} for o in objs] == expected
    for o in objs:
        assert list(o)[:6] == [*COMMON, "stream", "output"]


@pytest.mark.parametrize("pid", ["with space", 'q"uote', "back\\slash", "é", "%d%s"])
def test_encode_output_escapes_process_id(pid: str) -> None:
    objs = encode(["a\nb", Piece("c", continued=True)], pid=pid, stream="stderr")
    assert [o["processId"] for o in objs] == [pid] * 3


def test_encode_output_appends() -> None:
    buf = bytearray(b"already\n")
    assert encode_output(buf, 7, TS, "p", "stdout", ["a"]) == 1
    assert buf.startswith(b"already\n{")


@settings(max_examples=200, deadline=None)
@given(
    lines=st.lists(st.text().map(lambda s: s.replace("\n", "")), min_size=1, max_size=8),
    first=st.integers(1, 2**53),
)
def test_block_round_trip(lines: list[str], first: int) -> None:
    """A block of lines encodes to one event per line, each decoding to its line."""
    objs = encode(["\n".join(lines)], first=first)
    assert [o["output"] for o in objs] == lines
    split = encode([Piece(line) for line in lines], first=first)
    assert objs == split


# ---------------------------------------------------------------------------
# encode_event

EVENT_CASES: list[tuple[str, str | None, dict[str, Any]]] = [
    (
        "process-started",
        "a",
        {"pid": 12, "command": ["python", "-c", "x"], "cwd": "/w", "restarts": 0},
    ),
    (
        "process-stopped",
        "a",
        {
            "pid": 12,
            "exitCode": None,
            "signal": "SIGKILL",
            "durationMs": 1500,
            "willRestart": False,
        },
    ),
    ("process-error", "a", {"error": "timed out after 1 s", "kind": "timeout"}),
    ("process-waiting", "a", {}),
    ("process-resumed", "a", {}),
    (
        "process-stats",
        "a",
        {"cpuPercent": 1.5, "rssBytes": 1 << 30, "numThreads": 3, "numChildren": 0, "numFds": 5},
    ),
    (
        "task-assigned",
        None,
        {"taskId": "t1", "title": "Do it", "assignee": "b", "data": {"k": [1, 2]}},
    ),
    ("task-completed", None, {"taskId": "t1", "status": "success", "result": "ok", "data": {}}),
    ("system-alert", None, {"level": "error", "message": "journal full", "code": "journal-error"}),
    ("x-tokens-used", "a", {"tokens": 12, "text": 'q"\\\n'}),
]


@pytest.mark.parametrize(("type_", "pid", "fields"), EVENT_CASES)
def test_encode_event(type_: str, pid: str | None, fields: dict[str, Any]) -> None:
    line = encode_event(99, type_, TS, pid, fields)
    (body,) = lines_of(line)
    obj = check_line(body)
    assert obj == {"seq": 99, "type": type_, "timestamp": TS, "processId": pid, **fields}
    assert list(obj) == [*COMMON, *fields]
    assert decode_event(body) == obj


def test_encode_event_fields_cannot_override_common() -> None:
    line = encode_event(3, "x-a", TS, "p", {"seq": 1, "type": "y", "processId": "q", "n": 1})
    assert msgspec.json.decode(line) == {
        "seq": 3,
        "type": "x-a",
        "timestamp": TS,
        "processId": "p",
        "n": 1,
    }


def test_decode_event_rejects_non_objects() -> None:
    with pytest.raises(ValueError, match="object"):
        decode_event(b"[1]")


@pytest.mark.parametrize(
    ("t", "text"),
    [
        (0.0, "1970-01-01T00:00:00.000000Z"),
        (1.5, "1970-01-01T00:00:01.500000Z"),
        (1795624800.123456, "2026-11-25T16:40:00.123456Z"),
    ],
)
def test_format_timestamp(t: float, text: str) -> None:
    assert format_timestamp(t) == text


# ---------------------------------------------------------------------------
# EventBatch


def batch(first: int, n: int) -> EventBatch:
    buf = bytearray()
    encode_output(buf, first, TS, "p", "stdout", ["\n".join(f"l{i}" for i in range(n))])
    return EventBatch(first, n, "process-output", "p", "stdout", bytes(buf))


def seqs(b: EventBatch) -> list[int]:
    assert b.data.count(b"\n") == b.count
    got = [seq_of_line(line) for line in b.lines()]
    assert got == list(range(b.first_seq, b.first_seq + b.count))
    return got


def test_batch_since_and_head() -> None:
    b = batch(10, 5)
    assert b.last_seq == 14
    assert b.nbytes == len(b.data)
    assert seqs(b) == [10, 11, 12, 13, 14]
    assert b.since(3) is b
    assert b.since(9) is b
    assert seqs(b.since(10)) == [11, 12, 13, 14]
    assert seqs(b.since(13)) == [14]
    assert b.since(14).count == 0
    assert b.since(99).count == 0
    assert seqs(b.head(2)) == [10, 11]
    assert b.head(5) is b
    assert seqs(b.since(11).head(2)) == [12, 13]


def test_json_arrays_and_gap() -> None:
    b1, b2 = batch(1, 2), batch(3, 1)
    assert [e["seq"] for e in msgspec.json.decode(b1.json_array())] == [1, 2]
    assert [e["seq"] for e in msgspec.json.decode(json_array([b1, b2]))] == [1, 2, 3]
    one = single(4, "x-a", None, encode_event(4, "x-a", TS, None, {}))
    assert (one.count, one.last_seq) == (1, 4)
    assert msgspec.json.decode(gap_message(5, 9)) == {"type": "gap", "fromSeq": 5, "toSeq": 9}
