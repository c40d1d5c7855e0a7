"""The event hub: publish = journal first, then fan-out by cursor (SPEC 2, 4.4).

Publishing is synchronous: the hub stamps sequence numbers and keeps the
encoded events in a bounded in-memory history. Events become *visible* to
subscribers only once they are in the journal (write ahead). While
`serve_journal` runs, one task writes queued batches from a worker thread,
so encoding and disk writes overlap on two cores; a producer that gets
`JOURNAL_BACKLOG_BYTES` ahead of the disk waits in `wait_journal` (a slow
disk slows the agent as a terminal would). Without that task, publishing
writes synchronously. The hub never waits on a subscriber, so subscribers
cannot slow the agent.

A subscriber is a *cursor*: the last seq it was sent. It reads forward
from the in-memory history, or from the journal when it has fallen behind
the history, and gets an explicit gap only for events that are gone from
both. Its "live queue" is the shared history itself: a subscriber further
than `LIVE_QUEUE_EVENTS` behind is *catching up*. Memory per subscriber is
a cursor and a filter, whatever the output rate.
"""

from __future__ import annotations

import bisect
import itertools
import time
from collections import OrderedDict, deque
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import trio

from agentwatch.errors import JournalError
from agentwatch.events import (
    PROCESS_OUTPUT,
    SYSTEM_ALERT,
    EventBatch,
    decode_meta,
    encode_event,
    encode_output,
    format_timestamp,
)
from agentwatch.journal import Journal
from agentwatch.proto.lines import Segment

HISTORY_MAX_EVENTS = 1_000_000  # in-memory tail of the journal, in events
HISTORY_MAX_BYTES = 64 * 1024 * 1024  # ... and in encoded bytes
LIVE_QUEUE_EVENTS = 10_000  # a subscriber further behind than this is catching up
READ_MAX_EVENTS = 4096  # events handed to a transport per read
READ_MAX_BYTES = 1024 * 1024  # bytes handed to a transport per read (< 1 MiB frames)
JOURNAL_BACKLOG_BYTES = 8 * 1024 * 1024  # unwritten journal bytes before producers wait
JOURNAL_CACHE_CHUNKS = 32  # decoded journal chunks (64 KiB to 1 MiB) shared by catching-up readers
# Journal chunks one `Hub.read` decodes at most: a few ms of work on the event loop, so a
# reader skipping a long stretch of filtered-out events (a quiet process in a long run)
# never stalls the other connections and the pipe readers; it calls again from the cursor.
JOURNAL_SCAN_CHUNKS = 8


@dataclass(frozen=True, slots=True)
class Filter:
    """Which events a subscription wants; ``None`` means any."""

    process_ids: frozenset[str] | None = None
    types: frozenset[str] | None = None
    stream: str | None = None

    def matches(self, type_: str, process_id: str | None, stream: str | None) -> bool:
        """Whether an event with these routing fields passes."""
        if self.types is not None and type_ not in self.types:
            return False
        if self.process_ids is not None and process_id not in self.process_ids:
            return False
        return not (self.stream is not None and type_ == PROCESS_OUTPUT and stream != self.stream)

    def matches_batch(self, b: EventBatch) -> bool:
        """Whether the events of a batch pass."""
        return self.matches(b.type, b.process_id, b.stream)


@dataclass(slots=True)
class Read:
    """What one `Hub.read` returns."""

    batches: list[EventBatch]
    cursor: int
    gap: tuple[int, int] | None = None

    @property
    def count(self) -> int:
        """Number of events in the batches."""
        return sum(b.count for b in self.batches)


@dataclass(slots=True)
class Client:
    """A connected subscriber, as listed by ``GET /api/clients``."""

    client_id: str
    transport: str
    remote: str
    user_id: str | None = None
    connected_at: str = ""
    subscriptions: list[str] = field(default_factory=list)
    cursor: int = 0
    catching_up: bool = False
    sent: int = 0

    def as_json(self, last_seq: int) -> dict[str, Any]:
        """The wire form of SPEC 4 (``/api/clients``)."""
        return {
            "clientId": self.client_id,
            "transport": self.transport,
            "userId": self.user_id,
            "remote": self.remote,
            "connectedAt": self.connected_at,
            "subscriptions": list(self.subscriptions),
            "queued": max(last_seq - self.cursor, 0),
            "catchingUp": self.catching_up,
        }


class Hub:
    """Sequence, journal, history and wake-ups for every event of a run."""

    def __init__(
        self,
        journal: Journal | None,
        *,
        now: Callable[[], float] = time.time,
        history_events: int = HISTORY_MAX_EVENTS,
        history_bytes: int = HISTORY_MAX_BYTES,
        on_journal_error: Callable[[str], None] | None = None,
    ) -> None:
        self.journal = journal
        self.now = now
        self.last_seq = 0  # the newest seq visible to subscribers (journaled)
        self.published_seq = 0  # the newest seq assigned
        self.backlog_bytes = 0  # encoded bytes waiting for the journal writer
        self._queue: list[EventBatch] = []
        self._queued = trio.Event()
        self._drained = trio.Event()
        self._writer_running = False
        self._chunk_cache: OrderedDict[int, list[EventBatch]] = OrderedDict()
        self.closed = False
        self.clients: dict[str, Client] = {}
        self._clients_changed: trio.Event | None = None  # made by a waiter (see below)
        self.events_published = 0
        self.events_sent = 0
        self.catchups = 0
        self.type_counts: dict[str, int] = {}
        self._history_events = history_events
        self._history_bytes = history_bytes
        self._batches: deque[EventBatch] = deque()
        self._firsts: deque[int] = deque()
        self._mem_events = 0
        self._mem_bytes = 0
        self._changed = trio.Event()
        self._reopened = trio.Event()
        self._on_journal_error = on_journal_error
        self._journal_alerted = False

    # ---- publishing -------------------------------------------------------

    def publish(self, type_: str, process_id: str | None, fields: dict[str, Any]) -> int:
        """Publish one event; return its seq."""
        seq = self.published_seq + 1
        line = encode_event(seq, type_, format_timestamp(self.now()), process_id, fields)
        self._commit(EventBatch(seq, 1, type_, process_id, None, line))
        return seq

    def publish_output(self, process_id: str, stream: str, segments: list[Segment]) -> int:
        """Publish a chunk of output lines (one timestamp); return the last seq."""
        if not segments:
            return self.published_seq
        buf = bytearray()
        first = self.published_seq + 1
        n = encode_output(buf, first, format_timestamp(self.now()), process_id, stream, segments)
        self._commit(EventBatch(first, n, PROCESS_OUTPUT, process_id, stream, bytes(buf)))
        return first + n - 1

    def _commit(self, batch: EventBatch) -> None:
        self.published_seq = batch.last_seq
        self.events_published += batch.count
        self.type_counts[batch.type] = self.type_counts.get(batch.type, 0) + batch.count
        self._remember(batch)
        journal = self.journal
        if journal is None or journal.failed is not None:
            self._make_visible(batch.last_seq)
        elif self._writer_running:
            self._queue.append(batch)
            self.backlog_bytes += batch.nbytes
            self._queued.set()
        else:
            try:
                journal.append(batch.data, batch.first_seq, batch.last_seq)
            except JournalError as exc:
                self._journal_failed(str(exc))
            self._make_visible(batch.last_seq)

    def _make_visible(self, seq: int) -> None:
        if seq > self.last_seq:
            self.last_seq = seq
            self._changed.set()
            self._changed = trio.Event()

    def _journal_failed(self, message: str) -> None:
        if self._journal_alerted:
            return
        self._journal_alerted = True
        if self._on_journal_error is not None:
            self._on_journal_error(message)
        self.publish(
            SYSTEM_ALERT, None, {"level": "error", "message": message, "code": "journal-error"}
        )

    async def wait_journal(self) -> None:
        """Wait while the journal writer is too far behind (producer backpressure)."""
        while self.backlog_bytes > JOURNAL_BACKLOG_BYTES and self._writer_running:
            await self._drained.wait()

    async def serve_journal(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Write queued batches to the journal from a worker thread until cancelled."""
        journal = self.journal
        self._writer_running = journal is not None
        task_status.started()
        if journal is None:
            return
        try:
            while True:
                await self._queued.wait()
                await self._write_queued(journal)
        finally:
            self._writer_running = False
            with trio.CancelScope(shield=True):
                await self._write_queued(journal)

    async def _write_queued(self, journal: Journal) -> None:
        while self._queue:
            batches, self._queue = self._queue, []
            self._queued = trio.Event()
            chunks = [b.data for b in batches]
            nbytes = sum(map(len, chunks))
            last = batches[-1].last_seq
            offset = journal.size
            try:
                if journal.failed is None:
                    # Shielded: batches taken off the queue must reach the disk
                    # (bounded by JOURNAL_BACKLOG_BYTES, so this cannot hang long).
                    with trio.CancelScope(shield=True):
                        await trio.to_thread.run_sync(journal.writev, chunks)
                    journal.record_parts(offset, [(b.first_seq, b.nbytes) for b in batches], last)
            except JournalError as exc:
                self._journal_failed(str(exc))
            self.backlog_bytes -= nbytes
            self._drained.set()
            self._drained = trio.Event()
            self._make_visible(last)

    def _remember(self, batch: EventBatch) -> None:
        self._batches.append(batch)
        self._firsts.append(batch.first_seq)
        self._mem_events += batch.count
        self._mem_bytes += batch.nbytes
        while len(self._batches) > 1 and (
            self._mem_events > self._history_events or self._mem_bytes > self._history_bytes
        ):
            old = self._batches.popleft()
            self._firsts.popleft()
            self._mem_events -= old.count
            self._mem_bytes -= old.nbytes

    def close(self) -> None:
        """No more events: wake every waiter so that followers can finish."""
        self.closed = True
        self._changed.set()
        self._changed = trio.Event()
        self._reopened = trio.Event()

    def reopen(self) -> None:
        """More events after all: a process was restarted while the run lingered (SPEC 4)."""
        self.closed = False
        self._reopened.set()

    async def wait_reopened(self) -> None:
        """Return once the hub is open: at once, or after `reopen` of a closed hub."""
        while self.closed:
            await self._reopened.wait()

    @property
    def finished(self) -> bool:
        """Closed, and every event published is visible."""
        return self.closed and self.last_seq >= self.published_seq

    # ---- reading ----------------------------------------------------------

    @property
    def memory_first_seq(self) -> int:
        """The oldest seq held in memory (``published_seq + 1`` when none)."""
        return self._firsts[0] if self._firsts else self.published_seq + 1

    async def wait_beyond(self, seq: int) -> None:
        """Return once an event after ``seq`` exists, or the hub is closed."""
        while self.last_seq <= seq and not self.finished:
            await self._changed.wait()

    def read(
        self,
        cursor: int,
        flt: Filter,
        max_events: int = READ_MAX_EVENTS,
        max_bytes: int = READ_MAX_BYTES,
    ) -> Read:
        """Events after ``cursor`` that pass ``flt``, from memory or journal."""
        if cursor >= self.last_seq:
            return Read([], cursor)
        mem_first = self.memory_first_seq
        if cursor + 1 < mem_first:
            journal = self.journal
            if journal is not None and journal.covers(cursor + 1):
                try:
                    read = self._read_journal(journal, cursor, flt, max_events, max_bytes)
                except (JournalError, OSError):
                    read = None  # unreadable: the events are gone, say so with a gap
                if read is not None:
                    return read
            return Read([], mem_first - 1, gap=(cursor + 1, mem_first - 1))
        i = max(bisect.bisect_right(self._firsts, cursor + 1) - 1, 0)
        batches = itertools.islice(self._batches, i, None)
        read = _collect(batches, cursor, flt, max_events, max_bytes, self.last_seq)
        return read or Read([], cursor)

    def _read_journal(
        self, journal: Journal, cursor: int, flt: Filter, max_events: int, max_bytes: int
    ) -> Read | None:
        """Like the memory path, over journal chunks decoded once for every reader.

        Subscribers catching up at similar places share the decoded chunks
        (an LRU of `JOURNAL_CACHE_CHUNKS`), so ten readers decode each stretch
        of the journal once, not ten times.
        """
        first = journal.chunk_of(cursor + 1)
        last = min(journal.chunks, first + JOURNAL_SCAN_CHUNKS)
        batches = (b for i in range(first, last) for b in self._journal_chunk(journal, i))
        return _collect(batches, cursor, flt, max_events, max_bytes, self.last_seq)

    def _journal_chunk(self, journal: Journal, i: int) -> list[EventBatch]:
        cache = self._chunk_cache
        hit = cache.get(i)
        if hit is not None:
            cache.move_to_end(i)
            return hit
        lines, complete = journal.read_chunk(i)
        batches = self._from_lines(lines, Filter()).batches
        if complete:
            cache[i] = batches
            if len(cache) > JOURNAL_CACHE_CHUNKS:
                cache.popitem(last=False)
        return batches

    def _from_lines(self, lines: list[bytes], flt: Filter) -> Read:
        """Batches of consecutive journal lines that share type, process and stream."""
        out: list[EventBatch] = []
        cursor = 0
        group: list[bytes] = []
        key: tuple[str, str | None, str | None] | None = None
        first = 0

        def flush() -> None:
            if key is not None and group:
                out.append(
                    EventBatch(first, len(group), key[0], key[1], key[2], b"\n".join(group) + b"\n")
                )

        for line in lines:
            meta = decode_meta(line)
            cursor = meta.seq
            if not flt.matches(meta.type, meta.processId, meta.stream):
                continue
            this = (meta.type, meta.processId, meta.stream)
            if this != key or first + len(group) != meta.seq:
                flush()
                key, first, group = this, meta.seq, []
            group.append(line)
        flush()
        return Read(out, cursor)

    async def tail_cursor(self, flt: Filter, n: int) -> int:
        """The cursor from which exactly the last ``n`` matching events follow.

        The in-memory history answers most requests at once. When it holds
        fewer than ``n`` matching events (a quiet process in a long run), the
        journal is scanned backwards, chunk by chunk, in a worker thread: a
        scan of hundreds of MiB must not stall every connection and pipe
        reader on the event loop. The thread reads only chunks the index
        already records (written and flushed before ``memory_first_seq``),
        so the journal writer appending meanwhile is never in its way.
        """
        if n <= 0:
            return self.last_seq
        need = n
        for b in reversed(self._batches):
            if flt.matches_batch(b):
                if b.count >= need:
                    return b.first_seq + (b.count - need) - 1
                need -= b.count
        mem_first = self.memory_first_seq
        journal = self.journal
        if journal is None or not journal.covers(1):
            return max(mem_first - 1, 0) if mem_first > 1 else 0
        last_chunk = journal.chunk_of(mem_first - 1)
        # Not abandoned on cancellation: the journal stays open until the thread is done.
        return await trio.to_thread.run_sync(
            _journal_tail, journal, last_chunk, mem_first, flt, need
        )

    # ---- clients ----------------------------------------------------------

    def register(self, client: Client) -> None:
        """Record a connected subscriber."""
        client.connected_at = client.connected_at or format_timestamp(self.now())
        self.clients[client.client_id] = client
        self._note_clients_changed()

    def unregister(self, client: Client) -> None:
        """Forget a subscriber."""
        self.clients.pop(client.client_id, None)
        self._note_clients_changed()

    async def wait_clients_changed(self) -> None:
        """Return once a subscriber registers, unregisters or moves its cursor.

        The event exists only while someone waits (the linger, SPEC 6), so
        `note_progress` on the fan-out path costs one attribute test otherwise.
        """
        if self._clients_changed is None:
            self._clients_changed = trio.Event()
        await self._clients_changed.wait()

    def _note_clients_changed(self) -> None:
        event = self._clients_changed
        if event is not None:
            self._clients_changed = None
            event.set()

    def note_progress(self, client: Client, cursor: int, sent: int) -> None:
        """Update a subscriber's cursor after a send, and its catch-up state."""
        client.cursor = cursor
        self._note_clients_changed()
        client.sent += sent
        self.events_sent += sent
        behind = self.last_seq - cursor > LIVE_QUEUE_EVENTS or cursor + 1 < self.memory_first_seq
        if behind and not client.catching_up:
            self.catchups += 1
        client.catching_up = behind


def _journal_tail(journal: Journal, last_chunk: int, before: int, flt: Filter, need: int) -> int:
    """The cursor before the last ``need`` matching events with seq < ``before``.

    Runs in a worker thread: reads chunks ``last_chunk`` down to 0 of the
    journal's index (complete, immutable ranges of the file, except that the
    newest is cut at the size the index records) and stops as soon as it
    has found ``need`` events. 0 when there are fewer.
    """
    for i in range(last_chunk, -1, -1):
        try:
            lines, _ = journal.read_chunk(i)
        except (JournalError, OSError):
            return 0  # unreadable: from the start, where reads report the loss as a gap
        seqs = []
        for line in lines:
            meta = decode_meta(line)
            if meta.seq >= before:
                break
            if flt.matches(meta.type, meta.processId, meta.stream):
                seqs.append(meta.seq)
        if len(seqs) >= need:
            return seqs[-need] - 1
        need -= len(seqs)
    return 0


def _collect(
    batches: Iterable[EventBatch],
    cursor: int,
    flt: Filter,
    max_events: int,
    max_bytes: int,
    visible: int,
) -> Read | None:
    """The events after ``cursor`` that pass ``flt``, up to the limits.

    ``batches`` run in seq order and are consumed lazily; the cursor moves
    past filtered-out events too. None when nothing after ``cursor`` is there.
    """
    out: list[EventBatch] = []
    count = size = 0
    moved = False
    for b in batches:
        if b.last_seq <= cursor:
            continue
        if b.last_seq > visible:
            break
        moved = True
        if flt.matches_batch(b):
            part = b.since(cursor)
            if count + part.count > max_events:
                part = part.head(max(max_events - count, 1))
            out.append(part)
            count += part.count
            size += part.nbytes
            cursor = part.last_seq
        else:
            cursor = b.last_seq
        if count >= max_events or size >= max_bytes:
            break
    return Read(out, cursor) if moved else None
