"""Socket.IO v5 packets (sans-IO), as https://socket.io/docs/v4/socket-io-protocol/ encodes them.

Format: ``<type>[<attachments>-][<namespace>,][<ack id>][<JSON payload>]``,
the namespace only when it is not ``/``. Examples: ``2["hello",1]``,
``0/admin,{"token":"x"}``, ``3/admin,13["bar"]``, ``212["foo"]``.

Every Socket.IO packet travels inside an Engine.IO MESSAGE packet, so the
full frame on the wire (a WebSocket text frame, or one item of a polling
body) is ``4`` + the Socket.IO packet: ``42["hello",1]``. The ``*_frame``
helpers build that full text frame; the others build the Socket.IO packet.

Binary attachments (BINARY_EVENT ``5``, BINARY_ACK ``6``) are refused:
:func:`decode` raises ProtocolError (code ``unsupported-binary``) rather than
wait for attachment frames. agentwatch's client events carry only JSON, and
a refusal is explicit where half-support would lose data silently.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import msgspec

from agentwatch.errors import ProtocolError

PROTOCOL_VERSION = 5
ENGINE_MESSAGE_PREFIX = b"4"  # the Engine.IO MESSAGE type before every Socket.IO packet
MAX_ACK_ID = 2**53 - 1  # JavaScript's largest safe integer: ack ids are JS numbers

# Event names the JavaScript implementation reserves; never valid in an EVENT.
RESERVED_EVENTS = frozenset(
    {"connect", "connect_error", "disconnect", "disconnecting", "newListener", "removeListener"}
)


class PacketType(enum.IntEnum):
    """Socket.IO v5 packet types; the value is the digit on the wire."""

    CONNECT = 0
    DISCONNECT = 1
    EVENT = 2
    ACK = 3
    CONNECT_ERROR = 4
    BINARY_EVENT = 5
    BINARY_ACK = 6


@dataclass(frozen=True, slots=True)
class SocketPacket:
    """One Socket.IO packet; ``data`` is the decoded JSON payload, ``id`` the ack id."""

    type: PacketType
    namespace: str = "/"
    data: Any = None
    id: int | None = None


_encode_json = msgspec.json.encode


def encode(packet: SocketPacket) -> str:
    """Encode a packet as its Socket.IO string (without the Engine.IO ``4``)."""
    if packet.type in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
        raise ValueError("binary Socket.IO packets are not supported")
    namespace = packet.namespace
    if not namespace.startswith("/") or "," in namespace:
        raise ValueError(f"invalid Socket.IO namespace {namespace!r}")
    parts = [str(int(packet.type))]
    if namespace != "/":
        parts.append(namespace + ",")
    if packet.id is not None:
        if not 0 <= packet.id <= MAX_ACK_ID:
            raise ValueError("a Socket.IO ack id is an integer in 0..2**53-1")
        parts.append(str(packet.id))
    if packet.data is not None:
        parts.append(_encode_json(packet.data).decode())
    return "".join(parts)


def decode(raw: str | bytes) -> SocketPacket:
    """Decode one Socket.IO packet; anything malformed raises ProtocolError.

    ``bytes`` (a binary Engine.IO message, i.e. an attachment) are refused.
    """
    if not isinstance(raw, str):
        raise ProtocolError(
            "binary Socket.IO attachments are not supported", code="unsupported-binary"
        )
    if not raw:
        raise ProtocolError("empty Socket.IO packet")
    head = raw[0]
    if not "0" <= head <= "6":
        raise ProtocolError(f"unknown Socket.IO packet type {head!r}")
    kind = PacketType(ord(head) - 48)
    if kind in (PacketType.BINARY_EVENT, PacketType.BINARY_ACK):
        raise ProtocolError("binary Socket.IO packets are not supported", code="unsupported-binary")
    end = len(raw)
    i = 1
    namespace = "/"
    if i < end and raw[i] == "/":
        comma = raw.find(",", i)
        stop = end if comma < 0 else comma
        namespace = raw[i:stop]
        i = stop + 1 if comma >= 0 else end
    start = i
    while i < end and "0" <= raw[i] <= "9":
        i += 1
    ack_id = None
    if i > start:
        ack_id = int(raw[start:i]) if i - start <= 16 else MAX_ACK_ID + 1
        if ack_id > MAX_ACK_ID:
            raise ProtocolError("Socket.IO ack id too large")
    data = _decode_json(raw[i:]) if i < end else None
    _check_payload(kind, data, ack_id)
    return SocketPacket(kind, namespace, data, ack_id)


def _decode_json(text: str) -> Any:
    try:
        return msgspec.json.decode(text)
    except (msgspec.DecodeError, RecursionError, UnicodeError):
        raise ProtocolError("invalid JSON in Socket.IO packet") from None


def _check_payload(kind: PacketType, data: Any, ack_id: int | None) -> None:
    """Apply the v5 rules on each type's payload (those of socket.io-parser, plus ack ids)."""
    if kind is PacketType.CONNECT:
        ok = data is None or isinstance(data, dict)
    elif kind is PacketType.DISCONNECT:
        ok = data is None
    elif kind is PacketType.CONNECT_ERROR:
        ok = isinstance(data, str | dict)
    elif kind is PacketType.EVENT:
        ok = isinstance(data, list) and bool(data) and _valid_event_name(data[0])
    else:  # ACK
        if ack_id is None:
            raise ProtocolError("Socket.IO ACK packet without an ack id")
        ok = isinstance(data, list)
    if not ok:
        raise ProtocolError(f"invalid payload for a Socket.IO {kind.name} packet")


def _valid_event_name(name: Any) -> bool:
    if isinstance(name, str):
        return name not in RESERVED_EVENTS
    return isinstance(name, int | float) and not isinstance(name, bool)


# -- helpers for the server --------------------------------------------------


def connect_ok(sid: str, namespace: str = "/") -> str:
    """CONNECT answer granting a namespace: ``0{"sid":"..."}``."""
    return encode(SocketPacket(PacketType.CONNECT, namespace, {"sid": sid}))


def connect_error(message: str, namespace: str = "/") -> str:
    """CONNECT_ERROR refusing a namespace: ``4{"message":"..."}``."""
    return encode(SocketPacket(PacketType.CONNECT_ERROR, namespace, {"message": message}))


def event(name: str, *args: Any, namespace: str = "/") -> str:
    """An EVENT packet: ``2["name",arg,...]``."""
    return encode(SocketPacket(PacketType.EVENT, namespace, [name, *args]))


def ack(ack_id: int, *args: Any, namespace: str = "/") -> str:
    """An ACK answering ``ack_id``: ``3<id>[arg,...]``."""
    return encode(SocketPacket(PacketType.ACK, namespace, list(args), ack_id))


@lru_cache(maxsize=256)
def _event_head(name: str) -> bytes:
    """``2["name",`` for an event name; a few names (event types) repeat forever."""
    return b"2[" + _encode_json(name) + b","


def event_from_json(name: str, arg_json: bytes) -> bytes:
    """``2["name",<arg_json>]`` from an argument already encoded as JSON, not re-encoded.

    Events are encoded to JSON once, for the journal; transports only frame
    them. The namespace is ``/``. The full Engine.IO frame is
    ``ENGINE_MESSAGE_PREFIX`` + this, or :func:`event_frame_from_json`.
    """
    return _event_head(name) + arg_json + b"]"


def event_frame_from_json(name: str, arg_json: bytes) -> str:
    """The whole Engine.IO text frame ``42["name",<arg_json>]``, ready for a WebSocket or poll."""
    return (ENGINE_MESSAGE_PREFIX + _event_head(name) + arg_json + b"]").decode()
