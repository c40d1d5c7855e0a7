"""What sets agentwatch apart, end to end: needs-input detection seen through
`ps` (SPEC 5), `--tty`, and `run --summary` for CI logs and
``$GITHUB_STEP_SUMMARY``."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLI
from test_cli_support import agent_env, client, ps_json, start_run, wait_state

pytestmark = pytest.mark.timeout(180)

ASKS = "print('Deploy to production? [y/N]', flush=True)\nanswer = input()\nprint('got', answer)"


def test_waiting_for_input_shows_in_ps(cli: CLI) -> None:
    live = start_run(cli, ASKS, name="asker", stdin=subprocess.PIPE)
    assert live.proc.stdin is not None
    proc = wait_state(cli, "asker", "waiting")
    assert proc["pid"] == live.events()[0]["pid"]
    table = client(cli, "ps").stdout.decode().splitlines()
    assert table[1].split()[:2] == ["asker", "waiting"]
    waiting = live.wait_event(lambda e: e["type"] == "process-waiting")
    assert waiting["processId"] == "asker"
    human = client(cli, "subscribe", "--no-follow").stdout.decode()
    assert "asker | -- waiting for input" in human

    live.proc.stdin.write(b"yes\n")  # a person answers
    live.proc.stdin.flush()
    resumed = live.wait_event(lambda e: e["type"] == "process-resumed")
    assert resumed["seq"] > waiting["seq"]
    assert live.finish() == 0
    outputs = [e["output"] for e in live.events() if e["type"] == "process-output"]
    assert outputs == ["Deploy to production? [y/N]", "got yes"]
    types = [e["type"] for e in live.events()]
    assert types.count("process-waiting") == types.count("process-resumed") == 1


TTY_PROBE = """
import os, sys
print("stdout-tty", sys.stdout.isatty(), "stderr-tty", sys.stderr.isatty(), flush=True)
size = os.get_terminal_size(1)
print("size", size.columns, size.lines, flush=True)
print("\\x1b[32mgreen\\x1b[0m", flush=True)
"""


def test_tty_gives_a_terminal_stdout(cli: CLI, tmp_path: Path) -> None:
    journal = tmp_path / "events.jsonl"
    res = cli.run(
        "run",
        "--tty",
        "--no-server",
        "--journal",
        journal,
        "--",
        *cli.py(TTY_PROBE),
        env=agent_env(),
    )
    assert res.returncode == 0, res.stderr
    out = [e["output"] for e in cli.read_events(journal) if e["type"] == "process-output"]
    assert out[0] == "stdout-tty True stderr-tty False"
    assert out[1] == "size 120 40"  # no terminal of our own: 120x40
    assert out[2] == "\x1b[32mgreen\x1b[0m"
    assert b"stdout-tty True" in res.stdout  # passed through as well


SUMMARY_AGENT = """
import sys
print("working", flush=True)
print("a warning", file=sys.stderr, flush=True)
raise SystemExit(3)
"""


def test_summary_for_ci(cli: CLI, tmp_path: Path) -> None:
    step_summary = tmp_path / "step-summary.md"
    step_summary.write_text("# earlier step\n")
    res = cli.run(
        "run",
        "--summary",
        "--no-server",
        "--quiet",
        "--name",
        "ci-job",
        "--idle-alert",
        "30",
        "--",
        *cli.py(SUMMARY_AGENT),
        env=agent_env(GITHUB_STEP_SUMMARY=str(step_summary)),
    )
    assert res.returncode == 3
    err = res.stderr.decode()
    assert "exit status 3" in err
    row = next(line for line in err.splitlines() if line.startswith("| ci-job "))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert cells == ["ci-job", "failed", "3", "1/1", "0"]
    text = step_summary.read_text()
    assert text.startswith("# earlier step\n")  # appended, not replaced
    assert "| ci-job | failed | 3 | 1/1 | 0 |" in text
    assert "exit status 3" in text


def test_summary_without_github(cli: CLI) -> None:
    res = cli.run("run", "--summary", "--no-server", "-q", "--", sys.executable, "-c", "pass")
    assert res.returncode == 0
    assert b"exit status 0" in res.stderr


def test_ps_json_has_the_spec_fields(cli: CLI) -> None:
    live = start_run(
        cli, "import time; print('hi', flush=True); time.sleep(60)", "--stats-interval", "0.2"
    )
    live.wait_output("hi")
    live.wait_event(lambda e: e["type"] == "process-stats")
    [proc] = ps_json(cli)
    for key in (
        "processId",
        "pid",
        "state",
        "command",
        "cwd",
        "startedAt",
        "exitCode",
        "signal",
        "restarts",
        "lastSeq",
        "lines",
        "stats",
    ):
        assert key in proc, key
    assert proc["stats"]["rssBytes"] > 0
    row = client(cli, "ps").stdout.decode().splitlines()[1].split()
    assert row[4].endswith("%")
    assert row[5][-1] in "BKMG"
    client(cli, "stop", "agent")
    live.finish()
    assert json.loads(client(cli, "runs", "--json").stdout)[0]["state"] == "ended"
