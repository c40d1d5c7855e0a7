"""`agentwatch subscribe` end to end (SPEC 6): history then live, --until-exit
statuses, --no-follow, --tail/--type/--stream, --transport sse, and resuming
after the connection breaks (no gap, no duplicate)."""

from __future__ import annotations

import json
import re
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI, wait_for
from net_support import proxy_to
from test_cli_support import (
    TOKEN,
    Live,
    Reader,
    agent_env,
    client,
    json_lines,
    one_error_line,
    start_run,
)

pytestmark = pytest.mark.timeout(180)

# Prints, then waits for a "go" file (so a test decides when it ends), then exits.
GATED = """
import os, sys, time
go, code, n = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
print("ready", flush=True)
for i in range(n):
    print(f"line {i}", flush=True)
    if i % 100 == 99:
        time.sleep(0.01)
print("warn", file=sys.stderr, flush=True)
while not os.path.exists(go):
    time.sleep(0.02)
if code < 0:
    os.kill(os.getpid(), -code)
sys.exit(code)
"""


def run_gated(cli: CLI, tmp_path: Path, code: int = 0, n: int = 3, *opts: str) -> tuple[Live, Path]:
    go = tmp_path / "go"
    live = start_run(cli, GATED, *opts, extra=[str(go), str(code), str(n)])
    return live, go


@pytest.mark.parametrize(
    ("code", "opts", "status"),
    [(0, (), 0), (3, (), 3), (-9, (), 128 + 9), (0, ("--timeout", "2"), 124)],
    ids=["ok", "exit-3", "sigkill", "timeout"],
)
def test_until_exit_status(
    cli: CLI, tmp_path: Path, code: int, opts: tuple[str, ...], status: int
) -> None:
    live, go = run_gated(cli, tmp_path, code, 3, *opts)
    sub = Reader(cli, "subscribe", "agent", "--until-exit", "--json")
    sub.wait_line('"output":"ready"')
    if not opts:
        go.touch()
    rc, lines, err = sub.finish()
    assert rc == status, err
    events = [json.loads(line) for line in lines]
    assert events[-1]["type"] == "process-stopped"
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert live.finish() == status


def test_until_exit_after_the_end_and_human_output(cli: CLI, tmp_path: Path) -> None:
    go = tmp_path / "go"
    go.touch()
    live = start_run(cli, GATED, "--linger", "60", extra=[str(go), "5", "2"])
    live.wait_event(lambda e: e["type"] == "process-stopped")
    res = client(cli, "subscribe", "--until-exit")
    assert res.returncode == 5, res.stderr
    lines = res.stdout.decode().splitlines()
    assert re.fullmatch(r"\d\d:\d\d:\d\d\.\d{3} agent \| -- started pid \d+", lines[0]), lines
    said = [line.split(" | ", 1)[1] for line in lines[1:5]]  # stdout and stderr: two pipes
    assert sorted(said) == ["line 0", "line 1", "ready", "warn"]
    assert "-- stopped (exit code 5" in lines[-1]
    live.proc.send_signal(signal.SIGTERM)
    assert live.finish() == 5


def test_no_follow_and_filters(cli: CLI, tmp_path: Path) -> None:
    live, go = run_gated(cli, tmp_path, 0, 5)
    live.wait_output("warn")

    def history(*args: str) -> list[dict[str, Any]]:
        res = client(cli, "subscribe", "--no-follow", "--json", *args)
        assert res.returncode == 0, res.stderr
        return json_lines(res.stdout)

    everything = history()
    assert everything == live.events()[: len(everything)]
    assert [e["type"] for e in everything][:2] == ["process-started", "process-output"]
    outs = history("--type", "process-output")
    assert [e["output"] for e in outs if e["stream"] == "stdout"] == [
        "ready",
        *[f"line {i}" for i in range(5)],
    ]
    last_two = [e["output"] for e in everything[-2:]]
    assert [e["output"] for e in history("--tail", "2")] == last_two
    only_err = history("--stream", "stderr")  # other events than output pass as they are
    assert [e.get("output") for e in only_err] == [None, "warn"]
    since = outs[3]["seq"]
    assert history("--since", str(since), "--type", "process-output") == outs[4:]
    assert history("agent", "--tail", "1", "--type", "process-output") == outs[-1:]
    one_error_line(client(cli, "subscribe", "ghost"), 4, "no process 'ghost'")
    one_error_line(client(cli, "subscribe", "--transport", "smoke"), 125, "--transport")
    one_error_line(client(cli, "subscribe", "--stream", "both"), 125, "--stream")
    one_error_line(client(cli, "subscribe", "--no-follow", "--until-exit"), 125, "exclude")
    go.touch()
    assert live.finish() == 0


def test_sse_and_ws_see_the_same_events(cli: CLI, tmp_path: Path) -> None:
    live, go = run_gated(cli, tmp_path, 0, 2000)
    ws = Reader(cli, "subscribe", "--until-exit", "--json")
    sse = Reader(cli, "subscribe", "--until-exit", "--json", "--transport", "sse")
    ws.wait_line('"output":"ready"')
    sse.wait_line('"output":"ready"')
    go.touch()
    (rc1, out1, err1), (rc2, out2, err2) = ws.finish(), sse.finish()
    assert (rc1, rc2) == (0, 0), (err1, err2)
    assert live.finish() == 0
    journal = live.events()
    assert [json.loads(line) for line in out1] == journal
    assert [json.loads(line) for line in out2] == journal


@pytest.mark.parametrize("transport", ["ws", "sse"])
def test_resume_after_disconnect(cli: CLI, tmp_path: Path, transport: str) -> None:
    live, go = run_gated(cli, tmp_path, 0, 3000)
    with proxy_to(live.url) as proxy:
        sub = Reader(
            cli,
            "subscribe",
            "--url",
            proxy.url,
            "--token",
            TOKEN,
            "--until-exit",
            "--json",
            "--transport",
            transport,
        )
        sub.wait_line('"output":"line 10"')
        proxy.cut()  # maybe in the middle of the history, maybe after it
        wait_for(lambda: proxy.accepted >= 2, 30, 0.02, "a reconnection")
        proxy.cut()
        wait_for(lambda: proxy.accepted >= 3, 30, 0.02, "a second reconnection")
        sub.wait_line('"output":"line 2999"', timeout=60)
        go.touch()
        rc, lines, err = sub.finish()
    assert rc == 0, err
    assert live.finish() == 0
    got = [json.loads(line) for line in lines]
    assert [e["seq"] for e in got] == [e["seq"] for e in live.events()]  # no gap, no duplicate


def test_subscribe_stops_on_interrupt(cli: CLI, tmp_path: Path) -> None:
    live, go = run_gated(cli, tmp_path, 0, 1)
    sub = Reader(cli, "subscribe")
    sub.wait_line(r"\| ready")
    sub.proc.send_signal(signal.SIGINT)
    rc, _, err = sub.finish()
    assert rc == 130
    assert b"Traceback" not in err
    go.touch()
    assert live.finish() == 0


def test_broken_pipe_is_quiet(cli: CLI, tmp_path: Path) -> None:
    live, go = run_gated(cli, tmp_path, 0, 20000)
    live.wait_output("warn")
    head = subprocess.run(
        f"{cli.argv('subscribe', '--no-follow')[0]} -m agentwatch subscribe --no-follow | head -2",
        shell=True,
        capture_output=True,
        env=agent_env(),
        timeout=60,
        check=False,
    )
    assert len(head.stdout.splitlines()) == 2
    assert b"Traceback" not in head.stderr
    assert b"Broken pipe" not in head.stderr
    go.touch()
    assert live.finish() == 0


def test_until_exit_with_a_type_filter(cli: CLI, tmp_path: Path) -> None:
    live, go = run_gated(cli, tmp_path, 3, 2)
    sub = Reader(cli, "subscribe", "--until-exit", "--json", "--type", "process-output")
    sub.wait_line('"output":"ready"')
    go.touch()
    rc, lines, err = sub.finish()
    assert rc == 3, err
    assert {json.loads(line)["type"] for line in lines} == {"process-output"}
    assert live.finish() == 3
