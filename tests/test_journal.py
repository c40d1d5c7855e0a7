"""The JSONL journal (SPEC 2): append, replay by seq through the sparse index,
offline reading, and errors as `JournalError`."""

from __future__ import annotations

import os
from pathlib import Path

import msgspec
import pytest

from agentwatch import journal as journal_mod
from agentwatch.errors import JournalError
from agentwatch.events import encode_event, seq_of_line
from agentwatch.journal import INDEX_STRIDE_BYTES, Journal, read_journal

TS = "2026-11-25T16:40:00.000000Z"


def line(seq: int, pad: int = 0) -> bytes:
    return encode_event(seq, "x-a", TS, "p", {"pad": "x" * pad})


def fill(j: Journal, n: int, pad: int = 0, per_append: int = 1) -> None:
    seq = j.last_seq + 1
    while seq <= n:
        last = min(seq + per_append - 1, n)
        j.append(b"".join(line(s, pad) for s in range(seq, last + 1)), seq, last)
        seq = last + 1


def seqs(lines: list[bytes]) -> list[int]:
    return [seq_of_line(x) for x in lines]


def test_append_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "deep" / "run" / "events.jsonl"
    j = Journal(path)
    j.open()
    assert path.stat().st_mode & 0o777 == 0o600
    assert not j.covers(1)
    assert j.read_after(0) == []
    fill(j, 10)
    assert (j.first_seq, j.last_seq, j.size) == (1, 10, path.stat().st_size)
    assert j.covers(1)
    assert j.covers(10)
    assert not j.covers(11)
    assert seqs(j.read_after(0)) == list(range(1, 11))
    assert seqs(j.read_after(7)) == [8, 9, 10]
    assert j.read_after(10) == []
    # Plain JSON Lines: every line parses on its own (jq works on it).
    for raw in path.read_bytes().splitlines():
        assert msgspec.json.decode(raw)["type"] == "x-a"
    j.close()
    j.close()  # twice is fine


def test_sparse_index_replay(tmp_path: Path) -> None:
    j = Journal(tmp_path / "events.jsonl")
    j.open()
    fill(j, 3000, pad=200, per_append=7)  # ~700 KiB: about a dozen index entries
    assert j.size > 8 * INDEX_STRIDE_BYTES
    for after in (0, 1, 6, 7, 500, 1234, 2999):
        got = seqs(j.read_after(after))
        assert got[0] == after + 1
        assert got == list(range(after + 1, after + 1 + len(got)))
    assert j.read_after(3000) == []


def test_read_after_is_bounded(tmp_path: Path) -> None:
    j = Journal(tmp_path / "events.jsonl")
    j.open()
    fill(j, 2000, pad=100)
    got = j.read_after(0, max_bytes=10_000)
    assert 10_000 <= sum(map(len, got)) < 10_000 + len(line(1, 100))
    assert seqs(got) == list(range(1, len(got) + 1))


def test_reopen_appends(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    j = Journal(path)
    j.open()
    fill(j, 3)
    j.close()
    j2 = Journal(path)
    j2.open()
    assert j2.size == path.stat().st_size
    j2.append(line(4), 4, 4)
    assert seqs(list(read_journal(path))) == [1, 2, 3, 4]


def test_writev_many_chunks(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    j = Journal(path)
    j.open()
    chunks = [line(i) for i in range(1, 2 * journal_mod.IOV_MAX + 50)]
    j.writev([b"", *chunks, b""])
    assert path.read_bytes() == b"".join(chunks)


def test_read_journal_skips_cut_last_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(line(1) + b"\n" + line(2) + line(3)[:10])
    assert seqs(list(read_journal(path))) == [1, 2]


def test_read_journal_big(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(line(i, 300) for i in range(1, 3001)))  # > READ_CHUNK_BYTES
    assert seqs(list(read_journal(path))) == list(range(1, 3001))


def test_errors(tmp_path: Path) -> None:
    with pytest.raises(JournalError, match="cannot read journal"):
        list(read_journal(tmp_path / "missing.jsonl"))
    (tmp_path / "dir.jsonl").mkdir()
    with pytest.raises(JournalError, match="cannot open journal"):
        Journal(tmp_path / "dir.jsonl").open()
    (tmp_path / "file").write_text("")
    with pytest.raises(JournalError, match="cannot open journal"):
        Journal(tmp_path / "file" / "events.jsonl").open()


def test_write_failure_sticks() -> None:
    j = Journal(Path("/dev/full"))
    j.open()
    with pytest.raises(JournalError, match="journal write failed") as info:
        j.append(line(1), 1, 1)
    assert "/dev/full" in str(info.value)
    assert j.failed is not None
    assert (j.first_seq, j.last_seq) == (0, 0)
    assert not j.covers(1)
    with pytest.raises(JournalError):
        j.write(line(2))
    j.close()


def test_write_failure_bad_fd(tmp_path: Path) -> None:
    j = Journal(tmp_path / "events.jsonl")
    j.open()
    os.close(j._fd)
    with pytest.raises(JournalError, match="journal write failed"):
        j.write(line(1))
    j._fd = -1
