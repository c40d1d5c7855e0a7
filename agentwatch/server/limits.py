"""The server's limits and timers, as one frozen object (tests shorten them).

Each default is a named constant with its unit and the reason for its value.
"""

from __future__ import annotations

from dataclasses import dataclass

from agentwatch.proto.engineio import MAX_PAYLOAD_BYTES, PING_INTERVAL_MS, PING_TIMEOUT_MS

MAX_HEADER_BYTES = 64 * 1024  # SPEC 4: a request head over this answers 431
MAX_BODY_BYTES = 1024 * 1024  # SPEC 4: a request body over this answers 413
REQUEST_TIMEOUT_S = 10.0  # a started request must arrive whole within this (slowloris)
KEEPALIVE_TIMEOUT_S = 60.0  # an idle keep-alive connection is closed after this
RECEIVE_BYTES = 64 * 1024  # one socket read
SEND_CHUNK_BYTES = 64 * 1024  # each chunk of a send must leave within client_timeout
WS_MAX_MESSAGE_BYTES = 1024 * 1024  # SPEC 4.1: a bigger client frame closes with 1009
WS_PING_INTERVAL_S = 20.0  # SPEC 4.1: server pings this often
WS_PONG_TIMEOUT_S = 20.0  # ... and drops a peer whose pong is this late
SSE_KEEPALIVE_S = 15.0  # SPEC 4.2: a comment line this often on an idle stream
FRAME_MAX_EVENTS = 1024  # events per batched frame: amortises framing; only what is ready is sent
FRAME_MAX_BYTES = 1_000_000  # bytes per batched frame: under 1 MiB (and Engine.IO maxPayload)
LOGS_DEFAULT_LIMIT = 1000  # SPEC 4: /logs default page size
LOGS_MAX_LIMIT = 10_000  # SPEC 4: /logs largest page size
LOGS_MAX_BYTES = 16 * 1024 * 1024  # a /logs page stops early past this (huge lines)
SOCKETIO_CONNECT_TIMEOUT_S = (
    45.0  # socket.io's connectTimeout: a session that never joins "/" is closed
)
SOCKETIO_UPGRADE_TIMEOUT_S = 10.0  # engine.io's upgradeTimeout: 2probe/3probe/5 must end by then
SOCKETIO_MAX_SESSIONS = 10_000  # open Engine.IO sessions: handshakes alone cannot exhaust memory


@dataclass(frozen=True, slots=True)
class Limits:
    """Sizes and timers of the one-port server."""

    max_header_bytes: int = MAX_HEADER_BYTES
    max_body_bytes: int = MAX_BODY_BYTES
    request_timeout: float = REQUEST_TIMEOUT_S
    keepalive_timeout: float = KEEPALIVE_TIMEOUT_S
    ws_max_message_bytes: int = WS_MAX_MESSAGE_BYTES
    ws_ping_interval: float = WS_PING_INTERVAL_S
    ws_pong_timeout: float = WS_PONG_TIMEOUT_S
    sse_keepalive: float = SSE_KEEPALIVE_S
    frame_max_events: int = FRAME_MAX_EVENTS
    frame_max_bytes: int = FRAME_MAX_BYTES
    # Socket.IO / Engine.IO (SPEC 4.3); the engine.io defaults are in agentwatch.proto.engineio
    socketio_ping_interval_ms: int = PING_INTERVAL_MS
    socketio_ping_timeout_ms: int = PING_TIMEOUT_MS
    socketio_max_payload: int = MAX_PAYLOAD_BYTES
    socketio_connect_timeout: float = SOCKETIO_CONNECT_TIMEOUT_S
    socketio_upgrade_timeout: float = SOCKETIO_UPGRADE_TIMEOUT_S
    socketio_max_sessions: int = SOCKETIO_MAX_SESSIONS

    @property
    def socketio_read_bytes(self) -> int:
        """Event bytes a Socket.IO session reads from the hub at once: framed, they fit
        one poll response (``socketio_max_payload``)."""
        return max(self.socketio_max_payload // 2, 1)
