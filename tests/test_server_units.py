"""Server pieces without sockets: framing, cursors, auth rules, metrics, the
socket wrapper and the HTTP loop over in-memory streams."""

from __future__ import annotations

from pathlib import Path

import h11
import msgspec
import pytest
import trio
import trio.testing
from wsproto import ConnectionType, WSConnection
from wsproto.events import Request as WSRequest
from wsproto.events import TextMessage

from agentwatch.config import AgentSpec, ServerConfig
from agentwatch.events import EventBatch, json_array
from agentwatch.hub import Filter, Hub
from agentwatch.journal import Journal
from agentwatch.server import auth, metrics
from agentwatch.server.follow import make_filter, split_frames, start_cursor
from agentwatch.server.http import Request, serve_http
from agentwatch.server.limits import Limits
from agentwatch.server.netstream import ConnStream, Stalled
from agentwatch.server.upgrade import add_text_frame
from agentwatch.supervisor import Supervisor


def batch(first: int, lines: list[bytes]) -> EventBatch:
    """A batch of fake encoded events."""
    data = b"".join(b'{"seq":%d,"x":"%s"}\n' % (first + i, ln) for i, ln in enumerate(lines))
    return EventBatch(first, len(lines), "process-output", "a", "stdout", data)


def seqs(frames: list[list[EventBatch]]) -> list[list[int]]:
    """Seqs per frame, decoded from the JSON the frames would carry."""
    return [[e["seq"] for e in msgspec.json.decode(json_array(f))] for f in frames]


@pytest.mark.parametrize(
    ("sizes", "max_events", "max_bytes", "expected"),
    [
        ([3], 10, 10_000, [[1, 2, 3]]),
        ([3, 2], 2, 10_000, [[1, 2], [3, 4], [5]]),
        ([5], 2, 10_000, [[1, 2], [3, 4], [5]]),
        ([1, 1, 1], 256, 10_000, [[1, 2, 3]]),
        ([4], 10, 20, [[1], [2], [3], [4]]),  # each event is 19 bytes
        ([4], 10, 40, [[1, 2], [3, 4]]),
        ([2, 2], 10, 60, [[1, 2, 3], [4]]),
        ([2], 10, 5, [[1], [2]]),  # an event bigger than a frame travels alone
    ],
)
def test_split_frames(
    sizes: list[int], max_events: int, max_bytes: int, expected: list[list[int]]
) -> None:
    batches = []
    first = 1
    for n in sizes:
        batches.append(batch(first, [b"ab"] * n))
        first += n
    frames = split_frames(batches, max_events, max_bytes)
    assert seqs(frames) == expected
    for frame in frames:
        assert sum(b.count for b in frame) <= max_events
        size = sum(b.nbytes for b in frame)
        assert size <= max_bytes or sum(b.count for b in frame) == 1


def test_make_filter() -> None:
    assert make_filter() == Filter()
    assert make_filter(["*"]) == Filter()
    assert make_filter([]) == Filter()
    assert make_filter(["a", "b"], ["x-y"], "stdout") == Filter(
        frozenset({"a", "b"}), frozenset({"x-y"}), "stdout"
    )


async def test_start_cursor(tmp_path: Path) -> None:
    journal = Journal(tmp_path / "j.jsonl")
    journal.open()
    hub = Hub(journal)
    for i in range(10):
        hub.publish("x-n", "a" if i % 2 else "b", {"i": i})
    only_a = Filter(frozenset({"a"}))
    assert await start_cursor(hub, only_a, None, None) == 10
    assert await start_cursor(hub, only_a, 3, None) == 3
    assert await start_cursor(hub, only_a, None, 2) == 7  # a's events are the even seqs
    assert await start_cursor(hub, only_a, 8, 3) == 8
    assert await start_cursor(hub, only_a, None, 100) == 0
    journal.close()


def req(headers: dict[str, str], query: str = "") -> Request:
    """A request with these headers."""
    from urllib.parse import parse_qs

    return Request("GET", "/", parse_qs(query), {k.lower(): v for k, v in headers.items()})


@pytest.mark.parametrize(
    ("host", "headers", "allowed"),
    [
        ("127.0.0.1", {}, True),
        ("127.0.0.1", {"origin": "http://127.0.0.1:8765", "host": "127.0.0.1:8765"}, True),
        ("127.0.0.1", {"origin": "http://localhost:8765", "host": "localhost:8765"}, True),
        ("127.0.0.1", {"origin": "http://[::1]:8765", "host": "[::1]:8765"}, True),
        ("127.0.0.1", {"origin": "http://evil:8765", "host": "evil:8765"}, False),
        ("127.0.0.1", {"origin": "http://localhost:1", "host": "localhost:8765"}, False),
        ("0.0.0.0", {"origin": "http://myhost:8765", "host": "myhost:8765"}, True),
        ("10.0.0.5", {"origin": "http://10.0.0.5:8765", "host": "10.0.0.5:8765"}, True),
        ("10.0.0.5", {"origin": "http://other:8765", "host": "other:8765"}, False),
        ("127.0.0.1", {"origin": "http://127.0.0.1:9999"}, True),  # the bound URL
    ],
)
def test_origin_rules(host: str, headers: dict[str, str], allowed: bool) -> None:
    config = ServerConfig(host=host, token="t")
    assert auth.origin_allowed(config, "http://127.0.0.1:9999", req(headers)) is allowed


def test_tokens_and_cookie() -> None:
    config = ServerConfig(token="tok en/é")
    cookie_name, cookie = auth.auth_cookie("tok en/é")
    assert cookie_name == "set-cookie"
    value = cookie.split(";")[0]
    assert " " not in value
    assert auth.is_authenticated(config, req({"cookie": value}))
    assert auth.is_authenticated(config, req({}, "token=tok+en%2F%C3%A9"))
    assert not auth.is_authenticated(config, req({"authorization": "Bearer tok"}))
    assert not auth.is_authenticated(config, req({}))
    assert auth.is_authenticated(ServerConfig(token=None), req({}))
    assert auth.token_matches("a", "a")
    assert not auth.token_matches("a", None)
    assert auth.token_matches(None, None)


def test_metrics_render_escapes_labels(tmp_path: Path) -> None:
    hub = Hub(None)
    sup = Supervisor(hub)
    proc = sup.add(AgentSpec(name="a", command=("true",)))
    proc.stats = {"cpuPercent": 12.5, "rssBytes": 1024}
    text = metrics.render(hub, [proc]).decode()
    assert 'agentwatch_process_cpu_percent{process="a"} 12.5' in text
    assert 'agentwatch_process_rss_bytes{process="a"} 1024' in text
    assert 'agentwatch_process_state{process="a",state="starting"} 1' in text
    assert 'agentwatch_process_state{process="a",state="running"} 0' in text
    assert "agentwatch_journal_bytes 0" in text
    assert metrics._escape('a"b\\c\nd') == 'a\\"b\\\\c\\nd'
    assert text.endswith("\n")


@pytest.mark.parametrize("size", [0, 5, 125, 126, 65535, 65536, 200_000])
def test_text_frames_decode_with_wsproto(size: int) -> None:
    client = WSConnection(ConnectionType.CLIENT)
    server = WSConnection(ConnectionType.SERVER)
    server.receive_data(client.send(WSRequest(host="x", target="/ws")))
    request = next(server.events())
    from wsproto.events import AcceptConnection

    assert isinstance(request, WSRequest)
    client.receive_data(server.send(AcceptConnection()))
    list(client.events())
    buf = bytearray()
    payload = b"x" * size
    add_text_frame(buf, payload)
    add_text_frame(buf, b'{"seq":1}')
    client.receive_data(bytes(buf))
    texts = []
    for event in client.events():
        assert isinstance(event, TextMessage)
        texts.append(event.data)
    assert "".join(texts) == payload.decode() + '{"seq":1}'


async def test_conn_stream_replay_and_stall(autojump_clock: trio.abc.Clock) -> None:
    left, right = trio.testing.memory_stream_pair()
    stream = ConnStream(left, send_timeout=5.0)
    stream.replay(b"hello ")
    await right.send_all(b"world")
    assert await stream.receive_some(3) == b"hel"
    assert await stream.receive_some() == b"lo "
    assert await stream.receive_some() == b"world"
    await stream.send_all(b"x" * 100)
    assert await right.receive_some() == b"x" * 100
    # a peer that reads nothing: memory streams hold nothing, so the send stalls
    left2, _right2 = trio.testing.lockstep_stream_pair()
    stalled = ConnStream(left2, send_timeout=5.0)
    start = trio.current_time()
    with pytest.raises(Stalled):
        await stalled.send_all(b"y" * 10)
    assert trio.current_time() - start == pytest.approx(5.0)
    assert stalled.stalled
    with pytest.raises(Stalled):
        await stalled.send_all(b"z")


async def test_http_loop_over_memory_streams() -> None:
    client_end, server_end = trio.testing.memory_stream_pair()

    async def app(conn: object, request: Request) -> None:
        assert isinstance(request, Request)
        from agentwatch.server.http import HTTPConnection

        assert isinstance(conn, HTTPConnection)
        await conn.send_json(
            200, {"path": request.path, "q": request.query, "body": len(request.body)}
        )

    client = h11.Connection(h11.CLIENT)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve_http, ConnStream(server_end, 5.0), "mem", Limits(), app)
            for target, body in [(b"/a%20b?x=1&x=2&y", b""), (b"/p", b"z" * 1000)]:
                headers = [("host", "x"), ("content-length", str(len(body)))]
                data = client.send(h11.Request(method="POST", target=target, headers=headers))
                data = (data or b"") + (client.send(h11.Data(data=body)) if body else b"")
                data += client.send(h11.EndOfMessage()) or b""
                await client_end.send_all(data)
                status, payload = 0, b""
                while True:
                    event = client.next_event()
                    if event is h11.NEED_DATA:
                        client.receive_data(bytes(await client_end.receive_some()))
                    elif isinstance(event, h11.Response):
                        status = event.status_code
                    elif isinstance(event, h11.Data):
                        payload += bytes(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        break
                assert status == 200
                obj = msgspec.json.decode(payload)
                assert obj["body"] == len(body)
                if target.startswith(b"/a"):
                    assert obj["path"] == "/a%20b"
                    assert obj["q"] == {"x": ["1", "2"], "y": [""]}
                client.start_next_cycle()
            await client_end.aclose()
