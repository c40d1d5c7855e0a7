"""`up`'s echo prefixes (SPEC 6): the pure `Prefixer`, then `agentwatch up` end to
end with its output a pipe (no colour), a terminal (one colour per agent) and
``--no-prefix`` (raw)."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from agentwatch.proto.prefix import RESET, Prefixer

if TYPE_CHECKING:
    from conftest import CLI

# ---------------------------------------------------------------------------
# The pure prefixer


@pytest.mark.parametrize(
    ("writes", "echoed"),
    [
        ([("a", b"one\n")], b"a   | one\n"),
        ([("a", b"one\ntwo\n")], b"a   | one\na   | two\n"),
        ([("a", b"par"), ("a", b"tial\n")], b"a   | partial\n"),  # a piece continues its line
        ([("a", b"x\r\n")], b"a   | x\r\n"),
        ([("a", b"\n\n")], b"a   | \na   | \n"),
        ([("a", b"")], b""),
        ([("a", b"x\n"), ("bbb", b"y\n")], b"a   | x\nbbb | y\n"),
        # another agent writes while a's line is open: that line ends first
        ([("a", b"wait"), ("bbb", b"y\n"), ("a", b"ed\n")], b"a   | wait\nbbb | y\na   | ed\n"),
        ([("a", b"one\ntw"), ("a", b"o\nthree")], b"a   | one\na   | two\na   | three"),
    ],
)
def test_prefixes(writes: list[tuple[str, bytes]], echoed: bytes) -> None:
    p = Prefixer(["a", "bbb"])
    assert b"".join(p.feed(name, data) for name, data in writes) == echoed


TEXT = b"first line\nsecond\r\n\nno newline yet... done\nlast"


@pytest.mark.parametrize("size", [1, 2, 3, 7, len(TEXT)])
def test_any_split_of_one_agents_output_gives_the_same_echo(size: int) -> None:
    whole = Prefixer(["agent"]).feed("agent", TEXT)
    p = Prefixer(["agent"])
    pieces = [TEXT[i : i + size] for i in range(0, len(TEXT), size)]
    assert b"".join(p.feed("agent", piece) for piece in pieces) == whole
    assert whole.replace(b"agent | ", b"") == TEXT
    assert whole.count(b"agent | ") == TEXT.count(b"\n") + 1


def test_colours_one_per_agent_in_order() -> None:
    p = Prefixer(["planner", "coder"], colour=True)
    assert p.feed("planner", b"x\n") == f"\x1b[36mplanner |{RESET} x\n".encode()
    assert p.feed("coder", b"y\n") == f"\x1b[33mcoder   |{RESET} y\n".encode()
    plain = Prefixer(["planner", "coder"])
    assert b"\x1b" not in plain.feed("coder", b"y\n")


def test_names_added_later_widen_the_padding() -> None:
    p = Prefixer()
    assert p.feed("a", b"x\n") == b"a | x\n"
    p.add("longer")
    assert p.feed("a", b"x\n") == b"a      | x\n"


# ---------------------------------------------------------------------------
# `agentwatch up` end to end

TICKS = """
import sys, time
for i in range(3):
    print("tick", i, flush=True)
    time.sleep(0.02)
print("partial", end="", flush=True)
time.sleep(0.05)
print(" line", flush=True)
print("oops", file=sys.stderr, flush=True)
"""


def team(tmp_path: Path) -> Path:
    toml = tmp_path / "agentwatch.toml"
    cmd = json.dumps([sys.executable, "-u", "-c", TICKS])
    # one after the other: two agents' open lines would interrupt each other
    toml.write_text(
        f"[agents.a]\ncommand = {cmd}\n\n[agents.longer]\ncommand = {cmd}\n"
        'depends_on = { a = "completed" }\n'
    )
    return toml


def expected_lines(prefix: str) -> list[str]:
    return [f"{prefix}tick {i}" for i in range(3)] + [f"{prefix}partial line"]


def test_up_prefixes_each_line_with_the_agent_name(cli: CLI, tmp_path: Path) -> None:
    res = cli.run("up", "--no-server", "--no-journal", "-f", team(tmp_path))
    assert res.returncode == 0, res.stderr
    out = res.stdout.decode().splitlines()
    assert b"\x1b" not in res.stdout  # a pipe gets no colour
    for prefix in ("a      | ", "longer | "):
        assert [line for line in out if line.startswith(prefix)] == expected_lines(prefix), out
    assert len(out) == 8
    err = res.stderr.decode().splitlines()
    assert sorted(line for line in err if "oops" in line) == ["a      | oops", "longer | oops"]


def test_up_no_prefix_echoes_raw(cli: CLI, tmp_path: Path) -> None:
    res = cli.run("up", "--no-server", "--no-journal", "--no-prefix", "-f", team(tmp_path))
    assert res.returncode == 0, res.stderr
    assert res.stdout.decode().splitlines() == expected_lines("") * 2
    assert [line for line in res.stderr.decode().splitlines() if "oops" in line] == ["oops"] * 2


def test_up_colours_the_prefixes_on_a_terminal(cli: CLI, tmp_path: Path) -> None:
    master, slave = os.openpty()
    try:
        proc = subprocess.Popen(
            cli.argv("up", "--no-server", "--no-journal", "-f", team(tmp_path)),
            stdin=subprocess.DEVNULL,
            stdout=slave,
            stderr=subprocess.DEVNULL,
            cwd=cli.home,
        )
        os.close(slave)
        slave = -1
        data = b""
        while True:
            try:
                chunk = os.read(master, 65536)
            except OSError:  # EIO: every writer of the terminal is gone
                break
            if not chunk:
                break
            data += chunk
        assert proc.wait(timeout=60) == 0
    finally:
        os.close(master)
        if slave >= 0:
            os.close(slave)
    lines = data.decode().replace("\r\n", "\n").splitlines()
    cyan, yellow = f"\x1b[36ma      |{RESET} ", f"\x1b[33mlonger |{RESET} "
    assert [line for line in lines if line.startswith(cyan)] == expected_lines(cyan)
    assert [line for line in lines if line.startswith(yellow)] == expected_lines(yellow)
    assert not [line for line in lines if re.match(r"(tick|partial)", line)]
