"""Every runnable example in examples/ works (SPEC 6): the chatty agent, the
team file, the CI script, the Python client and the embedding program.

The agents call `agentwatch` from PATH: the venv's bin folder comes first.
"""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from conftest import CLI, ROOT, read_events
from test_cli_support import agent_env, start, start_up

pytestmark = pytest.mark.timeout(180)
EXAMPLES = ROOT / "examples"
FAST = {"CHATTY_STEPS": "4", "CHATTY_DELAY": "0.02"}


def types_of(events: list[dict[str, object]]) -> list[object]:
    return [e["type"] for e in events]


def test_chatty_agent(cli: CLI) -> None:
    res = cli.run(
        "run",
        "--quiet-server",
        "--name",
        "chatty",
        "--",
        sys.executable,
        EXAMPLES / "chatty_agent.py",
        env=agent_env(**FAST),
    )
    assert res.returncode == 0, res.stderr
    assert b"step 4/4" in res.stdout
    assert b"halfway" in res.stderr
    [run] = cli.runs()
    events = read_events(run / "events.jsonl")
    assigned = next(e for e in events if e["type"] == "task-assigned")
    done = next(e for e in events if e["type"] == "task-completed")
    assert (assigned["processId"], assigned["taskId"]) == ("chatty", "demo-1")
    assert (done["taskId"], done["status"]) == ("demo-1", "success")
    pieces = [e for e in events if e["type"] == "process-output" and "progress" in e["output"]]
    assert pieces  # the progress bar arrived (as pieces or one line with \r)


def test_team_file(cli: CLI) -> None:
    # from another folder: the agents' paths are relative to the file
    res = cli.run(
        "up",
        "-q",
        "--quiet-server",
        "-f",
        EXAMPLES / "agentwatch.toml",
        env=agent_env(),
        cwd=ROOT.parent,
    )
    assert res.returncode == 0, res.stderr
    [run] = cli.runs()
    events = read_events(run / "events.jsonl")
    started = [e["processId"] for e in events if e["type"] == "process-started"]
    assert started == ["planner", "coder", "reviewer"]  # in dependency order
    seq = {(e["type"], e["processId"]): e["seq"] for e in events if e["type"] != "process-output"}
    # depends_on = { X = "succeeded" }: each starts after the one before it is done
    assert seq["process-stopped", "planner"] < seq["process-started", "coder"]
    assert seq["process-stopped", "coder"] < seq["process-started", "reviewer"]
    assert seq["task-completed", "coder"] < seq["system-alert", "reviewer"]  # then approved
    tasks = [(e["type"], e["processId"], e["taskId"]) for e in events if "taskId" in e]
    assert tasks == [("task-assigned", "planner", "T-1"), ("task-completed", "coder", "T-1")]
    alert = next(e for e in events if e["type"] == "system-alert")
    assert (alert["processId"], alert["message"]) == ("reviewer", "T-1 approved")
    completed = next(e for e in events if e["type"] == "task-completed")
    assert completed["result"] == {"files": 2}
    coder = [e["output"] for e in events if e.get("processId") == "coder" and "output" in e]
    assert "coder: working on T-1 with model small" in coder  # env from the file


@pytest.mark.parametrize(
    ("command", "status"),
    [([], 0), (["sh", "-c", "echo failing; exit 3"], 3)],
    ids=["chatty", "failing"],
)
def test_ci_script(cli: CLI, command: list[str], status: int) -> None:
    res = subprocess.run(
        ["sh", EXAMPLES / "ci.sh", *command],
        env=agent_env(**FAST),
        capture_output=True,
        timeout=120,
        cwd=ROOT,
        check=False,
    )
    assert res.returncode == status, (res.stdout[-2000:], res.stderr[-2000:])
    out = res.stdout.decode()
    assert f"ci.sh: agent exited with status {status}" in out
    assert "build | -- stopped" in out  # subscribe --until-exit followed it to the end


def test_python_client(cli: CLI) -> None:
    live = start_up(cli, EXAMPLES / "agentwatch.toml", "--linger", "120")
    proc = subprocess.Popen(
        [sys.executable, EXAMPLES / "client.py"],
        env=agent_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        live.wait_event(lambda e: e["type"] == "process-stopped" and e["processId"] == "coder")
        live.wait_event(lambda e: e["type"] == "process-stopped" and e["processId"] == "reviewer")
        live.proc.send_signal(signal.SIGTERM)  # ends the linger: the run is over
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
    assert proc.returncode == 0, err
    lines = out.splitlines()
    assert lines[-1] == "-- tasks: {'T-1': 'success'}"
    assert "'process-stopped': 3" in lines[-2]
    assert any(line.endswith("planner | planner: reading the issue") for line in lines)
    assert live.finish() == 0


def test_python_client_without_a_run(cli: CLI) -> None:
    out = subprocess.run(
        [sys.executable, EXAMPLES / "client.py"],
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert out.returncode == 1
    assert out.stderr.startswith("client.py: no running agentwatch server")


def test_embed(cli: CLI) -> None:
    out = subprocess.run(
        [sys.executable, EXAMPLES / "embed.py"],
        env=agent_env(),
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0].startswith("serving http://127.0.0.1:")
    body = "\n".join(lines)
    for step in range(1, 6):
        assert f"worker   step {step}/5" in body
    assert "task-completed   worker   demo" in body
    assert "process-stopped  ticker" in body  # stopped by the program, seen to the end
    assert lines[-1].endswith("ended with status 0")
    [run] = cli.runs()
    events = read_events(run / "events.jsonl")
    assert types_of(events).count("process-stopped") == 2


def test_examples_folder_is_complete() -> None:
    for name in ("chatty_agent.py", "agentwatch.toml", "ci.sh", "client.py", "embed.py"):
        assert (EXAMPLES / name).is_file(), name
    assert start.__module__ == "test_cli_support"  # the helpers are shared with the CLI tests
