"""The native WebSocket protocol's client messages (SPEC 4.1), sans-IO.

:func:`parse_client_message` turns one text frame into a :class:`Subscribe`,
:class:`Unsubscribe`, :class:`Publish` or :class:`Ping`, or raises
:class:`~agentwatch.errors.ProtocolError` whose ``code`` is one of:

    invalid-json    not JSON, or not a JSON object
    unknown-op      ``op`` missing, not a string, or not a known operation
    invalid-field   a field has the wrong type or value
    invalid-type    a published event's ``type`` is missing or not allowed
    reserved-type   a published event's ``type`` is a ``process-*`` type

:func:`~agentwatch.publishable.validate_publish` (re-exported here) checks a
published event against the one publish schema, for ``/ws`` and for
``POST /api/events`` alike. Unknown keys of a message (besides ``op``) are
ignored, so clients may send newer fields; unknown keys of a published
event are refused, except for ``x-*`` types, which carry anything.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgspec

from agentwatch.errors import ProtocolError
from agentwatch.publishable import (
    MAX_PROCESS_ID_CHARS,
    check_process_id,
    invalid,
    show,
    validate_publish,
)

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


# ---------------------------------------------------------------------------
# Field checks


def _count(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise invalid(f"{key} must be a non-negative integer, not {show(value)}")
    return value


def _types(obj: dict[str, Any]) -> tuple[str, ...] | None:
    value = obj.get("types")
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(t, str) for t in value):
        raise invalid("types must be a non-empty list of strings (omit it for every type)")
    return tuple(value)


# ---------------------------------------------------------------------------
# Client messages


def _subscribe(obj: dict[str, Any]) -> Subscribe:
    process_id = check_process_id(obj.get("processId"))
    return Subscribe(process_id, _count(obj, "since"), _count(obj, "tail"), _types(obj))


def _unsubscribe(obj: dict[str, Any]) -> Unsubscribe:
    return Unsubscribe(check_process_id(obj.get("processId")))


def _publish(obj: dict[str, Any]) -> Publish:
    event = obj.get("event")
    if not isinstance(event, dict):
        raise invalid("event must be a JSON object")
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
        raise invalid(f"message is not valid JSON: {exc}", "invalid-json") from None
    if not isinstance(obj, dict):
        raise invalid("message must be a JSON object", "invalid-json")
    op = obj.get("op")
    handler = _OPS.get(op) if isinstance(op, str) else None
    if handler is None:
        what = "message needs an 'op'" if op is None else f"unknown op {show(op)}"
        raise invalid(f"{what} (one of: {', '.join(_OPS)})", "unknown-op")
    return handler(obj)


# ---------------------------------------------------------------------------
# Replies


def reply(obj: dict[str, Any]) -> bytes:
    """Encode a server reply (``{"type":"pong"}``, ...) as JSON bytes."""
    return msgspec.json.encode(obj)


def error_reply(exc: ProtocolError) -> bytes:
    """Encode ``{"type":"error","code":..,"message":..}`` for a bad message."""
    return msgspec.json.encode({"type": "error", "code": exc.code, "message": str(exc)})
