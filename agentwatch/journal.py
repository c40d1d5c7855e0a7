"""The single writer of the JSONL journal (SPEC 2), and replay by seq.

Writes are plain ``os.write`` calls on an ``O_APPEND`` descriptor, made
synchronously by the hub before any subscriber sees the events (write
ahead). They land in the page cache, so they cost microseconds and never
wait on a subscriber; a failure (disk full, permission) raises
`JournalError` and the hub turns it into an alert.

Replay keeps a sparse index of ``(seq, offset)`` pairs, one entry at least
every `INDEX_STRIDE_BYTES`, and reads with ``os.pread`` from the nearest
entry; memory stays small whatever the length of the run.
"""

from __future__ import annotations

import bisect
import os
from collections.abc import Iterator
from pathlib import Path

from agentwatch.errors import JournalError
from agentwatch.events import seq_of_line

INDEX_STRIDE_BYTES = 64 * 1024  # one index entry per 64 KiB of journal
READ_CHUNK_BYTES = 256 * 1024  # replay reads this much at a time
IOV_MAX = 512  # buffers per writev call (Linux allows 1024)


class Journal:
    """An append-only JSON Lines file of events with replay by seq."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._rfd = -1
        self._size = 0
        self._index_seqs: list[int] = []
        self._index_offsets: list[int] = []
        self._last_indexed = -INDEX_STRIDE_BYTES
        self.failed: str | None = None  # error message once a write failed
        self.first_seq = 0  # first seq written (0: none yet)
        self.last_seq = 0  # last seq written

    @property
    def size(self) -> int:
        """Bytes written so far."""
        return self._size

    def open(self) -> None:
        """Create the directory and the file (mode 0600); raise JournalError."""
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(
                self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_CLOEXEC, 0o600
            )
            self._size = os.fstat(self._fd).st_size
        except OSError as exc:
            raise JournalError(f"cannot open journal {self.path}: {exc.strerror}") from exc

    def append(self, data: bytes, first_seq: int, last_seq: int) -> None:
        """Append encoded event lines; raise JournalError on failure."""
        offset = self._size
        self.write(data)
        self.record(offset, len(data), first_seq, last_seq)

    def write(self, data: bytes) -> None:
        """Write bytes at the end; safe to call from a worker thread."""
        self.writev([data])

    def writev(self, chunks: list[bytes]) -> None:
        """Write several byte strings at the end in as few syscalls as possible."""
        if self.failed is not None:
            raise JournalError(self.failed)
        try:
            pending = [memoryview(c) for c in chunks if c]
            while pending:
                n = os.writev(self._fd, pending[:IOV_MAX])
                while n and pending:
                    if n >= len(pending[0]):
                        n -= len(pending.pop(0))
                    else:
                        pending[0] = pending[0][n:]
                        n = 0
        except OSError as exc:
            self.failed = f"journal write failed: {exc.strerror} ({self.path})"
            raise JournalError(self.failed) from exc

    def record(self, offset: int, nbytes: int, first_seq: int, last_seq: int) -> None:
        """Account for a completed write of events ``first_seq..last_seq``."""
        self.record_parts(offset, [(first_seq, nbytes)], last_seq)

    def record_parts(self, offset: int, parts: list[tuple[int, int]], last_seq: int) -> None:
        """Account for one write made of parts ``(first_seq, nbytes)``, in order.

        An index entry goes in at least every `INDEX_STRIDE_BYTES` at a part
        boundary, so a replay never scans far before the seq it wants.
        """
        for first_seq, nbytes in parts:
            if offset - self._last_indexed >= INDEX_STRIDE_BYTES:
                self._index_seqs.append(first_seq)
                self._index_offsets.append(offset)
                self._last_indexed = offset
            if not self.first_seq:
                self.first_seq = first_seq
            offset += nbytes
        self._size = offset
        self.last_seq = last_seq

    def chunk_of(self, seq: int) -> int:
        """The index chunk holding event ``seq`` (chunks are `INDEX_STRIDE_BYTES`-ish)."""
        return max(bisect.bisect_right(self._index_seqs, seq) - 1, 0)

    @property
    def chunks(self) -> int:
        """How many index chunks the journal has (the last one may still grow)."""
        return len(self._index_seqs)

    def read_chunk(self, i: int) -> tuple[list[bytes], bool]:
        """The event lines of chunk ``i``, and whether the chunk is complete."""
        start = self._index_offsets[i]
        last = i + 1 >= len(self._index_offsets)
        end = self._size if last else self._index_offsets[i + 1]
        data = os.pread(self._reader(), end - start, start) if end > start else b""
        lines = data.split(b"\n")
        lines.pop()  # the part after the last newline (empty for whole writes)
        return lines, not last

    def covers(self, seq: int) -> bool:
        """Whether event ``seq`` can be read back from this journal."""
        return bool(self._index_seqs) and self.first_seq <= seq <= self.last_seq

    def read_after(
        self, seq: int, max_bytes: int = READ_CHUNK_BYTES, max_events: int = 1 << 30
    ) -> list[bytes]:
        """Encoded events with seq > ``seq`` (about ``max_bytes`` of them)."""
        if not self._index_seqs:
            return []
        i = max(bisect.bisect_right(self._index_seqs, seq + 1) - 1, 0)
        offset = self._index_offsets[i]
        out: list[bytes] = []
        taken = 0
        tail = b""
        started = False  # lines are in seq order: once past ``seq``, take them all
        fd = self._reader()
        while offset < self._size and taken < max_bytes and len(out) < max_events:
            block = tail + os.pread(fd, READ_CHUNK_BYTES, offset)
            if len(block) == len(tail):
                break
            offset += len(block) - len(tail)
            lines = block.split(b"\n")
            tail = lines.pop()
            for line in lines:
                if not started:
                    if not line or seq_of_line(line) <= seq:
                        continue
                    started = True
                out.append(line)
                taken += len(line)
                if taken >= max_bytes or len(out) >= max_events:
                    break
        return out

    def _reader(self) -> int:
        """A read-only descriptor for replay, opened once."""
        if self._rfd < 0:
            try:
                self._rfd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
            except OSError as exc:
                raise JournalError(f"cannot read journal {self.path}: {exc.strerror}") from exc
        return self._rfd

    def close(self) -> None:
        """Close the file."""
        for fd in (self._fd, self._rfd):
            if fd >= 0:
                os.close(fd)
        self._fd = self._rfd = -1


def read_journal(path: Path) -> Iterator[bytes]:
    """Every complete event line of a journal file (a cut last line is skipped)."""
    try:
        with open(path, "rb") as f:
            tail = b""
            while block := f.read(READ_CHUNK_BYTES):
                lines = (tail + block).split(b"\n")
                tail = lines.pop()
                yield from (line for line in lines if line)
    except OSError as exc:
        raise JournalError(f"cannot read journal {path}: {exc.strerror}") from exc
