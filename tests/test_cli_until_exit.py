"""`subscribe --until-exit` for CI (SPEC 6, 9): the status of a process that has
already finished comes from its ended run's journal at once, and a subscriber
started before the run serves waits for it (``--wait``) instead of failing."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CLI, ROOT
from test_cli_support import agent_env, client, json_lines, one_error_line

pytestmark = pytest.mark.timeout(180)


def test_status_of_a_finished_process_from_its_journal(cli: CLI) -> None:
    res = cli.run("run", "--quiet-server", "--name", "q", "--", "sh", "-c", "echo bye; exit 6")
    assert res.returncode == 6, res.stderr
    sub = client(cli, "subscribe", "q", "--until-exit", "--json")
    assert sub.returncode == 6, sub.stderr
    events = json_lines(sub.stdout)
    assert events[0]["type"] == "process-started"
    assert any(e.get("output") == "bye" for e in events)
    assert events[-1]["type"] == "process-stopped"
    every = client(cli, "subscribe", "--until-exit")  # every process of the newest run
    assert every.returncode == 6, every.stderr
    assert b"bye" in every.stdout


@pytest.mark.parametrize(
    ("command", "status"),
    [
        (["sh", "-c", "kill -9 $$"], 128 + 9),
        (["/nonexistent/agent"], 127),
        (["/etc/passwd/agent"], 127),  # "cannot execute ...: Not a directory" is still 127
        (["/etc/passwd"], 126),  # not executable
    ],
    ids=["signal", "not-found", "not-a-directory", "not-executable"],
)
def test_recorded_status_follows_the_run_rule(cli: CLI, command: list[str], status: int) -> None:
    res = cli.run("run", "-q", "--no-server", "--name", "q", "--", *command)
    assert res.returncode == status, res.stderr
    sub = client(cli, "subscribe", "q", "--until-exit")
    assert sub.returncode == status, sub.stderr


def test_timeout_is_124_from_the_journal(cli: CLI) -> None:
    res = cli.run(
        "run", "-q", "--no-server", "--name", "q", "--timeout", "0.5", "--", "sleep", "30"
    )
    assert res.returncode == 124, res.stderr
    assert client(cli, "subscribe", "q", "--until-exit").returncode == 124


def test_newest_ended_run_that_has_the_process(cli: CLI) -> None:
    assert (
        cli.run("run", "-q", "--no-server", "--name", "a", "--", "sh", "-c", "exit 3").returncode
        == 3
    )
    assert cli.run("run", "-q", "--no-server", "--name", "b", "--", "true").returncode == 0
    assert client(cli, "subscribe", "a", "--until-exit").returncode == 3
    assert client(cli, "subscribe", "b", "--until-exit").returncode == 0
    one_error_line(client(cli, "subscribe", "ghost", "--until-exit", "--wait", "0.3"), 4, "ghost")
    first = next(
        r.name for r in cli.runs() if '"processId":"a"' in (r / "events.jsonl").read_text()
    )
    assert client(cli, "subscribe", "--until-exit").returncode == 0  # the newest run: b's
    assert client(cli, "subscribe", "--until-exit", "--run", first).returncode == 3
    assert client(cli, "subscribe", "a", "--until-exit", "--run", first[:18]).returncode == 3
    one_error_line(
        client(cli, "subscribe", "b", "--until-exit", "--run", first, "--wait", "0.3"), 4, "'b'"
    )


def test_a_subscriber_started_before_the_run_waits_for_it(cli: CLI) -> None:
    # As a CI script does: `agentwatch run ... &` then at once `subscribe --until-exit`.
    sub = cli.popen("subscribe", "q", "--until-exit", "--json", env=agent_env())
    run = cli.popen(
        "run",
        "-q",
        "--quiet-server",
        "--name",
        "q",
        "--",
        "sh",
        "-c",
        "echo hi; exit 6",
        env=agent_env(),
    )
    out, err = sub.communicate(timeout=60)
    assert sub.returncode == 6, err
    assert any(e.get("output") == "hi" for e in json_lines(out))
    assert run.wait(timeout=60) == 6


def test_wait_gives_up(cli: CLI) -> None:
    t0 = time.monotonic()
    res = client(cli, "subscribe", "q", "--until-exit", "--wait", "0.5")
    assert time.monotonic() - t0 < 20
    one_error_line(res, 1, "no running agentwatch server")
    one_error_line(client(cli, "subscribe", "--until-exit", "--wait", "-1"), 125, "--wait")


def test_ci_script_without_polling(cli: CLI, tmp_path: Path) -> None:
    script = (ROOT / "examples" / "ci.sh").read_text()
    assert "sleep" not in script
    assert "--linger" not in script
    res = subprocess.run(
        ["sh", str(ROOT / "examples" / "ci.sh"), sys.executable, "-c", "raise SystemExit(4)"],
        env=agent_env(AGENTWATCH_HOME=str(tmp_path / "ci-home")),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert res.returncode == 4, res.stderr
    assert b"status 4" in res.stdout
