"""Client commands end to end against real runs (SPEC 3, 6): ps, stop, restart,
signal, logs (online and offline), runs, emit, discovery, and their errors.

Each test starts a real `agentwatch run` in the background (AGENTWATCH_HOME
is the test's tmp_path), waits for its server.json by polling, and runs the
commands as `python -m agentwatch ...` subprocesses.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI, wait_for
from test_cli_support import (
    TOKEN,
    agent_env,
    client,
    json_lines,
    one_error_line,
    ps_json,
    start,
    start_run,
    wait_state,
    write,
)

pytestmark = pytest.mark.timeout(180)

FOREVER = """
import signal, sys, time
signal.signal(signal.SIGUSR1, lambda *a: print("usr1", flush=True))
signal.signal(signal.SIGTERM, lambda *a: (print("term", flush=True), sys.exit(0)))
print("ready", flush=True)
for i in range(5):
    print(f"line {i}", flush=True)
print("oops", file=sys.stderr, flush=True)
while True:
    time.sleep(0.05)
"""
QUICK_EXIT = "print('bye', flush=True); raise SystemExit(3)"


def outputs(events: list[dict[str, object]]) -> list[object]:
    return [e["output"] for e in events if e["type"] == "process-output"]


def dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


def test_no_server_running(cli: CLI) -> None:
    for args in (["ps"], ["subscribe"], ["stop", "agent"], ["logs", "agent"], ["emit", "x-a"]):
        one_error_line(client(cli, *args), 1, "no running agentwatch server")


def test_ps_stop_restart_signal(cli: CLI) -> None:
    live = start_run(cli, FOREVER)
    live.wait_output("line 4")
    live.wait_output("oops")
    res = client(cli, "ps")
    assert res.returncode == 0, res.stderr
    header, row = res.stdout.decode().splitlines()
    assert header.split() == ["NAME", "STATE", "PID", "UPTIME", "CPU", "MEM", "RESTARTS", "EXIT"]
    assert row.split()[:3] == ["agent", "running", str(live.events()[0]["pid"])]
    [proc] = ps_json(cli)
    assert (proc["processId"], proc["state"], proc["runId"]) == ("agent", "running", live.run_id)
    assert proc["lines"] == {"stdout": 6, "stderr": 1}

    res = client(cli, "signal", "agent", "usr1")
    assert (res.returncode, res.stdout) == (0, b"agent: sent SIGUSR1\n")
    live.wait_output("usr1")
    res = client(cli, "restart", "agent")
    assert (res.returncode, res.stdout) == (0, b"agent: restarting\n")
    live.wait_event(lambda e: e["type"] == "process-started" and e["restarts"] == 1)
    assert wait_state(cli, "agent", "running")["restarts"] == 1

    one_error_line(client(cli, "signal", "agent", "NOPE"), 125, "invalid signal")
    one_error_line(client(cli, "stop", "ghost"), 4, "unknown process 'ghost'")
    one_error_line(client(cli, "stop", "agent", "--token", "wrong"), 1, "unauthorized")
    res = client(cli, "stop", "agent", "--json")
    assert res.returncode == 0
    assert json.loads(res.stdout) == {"ok": True}
    assert live.finish() == 0  # the child's own status: its SIGTERM handler exits 0
    assert outputs(live.events()).count("term") == 2  # restart, then stop
    one_error_line(client(cli, "ps"), 1, "no running agentwatch server")


def test_control_conflict_while_lingering(cli: CLI) -> None:
    live = start_run(cli, QUICK_EXIT, "--linger", "60")
    live.wait_event(lambda e: e["type"] == "process-stopped")
    one_error_line(client(cli, "stop", "agent"), 1, "not running")
    [proc] = ps_json(cli)
    assert (proc["state"], proc["exitCode"]) == ("failed", 3)
    live.proc.send_signal(signal.SIGTERM)  # a signal ends --linger
    assert live.finish(timeout=20) == 3


def test_logs_online_offline_and_cut_journal(cli: CLI, tmp_path: Path) -> None:
    live = start_run(cli, FOREVER)
    live.wait_output("line 4")
    live.wait_output("oops")
    res = client(cli, "logs", "agent", "--json")
    assert res.returncode == 0, res.stderr
    events = json_lines(res.stdout)
    assert events == live.events()[: len(events)]
    assert events[0]["type"] == "process-started"
    stdout = [e["output"] for e in events if e.get("stream") == "stdout"]
    assert stdout == ["ready", "line 0", "line 1", "line 2", "line 3", "line 4"]
    assert [e["output"] for e in events if e.get("stream") == "stderr"] == ["oops"]
    tail = json_lines(client(cli, "logs", "agent", "--tail", "2", "--json").stdout)
    assert tail == events[-2:]
    since = next(e["seq"] for e in events if e.get("output") == "line 2")
    after = json_lines(client(cli, "logs", "agent", "--since", str(since), "--json").stdout)
    assert after == [e for e in events if e["seq"] > since]
    human = client(cli, "logs", "agent", "--tail", "3").stdout.decode().splitlines()
    assert len(human) == 3
    for line, event in zip(human, events[-3:], strict=True):
        assert re.fullmatch(rf"\d\d:\d\d:\d\d\.\d{{3}} agent \| {event['output']}", line), line
    one_error_line(client(cli, "logs", "ghost"), 4, "no process 'ghost'", "agent")
    client(cli, "stop", "agent")
    assert live.finish() == 0

    journal = live.journal
    full = live.events()
    offline = json_lines(client(cli, "logs", "agent", "--run", live.run_id, "--json").stdout)
    assert offline == full
    prefix = live.run_id[:12]
    assert json_lines(client(cli, "logs", "agent", "--run", prefix, "--json").stdout) == full
    last = json_lines(
        client(cli, "logs", "agent", "--journal", journal, "--tail", "1", "--json").stdout
    )
    assert [e["type"] for e in last] == ["process-stopped"]

    cut = tmp_path / "cut.jsonl"  # a crash in the middle of the last write
    data = journal.read_bytes()
    cut.write_bytes(data[: len(data) - 20])
    res = client(cli, "logs", "*", "--journal", cut, "--json")
    assert res.returncode == 0, res.stderr
    assert json_lines(res.stdout) == full[:-1]
    one_error_line(client(cli, "logs", "ghost", "--journal", cut), 4, "no process 'ghost'")
    one_error_line(client(cli, "logs", "agent", "--journal", tmp_path / "nope"), 4, "not found")
    one_error_line(client(cli, "logs", "agent", "--run", "1999"), 4, "no run '1999'")
    one_error_line(
        client(cli, "logs", "agent", "--journal", cut, "--run", live.run_id), 125, "excludes"
    )


def test_runs_live_past_and_stale(cli: CLI) -> None:
    # The past run ends at once, so it is run to completion, not caught live.
    runs_dir = cli.home / "runs"
    res = client(
        cli,
        "run",
        "--quiet",
        "--quiet-server",
        "--name",
        "past",
        "--stats-interval",
        "0",
        "--",
        *cli.py(QUICK_EXIT),
    )
    assert res.returncode == 3, res.stderr
    (past_dir,) = list(runs_dir.iterdir())
    past_id, past_journal = past_dir.name, past_dir / "events.jsonl"
    live = start_run(cli, FOREVER, name="now")
    live.wait_output("ready")
    stale = write(
        cli.home / "runs" / "20200101T000000Z-dead" / "server.json",
        json.dumps(
            {
                "runId": "20200101T000000Z-dead",
                "url": "http://127.0.0.1:9",
                "token": None,
                "pid": dead_pid(),
                "startedAt": "",
                "processes": ["x"],
            }
        ),
    )
    res = client(cli, "runs", "--json")
    assert res.returncode == 0, res.stderr
    runs = json.loads(res.stdout)
    assert [r["runId"] for r in runs] == [live.run_id, past_id, "20200101T000000Z-dead"]
    now, before, dead = runs
    assert (now["state"], now["processes"], now["url"]) == ("running", ["now"], live.url)
    assert (before["state"], before["processes"]) == ("ended", ["past"])
    assert before["journalBytes"] == past_journal.stat().st_size > 0
    assert (dead["state"], dead["journal"]) == ("ended", None)
    assert not stale.exists()  # cleaned
    table = client(cli, "runs").stdout.decode().splitlines()
    assert table[0].split() == ["RUN", "STARTED", "STATE", "PROCESSES", "JOURNAL"]
    assert table[1].split()[2:4] == ["running", "now"]
    client(cli, "stop", "now")
    assert live.finish() == 0


def test_discovery_several_runs(cli: CLI) -> None:
    first = start_run(cli, FOREVER, name="first")
    second = start_run(cli, FOREVER, name="second")
    first.wait_output("ready")
    second.wait_output("ready")
    res = client(cli, "ps")
    rows = res.stdout.decode().splitlines()
    assert rows[0].split()[-1] == "RUN"
    assert sorted(r.split()[0] for r in rows[1:]) == ["first", "second"]
    assert {p["runId"] for p in ps_json(cli)} == {first.run_id, second.run_id}
    # the newest run by default; --run picks one; a flag wins over the environment
    newest = json_lines(client(cli, "subscribe", "--no-follow", "--json").stdout)
    assert {e["processId"] for e in newest} == {"second"}
    picked = client(cli, "subscribe", "--no-follow", "--json", "--run", first.run_id)
    assert {e["processId"] for e in json_lines(picked.stdout)} == {"first"}
    env = agent_env(AGENTWATCH_URL=first.url, AGENTWATCH_TOKEN=TOKEN)
    assert [p["processId"] for p in ps_json_env(cli, env)] == ["first"]
    flag_wins = client(cli, "ps", "--json", "--run", second.run_id, env=env)
    assert [p["processId"] for p in json.loads(flag_wins.stdout)] == ["second"]
    by_url = client(cli, "ps", "--json", "--url", first.url)  # its token: from discovery
    assert [p["processId"] for p in json.loads(by_url.stdout)] == ["first"]
    one_error_line(client(cli, "ps", "--url", first.url, "--token", "bad"), 1, "unauthorized")
    one_error_line(client(cli, "ps", "--run", "2000"), 4, "no run '2000'")
    # a run that crashed (SIGKILL) left its server.json: ignored and cleaned
    os.kill(second.proc.pid, signal.SIGKILL)
    second.proc.wait(timeout=10)
    assert [p["processId"] for p in ps_json(cli)] == ["first"]
    assert not (cli.home / "runs" / second.run_id / "server.json").exists()
    one_error_line(client(cli, "ps", "--run", second.run_id), 1, "is not serving")
    client(cli, "stop", "first")
    assert first.finish() == 0


def ps_json_env(cli: CLI, env: dict[str, str]) -> list[dict[str, object]]:
    res = client(cli, "ps", "--json", env=env)
    assert res.returncode == 0, res.stderr
    return json.loads(res.stdout)  # type: ignore[no-any-return]


SHELL_AGENT = """
set -e
export AGENTWATCH_HOME=/nonexistent   # nothing to discover: only the AGENTWATCH_* variables
agentwatch emit task-assigned --task T-1 --title "parse the input" --assignee coder
agentwatch emit task-completed --task T-1 --status success \
    --result '{"files": 2}' --data '{"ms": 5}'
agentwatch emit system-alert --level warning --code rate "rate limited, backing off"
agentwatch emit x-tokens-used --data '{"input": 1200, "output": 300}'
agentwatch emit x-note --json hello there
echo done
"""


def test_emit_from_a_shell_script_agent(cli: CLI, tmp_path: Path) -> None:
    script = write(tmp_path / "agent.sh", SHELL_AGENT)
    live = start(cli, "run", "--quiet", "--quiet-server", "--name", "shell", "--", "sh", script)
    assert live.finish() == 0, live.proc.stderr.read() if live.proc.stderr else ""
    events = live.events()
    by_type = {e["type"]: e for e in events}
    assigned = by_type["task-assigned"]
    assert {k: assigned[k] for k in ("processId", "taskId", "title", "assignee")} == {
        "processId": "shell",
        "taskId": "T-1",
        "title": "parse the input",
        "assignee": "coder",
    }
    done = by_type["task-completed"]
    assert (done["status"], done["result"], done["data"]) == ("success", {"files": 2}, {"ms": 5})
    alert = by_type["system-alert"]
    assert (alert["level"], alert["code"], alert["message"]) == (
        "warning",
        "rate",
        "rate limited, backing off",
    )
    assert (by_type["x-tokens-used"]["input"], by_type["x-tokens-used"]["output"]) == (1200, 300)
    note = by_type["x-note"]
    assert note["message"] == "hello there"
    # emit prints nothing unless --json, which prints the server's answer
    assert outputs(events) == [json.dumps({"seq": note["seq"]}, separators=(",", ":")), "done"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["task-assigned"], ["needs --task"]),
        (["task-completed", "--task", "T", "--status", "maybe"], ["--status success"]),
        (["system-alert", "--level", "info"], ["needs a MESSAGE"]),
        (["system-alert", "--level", "loud", "hi"], ["--level info"]),
        (["process-started"], ["cannot emit 'process-started'"]),
        (["x-a", "--data", "{bad"], ["--data is not valid JSON"]),
        (["task-assigned", "--task", "T", "--level", "info"], ["does not take --level"]),
    ],
)
def test_emit_usage_errors(cli: CLI, args: list[str], words: list[str]) -> None:
    one_error_line(client(cli, "emit", *args), 125, *words)


def test_emit_inside_a_run_without_server(cli: CLI, tmp_path: Path) -> None:
    other = start_run(cli, FOREVER, name="other")  # a live run the agent must not reach
    other.wait_output("ready")
    journal = tmp_path / "j.jsonl"
    res = client(
        cli,
        "run",
        "--no-server",
        "--quiet",
        "--journal",
        journal,
        "--",
        "sh",
        "-c",
        "agentwatch emit x-a 2>&1; exit 0",
    )
    assert res.returncode == 0
    out = [e["output"] for e in cli.read_events(journal) if e["type"] == "process-output"]
    assert len(out) == 1, out
    assert "is not serving" in out[0]
    assert not [e for e in other.events() if e["type"] == "x-a"]
    client(cli, "stop", "other")
    assert other.finish() == 0


def test_commands_are_on_path() -> None:
    assert shutil.which("agentwatch", path=agent_env()["PATH"])


def test_runs_shows_a_live_run_without_server(cli: CLI) -> None:
    proc = cli.popen(
        "run",
        "--quiet",
        "--no-server",
        "--name",
        "quiet",
        "--",
        *cli.py(FOREVER),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=agent_env(),
    )
    try:

        def live() -> dict[str, Any] | None:
            res = client(cli, "runs", "--json")
            runs = json.loads(res.stdout) if res.returncode == 0 else []
            return next((r for r in runs if r["state"] == "running"), None)

        run = wait_for(live, 30, 0.1, "the --no-server run listed as running")
        assert run["processes"] == ["quiet"]
        assert run["url"] is None
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)
    runs = json.loads(client(cli, "runs", "--json").stdout)
    assert [r["state"] for r in runs] == ["ended"]
    assert not list((cli.home / "runs").glob("*/run.json"))  # removed on exit
