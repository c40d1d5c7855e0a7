"""The one publish schema (SPEC 1, 4): /ws, POST /api/events and `emit` share it."""

from __future__ import annotations

from typing import Any

import pytest

from agentwatch.cli.emit_cmd import build_event
from agentwatch.errors import ConfigError, ProtocolError
from agentwatch.proto import wsops
from agentwatch.publishable import (
    ALERT_LEVELS,
    PUBLISH_SCHEMA,
    TASK_STATUSES,
    own_fields,
    validate_publish,
)
from agentwatch.server import api


def test_one_validator() -> None:
    assert wsops.validate_publish is validate_publish
    assert vars(api)["validate_publish"] is validate_publish  # POST /api/events


def test_schema_types_and_fields() -> None:
    assert list(PUBLISH_SCHEMA) == ["task-assigned", "task-completed", "system-alert"]
    assert own_fields("task-completed") == {"taskId", "status", "result", "data"}
    assert own_fields("x-anything") == frozenset()
    assert TASK_STATUSES == ("success", "failure", "cancelled")
    assert ALERT_LEVELS == ("info", "warning", "error")


@pytest.mark.parametrize(
    ("type_", "options"),
    [
        ("task-assigned", {"task": "t", "title": "parse", "assignee": "me", "data": '{"a": 1}'}),
        ("task-completed", {"task": "t", "status": "success", "result": '{"n": 2}'}),
        ("system-alert", {"level": "warning", "message": ["slow"], "code": "rate"}),
        ("x-tokens", {"data": '{"input": 3}', "message": ["hello"]}),
    ],
)
def test_what_emit_builds_the_server_accepts(type_: str, options: dict[str, Any]) -> None:
    event = build_event(type_, process="p", **options)
    assert validate_publish(dict(event)) == event


@pytest.mark.parametrize(
    ("type_", "options", "refused"),
    [
        (
            "task-assigned",
            {"task": "t", "status": "success", "message": ["m"]},
            "--status, a MESSAGE",
        ),
        ("task-completed", {"task": "t", "status": "success", "title": "x"}, "--title"),
        ("system-alert", {"level": "info", "message": ["m"], "data": "{}"}, "--data"),
        ("x-y", {"task": "t", "code": "c"}, "--task, --code"),
    ],
)
def test_emit_refuses_what_the_schema_does_not_take(
    type_: str, options: dict[str, Any], refused: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{type_} does not take {refused}$"):
        build_event(type_, **options)


def test_reserved_and_unknown_types() -> None:
    with pytest.raises(ProtocolError) as exc:
        validate_publish({"type": "process-output"})
    assert exc.value.code == "reserved-type"
    with pytest.raises(ConfigError, match="use task-assigned, task-completed, system-alert or"):
        build_event("tasks")
