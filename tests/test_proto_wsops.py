"""Native /ws client messages and published events: valid forms and every
error code, table-driven."""

from __future__ import annotations

import copy
from typing import Any

import msgspec
import pytest

from agentwatch.errors import ProtocolError
from agentwatch.proto.wsops import (
    MAX_PROCESS_ID_CHARS,
    ClientMessage,
    Ping,
    Publish,
    Subscribe,
    Unsubscribe,
    error_reply,
    parse_client_message,
    reply,
    validate_publish,
)

LONGEST_ID = "p" * MAX_PROCESS_ID_CHARS

# ---------------------------------------------------------------------------
# Client messages

VALID_MESSAGES: list[tuple[str | bytes, ClientMessage]] = [
    ('{"op":"ping"}', Ping()),
    (b'{"op":"ping"}', Ping()),
    (' { "op" : "ping" , "future" : [1] } ', Ping()),
    ('{"op":"subscribe","processId":"*"}', Subscribe("*")),
    ('{"op":"subscribe","processId":"builder"}', Subscribe("builder")),
    (f'{{"op":"subscribe","processId":"{LONGEST_ID}"}}', Subscribe(LONGEST_ID)),
    ('{"op":"subscribe","processId":"é✓"}'.encode(), Subscribe("é✓")),
    (
        '{"op":"subscribe","processId":"a","since":0,"tail":10,"types":["process-output"]}',
        Subscribe("a", since=0, tail=10, types=("process-output",)),
    ),
    (
        '{"op":"subscribe","processId":"a","since":12,"types":["x-a","task-assigned"]}',
        Subscribe("a", since=12, types=("x-a", "task-assigned")),
    ),
    (
        '{"op":"subscribe","processId":"a","since":null,"tail":null,"types":null}',
        Subscribe("a"),
    ),
    (
        '{"op":"subscribe","processId":"a","since":123456789012345678901234567890}',
        Subscribe("a", since=123456789012345678901234567890),
    ),
    ('{"op":"unsubscribe","processId":"*"}', Unsubscribe("*")),
    ('{"op":"unsubscribe","processId":"builder","since":"ignored"}', Unsubscribe("builder")),
    (
        '{"op":"publish","event":{"type":"x-tokens","n":3,"seq":9}}',
        Publish({"type": "x-tokens", "processId": None, "n": 3}),
    ),
    (
        '{"op":"publish","event":{"type":"task-assigned","taskId":"t1","processId":"a"}}',
        Publish({"type": "task-assigned", "processId": "a", "taskId": "t1"}),
    ),
]


@pytest.mark.parametrize(("text", "expected"), VALID_MESSAGES)
def test_parse_valid(text: str | bytes, expected: ClientMessage) -> None:
    assert parse_client_message(text) == expected


def sub(**fields: Any) -> str:
    return msgspec.json.encode({"op": "subscribe", **fields}).decode()


BAD_MESSAGES: list[tuple[str | bytes, str]] = [
    # invalid-json: not JSON, or not an object
    ("", "invalid-json"),
    ("not json", "invalid-json"),
    ('{"op":"ping"', "invalid-json"),
    ('{"op":"ping"} x', "invalid-json"),
    ("{'op':'ping'}", "invalid-json"),
    (b"\xff", "invalid-json"),
    (b'{"op":"\xff"}', "invalid-json"),
    ('{"op":"\ud800"}', "invalid-json"),
    ('{"op":"\\ud800"}', "invalid-json"),
    ('{"op":"ping","n":1e400}', "invalid-json"),
    ('{"op":"ping","n":NaN}', "invalid-json"),
    ("null", "invalid-json"),
    ("1", "invalid-json"),
    ('"ping"', "invalid-json"),
    ('[{"op":"ping"}]', "invalid-json"),
    # unknown-op
    ("{}", "unknown-op"),
    ('{"op":null}', "unknown-op"),
    ('{"op":1}', "unknown-op"),
    ('{"op":["ping"]}', "unknown-op"),
    ('{"op":""}', "unknown-op"),
    ('{"op":"Ping"}', "unknown-op"),
    ('{"op":"emit"}', "unknown-op"),
    ('{"type":"ping"}', "unknown-op"),
    # invalid-field: processId
    ('{"op":"subscribe"}', "invalid-field"),
    (sub(processId=None), "invalid-field"),
    (sub(processId=""), "invalid-field"),
    (sub(processId=1), "invalid-field"),
    (sub(processId=["a"]), "invalid-field"),
    (sub(processId=LONGEST_ID + "p"), "invalid-field"),
    ('{"op":"unsubscribe"}', "invalid-field"),
    ('{"op":"unsubscribe","processId":""}', "invalid-field"),
    ('{"op":"unsubscribe","processId":7}', "invalid-field"),
    # invalid-field: since / tail
    (sub(processId="a", since=-1), "invalid-field"),
    (sub(processId="a", since="1"), "invalid-field"),
    (sub(processId="a", since=1.0), "invalid-field"),
    (sub(processId="a", since=True), "invalid-field"),
    (sub(processId="a", since=False), "invalid-field"),
    (sub(processId="a", tail=-5), "invalid-field"),
    (sub(processId="a", tail=2.5), "invalid-field"),
    (sub(processId="a", tail=True), "invalid-field"),
    (sub(processId="a", tail={"n": 1}), "invalid-field"),
    # invalid-field: types
    (sub(processId="a", types="process-output"), "invalid-field"),
    (sub(processId="a", types=[]), "invalid-field"),
    (sub(processId="a", types=[1]), "invalid-field"),
    (sub(processId="a", types=["x-a", None]), "invalid-field"),
    (sub(processId="a", types={"x-a": 1}), "invalid-field"),
    # invalid-field: publish needs an object
    ('{"op":"publish"}', "invalid-field"),
    ('{"op":"publish","event":null}', "invalid-field"),
    ('{"op":"publish","event":"x-a"}', "invalid-field"),
    ('{"op":"publish","event":[{"type":"x-a"}]}', "invalid-field"),
    # publish runs validate_publish
    ('{"op":"publish","event":{"type":"process-output"}}', "reserved-type"),
    ('{"op":"publish","event":{"type":"bogus"}}', "invalid-type"),
    ('{"op":"publish","event":{}}', "invalid-type"),
    ('{"op":"publish","event":{"type":"task-assigned"}}', "invalid-field"),
]


@pytest.mark.parametrize(("text", "code"), BAD_MESSAGES)
def test_parse_invalid(text: str | bytes, code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(text)
    assert info.value.code == code
    assert info.value.status == 400
    assert str(info.value)


# ---------------------------------------------------------------------------
# Published events

VALID_EVENTS: list[tuple[dict[str, Any], dict[str, Any]]] = [
    (
        {"type": "task-assigned", "taskId": "t1"},
        {"type": "task-assigned", "processId": None, "taskId": "t1"},
    ),
    (
        {
            "seq": 99,
            "timestamp": "2026-01-01T00:00:00Z",
            "type": "task-assigned",
            "processId": "orchestrator",
            "taskId": "t1",
            "title": "Fix the build",
            "assignee": "builder",
            "data": {"priority": 3, "files": ["a.py"]},
        },
        {
            "type": "task-assigned",
            "processId": "orchestrator",
            "taskId": "t1",
            "title": "Fix the build",
            "assignee": "builder",
            "data": {"priority": 3, "files": ["a.py"]},
        },
    ),
    (
        {"type": "task-assigned", "taskId": "t1", "title": None, "data": None, "processId": None},
        {"type": "task-assigned", "processId": None, "taskId": "t1"},
    ),
    *(
        (
            {"type": "task-completed", "taskId": "t1", "status": status},
            {"type": "task-completed", "processId": None, "taskId": "t1", "status": status},
        )
        for status in ("success", "failure", "cancelled")
    ),
    *(
        (
            {"type": "task-completed", "taskId": "t1", "status": "success", "result": result},
            {
                "type": "task-completed",
                "processId": None,
                "taskId": "t1",
                "status": "success",
                "result": result,
            },
        )
        for result in (None, "done", 42, [1, 2], {"ok": True})
    ),
    (
        {"type": "task-completed", "taskId": "t", "status": "failure", "data": {}},
        {
            "type": "task-completed",
            "processId": None,
            "taskId": "t",
            "status": "failure",
            "data": {},
        },
    ),
    *(
        (
            {"type": "system-alert", "level": level, "message": "disk almost full"},
            {
                "type": "system-alert",
                "processId": None,
                "level": level,
                "message": "disk almost full",
            },
        )
        for level in ("info", "warning", "error")
    ),
    (
        {"type": "system-alert", "level": "warning", "message": "", "code": "idle", "seq": 1},
        {
            "type": "system-alert",
            "processId": None,
            "level": "warning",
            "message": "",
            "code": "idle",
        },
    ),
    (
        {"type": "x-tokens-used", "processId": "agent", "tokens": 1234, "nested": {"a": [None]}},
        {"type": "x-tokens-used", "processId": "agent", "tokens": 1234, "nested": {"a": [None]}},
    ),
    (
        {"type": "x-a.b:c_D-9", "timestamp": "now", "seq": "x", "title": None},
        {"type": "x-a.b:c_D-9", "processId": None, "title": None},
    ),
    ({"type": "x-1"}, {"type": "x-1", "processId": None}),
    (
        {"type": "x-" + "a" * 98, "processId": LONGEST_ID},
        {"type": "x-" + "a" * 98, "processId": LONGEST_ID},
    ),
]


@pytest.mark.parametrize(("event", "expected"), VALID_EVENTS)
def test_validate_publish_valid(event: dict[str, Any], expected: dict[str, Any]) -> None:
    before = copy.deepcopy(event)
    cleaned = validate_publish(event)
    assert cleaned == expected
    assert list(cleaned)[:2] == ["type", "processId"]
    assert event == before  # the caller's dict is left alone
    assert cleaned is not event


BAD_EVENTS: list[tuple[dict[str, Any], str]] = [
    # invalid-type
    ({}, "invalid-type"),
    ({"type": None}, "invalid-type"),
    ({"type": 1}, "invalid-type"),
    ({"type": ""}, "invalid-type"),
    ({"type": "bogus"}, "invalid-type"),
    ({"type": "task-started", "taskId": "t"}, "invalid-type"),
    ({"type": "Task-Assigned", "taskId": "t"}, "invalid-type"),
    ({"type": "X-custom"}, "invalid-type"),
    ({"type": "x-"}, "invalid-type"),
    ({"type": "x--a"}, "invalid-type"),
    ({"type": "x-a b"}, "invalid-type"),
    ({"type": "x-a\nb"}, "invalid-type"),
    ({"type": "x-" + "a" * 99}, "invalid-type"),
    ({"type": "gap"}, "invalid-type"),
    ({"type": "process"}, "invalid-type"),
    # reserved-type
    ({"type": "process-output", "output": "fake"}, "reserved-type"),
    ({"type": "process-started"}, "reserved-type"),
    ({"type": "process-stopped", "processId": "a"}, "reserved-type"),
    ({"type": "process-anything-new"}, "reserved-type"),
    # invalid-field: processId
    ({"type": "x-a", "processId": ""}, "invalid-field"),
    ({"type": "x-a", "processId": 3}, "invalid-field"),
    ({"type": "x-a", "processId": LONGEST_ID + "p"}, "invalid-field"),
    # invalid-field: task-assigned
    ({"type": "task-assigned"}, "invalid-field"),
    ({"type": "task-assigned", "taskId": ""}, "invalid-field"),
    ({"type": "task-assigned", "taskId": 1}, "invalid-field"),
    ({"type": "task-assigned", "taskId": "t", "title": 1}, "invalid-field"),
    ({"type": "task-assigned", "taskId": "t", "assignee": ["b"]}, "invalid-field"),
    ({"type": "task-assigned", "taskId": "t", "data": []}, "invalid-field"),
    ({"type": "task-assigned", "taskId": "t", "data": "x"}, "invalid-field"),
    ({"type": "task-assigned", "taskId": "t", "priority": 3}, "invalid-field"),
    ({"type": "task-assigned", "taskId": "t", "status": "success"}, "invalid-field"),
    # invalid-field: task-completed
    ({"type": "task-completed", "status": "success"}, "invalid-field"),
    ({"type": "task-completed", "taskId": "t"}, "invalid-field"),
    ({"type": "task-completed", "taskId": "t", "status": None}, "invalid-field"),
    ({"type": "task-completed", "taskId": "t", "status": "done"}, "invalid-field"),
    ({"type": "task-completed", "taskId": "t", "status": "Success"}, "invalid-field"),
    ({"type": "task-completed", "taskId": "t", "status": "success", "data": 1}, "invalid-field"),
    ({"type": "task-completed", "taskId": "t", "status": "success", "title": "x"}, "invalid-field"),
    # invalid-field: system-alert
    ({"type": "system-alert", "message": "m"}, "invalid-field"),
    ({"type": "system-alert", "level": "debug", "message": "m"}, "invalid-field"),
    ({"type": "system-alert", "level": "error"}, "invalid-field"),
    ({"type": "system-alert", "level": "error", "message": 1}, "invalid-field"),
    ({"type": "system-alert", "level": "error", "message": None}, "invalid-field"),
    ({"type": "system-alert", "level": "info", "message": "m", "code": 5}, "invalid-field"),
    ({"type": "system-alert", "level": "info", "message": "m", "data": {}}, "invalid-field"),
]


@pytest.mark.parametrize(("event", "code"), BAD_EVENTS)
def test_validate_publish_invalid(event: dict[str, Any], code: str) -> None:
    with pytest.raises(ProtocolError) as info:
        validate_publish(event)
    assert info.value.code == code
    assert info.value.status == 400
    assert str(info.value)


def test_unknown_field_message_names_the_field() -> None:
    with pytest.raises(ProtocolError, match="priority"):
        validate_publish({"type": "task-assigned", "taskId": "t", "priority": 3})


def test_error_messages_stay_short() -> None:
    with pytest.raises(ProtocolError) as info:
        parse_client_message(sub(processId="a", since="9" * 100_000))
    assert len(str(info.value)) < 200
    with pytest.raises(ProtocolError) as info:
        validate_publish({"type": "x-" + "a" * 100_000})
    assert len(str(info.value)) < 300


# ---------------------------------------------------------------------------
# Replies


def test_reply() -> None:
    assert reply({"type": "pong"}) == b'{"type":"pong"}'
    assert msgspec.json.decode(reply({"type": "subscribed", "processId": "*", "lastSeq": 3})) == {
        "type": "subscribed",
        "processId": "*",
        "lastSeq": 3,
    }


def test_error_reply() -> None:
    try:
        parse_client_message('{"op":"nope"}')
    except ProtocolError as exc:
        body = msgspec.json.decode(error_reply(exc))
    else:  # pragma: no cover
        pytest.fail("no ProtocolError")
    assert body["type"] == "error"
    assert body["code"] == "unknown-op"
    assert "nope" in body["message"]
    assert list(body) == ["type", "code", "message"]
