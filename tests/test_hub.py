"""The hub (SPEC 2, 4.4): write-ahead visibility, reads from memory and from
the journal after the history is trimmed, explicit gaps without a journal,
tail cursors, and journal write failures that never stop publishing."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest
import trio
import trio.lowlevel
import trio.testing

from agentwatch import hub as hub_mod
from agentwatch.errors import JournalError
from agentwatch.events import SYSTEM_ALERT, EventBatch
from agentwatch.hub import Client, Filter, Hub, Read
from agentwatch.journal import Journal, read_journal
from agentwatch.proto.lines import Segment

T0 = 1795624800.0  # 2026-11-25T16:40:00Z


def clock() -> Iterator[float]:
    t = T0
    while True:
        yield t
        t += 0.001


def make_hub(journal: Journal | None, **kw: Any) -> Hub:
    ticks = clock()
    return Hub(journal, now=lambda: next(ticks), **kw)


def open_journal(path: Path) -> Journal:
    j = Journal(path)
    j.open()
    return j


def events_of(read: Read) -> list[dict[str, Any]]:
    return [msgspec.json.decode(line) for b in read.batches for line in b.lines()]


def read_all(hub: Hub, flt: Filter | None = None, cursor: int = 0) -> tuple[list[int], list[Any]]:
    """Every event after ``cursor`` (seqs) and the gaps met, read to the end."""
    flt = flt or Filter()
    seqs: list[int] = []
    gaps: list[Any] = []
    while True:
        r = hub.read(cursor, flt)
        if r.gap:
            gaps.append(r.gap)
        seqs += [e["seq"] for e in events_of(r)]
        if r.cursor == cursor and not r.batches and not r.gap:
            return seqs, gaps
        assert r.cursor > cursor
        cursor = r.cursor


def journal_seqs(path: Path) -> list[int]:
    return [msgspec.json.decode(line)["seq"] for line in read_journal(path)]


def publish_n(hub: Hub, n: int, pids: tuple[str, ...] = ("a",)) -> None:
    for i in range(n):
        pid = pids[i % len(pids)]
        if i % 3 == 0:
            hub.publish("x-tick", pid, {"i": i})
        else:
            hub.publish_output(pid, "stdout" if i % 2 else "stderr", [f"line {i}"])


# ---------------------------------------------------------------------------
# Write-ahead


async def test_sync_publish_is_journaled_before_visible(tmp_path: Path) -> None:
    path = tmp_path / "j" / "events.jsonl"
    hub = make_hub(open_journal(path))
    seq = hub.publish("x-a", None, {"n": 1})
    last = hub.publish_output("p", "stdout", ["one\ntwo", "three"])
    assert (seq, last) == (1, 4)
    assert hub.last_seq == hub.published_seq == 4
    assert journal_seqs(path) == [1, 2, 3, 4]
    r = hub.read(0, Filter())
    assert [e["seq"] for e in events_of(r)] == [1, 2, 3, 4]
    assert path.read_bytes() == b"".join(b.data for b in r.batches)
    assert oct(path.stat().st_mode & 0o777) == "0o600"


class GatedJournal(Journal):
    """A journal whose writes wait for the test to open a gate."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.entered = threading.Event()
        self.gate = threading.Event()

    def writev(self, chunks: list[bytes]) -> None:
        self.entered.set()
        assert self.gate.wait(10)
        super().writev(chunks)


async def test_events_invisible_until_written(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    journal = GatedJournal(path)
    journal.open()
    hub = make_hub(journal)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.serve_journal)
            hub.publish("x-a", "p", {})
            hub.publish_output("p", "stdout", ["a\nb"])
            assert hub.published_seq == 3
            await trio.to_thread.run_sync(journal.entered.wait)
            # The writer holds the events; no subscriber may see them yet.
            assert hub.last_seq == 0
            assert hub.read(0, Filter()).batches == []
            assert path.read_bytes() == b""
            journal.gate.set()
            await hub.wait_beyond(0)
            # Visible now, and on disk already.
            r = hub.read(0, Filter())
            seen = [e["seq"] for e in events_of(r)]
            assert seen
            assert set(seen) <= set(journal_seqs(path))
            nursery.cancel_scope.cancel()
    assert journal_seqs(path) == [1, 2, 3]


class SlowJournal(Journal):
    def writev(self, chunks: list[bytes]) -> None:
        threading.Event().wait(0.0005)  # a slow disk: batches pile up behind it
        super().writev(chunks)


async def test_subscriber_never_ahead_of_journal(tmp_path: Path) -> None:
    """A subscriber reading as fast as it can never sees an event that is not
    in the journal file yet (the journal is re-read at every step)."""
    path = tmp_path / "events.jsonl"
    journal = SlowJournal(path)
    journal.open()
    hub = make_hub(journal)
    total = 3000
    seen: list[int] = []

    async def subscriber() -> None:
        cursor = 0
        while True:
            await hub.wait_beyond(cursor)
            r = hub.read(cursor, Filter())
            if r.batches:
                on_disk = journal_seqs(path)
                got = [e["seq"] for e in events_of(r)]
                assert got[-1] <= on_disk[-1], "subscriber saw an event not yet journaled"
                seen.extend(got)
            cursor = r.cursor
            if hub.finished and cursor >= hub.published_seq:
                return

    with trio.fail_after(30):
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.serve_journal)
            async with trio.open_nursery() as subs:
                subs.start_soon(subscriber)
                for i in range(total // 3):
                    hub.publish_output("p", "stdout", [f"a{i}\nb{i}", f"c{i}"])
                    if i % 7 == 0:
                        await trio.lowlevel.checkpoint()
                    await hub.wait_journal()
                hub.close()
            nursery.cancel_scope.cancel()
    assert seen == list(range(1, total + 1))
    assert journal_seqs(path) == seen


async def test_serve_journal_flushes_on_cancel(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    hub = make_hub(open_journal(path))
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.serve_journal)
            publish_n(hub, 50)
            nursery.cancel_scope.cancel()
    assert journal_seqs(path) == list(range(1, 51))
    assert hub.last_seq == 50
    assert hub.backlog_bytes == 0


async def test_producer_waits_for_slow_journal(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(hub_mod, "JOURNAL_BACKLOG_BYTES", 1000)
    journal = GatedJournal(tmp_path / "events.jsonl")
    journal.open()
    hub = make_hub(journal)
    waited = trio.Event()

    async def producer() -> None:
        hub.publish_output("p", "stdout", ["x" * 2000])
        await hub.wait_journal()
        waited.set()

    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.serve_journal)
            nursery.start_soon(producer)
            await trio.to_thread.run_sync(journal.entered.wait)
            await trio.testing.wait_all_tasks_blocked()
            assert not waited.is_set()
            assert hub.backlog_bytes > 1000
            journal.gate.set()
            await waited.wait()
            assert hub.backlog_bytes == 0
            nursery.cancel_scope.cancel()


# ---------------------------------------------------------------------------
# Memory, journal, gaps


@pytest.mark.parametrize("writer", [False, True])
async def test_read_from_journal_after_trimming(tmp_path: Path, writer: bool) -> None:
    path = tmp_path / "events.jsonl"
    hub = make_hub(open_journal(path), history_events=50)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            if writer:
                await nursery.start(hub.serve_journal)
            publish_n(hub, 6000, pids=("a", "b"))  # ~150 bytes each: many index entries
            nursery.cancel_scope.cancel()
    assert hub.last_seq == 6000
    assert 5950 <= hub.memory_first_seq <= 5951
    # From the start: the journal, then memory, every seq once, no gap.
    seqs, gaps = read_all(hub)
    assert seqs == list(range(1, 6001))
    assert gaps == []
    # From the middle of the journal (the sparse index is used).
    r = hub.read(4000, Filter())
    first = events_of(r)
    assert first[0]["seq"] == 4001
    assert r.batches[0].first_seq == 4001
    assert [e["seq"] for e in first] == list(range(4001, 4001 + len(first)))
    # From memory.
    r = hub.read(5990, Filter())
    assert [e["seq"] for e in events_of(r)] == list(range(5991, 6001))
    # Filters apply to journal reads as to memory reads.
    seqs, _ = read_all(hub, Filter(process_ids=frozenset({"b"}), types=frozenset({"x-tick"})))
    assert seqs == [i + 1 for i in range(6000) if i % 2 == 1 and i % 3 == 0]
    seqs, _ = read_all(hub, Filter(stream="stderr"), cursor=5000)
    expected = [i + 1 for i in range(5000, 6000) if i % 3 == 0 or i % 2 == 0]
    assert seqs == expected


async def test_journal_lines_are_the_memory_lines(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    hub = make_hub(open_journal(path), history_events=10_000)
    publish_n(hub, 300)
    r = hub.read(0, Filter(), max_events=10_000, max_bytes=1 << 30)
    assert b"".join(b.data for b in r.batches) == path.read_bytes()


async def test_no_journal_gap_after_trimming() -> None:
    hub = make_hub(None, history_events=10)
    publish_n(hub, 100)
    assert hub.memory_first_seq == 91
    r = hub.read(0, Filter())
    assert (r.gap, r.cursor, r.batches) == ((1, 90), 90, [])
    r = hub.read(50, Filter())
    assert (r.gap, r.cursor) == ((51, 90), 90)
    seqs, gaps = read_all(hub)
    assert gaps == [(1, 90)]
    assert seqs == list(range(91, 101))
    # Caught up: nothing, no gap.
    r = hub.read(100, Filter())
    assert (r.gap, r.cursor, r.batches) == (None, 100, [])


async def test_history_trimmed_by_bytes() -> None:
    hub = make_hub(None, history_bytes=10_000)
    for i in range(100):
        hub.publish_output("p", "stdout", [f"{i:0100d}"])
    assert 10 < hub.memory_first_seq < 100  # some 230-byte events are kept
    _, gaps = read_all(hub)
    assert gaps == [(1, hub.memory_first_seq - 1)]


async def test_read_limits() -> None:
    hub = make_hub(None)
    hub.publish_output("p", "stdout", ["\n".join(str(i) for i in range(5000))])
    r = hub.read(0, Filter(), max_events=100)
    assert r.count == 100
    assert r.cursor == 100
    assert [e["seq"] for e in events_of(r)] == list(range(1, 101))
    r = hub.read(4990, Filter(), max_events=100)
    assert [e["seq"] for e in events_of(r)] == list(range(4991, 5001))
    r = hub.read(0, Filter(), max_bytes=1)  # at least one batch part
    assert r.count >= 1


async def test_read_limits_from_journal(tmp_path: Path) -> None:
    hub = make_hub(open_journal(tmp_path / "events.jsonl"), history_events=10)
    publish_n(hub, 500)
    r = hub.read(0, Filter(), max_events=10)
    assert [e["seq"] for e in events_of(r)] == list(range(1, 11))
    assert r.cursor == 10


# ---------------------------------------------------------------------------
# tail_cursor


async def tail(hub: Hub, flt: Filter, n: int) -> list[int]:
    seqs, gaps = read_all(hub, flt, cursor=await hub.tail_cursor(flt, n))
    assert gaps == []
    return seqs


async def test_tail_cursor_memory() -> None:
    hub = make_hub(None)
    publish_n(hub, 30, pids=("a", "b"))
    everything = list(range(1, 31))
    assert await tail(hub, Filter(), 5) == everything[-5:]
    assert await tail(hub, Filter(), 0) == []
    assert await tail(hub, Filter(), 1000) == everything
    only_a = Filter(process_ids=frozenset({"a"}))
    assert await tail(hub, only_a, 3) == [25, 27, 29]
    out_block = make_hub(None)
    out_block.publish("x-a", "p", {})
    out_block.publish_output("p", "stdout", ["1\n2\n3\n4"])  # one batch of 4
    assert await tail(out_block, Filter(), 2) == [4, 5]
    assert await tail(out_block, Filter(types=frozenset({"x-a"})), 1) == [1]


async def test_tail_cursor_reaches_into_journal(tmp_path: Path) -> None:
    hub = make_hub(open_journal(tmp_path / "events.jsonl"), history_events=5)
    publish_n(hub, 60, pids=("a", "b"))
    assert hub.memory_first_seq > 50
    assert await tail(hub, Filter(), 20) == list(range(41, 61))
    assert await tail(hub, Filter(process_ids=frozenset({"b"})), 12) == list(range(38, 61, 2))
    assert await tail(hub, Filter(), 100) == list(range(1, 61))


async def test_tail_cursor_without_journal_after_trimming() -> None:
    hub = make_hub(None, history_events=5)
    publish_n(hub, 60)
    # Only the history is left: a tail asks no more than it has (no gap).
    assert await tail(hub, Filter(), 20) == list(range(hub.memory_first_seq, 61))


# ---------------------------------------------------------------------------
# Journal write failures


@pytest.mark.parametrize("writer", [False, True])
async def test_journal_write_failure_alerts_once(writer: bool) -> None:
    journal = open_journal(Path("/dev/full"))  # every write fails with ENOSPC
    messages: list[str] = []
    hub = make_hub(journal, on_journal_error=messages.append)
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            if writer:
                await nursery.start(hub.serve_journal)
            for i in range(5):
                hub.publish_output("p", "stdout", [f"line {i}"])
                await trio.lowlevel.checkpoint()
                await hub.wait_journal()
            hub.close()
            while not hub.finished:
                await hub.wait_beyond(hub.last_seq)
            nursery.cancel_scope.cancel()
    assert len(messages) == 1
    assert "/dev/full" in messages[0]
    seqs, gaps = read_all(hub)
    assert seqs == list(range(1, 7))
    assert gaps == []
    events = events_of(hub.read(0, Filter(), max_events=100))
    alerts = [e for e in events if e["type"] == SYSTEM_ALERT]
    assert len(alerts) == 1
    assert alerts[0]["level"] == "error"
    assert alerts[0]["code"] == "journal-error"
    assert alerts[0]["processId"] is None
    assert [e["output"] for e in events if e["type"] == "process-output"] == [
        f"line {i}" for i in range(5)
    ]


async def test_journal_failure_on_closed_fd(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    journal = open_journal(path)
    hub = make_hub(journal, history_events=3)
    hub.publish("x-a", None, {})
    os.close(journal._fd)  # the descriptor goes bad: EBADF
    for i in range(5):
        hub.publish("x-b", None, {"i": i})
    assert journal.failed is not None
    assert hub.published_seq == hub.last_seq == 7  # 6 published + 1 alert
    assert journal_seqs(path) == [1]
    counts = hub.type_counts
    assert counts[SYSTEM_ALERT] == 1
    # Seq 1 comes from the journal; the trimmed events after it were never
    # journaled and are gone from memory: an explicit gap.
    seqs, gaps = read_all(hub)
    assert gaps == [(2, hub.memory_first_seq - 1)]
    assert seqs == [1, *range(hub.memory_first_seq, 8)]
    journal._fd = -1  # already closed above
    with pytest.raises(JournalError):
        journal.write(b"more\n")


# ---------------------------------------------------------------------------
# Followers and clients


async def test_wait_beyond_and_close() -> None:
    hub = make_hub(None)
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            woke: list[int] = []

            async def follower() -> None:
                await hub.wait_beyond(0)
                woke.append(hub.last_seq)
                await hub.wait_beyond(hub.last_seq)  # returns once closed
                woke.append(-1)

            nursery.start_soon(follower)
            await trio.testing.wait_all_tasks_blocked()
            assert woke == []
            hub.publish("x-a", None, {})
            await trio.testing.wait_all_tasks_blocked()
            assert woke == [1]
            hub.close()
    assert woke == [1, -1]
    assert hub.finished


async def test_client_progress_and_catch_up() -> None:
    hub = make_hub(None)
    client = Client("c1", "ws", "127.0.0.1:5")
    hub.register(client)
    assert client.connected_at.endswith("Z")
    hub.publish_output("p", "stdout", ["x"] * (hub_mod.LIVE_QUEUE_EVENTS + 10))
    hub.note_progress(client, 5, 5)
    assert client.catching_up
    assert hub.catchups == 1
    assert client.as_json(hub.last_seq)["queued"] == hub.last_seq - 5
    hub.note_progress(client, hub.last_seq, hub.last_seq - 5)
    assert not client.catching_up
    assert client.as_json(hub.last_seq)["queued"] == 0
    assert hub.events_sent == hub.last_seq
    hub.unregister(client)
    assert hub.clients == {}


def test_filter_matches() -> None:
    f = Filter(process_ids=frozenset({"a"}), types=frozenset({"process-output"}), stream="stdout")
    assert f.matches("process-output", "a", "stdout")
    assert not f.matches("process-output", "a", "stderr")
    assert not f.matches("process-output", "b", "stdout")
    assert not f.matches("x-a", "a", None)
    assert Filter(stream="stderr").matches("process-started", "a", None)
    b = EventBatch(1, 1, "process-output", "a", "stdout", b"{}\n")
    assert f.matches_batch(b)


async def test_tail_cursor_scans_a_big_journal_off_the_event_loop(tmp_path: Path) -> None:
    """``--tail 10`` of a quiet process in a 100 MiB journal: the loop keeps running.

    The scan used to run on the event loop (0.5 s here for 100 MiB, 0.74 s
    for 350 MiB), stalling every connection and pipe reader meanwhile. The
    journal writer keeps appending during the scan, from its worker thread.
    """
    hub = make_hub(open_journal(tmp_path / "events.jsonl"), history_events=1000)
    for i in range(20):
        hub.publish_output("quiet", "stdout", [f"quiet {i}"])
    block: list[Segment] = ["x" * 300] * 1024  # one ~310 KiB batch
    while hub.journal is not None and hub.journal.size < 100 * 2**20:
        hub.publish_output("busy", "stdout", block)
    quiet = Filter(process_ids=frozenset({"quiet"}))
    worst = 0.0
    done = False

    async def heartbeat() -> None:
        nonlocal worst
        last = time.perf_counter()
        while True:
            await trio.sleep(0.002)
            now = time.perf_counter()
            worst, last = max(worst, now - last), now
            if done:
                return

    async def keep_writing() -> None:
        while not done:
            hub.publish_output("busy", "stdout", block)
            await hub.wait_journal()
            await trio.sleep(0.005)

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            await nursery.start(hub.serve_journal)
            nursery.start_soon(heartbeat)
            nursery.start_soon(keep_writing)
            await trio.sleep(0.05)
            cursor = await hub.tail_cursor(quiet, 10)
            done = True
            await trio.sleep(0.01)
            nursery.cancel_scope.cancel()
    assert cursor == 10  # quiet's events are seqs 1..20: the last 10 follow seq 10
    assert worst < 0.1, f"the event loop stalled {worst * 1000:.0f} ms"


async def test_read_of_a_quiet_process_never_scans_a_big_journal_at_once(tmp_path: Path) -> None:
    """``subscribe quiet`` from seq 0 over a 60 MiB journal of another process.

    One `Hub.read` used to decode the whole stretch of filtered-out events on
    the event loop (about 1 s for 100 MiB); now each call decodes a bounded
    number of chunks and returns the cursor it reached, so the caller loops
    with checkpoints in between.
    """
    hub = make_hub(open_journal(tmp_path / "events.jsonl"), history_events=1000)
    hub.publish_output("quiet", "stdout", ["first"])
    block: list[Segment] = ["x" * 300] * 1024  # one ~310 KiB batch
    async with trio.open_nursery() as nursery:
        await nursery.start(hub.serve_journal)
        while hub.journal is not None and hub.journal.size < 60 * 2**20:
            hub.publish_output("busy", "stdout", block)
            await hub.wait_journal()
        hub.publish_output("quiet", "stdout", ["last"])
        await hub.wait_journal()
        nursery.cancel_scope.cancel()
    quiet = Filter(process_ids=frozenset({"quiet"}))
    cursor, seen, worst, calls = 0, [], 0.0, 0
    while cursor < hub.last_seq:
        start = time.perf_counter()
        read = hub.read(cursor, quiet)
        worst = max(worst, time.perf_counter() - start)
        calls += 1
        assert read.gap is None
        assert read.cursor > cursor
        cursor = read.cursor
        seen += [e["output"] for e in events_of(read)]
    assert seen == ["first", "last"]
    assert calls > 2  # the stretch of busy events took several bounded reads
    assert worst < 0.15, f"one read took {worst * 1000:.0f} ms on the event loop"
