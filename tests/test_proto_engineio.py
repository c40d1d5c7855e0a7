"""Engine.IO v4 codec and session, without sockets.

Vectors come from the protocol document (socket.io/docs/v4/engine-io-protocol),
the engine.io-protocol test suite, the engine.io-parser 4.0 changelog, and
packets captured from a real socket.io@4 server and socket.io-client@4.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentwatch.errors import ProtocolError
from agentwatch.proto import engineio as eio
from agentwatch.proto.engineio import (
    EnginePacket,
    EngineSession,
    ErrorCode,
    Inbound,
    PacketType,
    Transport,
    UpgradeState,
)

MSG = PacketType.MESSAGE
POLLING = Transport.POLLING
WEBSOCKET = Transport.WEBSOCKET

OPEN_DATA = (
    '{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],'
    '"pingInterval":25000,"pingTimeout":20000,"maxPayload":1000000}'
)

# (wire text, packet): both directions hold
PACKETS = [
    ("4hello", EnginePacket(MSG, "hello")),
    ("4HelloWorld", EnginePacket(MSG, "HelloWorld")),
    ("4€€€", EnginePacket(MSG, "€€€")),
    ("2probe", EnginePacket(PacketType.PING, "probe")),
    ("3probe", EnginePacket(PacketType.PONG, "probe")),
    ("2", EnginePacket(PacketType.PING)),
    ("3", EnginePacket(PacketType.PONG)),
    ("1", EnginePacket(PacketType.CLOSE)),
    ("5", EnginePacket(PacketType.UPGRADE)),
    ("6", EnginePacket(PacketType.NOOP)),
    ("0" + OPEN_DATA, EnginePacket(PacketType.OPEN, OPEN_DATA)),
    ("bAQIDBA==", EnginePacket(MSG, b"\x01\x02\x03\x04")),
    ("bAQID", EnginePacket(MSG, b"\x01\x02\x03")),
    ('42["hey","Jude"]', EnginePacket(MSG, '2["hey","Jude"]')),
]

# (polling body, packets): both directions hold
PAYLOADS = [
    ("4hello\x1e2\x1e4world", ["4hello", "2", "4world"]),
    ("4hello\x1ebAQIDBA==", ["4hello", "bAQIDBA=="]),
    ("4test1\x1e4test2\x1e4test3", ["4test1", "4test2", "4test3"]),
    ("4hello\x1e4€€€", ["4hello", "4€€€"]),
    ("4hello\x1ebAQID", ["4hello", "bAQID"]),
    ('42["hello"]\x1e42["world"]', ['42["hello"]', '42["world"]']),
    ('40{"userId":"u1","token":"t0k"}', ['40{"userId":"u1","token":"t0k"}']),
]

BAD_PACKETS = ["", "abc", "7", "9hello", "x", " 4", "b!!!", "bAQI", "bAQIDBA", "b€", "b AQID"]
BAD_PAYLOADS = ["", "abc", "4x\x1e\x1e4y", "4a\x1e", "\x1e4a", "4a\x1eb!!", b"4\xff"]


@pytest.mark.parametrize(("wire", "packet"), PACKETS)
def test_packet_vectors(wire: str, packet: EnginePacket) -> None:
    assert eio.decode_packet(wire) == packet
    assert eio.encode_packet(packet) == wire


@pytest.mark.parametrize(("body", "items"), PAYLOADS)
def test_payload_vectors(body: str, items: list[str]) -> None:
    packets = [eio.decode_packet(item) for item in items]
    assert eio.decode_payload(body) == packets
    assert eio.decode_payload(body.encode()) == packets
    assert eio.encode_payload(packets) == body


def test_websocket_frames_binary_is_raw_bytes() -> None:
    assert eio.encode_ws(EnginePacket(MSG, b"\x01\x02\x03\x04")) == b"\x01\x02\x03\x04"
    assert eio.decode_packet(b"\x01\x02\x03\x04") == EnginePacket(MSG, b"\x01\x02\x03\x04")
    assert eio.decode_packet(b"") == EnginePacket(MSG, b"")
    assert eio.encode_ws(EnginePacket(MSG, "hello")) == "4hello"
    assert eio.encode_ws(EnginePacket(PacketType.PING, "probe")) == "2probe"


@pytest.mark.parametrize("raw", BAD_PACKETS)
def test_malformed_packet(raw: str) -> None:
    with pytest.raises(ProtocolError) as info:
        eio.decode_packet(raw)
    assert info.value.status == 400


@pytest.mark.parametrize("body", BAD_PAYLOADS)
def test_malformed_payload(body: str | bytes) -> None:
    with pytest.raises(ProtocolError):
        eio.decode_payload(body)


def test_binary_only_in_message_packets() -> None:
    with pytest.raises(ValueError, match="MESSAGE"):
        eio.encode_packet(EnginePacket(PacketType.PING, b"x"))
    with pytest.raises(ValueError, match="MESSAGE"):
        eio.encode_ws(EnginePacket(PacketType.PING, b"x"))


def test_payload_refuses_separator_inside_packets_and_emptiness() -> None:
    with pytest.raises(ValueError, match="x1e"):
        eio.encode_payload([EnginePacket(MSG, "a\x1eb"), EnginePacket(MSG, "c")])
    with pytest.raises(ValueError, match="x1e"):
        eio.encode_payload([EnginePacket(MSG, "a\x1eb")])
    with pytest.raises(ValueError, match="at least one"):
        eio.encode_payload([])


def test_open_packet_matches_the_documented_handshake() -> None:
    packet = eio.open_packet("lv_VI97HAXpY6yYWAAAC", ["websocket"])
    assert eio.encode_packet(packet) == "0" + OPEN_DATA
    custom = eio.open_packet("s", [], ping_interval=300, ping_timeout=200, max_payload=10)
    assert json.loads(str(custom.data)) == {
        "sid": "s",
        "upgrades": [],
        "pingInterval": 300,
        "pingTimeout": 200,
        "maxPayload": 10,
    }


# -- query and HTTP errors ---------------------------------------------------


def test_parse_query_accepts_v4() -> None:
    query = eio.parse_query("EIO=4&transport=polling&t=N8hyd6w")
    assert (query.transport, query.sid, query.params["t"]) == (POLLING, None, "N8hyd6w")
    query = eio.parse_query("EIO=4&transport=websocket&sid=lv_VI97HAXpY6yYWAAAC&token=a%2Bb")
    assert (query.transport, query.sid) == (WEBSOCKET, "lv_VI97HAXpY6yYWAAAC")
    assert query.params["token"] == "a+b"
    assert eio.parse_query("EIO=4&transport=polling&EIO=3").transport is POLLING


@pytest.mark.parametrize(
    ("query", "code", "status"),
    [
        ("EIO=3&transport=polling", ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, 400),
        ("transport=polling", ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, 400),
        ("EIO=abc&transport=polling", ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, 400),
        ("EIO=5&transport=polling", ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, 400),
        ("EIO=4&transport=abc", ErrorCode.UNKNOWN_TRANSPORT, 400),
        ("EIO=4", ErrorCode.UNKNOWN_TRANSPORT, 400),
        ("EIO=4&transport=polling&sid=", ErrorCode.UNKNOWN_SID, 400),
        ("EIO=4&transport=polling&j=0", ErrorCode.BAD_REQUEST, 400),
        ("", ErrorCode.UNSUPPORTED_PROTOCOL_VERSION, 400),
    ],
)
def test_parse_query_errors(query: str, code: ErrorCode, status: int) -> None:
    with pytest.raises(ProtocolError) as info:
        eio.parse_query(query)
    assert info.value.status == status
    assert json.loads(eio.error_body(info.value))["code"] == code


def test_eio3_gets_a_clear_message() -> None:
    with pytest.raises(ProtocolError) as info:
        eio.parse_query("EIO=3&transport=polling")
    assert str(info.value) == ("Engine.IO v3 is not supported, use socket.io-client v3+/v4 (EIO=4)")


def test_http_error_bodies_match_engine_io() -> None:
    # bodies captured from the engine.io server of socket.io@4
    assert eio.http_error_body(1, "Session ID unknown") == (
        b'{"code":1,"message":"Session ID unknown"}'
    )
    assert eio.error_body(eio.engine_error(ErrorCode.UNKNOWN_TRANSPORT)) == (
        b'{"code":0,"message":"Transport unknown"}'
    )
    assert eio.error_body(eio.engine_error(ErrorCode.BAD_HANDSHAKE_METHOD)) == (
        b'{"code":2,"message":"Bad handshake method"}'
    )
    assert eio.engine_error(ErrorCode.FORBIDDEN).status == 403
    assert eio.error_body(ProtocolError("nope")) == b'{"code":3,"message":"nope"}'


# -- session -----------------------------------------------------------------


def _session(transport: Transport = POLLING, now: float = 0.0) -> EngineSession:
    session = EngineSession("sid1", transport, now)
    session.drain_for_poll() if transport is POLLING else session.drain_for_ws()
    return session


def _timers(session: EngineSession) -> tuple[float | None, float | None]:
    return session.next_ping_due, session.pong_deadline


def _upgrade(session: EngineSession) -> UpgradeState:
    return session.upgrade  # a call, so mypy does not narrow the attribute across steps


def _post(session: EngineSession, body: str, now: float = 1.0) -> list[Inbound]:
    session.begin_post()
    try:
        return [session.receive(p, now, POLLING) for p in eio.decode_payload(body)]
    finally:
        session.end_post()


def test_session_handshake_polling_and_websocket() -> None:
    session = EngineSession("lv_VI97HAXpY6yYWAAAC", POLLING, now=0.0)
    assert session.poll_ready
    assert session.drain_for_poll() == "0" + OPEN_DATA
    assert not session.poll_ready
    ws = EngineSession("s2", WEBSOCKET, now=0.0, ping_interval_ms=300, ping_timeout_ms=200)
    [frame] = ws.drain_for_ws()
    assert isinstance(frame, str)
    assert frame.startswith("0")
    assert json.loads(frame[1:])["upgrades"] == []
    assert ws.next_ping_due == pytest.approx(0.3)


def test_session_messages_both_ways() -> None:
    session = _session()
    results = _post(session, "4test1\x1e4test2\x1e4test3")
    assert [r.message for r in results] == ["test1", "test2", "test3"]
    assert _post(session, "4")[0].message == ""
    assert _post(session, "bAQIDBA==")[0].message == b"\x01\x02\x03\x04"
    session.send_text("4hello")
    session.send(EnginePacket(MSG, b"\x01\x02\x03\x04"))
    assert session.queued_frames == 2
    assert session.queued_bytes == len("4hello") + len("bAQIDBA==")
    assert session.drain_for_poll() == "4hello\x1ebAQIDBA=="
    assert session.queued_bytes == 0
    assert session.drain_for_poll() == "6"  # a long poll given up gets NOOP


def test_session_heartbeat() -> None:
    session = _session(now=100.0)
    assert _timers(session) == (125.0, None)
    assert session.next_timer == 125.0
    assert not session.ping_if_due(124.9)
    assert session.ping_if_due(125.0)
    assert not session.ping_if_due(126.0)  # one PING outstanding at a time
    assert session.drain_for_poll() == "2"
    assert _timers(session) == (None, 145.0)
    assert session.next_timer == 145.0
    assert not session.is_timed_out(144.9)
    _post(session, "3", now=130.0)
    assert _timers(session) == (155.0, None)
    assert session.ping_if_due(155.0)
    assert session.is_timed_out(175.0)
    session.on_pong(170.0)  # late: the server decides with is_timed_out first
    session.on_pong(171.0)  # an unsolicited PONG changes nothing
    assert session.next_ping_due == 195.0


def test_session_overlapping_get_closes_the_session() -> None:
    session = _session()
    session.begin_get()
    with pytest.raises(ProtocolError) as info:
        session.begin_get()
    assert info.value.status == 400
    assert session.closed
    assert session.poll_ready
    assert session.drain_for_poll() == "1"  # the engine.io test suite expects CLOSE
    with pytest.raises(ProtocolError) as info:
        session.begin_get()
    assert json.loads(eio.error_body(info.value))["code"] == ErrorCode.UNKNOWN_SID


def test_session_overlapping_post_closes_the_session() -> None:
    session = _session()
    session.begin_post()
    with pytest.raises(ProtocolError):
        session.begin_post()
    assert session.closed


def test_session_client_close_answers_pending_get_with_noop() -> None:
    session = _session()
    session.begin_get()
    session.send_text("4dropped")
    [result] = _post(session, "1")
    assert result.closed
    assert session.closed
    assert session.close_reason == "client close"
    assert session.drain_for_poll() == "6"
    session.send_text("4late")  # dropped, not an error
    assert session.receive(EnginePacket(MSG, "x"), 2.0, POLLING) == Inbound()
    assert not session.is_timed_out(1e9)
    assert session.next_timer is None


def test_session_server_close_flushes_then_closes() -> None:
    session = _session()
    session.send_text("4a")
    session.close("shutting down")
    session.close("again")  # idempotent
    assert session.close_reason == "shutting down"
    assert session.drain_for_poll() == "4a\x1e1"
    assert not session.ping_if_due(1e9)


@pytest.mark.parametrize(
    "packet",
    [
        EnginePacket(PacketType.PING),
        EnginePacket(PacketType.PING, "probe"),
        EnginePacket(PacketType.OPEN, "{}"),
        EnginePacket(PacketType.UPGRADE),
    ],
)
def test_session_refuses_server_only_packets(packet: EnginePacket) -> None:
    session = _session()
    with pytest.raises(ProtocolError):
        session.receive(packet, 1.0, POLLING)
    assert session.closed


def test_session_ignores_noop() -> None:
    session = _session()
    assert session.receive(EnginePacket(PacketType.NOOP), 1.0, POLLING) == Inbound()
    assert not session.closed


def test_session_upgrade_to_websocket() -> None:
    session = _session()
    session.begin_get()  # a long poll is pending when the WebSocket arrives
    session.begin_upgrade()
    assert _upgrade(session) is UpgradeState.PROBING
    session.send_text("4before-probe")  # still served by polling
    assert session.drain_for_poll() == "4before-probe"
    session.end_get()
    session.begin_get()
    probe = session.receive(eio.decode_packet("2probe"), 1.0, WEBSOCKET)
    assert probe == Inbound(reply="3probe")
    assert _upgrade(session) is UpgradeState.PROBED
    assert session.poll_ready
    session.send_text("4hello")
    assert session.drain_for_poll() == "6"  # NOOP ends the pending GET
    session.end_get()
    assert session.drain_for_ws() == []  # not on the WebSocket yet
    assert session.receive(eio.decode_packet("5"), 1.0, WEBSOCKET) == Inbound(upgraded=True)
    assert session.transport is WEBSOCKET
    assert _upgrade(session) is UpgradeState.NONE
    assert session.drain_for_ws() == ["4hello"]
    message = session.receive(eio.decode_packet("4hello"), 2.0, WEBSOCKET)
    assert message.message == "hello"
    with pytest.raises(ProtocolError):  # "ignores HTTP requests with same sid after upgrade"
        session.begin_get()
    with pytest.raises(ProtocolError):  # "ignores WebSocket connection with same sid"
        session.begin_upgrade()
    with pytest.raises(ProtocolError):
        session.receive(EnginePacket(MSG, "x"), 2.0, POLLING)
    session.send_text("4a\x1eb")  # no separator rule once on the WebSocket
    assert session.drain_for_ws() == ["4a\x1eb"]


def test_session_upgrade_failures_keep_polling() -> None:
    session = _session()
    with pytest.raises(ProtocolError):  # no upgrade started
        session.receive(eio.decode_packet("2probe"), 1.0, WEBSOCKET)
    session.begin_upgrade()
    with pytest.raises(ProtocolError):
        session.begin_upgrade()  # a second WebSocket
    with pytest.raises(ProtocolError):
        session.receive(eio.decode_packet("4hello"), 1.0, WEBSOCKET)
    assert _upgrade(session) is UpgradeState.NONE
    assert not session.closed
    session.begin_upgrade()
    session.receive(eio.decode_packet("2probe"), 1.0, WEBSOCKET)
    with pytest.raises(ProtocolError):
        session.receive(eio.decode_packet("2probe"), 1.0, WEBSOCKET)
    assert _upgrade(session) is UpgradeState.NONE
    session.begin_upgrade()
    session.cancel_upgrade()  # the WebSocket went away
    assert _upgrade(session) is UpgradeState.NONE
    assert session.transport is POLLING
    ws_only = _session(WEBSOCKET)
    with pytest.raises(ProtocolError):
        ws_only.begin_upgrade()
    with pytest.raises(ProtocolError):
        ws_only.begin_get()
    session.close("x")
    with pytest.raises(ProtocolError):
        session.begin_upgrade()


def test_session_drain_respects_max_bytes() -> None:
    session = _session()
    for n in range(3):
        session.send_text(f"4{n}23456789")  # 10 bytes each
    assert session.queued_bytes == 30
    assert session.drain_for_poll(max_bytes=21) == "4023456789\x1e4123456789"
    assert session.queued_bytes == 10
    assert session.drain_for_poll(max_bytes=3) == "4223456789"  # always at least one
    session.send_text("4é")  # 3 bytes in UTF-8
    session.send(EnginePacket(MSG, b"\x00"))  # "bAA==" is 5
    assert session.queued_bytes == 8
    assert session.drain_for_poll(max_bytes=8) == "4é"
    small = EngineSession("s", POLLING, 0.0, max_payload=5)
    small.drain_for_poll()
    small.send_text("4abc")
    small.send_text("4def")
    assert small.drain_for_poll() == "4abc"


def test_session_refuses_separator_in_polling_frames() -> None:
    session = _session()
    with pytest.raises(ValueError, match="x1e"):
        session.send_text("4a\x1eb")


# -- robustness --------------------------------------------------------------


@given(st.text())
def test_fuzz_decode_packet_only_raises_protocol_error(text: str) -> None:
    try:
        eio.decode_packet(text)
    except ProtocolError:
        pass


@given(st.one_of(st.text(), st.binary()))
def test_fuzz_decode_payload_only_raises_protocol_error(body: str | bytes) -> None:
    try:
        eio.decode_payload(body)
    except ProtocolError:
        pass


@given(st.text())
def test_fuzz_parse_query_only_raises_protocol_error(query: str) -> None:
    try:
        eio.parse_query(query)
    except ProtocolError:
        pass


_packets = st.one_of(
    st.builds(
        EnginePacket,
        st.sampled_from(PacketType),
        st.one_of(st.none(), st.text(min_size=1).filter(lambda t: "\x1e" not in t)),
    ),
    st.builds(EnginePacket, st.just(MSG), st.binary()),
)


@given(st.lists(_packets, min_size=1))
def test_payload_round_trip(packets: list[EnginePacket]) -> None:
    assert eio.decode_payload(eio.encode_payload(packets)) == packets
    for packet in packets:
        assert eio.decode_packet(eio.encode_ws(packet)) == packet
