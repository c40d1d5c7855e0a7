"""Engine.IO v4 packets, payloads, handshake query and session state (sans-IO).

Wire format (https://socket.io/docs/v4/engine-io-protocol/): a packet is one
type digit and optional data, ``4hello``. Over HTTP long-polling several
packets travel in one body separated by the record separator ``\\x1e``, and a
binary message is ``b`` + base64. Over WebSocket each packet is one frame and
a binary message is a binary frame holding the raw bytes (type implied).

Nothing here reads a clock, a socket or a file: :class:`EngineSession` takes
``now`` (trio's clock, in seconds) and returns what to send.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import parse_qsl

import msgspec

from agentwatch.errors import ProtocolError

PROTOCOL_VERSION = 4
SEPARATOR = "\x1e"  # ASCII record separator between packets of a polling payload
PING_INTERVAL_MS = 25_000  # server pings this often (SPEC 4.3)
PING_TIMEOUT_MS = 20_000  # the client must pong within this, or the session dies
MAX_PAYLOAD_BYTES = 1_000_000  # largest polling body either side should build


class PacketType(enum.IntEnum):
    """Engine.IO packet types; the value is the digit on the wire."""

    OPEN = 0
    CLOSE = 1
    PING = 2
    PONG = 3
    MESSAGE = 4
    UPGRADE = 5
    NOOP = 6


class Transport(enum.Enum):
    """The two transports of Engine.IO v4."""

    POLLING = "polling"
    WEBSOCKET = "websocket"


class ErrorCode(enum.IntEnum):
    """The ``code`` of an Engine.IO HTTP error body, as the engine.io server sends it."""

    UNKNOWN_TRANSPORT = 0
    UNKNOWN_SID = 1
    BAD_HANDSHAKE_METHOD = 2
    BAD_REQUEST = 3
    FORBIDDEN = 4
    UNSUPPORTED_PROTOCOL_VERSION = 5


_ERROR_NAMES = {code: code.name.lower().replace("_", "-") for code in ErrorCode}
_ERROR_BY_NAME = {name: code for code, name in _ERROR_NAMES.items()}
_ERROR_MESSAGES = {
    ErrorCode.UNKNOWN_TRANSPORT: "Transport unknown",
    ErrorCode.UNKNOWN_SID: "Session ID unknown",
    ErrorCode.BAD_HANDSHAKE_METHOD: "Bad handshake method",
    ErrorCode.BAD_REQUEST: "Bad request",
    ErrorCode.FORBIDDEN: "Forbidden",
    ErrorCode.UNSUPPORTED_PROTOCOL_VERSION: "Unsupported protocol version",
}


@dataclass(frozen=True, slots=True)
class EnginePacket:
    """One Engine.IO packet; ``bytes`` data is a binary message."""

    type: PacketType
    data: str | bytes | None = None


def engine_error(code: ErrorCode, message: str | None = None) -> ProtocolError:
    """A ProtocolError carrying an Engine.IO error ``code`` (status 403 for FORBIDDEN)."""
    status = 403 if code is ErrorCode.FORBIDDEN else 400
    return ProtocolError(message or _ERROR_MESSAGES[code], status=status, code=_ERROR_NAMES[code])


def http_error_body(code: int, message: str) -> bytes:
    """The JSON body engine.io answers errors with: ``{"code":N,"message":"..."}``."""
    return msgspec.json.encode({"code": int(code), "message": message})


def error_body(error: ProtocolError) -> bytes:
    """:func:`http_error_body` for a ProtocolError; unknown codes map to BAD_REQUEST (3)."""
    code = _ERROR_BY_NAME.get(error.code, ErrorCode.BAD_REQUEST)
    return http_error_body(code, str(error))


# -- packets -----------------------------------------------------------------


def encode_packet(packet: EnginePacket) -> str:
    """Encode for a polling payload: text as is, binary as ``b`` + base64."""
    data = packet.data
    if isinstance(data, bytes):
        if packet.type is not PacketType.MESSAGE:
            raise ValueError("only MESSAGE packets can carry binary data")
        return "b" + base64.b64encode(data).decode("ascii")
    return str(int(packet.type)) if data is None else f"{int(packet.type)}{data}"


def encode_ws(packet: EnginePacket) -> str | bytes:
    """Encode as one WebSocket frame: a text frame, or the raw bytes of a binary message."""
    if isinstance(packet.data, bytes):
        if packet.type is not PacketType.MESSAGE:
            raise ValueError("only MESSAGE packets can carry binary data")
        return packet.data
    return encode_packet(packet)


def decode_packet(raw: str | bytes) -> EnginePacket:
    """Decode one packet: a text frame or polling item, or a binary WebSocket frame."""
    if isinstance(raw, bytes):
        return EnginePacket(PacketType.MESSAGE, raw)
    if not raw:
        raise ProtocolError("empty Engine.IO packet")
    head = raw[0]
    if head == "b":
        try:
            return EnginePacket(PacketType.MESSAGE, base64.b64decode(raw[1:], validate=True))
        except (binascii.Error, ValueError):
            raise ProtocolError("invalid base64 in Engine.IO binary packet") from None
    if not "0" <= head <= "6":
        raise ProtocolError(f"unknown Engine.IO packet type {head!r}")
    return EnginePacket(PacketType(ord(head) - 48), raw[1:] or None)


def encode_payload(packets: Iterable[EnginePacket]) -> str:
    """Join packets into one polling body, separated by ``\\x1e``."""
    parts = [encode_packet(p) for p in packets]
    if not parts:
        raise ValueError("an Engine.IO payload holds at least one packet")
    if any(SEPARATOR in p for p in parts):
        raise ValueError("a text packet in a payload must not contain \\x1e")
    return SEPARATOR.join(parts)


def decode_payload(body: str | bytes) -> list[EnginePacket]:
    """Split a polling body (``bytes`` are UTF-8 text) into packets."""
    if isinstance(body, bytes):
        try:
            body = body.decode("utf-8")
        except UnicodeDecodeError:
            raise ProtocolError("Engine.IO payload is not valid UTF-8") from None
    return [decode_packet(item) for item in body.split(SEPARATOR)]


def open_packet(
    sid: str,
    upgrades: Sequence[str],
    ping_interval: int = PING_INTERVAL_MS,
    ping_timeout: int = PING_TIMEOUT_MS,
    max_payload: int = MAX_PAYLOAD_BYTES,
) -> EnginePacket:
    """The handshake OPEN packet; times are milliseconds, as on the wire."""
    handshake = {
        "sid": sid,
        "upgrades": list(upgrades),
        "pingInterval": ping_interval,
        "pingTimeout": ping_timeout,
        "maxPayload": max_payload,
    }
    return EnginePacket(PacketType.OPEN, msgspec.json.encode(handshake).decode())


# -- handshake query ---------------------------------------------------------


@dataclass(frozen=True, slots=True)
class EngineQuery:
    """The validated query of a ``/socket.io/`` request; ``params`` keeps every key."""

    transport: Transport
    sid: str | None
    params: dict[str, str] = field(default_factory=dict)


def parse_query(query_string: str) -> EngineQuery:
    """Validate ``EIO``, ``transport`` and ``sid``; raise ProtocolError as engine.io would."""
    params: dict[str, str] = {}
    for key, value in parse_qsl(query_string, keep_blank_values=True):
        params.setdefault(key, value)
    eio = params.get("EIO")
    if eio != "4":
        if eio is not None and eio.isdigit() and int(eio) < PROTOCOL_VERSION:
            message = f"Engine.IO v{int(eio)} is not supported, use socket.io-client v3+/v4 (EIO=4)"
        else:
            message = "Unsupported protocol version: EIO=4 is required"
        raise engine_error(ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, message)
    try:
        transport = Transport(params.get("transport", ""))
    except ValueError:
        raise engine_error(ErrorCode.UNKNOWN_TRANSPORT) from None
    if "j" in params:
        raise engine_error(ErrorCode.BAD_REQUEST, "JSONP polling is not supported")
    sid = params.get("sid")
    if sid == "":
        raise engine_error(ErrorCode.UNKNOWN_SID)
    return EngineQuery(transport, sid, params)


# -- session -----------------------------------------------------------------


class UpgradeState(enum.Enum):
    """Where a polling session stands in the polling -> WebSocket upgrade."""

    NONE = "none"  # no upgrade under way
    PROBING = "probing"  # a WebSocket joined the session; waiting for its ``2probe``
    PROBED = "probed"  # ``3probe`` sent; polling is paused (GETs get NOOP) until ``5``


@dataclass(frozen=True, slots=True)
class Inbound:
    """What one received packet means for the server (see :meth:`EngineSession.receive`)."""

    message: str | bytes | None = None  # a MESSAGE's data, for the Socket.IO layer
    reply: str | None = None  # write at once on the transport the packet came from
    upgraded: bool = False  # the session now runs on the WebSocket: flush drain_for_ws()
    closed: bool = False  # the client closed the session


_NOTHING = Inbound()
_PING_FRAME = "2"
_CLOSE_FRAME = "1"
_NOOP_FRAME = "6"


def _frame_size(frame: str | bytes) -> int:
    """Bytes a queued frame takes in a polling body (binary goes as ``b`` + base64)."""
    if isinstance(frame, bytes):
        return 1 + 4 * ((len(frame) + 2) // 3)
    return len(frame) if frame.isascii() else len(frame.encode())


class EngineSession:
    """The state of one Engine.IO session, with no I/O and no clock of its own.

    The constructor queues the OPEN packet, so the first drain answers the
    handshake. The server then feeds it what arrives (:meth:`receive`,
    :meth:`begin_get`, :meth:`begin_post`, :meth:`begin_upgrade`), queues what
    to send (:meth:`send`, :meth:`send_text`), and writes what it drains:
    :meth:`drain_for_poll` for a pending GET once :attr:`poll_ready`, or
    :meth:`drain_for_ws` on the WebSocket. Timers: call :meth:`ping_if_due`
    and :meth:`is_timed_out` at :attr:`next_timer`. A closed session queues
    nothing more; answer its pending GET (or flush its WebSocket), then forget it.
    """

    def __init__(
        self,
        sid: str,
        transport: Transport,
        now: float,
        *,
        upgrades: Sequence[str] | None = None,
        ping_interval_ms: int = PING_INTERVAL_MS,
        ping_timeout_ms: int = PING_TIMEOUT_MS,
        max_payload: int = MAX_PAYLOAD_BYTES,
    ) -> None:
        self.sid = sid
        self.transport = transport
        self.upgrade = UpgradeState.NONE
        self.closed = False
        self.close_reason: str | None = None
        self.max_payload = max_payload
        self._interval = ping_interval_ms / 1000
        self._timeout = ping_timeout_ms / 1000
        self._next_ping: float | None = now + self._interval
        self._pong_deadline: float | None = None
        self._queue: deque[tuple[str | bytes, int]] = deque()
        self._queued_bytes = 0
        self._noop = False  # the client closed: a pending GET gets NOOP, the queue is dropped
        self._get_active = False
        self._post_active = False
        if upgrades is None:
            upgrades = ["websocket"] if transport is Transport.POLLING else []
        opening = open_packet(sid, upgrades, ping_interval_ms, ping_timeout_ms, max_payload)
        self.send(opening)

    # -- requests and packets in --------------------------------------------

    def begin_get(self) -> None:
        """A polling GET arrived; raise ProtocolError if it may not be served.

        A GET (or POST) overlapping another one closes the session, as the
        protocol requires: the pending GET is answered CLOSE.
        """
        self._get_active = self._begin("GET", self._get_active)

    def end_get(self) -> None:
        """The polling GET was answered."""
        self._get_active = False

    def begin_post(self) -> None:
        """A polling POST arrived; raise ProtocolError as :meth:`begin_get` does."""
        self._post_active = self._begin("POST", self._post_active)

    def end_post(self) -> None:
        """The polling POST was answered (``ok``)."""
        self._post_active = False

    def _begin(self, method: str, active: bool) -> bool:
        if self.closed:
            raise engine_error(ErrorCode.UNKNOWN_SID)
        if self.transport is not Transport.POLLING:
            raise engine_error(ErrorCode.BAD_REQUEST, "session was upgraded to websocket")
        if active:
            self.close(f"overlapping polling {method} requests")
            raise engine_error(ErrorCode.BAD_REQUEST, f"overlapping polling {method} requests")
        return True

    def begin_upgrade(self) -> None:
        """A WebSocket joined this polling session (``transport=websocket&sid=...``)."""
        if self.closed:
            raise engine_error(ErrorCode.UNKNOWN_SID)
        if self.transport is not Transport.POLLING or self.upgrade is not UpgradeState.NONE:
            raise engine_error(ErrorCode.BAD_REQUEST, "session already upgraded or upgrading")
        self.upgrade = UpgradeState.PROBING

    def cancel_upgrade(self) -> None:
        """The probing WebSocket closed or timed out: the session stays on polling."""
        self.upgrade = UpgradeState.NONE

    def receive(self, packet: EnginePacket, now: float, via: Transport) -> Inbound:
        """Handle one packet from the client that arrived over ``via``.

        Raises ProtocolError on a packet the client may not send; the session
        is then closed, except on the probing WebSocket, where only the upgrade
        is cancelled (close that WebSocket, polling goes on).
        """
        if self.closed:
            return _NOTHING
        if via is not self.transport:
            return self._receive_probe(packet, via)
        kind = packet.type
        if kind is PacketType.MESSAGE:
            return Inbound(message="" if packet.data is None else packet.data)
        if kind is PacketType.PONG:
            self.on_pong(now)
            return _NOTHING
        if kind is PacketType.CLOSE:
            self.close("client close")
            self._queue.clear()
            self._queued_bytes = 0
            self._noop = True
            return Inbound(closed=True)
        if kind is PacketType.NOOP:
            return _NOTHING
        reason = f"unexpected Engine.IO {kind.name} packet from the client"
        self.close(reason)
        raise ProtocolError(reason)

    def _receive_probe(self, packet: EnginePacket, via: Transport) -> Inbound:
        if via is not Transport.WEBSOCKET or self.upgrade is UpgradeState.NONE:
            raise engine_error(ErrorCode.BAD_REQUEST, f"session is not on {via.value}")
        if self.upgrade is UpgradeState.PROBING:
            if packet.type is PacketType.PING and packet.data == "probe":
                self.upgrade = UpgradeState.PROBED
                return Inbound(reply="3probe")
        elif packet.type is PacketType.UPGRADE:
            self.transport = Transport.WEBSOCKET
            self.upgrade = UpgradeState.NONE
            return Inbound(upgraded=True)
        self.upgrade = UpgradeState.NONE
        raise ProtocolError(f"unexpected {packet.type.name} packet during the upgrade")

    # -- packets out --------------------------------------------------------

    def send(self, packet: EnginePacket) -> None:
        """Queue a packet; dropped silently once the session is closed."""
        if not self.closed:
            self._push(encode_ws(packet))

    def send_text(self, frame: str) -> None:
        """Queue a text frame already encoded as an Engine.IO packet, e.g. ``42[...]``."""
        if not self.closed:
            self._push(frame)

    def _push(self, frame: str | bytes) -> None:
        if self.transport is Transport.POLLING and isinstance(frame, str) and SEPARATOR in frame:
            raise ValueError("a text frame for polling must not contain \\x1e")
        size = _frame_size(frame)
        self._queue.append((frame, size))
        self._queued_bytes += size

    @property
    def queued_frames(self) -> int:
        """Frames waiting to be drained."""
        return len(self._queue)

    @property
    def queued_bytes(self) -> int:
        """Bytes waiting, as a polling body would count them (stop feeding past a limit)."""
        return self._queued_bytes

    @property
    def poll_ready(self) -> bool:
        """True when a pending polling GET should be answered now."""
        return bool(self._queue) or self._noop or self.upgrade is UpgradeState.PROBED

    def drain_for_poll(self, max_bytes: int | None = None) -> str:
        """The body for a polling GET: queued packets joined by ``\\x1e``.

        Takes packets while the body stays within ``max_bytes`` (default
        ``max_payload``), always at least one. Answers NOOP ``6`` while the
        upgrade is probed (the queue waits for the WebSocket), after the
        client closed, or when nothing is queued (a long poll given up).
        """
        if self._noop or self.upgrade is UpgradeState.PROBED or not self._queue:
            return _NOOP_FRAME
        limit = self.max_payload if max_bytes is None else max_bytes
        queue = self._queue
        parts: list[str] = []
        total = -1  # the first packet has no separator before it
        while queue:
            frame, size = queue[0]
            if parts and total + 1 + size > limit:
                break
            queue.popleft()
            total += 1 + size
            self._queued_bytes -= size
            parts.append(
                frame if isinstance(frame, str) else "b" + base64.b64encode(frame).decode()
            )
        return SEPARATOR.join(parts)

    def drain_for_ws(self) -> list[str | bytes]:
        """Every queued frame in order (text or binary); nothing until on the WebSocket."""
        if self.transport is not Transport.WEBSOCKET:
            return []
        frames = [frame for frame, _ in self._queue]
        self._queue.clear()
        self._queued_bytes = 0
        return frames

    def close(self, reason: str) -> None:
        """Close from the server: what is queued, then CLOSE, is still to be drained."""
        if self.closed:
            return
        self._push(_CLOSE_FRAME)
        self.closed = True
        self.close_reason = reason
        self._next_ping = None
        self._pong_deadline = None

    # -- heartbeat ----------------------------------------------------------

    @property
    def next_ping_due(self) -> float | None:
        """When the next PING is due; None while waiting for a PONG or once closed."""
        return self._next_ping

    @property
    def pong_deadline(self) -> float | None:
        """When the client's PONG is late; None when no PING is outstanding."""
        return self._pong_deadline

    @property
    def next_timer(self) -> float | None:
        """The earliest of :attr:`next_ping_due` and :attr:`pong_deadline`: wake up then."""
        return self._next_ping if self._pong_deadline is None else self._pong_deadline

    def ping_if_due(self, now: float) -> bool:
        """Queue a PING if one is due; True when it did (wake the writer)."""
        if self._next_ping is None or now < self._next_ping:
            return False
        self._push(_PING_FRAME)
        self._next_ping = None
        self._pong_deadline = now + self._timeout
        return True

    def on_pong(self, now: float) -> None:
        """The client answered: the next PING is due one interval from now."""
        if self._pong_deadline is not None:
            self._pong_deadline = None
            self._next_ping = now + self._interval

    def is_timed_out(self, now: float) -> bool:
        """True when the outstanding PING went unanswered past ``pingTimeout``."""
        return self._pong_deadline is not None and now >= self._pong_deadline
