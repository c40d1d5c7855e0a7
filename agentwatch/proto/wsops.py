"""The native WebSocket protocol's client messages (SPEC 4.1), sans-IO.

:func:`parse_client_message` turns one text frame into a :class:`Subscribe`,
:class:`Unsubscribe`, :class:`Publish` or :class:`Ping`, or raises
:class:`~agentwatch.errors.ProtocolError` whose ``code`` is one of:

    invalid-json    not JSON, or not a JSON object
    unknown-op      ``op`` missing, not a string, or not a known operation
    invalid-field   a field has the wrong type or value
    invalid-type    a published event's ``type`` is missing or not allowed
    reserved-type   a published event's ``type`` is a ``process-*`` type

:func:`validate_publish` checks a published event, for ``/ws`` and for
``POST /api/events`` alike. Unknown keys of a message (besides ``op``) are
ignored, so clients may send newer fields; unknown keys of a published
event are refused, except for ``x-*`` types, which carry anything.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from agentwatch.errors import ProtocolError

__all__ = [
    "MAX_PROCESS_ID_CHARS",
    "ClientMessage",
    "Ping",
    "Publish",
    "Subscribe",
    "Unsubscribe",
    "error_reply",
    "parse_client_message",
    "reply",
    "validate_publish",
]

# Process ids name log files and rooms and appear in every event: keep them short.
MAX_PROCESS_ID_CHARS = 200

# Custom type names become SSE ``event:`` lines and Socket.IO event names, so
# they are one short token (at most 100 characters): no spaces, no line breaks.
_CUSTOM_TYPE = re.compile(r"x-[A-Za-z0-9][A-Za-z0-9_.:-]{0,97}")

# Fields the server assigns (a publisher's values are dropped), and the two
# common fields validate_publish handles itself.
_SERVER_FIELDS = frozenset({"seq", "timestamp"})
_COMMON_FIELDS = _SERVER_FIELDS | {"type", "processId"}


@dataclass(frozen=True, slots=True)
class Subscribe:
    """``{"op":"subscribe"}``: ``process_id`` may be ``"*"`` for every process.

    ``since`` (exclusive seq) and ``tail`` (last N events) select history;
    ``types`` restricts event types (None: all types).
    """

    process_id: str
    since: int | None = None
    tail: int | None = None
    types: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Unsubscribe:
    """``{"op":"unsubscribe"}``: stop a subscription made with the same id."""

    process_id: str


@dataclass(frozen=True, slots=True)
class Publish:
    """``{"op":"publish"}``: ``event`` is already checked by validate_publish."""

    event: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Ping:
    """``{"op":"ping"}``: the server answers ``{"type":"pong"}``."""


ClientMessage = Subscribe | Unsubscribe | Publish | Ping


def _show(value: object) -> str:
    """A peer's value for an error message, cut short: replies stay small."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _invalid(message: str, code: str = "invalid-field") -> ProtocolError:
    return ProtocolError(message, status=400, code=code)


# ---------------------------------------------------------------------------
# Field checks


def _process_id(value: object) -> str:
    if not isinstance(value, str) or not value or len(value) > MAX_PROCESS_ID_CHARS:
        raise _invalid(
            f"processId must be a non-empty string of at most {MAX_PROCESS_ID_CHARS} characters"
        )
    return value


def _count(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _invalid(f"{key} must be a non-negative integer, not {_show(value)}")
    return value


def _types(obj: dict[str, Any]) -> tuple[str, ...] | None:
    value = obj.get("types")
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise _invalid("types must be a non-empty list of strings (omit it for every type)")
    return tuple(value)


# ---------------------------------------------------------------------------
# Client messages


def _subscribe(obj: dict[str, Any]) -> Subscribe:
    process_id = _process_id(obj.get("processId"))
    return Subscribe(process_id, _count(obj, "since"), _count(obj, "tail"), _types(obj))


def _unsubscribe(obj: dict[str, Any]) -> Unsubscribe:
    return Unsubscribe(_process_id(obj.get("processId")))


def _publish(obj: dict[str, Any]) -> Publish:
    event = obj.get("event")
    if not isinstance(event, dict):
        raise _invalid("event must be a JSON object")
    return Publish(validate_publish(event))


def _ping(obj: dict[str, Any]) -> Ping:
    return Ping()


_OPS: dict[str, Callable[[dict[str, Any]], ClientMessage]] = {
    "subscribe": _subscribe,
    "unsubscribe": _unsubscribe,
    "publish": _publish,
    "ping": _ping,
}


def parse_client_message(text: str | bytes) -> ClientMessage:
    """Parse one client frame; raise ProtocolError (status 400) if it is bad.

    A publish's event is passed through :func:`validate_publish`, so
    ``Publish.event`` is ready to hand to the hub.
    """
    try:
        obj = msgspec.json.decode(text)
    except (msgspec.DecodeError, UnicodeError) as exc:
        raise _invalid(f"message is not valid JSON: {exc}", "invalid-json") from None
    if not isinstance(obj, dict):
        raise _invalid("message must be a JSON object", "invalid-json")
    op = obj.get("op")
    handler = _OPS.get(op) if isinstance(op, str) else None
    if handler is None:
        what = "message needs an 'op'" if op is None else f"unknown op {_show(op)}"
        raise _invalid(f"{what} (one of: {', '.join(_OPS)})", "unknown-op")
    return handler(obj)


# ---------------------------------------------------------------------------
# Published events


def _string(event: dict[str, Any], key: str, *, choices: tuple[str, ...] = ()) -> str:
    value = event.get(key)
    if not isinstance(value, str) or not value:
        raise _invalid(f"{key} must be a non-empty string, not {_show(value)}")
    if choices and value not in choices:
        raise _invalid(f"{key} must be one of {', '.join(choices)}, not {_show(value)}")
    return value


def _optional(event: dict[str, Any], key: str, kind: type) -> None:
    if key in event and event[key] is None:
        del event[key]
    elif key in event and not isinstance(event[key], kind):
        what = "an object" if kind is dict else "a string"
        raise _invalid(f"{key} must be {what}, not {_show(event[key])}")


def _task_assigned(event: dict[str, Any]) -> None:
    _string(event, "taskId")
    _optional(event, "title", str)
    _optional(event, "assignee", str)
    _optional(event, "data", dict)


def _task_completed(event: dict[str, Any]) -> None:
    _string(event, "taskId")
    _string(event, "status", choices=("success", "failure", "cancelled"))
    _optional(event, "data", dict)


def _system_alert(event: dict[str, Any]) -> None:
    _string(event, "level", choices=("info", "warning", "error"))
    if not isinstance(event.get("message"), str):
        raise _invalid(f"message must be a string, not {_show(event.get('message'))}")
    _optional(event, "code", str)


# type -> (check, allowed own fields)
_PUBLISHABLE: dict[str, tuple[Callable[[dict[str, Any]], None], frozenset[str]]] = {
    "task-assigned": (_task_assigned, frozenset({"taskId", "title", "assignee", "data"})),
    "task-completed": (_task_completed, frozenset({"taskId", "status", "result", "data"})),
    "system-alert": (_system_alert, frozenset({"level", "message", "code"})),
}


def validate_publish(event: dict[str, Any]) -> dict[str, Any]:
    """Check an event a client publishes; return a new, cleaned dict.

    The result keeps ``type`` first, then ``processId`` (None if absent),
    then the type's own fields. ``seq`` and ``timestamp`` are dropped: the
    server assigns them. Optional string/object fields given as null are
    dropped; ``result`` is kept as given. Raises ProtocolError with code
    ``invalid-type``, ``reserved-type`` or ``invalid-field``.
    """
    kind = event.get("type")
    if not isinstance(kind, str) or not kind:
        raise _invalid("event needs a string 'type'", "invalid-type")
    if kind.startswith("process-"):
        raise _invalid(f"{_show(kind)} is reserved to the supervisor", "reserved-type")
    process_id = event.get("processId")
    if process_id is not None:
        process_id = _process_id(process_id)
    own = {k: v for k, v in event.items() if k not in _COMMON_FIELDS}
    if kind in _PUBLISHABLE:
        check, allowed = _PUBLISHABLE[kind]
        extra = sorted(set(own) - allowed)
        if extra:
            hint = " (put extra data under 'data')" if "data" in allowed else ""
            raise _invalid(f"unknown field(s) for {kind}: {_show(', '.join(extra))}{hint}")
        check(own)
    elif not _CUSTOM_TYPE.fullmatch(kind):
        raise _invalid(
            f"cannot publish type {_show(kind)}: use task-assigned, task-completed, "
            "system-alert or a custom x-name (letters, digits, '_', '.', ':', '-')",
            "invalid-type",
        )
    return {"type": kind, "processId": process_id, **own}


# ---------------------------------------------------------------------------
# Replies


def reply(obj: dict[str, Any]) -> bytes:
    """Encode a server reply (``{"type":"pong"}``, ...) as JSON bytes."""
    return msgspec.json.encode(obj)


def error_reply(exc: ProtocolError) -> bytes:
    """Encode ``{"type":"error","code":..,"message":..}`` for a bad message."""
    return msgspec.json.encode({"type": "error", "code": exc.code, "message": str(exc)})
