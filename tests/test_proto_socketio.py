"""Socket.IO v5 codec, without sockets.

Vectors come from the protocol document (socket.io/docs/v4/socket-io-protocol),
the socket.io-protocol test suite, socket.io-parser's own tests, and packets
captured between a real socket.io@4 server and socket.io-client@4.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentwatch.errors import ProtocolError
from agentwatch.proto import engineio as eio
from agentwatch.proto import socketio as sio
from agentwatch.proto.socketio import PacketType, SocketPacket

CONNECT = PacketType.CONNECT
DISCONNECT = PacketType.DISCONNECT
EVENT = PacketType.EVENT
ACK = PacketType.ACK
CONNECT_ERROR = PacketType.CONNECT_ERROR

# (wire, packet): encode(packet) == wire and decode(wire) == packet
VECTORS = [
    # the protocol document's tables
    ("0", SocketPacket(CONNECT)),
    (
        '0{"sid":"wZX3oN0bSVIhsaknAAAI"}',
        SocketPacket(CONNECT, "/", {"sid": "wZX3oN0bSVIhsaknAAAI"}),
    ),
    ("0/admin,", SocketPacket(CONNECT, "/admin")),
    (
        '0/admin,{"sid":"oSO0OpakMV_3jnilAAAA"}',
        SocketPacket(CONNECT, "/admin", {"sid": "oSO0OpakMV_3jnilAAAA"}),
    ),
    ('0/admin,{"token":"123"}', SocketPacket(CONNECT, "/admin", {"token": "123"})),
    (
        '4{"message":"Not authorized"}',
        SocketPacket(CONNECT_ERROR, "/", {"message": "Not authorized"}),
    ),
    ('2["foo"]', SocketPacket(EVENT, "/", ["foo"])),
    ('2/admin,["bar"]', SocketPacket(EVENT, "/admin", ["bar"])),
    ('212["foo"]', SocketPacket(EVENT, "/", ["foo"], 12)),
    ("312[]", SocketPacket(ACK, "/", [], 12)),
    ('2/admin,13["foo"]', SocketPacket(EVENT, "/admin", ["foo"], 13)),
    ('3/admin,13["bar"]', SocketPacket(ACK, "/admin", ["bar"], 13)),
    ('314["bar"]', SocketPacket(ACK, "/", ["bar"], 14)),
    ('215["foo"]', SocketPacket(EVENT, "/", ["foo"], 15)),
    ("1", SocketPacket(DISCONNECT)),
    ("1/admin,", SocketPacket(DISCONNECT, "/admin")),
    ('2["hey","Jude"]', SocketPacket(EVENT, "/", ["hey", "Jude"])),
    ('2/admin,1["tellme"]', SocketPacket(EVENT, "/admin", ["tellme"], 1)),
    # the socket.io-protocol test suite
    ('0{"token":"123"}', SocketPacket(CONNECT, "/", {"token": "123"})),
    ("0/custom,", SocketPacket(CONNECT, "/custom")),
    ('0/custom,{"token":"abc"}', SocketPacket(CONNECT, "/custom", {"token": "abc"})),
    (
        '4/random,{"message":"Invalid namespace"}',
        SocketPacket(CONNECT_ERROR, "/random", {"message": "Invalid namespace"}),
    ),
    (
        '2["message",1,"2",{"3":[true]}]',
        SocketPacket(EVENT, "/", ["message", 1, "2", {"3": [True]}]),
    ),
    ('2["auth",{}]', SocketPacket(EVENT, "/", ["auth", {}])),
    # socket.io-parser's tests
    ('0/woot,{"token":"123"}', SocketPacket(CONNECT, "/woot", {"token": "123"})),
    ("1/woot,", SocketPacket(DISCONNECT, "/woot")),
    ('2["a",1,{}]', SocketPacket(EVENT, "/", ["a", 1, {}])),
    ('2[1,"a",{}]', SocketPacket(EVENT, "/", [1, "a", {}])),
    ('2/test,1["a",1,{}]', SocketPacket(EVENT, "/test", ["a", 1, {}], 1)),
    ('3123["a",1,{}]', SocketPacket(ACK, "/", ["a", 1, {}], 123)),
    ('4"Unauthorized"', SocketPacket(CONNECT_ERROR, "/", "Unauthorized")),
    # captured from socket.io-client@4 <-> socket.io@4
    (
        '0{"userId":"u1","token":"t0k"}',
        SocketPacket(CONNECT, "/", {"userId": "u1", "token": "t0k"}),
    ),
    (
        '20["subscribe-process","builder"]',
        SocketPacket(EVENT, "/", ["subscribe-process", "builder"], 0),
    ),
    ('30[{"ok":true,"lastSeq":7}]', SocketPacket(ACK, "/", [{"ok": True, "lastSeq": 7}], 0)),
    (
        '4/admin,{"message":"unauthorized"}',
        SocketPacket(CONNECT_ERROR, "/admin", {"message": "unauthorized"}),
    ),
    (
        '2["process-output",{"seq":8,"processId":"builder","output":"héllo €"}]',
        SocketPacket(
            EVENT, "/", ["process-output", {"seq": 8, "processId": "builder", "output": "héllo €"}]
        ),
    ),
]

# forms only a decoder meets: the reference parser reads a namespace up to "," or the end
DECODE_ONLY = [
    ("0/random", SocketPacket(CONNECT, "/random")),
    ("1/custom", SocketPacket(DISCONNECT, "/custom")),
    ('29007199254740991["x"]', SocketPacket(EVENT, "/", ["x"], 2**53 - 1)),
    ('2007["x"]', SocketPacket(EVENT, "/", ["x"], 7)),
]

MALFORMED = [
    # socket.io-parser's "throw an error upon parsing error"
    '442["some","data"',
    '0/admin,"invalid"',
    "0[]",
    "1/admin,{}",
    '2/admin,"invalid',
    "2/admin,{}",
    '2[{"toString":"foo"}]',
    '2[true,"foo"]',
    '2[null,"bar"]',
    '2["connect"]',
    '2["disconnect","123"]',
    "999",
    # and more
    "",
    "7",
    "x",
    " 2[]",
    "2",  # an EVENT payload is mandatory
    "2[]",  # and a non-empty array
    '2{"a":1}',
    "3[]",  # an ACK needs an id
    "312",  # and an array
    '312{"a":1}',
    "4",
    "44",
    '0{"a":1} trailing',
    '2["a"]]',
    '29007199254740992["too big an id"]',
    '2123456789012345678901234567890["too big an id"]',
    "2" + "[" * 5000,
    "2" + "[" * 3000 + "]" * 3000,
    '2["a",NaN]',
    '2["\\ud800"',
]


@pytest.mark.parametrize(("wire", "packet"), VECTORS)
def test_vectors(wire: str, packet: SocketPacket) -> None:
    assert sio.decode(wire) == packet
    assert sio.encode(packet) == wire


@pytest.mark.parametrize(("wire", "packet"), DECODE_ONLY)
def test_lenient_decoding(wire: str, packet: SocketPacket) -> None:
    assert sio.decode(wire) == packet


@pytest.mark.parametrize("wire", MALFORMED)
def test_malformed(wire: str) -> None:
    with pytest.raises(ProtocolError) as info:
        sio.decode(wire)
    assert info.value.status == 400


@pytest.mark.parametrize(
    "wire",
    [
        '51-["baz",{"_placeholder":true,"num":0}]',
        '52-/admin,["baz",{"_placeholder":true,"num":0},{"_placeholder":true,"num":1}]',
        '51-14["foo",{"_placeholder":true,"num":0}]',
        '61-15["bar",{"_placeholder":true,"num":0}]',
        '51-["hello"]',
        "5",
    ],
)
def test_binary_packets_are_refused(wire: str) -> None:
    with pytest.raises(ProtocolError) as info:
        sio.decode(wire)
    assert info.value.code == "unsupported-binary"


def test_binary_attachment_frames_are_refused() -> None:
    with pytest.raises(ProtocolError) as info:
        sio.decode(b"\x01\x02\x03\x04")
    assert info.value.code == "unsupported-binary"


def test_encode_refuses_what_cannot_be_sent() -> None:
    with pytest.raises(ValueError, match="binary"):
        sio.encode(SocketPacket(PacketType.BINARY_EVENT, "/", ["x"]))
    with pytest.raises(ValueError, match="namespace"):
        sio.encode(SocketPacket(EVENT, "admin", ["x"]))
    with pytest.raises(ValueError, match="namespace"):
        sio.encode(SocketPacket(EVENT, "/a,b", ["x"]))
    with pytest.raises(ValueError, match="ack id"):
        sio.encode(SocketPacket(ACK, "/", [], -1))
    with pytest.raises(ValueError, match="ack id"):
        sio.encode(SocketPacket(ACK, "/", [], 2**53))


def test_helpers() -> None:
    assert sio.connect_ok("wZX3oN0bSVIhsaknAAAI") == '0{"sid":"wZX3oN0bSVIhsaknAAAI"}'
    assert sio.connect_ok("x", "/admin") == '0/admin,{"sid":"x"}'
    assert sio.connect_error("unauthorized") == '4{"message":"unauthorized"}'
    assert sio.connect_error("Invalid namespace", namespace="/random") == (
        '4/random,{"message":"Invalid namespace"}'
    )
    assert sio.event("hey", "Jude") == '2["hey","Jude"]'
    assert sio.event("bar", namespace="/admin") == '2/admin,["bar"]'
    assert sio.ack(12) == "312[]"
    assert sio.ack(0, {"ok": True, "lastSeq": 7}) == '30[{"ok":true,"lastSeq":7}]'
    assert sio.ack(13, "bar", namespace="/admin") == '3/admin,13["bar"]'


def test_event_from_json_frames_without_reencoding() -> None:
    arg = b'{"seq":8,"processId":"builder","output":"h\xc3\xa9llo \xe2\x82\xac"}'
    expected = '2["process-output",{"seq":8,"processId":"builder","output":"héllo €"}]'
    assert sio.event_from_json("process-output", arg) == expected.encode()
    assert sio.ENGINE_MESSAGE_PREFIX + sio.event_from_json("process-output", arg) == (
        b"4" + expected.encode()
    )
    assert sio.event_frame_from_json("process-output", arg) == "4" + expected
    assert sio.event_from_json('we"ird\n', b"1") == b'2["we\\"ird\\n",1]'


@given(
    st.text().filter(lambda name: name not in sio.RESERVED_EVENTS),
    st.recursive(
        st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
        lambda inner: st.lists(inner) | st.dictionaries(st.text(), inner),
        max_leaves=20,
    ),
)
def test_event_from_json_matches_event(name: str, arg: Any) -> None:
    framed = sio.event_from_json(name, msgspec.json.encode(arg))
    assert framed.decode() == sio.event(name, arg)
    assert sio.decode(framed.decode()) == SocketPacket(EVENT, "/", [name, arg])


def test_docs_sample_session_through_both_layers() -> None:
    # the socket.io protocol document's sample session, Engine.IO frames included
    [open_packet] = eio.decode_payload(
        '0{"sid":"lv_VI97HAXpY6yYWAAAC","upgrades":["websocket"],'
        '"pingInterval":25000,"pingTimeout":5000,"maxPayload":1000000}'
    )
    assert open_packet.type is eio.PacketType.OPEN

    def socket_packets(body: str) -> list[SocketPacket]:
        packets = eio.decode_payload(body)
        assert all(p.type is eio.PacketType.MESSAGE for p in packets)
        return [sio.decode(str(p.data)) for p in packets]

    assert socket_packets("40") == [SocketPacket(CONNECT)]
    assert socket_packets('40{"sid":"wZX3oN0bSVIhsaknAAAI"}') == [
        SocketPacket(CONNECT, "/", {"sid": "wZX3oN0bSVIhsaknAAAI"})
    ]
    assert socket_packets('42["hey","Jude"]') == [SocketPacket(EVENT, "/", ["hey", "Jude"])]
    assert socket_packets('42["hello"]\x1e42["world"]') == [
        SocketPacket(EVENT, "/", ["hello"]),
        SocketPacket(EVENT, "/", ["world"]),
    ]
    assert socket_packets("40/admin,") == [SocketPacket(CONNECT, "/admin")]
    assert socket_packets('42/admin,1["tellme"]') == [SocketPacket(EVENT, "/admin", ["tellme"], 1)]


@given(st.text())
def test_fuzz_decode_only_raises_protocol_error(text: str) -> None:
    try:
        sio.decode(text)
    except ProtocolError:
        pass


@given(st.text(alphabet='0123456789/,[]{}":-abtrue \\', max_size=40))
def test_fuzz_protocol_alphabet_only_raises_protocol_error(text: str) -> None:
    try:
        sio.decode(text)
    except ProtocolError:
        pass


_json = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=10,
)
_namespaces = st.just("/") | st.text(min_size=1).filter(lambda t: not {",", "\x1e"} & set(t)).map(
    lambda t: "/" + t
)
_ids = st.none() | st.integers(0, 2**53 - 1)
_event_names = st.text().filter(lambda n: n not in sio.RESERVED_EVENTS) | st.integers(0, 10)
_objects = st.dictionaries(st.text(), _json)
_events = st.tuples(_event_names, st.lists(_json)).map(lambda t: [t[0], *t[1]])
_valid = st.one_of(
    st.builds(SocketPacket, st.just(CONNECT), _namespaces, st.none() | _objects),
    st.builds(SocketPacket, st.just(DISCONNECT), _namespaces),
    st.builds(SocketPacket, st.just(CONNECT_ERROR), _namespaces, st.text() | _objects),
    st.builds(SocketPacket, st.just(EVENT), _namespaces, _events, _ids),
    st.builds(SocketPacket, st.just(ACK), _namespaces, st.lists(_json), st.integers(0, 2**53 - 1)),
)


@given(_valid)
def test_round_trip(packet: SocketPacket) -> None:
    wire = sio.encode(packet)
    assert sio.decode(wire) == packet
    frame = eio.encode_payload([eio.EnginePacket(eio.PacketType.MESSAGE, wire)])
    assert [sio.decode(str(p.data)) for p in eio.decode_payload(frame)] == [packet]
