"""The events a client may publish (SPEC 1, 4), defined once; pure, no I/O.

`PUBLISH_SCHEMA` says which types may be published and what fields each
carries: ``task-assigned``, ``task-completed`` and ``system-alert`` with
their own fields, and custom ``x-*`` types, which carry anything.
``process-*`` types are reserved to the supervisor. :func:`validate_publish`
checks an event against it, for ``/ws`` ``publish`` and ``POST /api/events``
alike, and raises :class:`~agentwatch.errors.ProtocolError` (status 400)
whose ``code`` is one of:

    invalid-field   a field has the wrong type or value
    invalid-type    the ``type`` is missing or not allowed
    reserved-type   the ``type`` is a ``process-*`` type

`agentwatch emit` builds its events from the same schema.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any, Final

from agentwatch.errors import ProtocolError
from agentwatch.events import SYSTEM_ALERT, TASK_ASSIGNED, TASK_COMPLETED

__all__ = [
    "ALERT_LEVELS",
    "COMMON_FIELDS",
    "CUSTOM_PREFIX",
    "MAX_PROCESS_ID_CHARS",
    "PUBLISH_SCHEMA",
    "RESERVED_PREFIX",
    "TASK_STATUSES",
    "Field",
    "FieldKind",
    "check_process_id",
    "invalid",
    "own_fields",
    "show",
    "validate_publish",
]

# Process ids name log files and rooms and appear in every event: keep them short.
MAX_PROCESS_ID_CHARS: Final = 200

TASK_STATUSES: Final = ("success", "failure", "cancelled")
ALERT_LEVELS: Final = ("info", "warning", "error")
RESERVED_PREFIX: Final = "process-"  # the supervisor's own types
CUSTOM_PREFIX: Final = "x-"

# Custom type names become SSE ``event:`` lines and Socket.IO event names, so
# they are one short token (at most 100 characters): no spaces, no line breaks.
_CUSTOM_TYPE: Final = re.compile(r"x-[A-Za-z0-9][A-Za-z0-9_.:-]{0,97}")

# Fields the server assigns (a publisher's values are dropped), and the two
# common fields validate_publish handles itself.
SERVER_FIELDS: Final = frozenset({"seq", "timestamp"})
COMMON_FIELDS: Final = SERVER_FIELDS | {"type", "processId"}


class FieldKind(enum.Enum):
    """What a published event's own field may hold."""

    TEXT = "text"  # required, a non-empty string (one of ``choices`` if given)
    STRING = "string"  # required, a string, may be empty
    OPTIONAL_TEXT = "optional-text"  # a string; null is dropped
    OPTIONAL_OBJECT = "optional-object"  # a JSON object; null is dropped
    ANY = "any"  # any JSON value, kept as given


@dataclass(frozen=True, slots=True)
class Field:
    """One own field of a publishable type, checked in schema order."""

    name: str
    kind: FieldKind
    choices: tuple[str, ...] = ()


PUBLISH_SCHEMA: Final[dict[str, tuple[Field, ...]]] = {
    TASK_ASSIGNED: (
        Field("taskId", FieldKind.TEXT),
        Field("title", FieldKind.OPTIONAL_TEXT),
        Field("assignee", FieldKind.OPTIONAL_TEXT),
        Field("data", FieldKind.OPTIONAL_OBJECT),
    ),
    TASK_COMPLETED: (
        Field("taskId", FieldKind.TEXT),
        Field("status", FieldKind.TEXT, TASK_STATUSES),
        Field("result", FieldKind.ANY),
        Field("data", FieldKind.OPTIONAL_OBJECT),
    ),
    SYSTEM_ALERT: (
        Field("level", FieldKind.TEXT, ALERT_LEVELS),
        Field("message", FieldKind.STRING),
        Field("code", FieldKind.OPTIONAL_TEXT),
    ),
}


def own_fields(type_: str) -> frozenset[str]:
    """The own fields a schema type may carry (empty for any other type)."""
    return frozenset(f.name for f in PUBLISH_SCHEMA.get(type_, ()))


def show(value: object) -> str:
    """A peer's value for an error message, cut short: replies stay small."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def invalid(message: str, code: str = "invalid-field") -> ProtocolError:
    """The ProtocolError (status 400) for a bad message or event."""
    return ProtocolError(message, status=400, code=code)


def check_process_id(value: object) -> str:
    """A ``processId`` given by a peer: a non-empty, short string."""
    if not isinstance(value, str) or not value or len(value) > MAX_PROCESS_ID_CHARS:
        raise invalid(
            f"processId must be a non-empty string of at most {MAX_PROCESS_ID_CHARS} characters"
        )
    return value


def _check(event: dict[str, Any], spec: Field) -> None:
    key, value = spec.name, event.get(spec.name)
    if spec.kind is FieldKind.TEXT:
        if not isinstance(value, str) or not value:
            raise invalid(f"{key} must be a non-empty string, not {show(value)}")
        if spec.choices and value not in spec.choices:
            raise invalid(f"{key} must be one of {', '.join(spec.choices)}, not {show(value)}")
    elif spec.kind is FieldKind.STRING:
        if not isinstance(value, str):
            raise invalid(f"{key} must be a string, not {show(value)}")
    elif spec.kind is not FieldKind.ANY and key in event:
        kind = dict if spec.kind is FieldKind.OPTIONAL_OBJECT else str
        if value is None:
            del event[key]
        elif not isinstance(value, kind):
            what = "an object" if kind is dict else "a string"
            raise invalid(f"{key} must be {what}, not {show(value)}")


def validate_publish(event: dict[str, Any]) -> dict[str, Any]:
    """Check an event a client publishes; return a new, cleaned dict.

    The result keeps ``type`` first, then ``processId`` (None if absent),
    then the type's own fields. ``seq`` and ``timestamp`` are dropped: the
    server assigns them. Optional string/object fields given as null are
    dropped; ``result`` is kept as given. Unknown fields are refused, except
    for ``x-*`` types. Raises ProtocolError with code ``invalid-type``,
    ``reserved-type`` or ``invalid-field``.
    """
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        raise invalid("event needs a string 'type'", "invalid-type")
    if kind.startswith(RESERVED_PREFIX):
        raise invalid(f"{show(kind)} is reserved to the supervisor", "reserved-type")
    process_id = event.get("processId")
    if process_id is not None:
        process_id = check_process_id(process_id)
    own = {k: v for k, v in event.items() if k not in COMMON_FIELDS}
    if kind in PUBLISH_SCHEMA:
        allowed = own_fields(kind)
        extra = sorted(set(own) - allowed)
        if extra:
            hint = " (put extra data under 'data')" if "data" in allowed else ""
            raise invalid(f"unknown field(s) for {kind}: {show(', '.join(extra))}{hint}")
        for spec in PUBLISH_SCHEMA[kind]:
            _check(own, spec)
    elif not _CUSTOM_TYPE.fullmatch(kind):
        raise invalid(
            f"cannot publish type {show(kind)}: use {', '.join(PUBLISH_SCHEMA)} "
            "or a custom x-name (letters, digits, '_', '.', ':', '-')",
            "invalid-type",
        )
    return {"type": kind, "processId": process_id, **own}
