"""`agentwatch run --no-server` end to end with real children (SPEC 1, 2, 5, 6):
byte-identical passthrough, --quiet, --json, the journal, every exit status,
and the line rules on real pipes."""

from __future__ import annotations

import base64
import itertools
import re
import subprocess
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pytest

if TYPE_CHECKING:
    from conftest import CLI

NAME = "agent"
T = TypeVar("T")


@pytest.fixture(autouse=True)
def _journals_follow_the_spec(cli: CLI) -> Iterator[None]:
    yield
    for path in cli.home.glob("*.jsonl"):
        cli.check_journal(path)


def run_agent(
    cli: CLI, code: str, *opts: str, journal: Path | None = None, **kw: Any
) -> tuple[subprocess.CompletedProcess[bytes], list[dict[str, Any]]]:
    journal = journal or cli.home / "events.jsonl"
    res = cli.run(
        "run", "--no-server", "--name", NAME, "--journal", journal, *opts, "--", *cli.py(code), **kw
    )
    return res, cli.check_journal(journal) if journal.exists() else []


def of_type(events: list[dict[str, Any]], type_: str) -> list[dict[str, Any]]:
    return [e for e in events if e["type"] == type_]


def raw_of(e: dict[str, Any]) -> bytes:
    b64 = e.get("outputBase64")
    return base64.b64decode(b64) if b64 is not None else e["output"].encode()


def lines_of(events: list[dict[str, Any]], stream: str = "stdout") -> list[bytes]:
    """Logical lines of a stream: continued pieces joined, exact bytes."""
    out: list[bytes] = []
    piece = b""
    for e in of_type(events, "process-output"):
        if e["stream"] != stream:
            continue
        piece += raw_of(e)
        if not e.get("continued"):
            out.append(piece)
            piece = b""
    if piece:
        out.append(piece)  # a last line flushed as a piece, then EOF
    return out


def one_error_line(stderr: bytes) -> str:
    text = stderr.decode()
    assert "Traceback" not in text
    assert text.endswith("\n")
    assert text.count("\n") == 1, text
    assert text.startswith("agentwatch: ")
    return text


# ---------------------------------------------------------------------------
# Passthrough and the journal

OUT_CHUNKS = [
    b"plain line\n",
    b"crlf line\r\n",
    b"bad \xff\xfe bytes\n",
    "utf8 \u00e9\u20ac\U0001f600\n".encode(),
    b'\x00\x1b[31mansi\x1b[0m\t"q" \\ back\n',
    b"\n",
    b"no newline at end",
]
ERR_CHUNKS = [b"err line\n", b"err \xc3\x28 bad\n", b"err tail"]

PASSTHROUGH = f"""
import sys
for c in {OUT_CHUNKS!r}:
    sys.stdout.buffer.write(c)
    sys.stdout.buffer.flush()
for c in {ERR_CHUNKS!r}:
    sys.stderr.buffer.write(c)
    sys.stderr.buffer.flush()
sys.exit(3)
"""


def test_passthrough_is_byte_identical(cli: CLI) -> None:
    res, events = run_agent(cli, PASSTHROUGH)
    assert res.returncode == 3
    assert res.stdout == b"".join(OUT_CHUNKS)
    assert res.stderr == b"".join(ERR_CHUNKS)
    assert lines_of(events, "stdout") == [
        b"plain line",
        b"crlf line",
        b"bad \xff\xfe bytes",
        "utf8 é€😀".encode(),
        b'\x00\x1b[31mansi\x1b[0m\t"q" \\ back',
        b"",
        b"no newline at end",
    ]
    assert lines_of(events, "stderr") == [b"err line", b"err \xc3\x28 bad", b"err tail"]
    bad = [e for e in of_type(events, "process-output") if "outputBase64" in e]
    assert sorted(raw_of(e) for e in bad) == [b"bad \xff\xfe bytes", b"err \xc3( bad"]
    for e in bad:
        assert "\ufffd" in e["output"]
    started, stopped = events[0], events[-1]
    assert started["type"] == "process-started"
    assert started["processId"] == NAME
    assert started["command"][1:3] == ["-u", "-c"]
    assert started["restarts"] == 0
    assert started["cwd"] == str(Path(__file__).resolve().parent.parent)  # agentwatch's cwd
    assert stopped["type"] == "process-stopped"
    assert (stopped["exitCode"], stopped["signal"], stopped["willRestart"]) == (3, None, False)
    assert stopped["pid"] == started["pid"]
    assert isinstance(stopped["durationMs"], int)
    assert [e["type"] for e in events[1:-1]] == ["process-output"] * (len(events) - 2)


def test_journal_default_location(cli: CLI) -> None:
    res = cli.run("run", "--no-server", "--", *cli.py("print('hello')"))
    assert res.returncode == 0
    assert res.stdout == b"hello\n"
    (run_dir,) = cli.runs()
    assert re.fullmatch(r"\d{8}T\d{6}Z-[0-9a-f]{4}", run_dir.name)
    assert sorted(p.name for p in run_dir.iterdir()) == ["events.jsonl"]
    events = cli.check_journal(run_dir / "events.jsonl")
    assert [e["type"] for e in events] == ["process-started", "process-output", "process-stopped"]
    assert events[1]["output"] == "hello"


def test_quiet(cli: CLI) -> None:
    res, events = run_agent(cli, PASSTHROUGH, "--quiet")
    assert (res.returncode, res.stdout, res.stderr) == (3, b"", b"")
    assert lines_of(events, "stderr") == [b"err line", b"err \xc3\x28 bad", b"err tail"]


def test_json(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    res, events = run_agent(cli, PASSTHROUGH, "--json", journal=journal)
    assert res.returncode == 3
    assert res.stderr == b""
    assert res.stdout == journal.read_bytes()  # the same JSON Lines, nothing else
    assert [e["seq"] for e in cli.decode_lines(res.stdout)] == [e["seq"] for e in events]


def test_no_journal(cli: CLI) -> None:
    res = cli.run("run", "--no-server", "--no-journal", "--", *cli.py("print('x')"))
    assert (res.returncode, res.stdout, res.stderr) == (0, b"x\n", b"")
    assert not any(any(p.glob("*.jsonl")) for p in cli.runs())


def test_journal_write_failure_does_not_stop_the_run(cli: CLI) -> None:
    """A journal on a full disk: one alert, one error line, the agent runs on."""
    code = "import time\nfor i in range(3):\n    print(i)\n    time.sleep(0.05)"
    res = cli.run("run", "--no-server", "--json", "--journal", "/dev/full", "--", *cli.py(code))
    assert res.returncode == 0
    err = res.stderr.decode()
    assert err.count("\n") == 1
    assert "journal write failed" in err
    events = cli.decode_lines(res.stdout)
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    alerts = of_type(events, "system-alert")
    assert [(a["code"], a["level"]) for a in alerts] == [("journal-error", "error")]
    assert [e["output"] for e in of_type(events, "process-output")] == ["0", "1", "2"]
    assert events[-1]["type"] == "process-stopped"


# ---------------------------------------------------------------------------
# Exit statuses

EXIT_CASES = [
    ("import sys; sys.exit(0)", 0, 0, None),
    ("import sys; sys.exit(3)", 3, 3, None),
    ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", 137, None, "SIGKILL"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGTERM)", 143, None, "SIGTERM"),
    ("import os, signal; os.kill(os.getpid(), signal.SIGUSR1)", 138, None, "SIGUSR1"),
]


def in_parallel(jobs: list[Callable[[], T]]) -> list[T]:
    """Run independent agentwatch runs side by side (each is mostly start-up)."""
    with ThreadPoolExecutor(max_workers=3) as pool:
        return list(pool.map(lambda job: job(), jobs))


def test_exit_status(cli: CLI) -> None:
    """The child's code, or 128+N when it died of signal N."""
    journals = [cli.home / f"{i}.jsonl" for i in range(len(EXIT_CASES))]
    results = in_parallel(
        [
            partial(run_agent, cli, code, journal=journal)
            for (code, *_), journal in zip(EXIT_CASES, journals, strict=True)
        ]
    )
    for (code, status, exit_code, signal), (res, events) in zip(EXIT_CASES, results, strict=True):
        assert res.returncode == status, code
        stopped = events[-1]
        assert stopped["type"] == "process-stopped"
        assert (stopped["exitCode"], stopped["signal"]) == (exit_code, signal), code


def test_timeout_status(cli: CLI) -> None:
    start = time.monotonic()
    res, events = run_agent(cli, "import time; print('start'); time.sleep(30)", "--timeout", "0.5")
    assert res.returncode == 124
    assert time.monotonic() - start < 15
    (err,) = of_type(events, "process-error")
    assert err["kind"] == "timeout"
    assert err["processId"] == NAME
    assert events[-1]["type"] == "process-stopped"
    assert events[-1]["signal"] == "SIGTERM"
    assert events.index(err) < len(events) - 1


BAD_OPTIONS = [
    ["--no-server", "--bogus"],
    ["--no-server", "--restart", "sometimes"],
    ["--no-server", "--max-restarts", "many"],
    ["--no-server", "--max-memory", "lots"],
    ["--no-server", "--port", "notaport"],
    ["--port", "70000"],  # checked when there is a server
    ["--no-server", "--kill-on-memory"],
    ["--no-server", "--journal", "x.jsonl", "--no-journal"],
    ["--no-server", "--max-line-bytes", "10"],
    ["--no-server", "--timeout", "-1"],
    ["--no-server", "--name", "bad name!"],
]


@pytest.mark.parametrize("args", BAD_OPTIONS)
def test_bad_options_exit_125_in_process(
    args: list[str], home: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The CLI boundary (`main`) itself, cheaply: every bad option or value."""
    from agentwatch.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["run", *args, "--", "true"])
    assert exit_info.value.code == 125
    out, err = capsys.readouterr()
    assert out == ""
    one_error_line(err.encode())
    assert not (home / "runs").exists()


def test_bad_options_exit_125(cli: CLI) -> None:
    """The same through `python -m agentwatch`: 125, one line, no agent started."""
    cases = [BAD_OPTIONS[0], BAD_OPTIONS[1], BAD_OPTIONS[5]]
    results = in_parallel(
        [partial(cli.run, "run", *args, "--", *cli.py("print('never')")) for args in cases]
    )
    for args, res in zip(cases, results, strict=True):
        assert res.returncode == 125, args
        assert res.stdout == b"", args
        one_error_line(res.stderr)
    assert cli.runs() == []


def test_not_executable_126_not_found_127(cli: CLI, tmp_path: Path) -> None:
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho hi\n")
    script.chmod(0o644)  # not executable
    garbage = tmp_path / "garbage"
    garbage.write_bytes(b"\x7fELF\x00\x00not really")
    garbage.chmod(0o755)  # executable, but no valid format
    cases = [
        (str(script), 126),
        (str(tmp_path), 126),
        (str(garbage), 126),
        ("definitely-not-a-command-xyz", 127),
    ]
    journals = [tmp_path / f"{i}.jsonl" for i in range(len(cases))]
    results = in_parallel(
        [
            partial(
                cli.run, "run", "--no-server", "--name", NAME, "--journal", journal, "--", command
            )
            for (command, _), journal in zip(cases, journals, strict=True)
        ]
    )
    for (command, status), res, journal in zip(cases, results, journals, strict=True):
        assert res.returncode == status, (command, res.stderr)
        assert res.stdout == b""
        assert command in one_error_line(res.stderr)
        events = cli.check_journal(journal)
        assert [(e["type"], e.get("kind")) for e in events] == [("process-error", "spawn-failed")]
        assert command in events[0]["error"]


# ---------------------------------------------------------------------------
# Lines on real pipes


def test_one_mib_line_in_pieces(cli: CLI) -> None:
    # 1 + 2 * 2**19 bytes: every 256 KiB cut falls inside a 2-byte character
    text = "a" + "\u00e9" * (1 << 19)
    code = f"import sys; sys.stdout.write('a' + '\\u00e9' * {1 << 19} + '\\n' + 'after\\n')"
    res, events = run_agent(cli, code, "--quiet")
    assert res.returncode == 0
    outs = of_type(events, "process-output")
    assert outs[-1]["output"] == "after"
    pieces = outs[:-1]
    assert len(pieces) >= 5
    assert "".join(e["output"] for e in pieces) == text
    assert all(e.get("continued") for e in pieces[:-1])
    # cut at the limit, backing off at most one byte not to split a character
    assert all(len(e["output"].encode()) >= 256 * 1024 - 1 for e in pieces[:-1])
    assert "continued" not in pieces[-1]
    for e in pieces:
        assert "outputBase64" not in e
        assert len(e["output"].encode()) <= 256 * 1024


def test_max_line_bytes_option(cli: CLI) -> None:
    res, events = run_agent(cli, "print('x' * 250)", "--quiet", "--max-line-bytes", "100")
    assert res.returncode == 0
    outs = of_type(events, "process-output")
    assert [(len(e["output"]), e.get("continued")) for e in outs] == [
        (100, True),
        (100, True),
        (50, None),
    ]


def test_100k_lines_in_order(cli: CLI) -> None:
    n = 100_000
    code = f"import sys; sys.stdout.write(''.join(f'{{i}}\\n' for i in range({n})))"
    res, events = run_agent(cli, code, "--quiet")
    assert res.returncode == 0
    outs = of_type(events, "process-output")
    assert [e["output"] for e in outs] == [str(i) for i in range(n)]
    assert not any(e.get("continued") for e in outs)
    seqs = [e["seq"] for e in events]
    assert all(a < b for a, b in itertools.pairwise(seqs))
    assert events[-1]["type"] == "process-stopped"


def test_partial_line_flushed_after_half_a_second(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    code = (
        "import sys, time; sys.stdout.write('prompt> '); sys.stdout.flush();"
        " time.sleep(1.5); print('answer')"
    )
    proc = cli.popen(
        "run", "--no-server", "--name", NAME, "--journal", journal, "--", *cli.py(code)
    )
    # Passed through at once, not held back for the newline.
    assert proc.stdout is not None
    assert proc.stdout.read(8) == b"prompt> "

    # Published as a continued piece while the child still sleeps.
    def piece() -> Any:
        if not journal.exists():
            return None
        return [e for e in cli.read_events(journal) if e["type"] == "process-output"]

    first = cli.wait_for(piece, what="the flushed prompt")
    assert first[0]["output"] == "prompt> "
    assert first[0]["continued"] is True
    out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0
    assert out == b"answer\n"
    outs = of_type(cli.check_journal(journal), "process-output")
    assert [(e["output"], e.get("continued")) for e in outs] == [
        ("prompt> ", True),
        ("answer", None),
    ]


def test_stopped_after_all_output(cli: CLI) -> None:
    code = """
import sys
for i in range(3000):
    sys.stdout.write(f"out {i}\\n")
    sys.stderr.write(f"err {i}\\n")
sys.stdout.write("last out")
sys.stderr.write("last err")
"""
    res, events = run_agent(cli, code, "--quiet")
    assert res.returncode == 0
    assert events[-1]["type"] == "process-stopped"
    assert lines_of(events, "stdout") == [f"out {i}".encode() for i in range(3000)] + [b"last out"]
    assert lines_of(events, "stderr") == [f"err {i}".encode() for i in range(3000)] + [b"last err"]


def test_grandchild_output_drained_before_stopped(cli: CLI) -> None:
    journal = cli.home / "events.jsonl"
    res = cli.run(
        "run",
        "--no-server",
        "--name",
        NAME,
        "--journal",
        journal,
        "--",
        "sh",
        "-c",
        "(sleep 0.1; echo late) & echo early",
    )
    assert res.returncode == 0
    assert res.stdout == b"early\nlate\n"
    events = cli.check_journal(journal)
    assert [e["output"] for e in of_type(events, "process-output")] == ["early", "late"]
    assert events[-1]["type"] == "process-stopped"


def test_leftover_grandchild_does_not_hold_the_run(cli: CLI) -> None:
    start = time.monotonic()
    res = cli.run("run", "--no-server", "--", "sh", "-c", "sleep 30 & echo done")
    assert res.returncode == 0
    assert res.stdout == b"done\n"
    assert time.monotonic() - start < 15
