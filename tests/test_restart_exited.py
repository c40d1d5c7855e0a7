"""Restart of an exited or failed process while the run is live (SPEC 4), through
the HTTP API: `up` while another agent still runs, `run` while it lingers, and
409 once the run is ending."""

from __future__ import annotations

import json
import os
import signal
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from conftest import CLI
from test_cli_support import TOKEN, Live, start, start_run, start_up, write

pytestmark = pytest.mark.timeout(120)
PY = json.dumps(sys.executable)
QUICK = "print('bye', flush=True); raise SystemExit(3)"
STEADY = "import time\nprint('up', flush=True)\nwhile True: time.sleep(0.05)"
STUBBORN = (
    "import signal, time\nsignal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
    "print('up', flush=True)\nwhile True: time.sleep(0.05)"
)


def api(live: Live, method: str, path: str) -> tuple[int, dict[str, Any]]:
    req = urllib.request.Request(
        live.url + path,
        method=method,
        data=b"{}" if method == "POST" else None,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())


def of(live: Live, type_: str, name: str) -> list[dict[str, Any]]:
    return [e for e in live.events() if e["type"] == type_ and e["processId"] == name]


def team(tmp_path: Path, **agents: str) -> Path:
    text = "".join(
        f"[agents.{name}]\ncommand = [{PY}, '-u', '-c', {json.dumps(code)}]\n"
        "stats_interval = 0\ngrace = 3\n"
        for name, code in agents.items()
    )
    return write(tmp_path / "agentwatch.toml", text)


def test_up_restarts_a_failed_agent_while_another_runs(cli: CLI, tmp_path: Path) -> None:
    live = start_up(cli, team(tmp_path, quick=QUICK, steady=STEADY), "--token", TOKEN)
    live.wait_event(lambda e: e["type"] == "process-stopped" and e["processId"] == "quick")
    assert api(live, "GET", "/api/processes/quick")[1]["state"] == "failed"

    assert api(live, "POST", "/api/processes/quick/restart") == (202, {"ok": True})
    again = live.wait_event(
        lambda e: e["type"] == "process-started" and e["processId"] == "quick" and e["restarts"]
    )
    assert again["restarts"] == 1
    live.wait_event(lambda e: e["type"] == "process-stopped" and e["seq"] > again["seq"])
    outs = [e["output"] for e in of(live, "process-output", "quick")]
    assert outs == ["bye", "bye"]
    _, quick = api(live, "GET", "/api/processes/quick")
    assert (quick["state"], quick["restarts"], quick["exitCode"]) == ("failed", 1, 3)

    assert api(live, "POST", "/api/processes/steady/stop")[0] == 202
    assert live.finish() == 3  # the restarted agent failed again: its status
    assert [e["restarts"] for e in of(live, "process-started", "quick")] == [0, 1]


def test_run_restarts_its_exited_agent_while_it_lingers(cli: CLI) -> None:
    live = start_run(cli, "print('bye', flush=True)", "--linger", "60")
    first = live.wait_event(lambda e: e["type"] == "process-stopped")
    assert api(live, "GET", "/api/processes/agent")[1]["state"] == "exited"

    assert api(live, "POST", "/api/processes/agent/restart") == (202, {"ok": True})
    again = live.wait_event(lambda e: e["type"] == "process-started" and e["seq"] > first["seq"])
    assert again["restarts"] == 1
    live.wait_event(lambda e: e["type"] == "process-stopped" and e["seq"] > again["seq"])
    assert [e["output"] for e in of(live, "process-output", "agent")] == ["bye", "bye"]
    assert live.proc.poll() is None  # lingering again after its second exit
    assert api(live, "POST", "/api/processes/agent/restart")[0] == 202  # and again
    third = live.wait_event(lambda e: e["type"] == "process-started" and e["restarts"] == 2)
    live.wait_event(lambda e: e["type"] == "process-stopped" and e["seq"] > third["seq"])

    os.kill(live.proc.pid, signal.SIGINT)  # Ctrl-C ends the (new) linger at once
    assert live.finish(timeout=20) == 0


def test_restart_of_an_exited_agent_is_refused_once_the_run_is_ending(
    cli: CLI, tmp_path: Path
) -> None:
    live = start(
        cli,
        "up",
        "-q",
        "--quiet-server",
        "--token",
        TOKEN,
        "-f",
        team(tmp_path, quick=QUICK, stubborn=STUBBORN),
    )
    live.wait_event(lambda e: e["type"] == "process-stopped" and e["processId"] == "quick")
    live.wait_output("up")
    os.kill(live.proc.pid, signal.SIGTERM)  # stubborn ignores it: 3 s of grace
    live.wait_event(lambda e: e["type"] == "process-output" and e["output"] == "up")

    def stopping() -> bool:
        return bool(api(live, "GET", "/api/processes/stubborn")[1]["state"] == "stopping")

    cli.wait_for(stopping, timeout=10, what="stubborn stopping")
    status, body = api(live, "POST", "/api/processes/quick/restart")
    assert status == 409, body
    assert "run is ending" in body["error"]["message"]
    assert live.finish() != 0
    assert [e["restarts"] for e in of(live, "process-started", "quick")] == [0]


def test_a_skipped_agent_is_not_restarted_nor_left_stopping(cli: CLI, tmp_path: Path) -> None:
    toml = team(tmp_path, quick=QUICK, steady=STEADY)
    toml.write_text(
        toml.read_text() + "[agents.after]\ncommand = ['true']\n"
        'depends_on = { quick = "succeeded" }\n'
    )
    live = start_up(cli, toml, "--token", TOKEN)
    live.wait_event(lambda e: e["type"] == "system-alert" and e["processId"] == "after")
    assert api(live, "GET", "/api/processes/after")[1]["state"] == "skipped"
    for action in ("restart", "stop"):
        status, body = api(live, "POST", f"/api/processes/after/{action}")
        assert status == 409, body
    assert api(live, "GET", "/api/processes/after")[1]["state"] == "skipped"
    assert api(live, "POST", "/api/processes/steady/stop")[0] == 202
    assert live.finish() == 3


def test_run_json_echoes_the_restarted_agent_too(cli: CLI, tmp_path: Path) -> None:
    """`run --json` keeps echoing after a restart during the linger makes the run live again."""
    out = tmp_path / "stdout.jsonl"
    with out.open("wb") as sink:
        live = start(
            cli,
            "run",
            "--json",
            "--quiet-server",
            "--token",
            TOKEN,
            "--name",
            "agent",
            "--stats-interval",
            "0",
            "--linger",
            "60",
            "--",
            *cli.py("print('bye', flush=True)"),
            stdout=sink,
        )
        first = live.wait_event(lambda e: e["type"] == "process-stopped")
        assert api(live, "POST", "/api/processes/agent/restart")[0] == 202
        again = live.wait_event(
            lambda e: e["type"] == "process-started" and e["seq"] > first["seq"]
        )
        live.wait_event(lambda e: e["type"] == "process-stopped" and e["seq"] > again["seq"])
        os.kill(live.proc.pid, signal.SIGINT)  # end the linger
        assert live.finish(timeout=20) == 0
    echoed = [json.loads(line) for line in out.read_bytes().splitlines()]
    assert [e["seq"] for e in echoed] == [e["seq"] for e in live.events()]
    assert [e["output"] for e in echoed if e["type"] == "process-output"] == ["bye", "bye"]
