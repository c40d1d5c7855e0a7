"""`run --summary` / `up --summary` for CI logs (SPEC 6, issue 8): the command
line, the last lines of a failed process, where the journal is and how to read
it, timeouts said as such, plurals right; and the serving line keeps the token
out of CI logs."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest
from conftest import CLI
from test_cli_support import agent_env, write

pytestmark = pytest.mark.timeout(120)

NOISY_FAILURE = """
import sys
for i in range(30):
    print(f"out {i}", flush=True)
    print(f"err {i}", file=sys.stderr, flush=True)
raise SystemExit(3)
"""


def summary_of(res_stderr: bytes) -> str:
    err = res_stderr.decode()
    return err[err.index("### agentwatch run ") :]


def test_failed_process_summary(cli: CLI, tmp_path: Path) -> None:
    step = tmp_path / "step.md"
    res = cli.run(
        "run", "--summary", "--no-server", "-q", "--name", "job", "--",
        *cli.py(NOISY_FAILURE), "--flag", "a b",
        env=agent_env(GITHUB_STEP_SUMMARY=str(step)),
    )  # fmt: skip
    assert res.returncode == 3
    text = summary_of(res.stderr)
    [run] = cli.runs()
    assert f"### agentwatch run {run.name}: exit status 3" in text
    assert "'a b'" in text  # the command line, quoted as a shell would
    assert "--flag" in text
    block = re.search(r"```text\n(.*?)\n```", text, re.S)
    assert block is not None, text
    assert block.group(1).splitlines() == [f"err {i}" for i in range(10, 30)]  # last 20 of stderr
    assert "job: last 20 lines of stderr" in text
    assert f"journal: {run / 'events.jsonl'}" in text
    assert f"agentwatch logs job --run {run.name}" in text
    assert "0 alerts" in text
    assert step.read_text() == text  # the same Markdown for $GITHUB_STEP_SUMMARY
    logs = cli.run("logs", "job", "--run", run.name)  # the line it gives works
    assert logs.returncode == 0
    assert b"err 0" in logs.stdout


def test_stdout_when_no_stderr_and_one_alert(cli: CLI) -> None:
    code = "print('only out', flush=True); raise SystemExit(2)"
    res = cli.run(
        "run", "--summary", "--no-server", "-q", "--max-memory", "1K", "--stats-interval", "0.1",
        "--", sys.executable, "-c", f"import time; time.sleep(1); {code}",
    )  # fmt: skip
    assert res.returncode == 2
    text = summary_of(res.stderr)
    assert "last line of stdout" in text
    assert "only out" in text
    assert re.search(r"\b1 alert\b", text), text  # not "1 alerts"


def test_timeout_says_timed_out(cli: CLI) -> None:
    res = cli.run(
        "run", "--summary", "--no-server", "-q", "--name", "slow", "--timeout", "0.5",
        "--", "sleep", "30",
    )  # fmt: skip
    assert res.returncode == 124
    text = summary_of(res.stderr)
    assert "timed out (124)" in text
    assert "SIGTERM" not in text
    row = next(line for line in text.splitlines() if line.startswith("| slow "))
    assert "timed out (124)" in row


def test_success_has_no_tail(cli: CLI) -> None:
    res = cli.run("run", "--summary", "--no-server", "-q", "--", "sh", "-c", "echo fine")
    assert res.returncode == 0
    text = summary_of(res.stderr)
    assert "exit status 0" in text
    assert "```" not in text
    assert "agentwatch logs sh --run " in text


def test_no_journal(cli: CLI) -> None:
    res = cli.run("run", "--summary", "--no-server", "-q", "--no-journal", "--", "false")
    assert res.returncode == 1
    text = summary_of(res.stderr)
    assert "journal: none" in text
    assert "agentwatch logs" not in text


def test_up_summary(cli: CLI, tmp_path: Path) -> None:
    toml = write(
        tmp_path / "agentwatch.toml",
        '[agents.ok]\ncommand = ["true"]\n\n'
        '[agents.bad]\ncommand = ["sh", "-c", "echo broken >&2; exit 5"]\n',
    )
    res = cli.run("up", "--summary", "--no-server", "-q", "-f", toml)
    assert res.returncode == 5, res.stderr
    text = summary_of(res.stderr)
    assert "exit status 5" in text
    assert any(line.startswith("| ok ") for line in text.splitlines())
    assert any(line.startswith("| bad ") for line in text.splitlines())
    assert "bad: last line of stderr" in text
    assert "broken" in text
    assert "agentwatch logs bad --run " in text


def test_ci_keeps_the_token_out_of_the_log(cli: CLI) -> None:
    res = cli.run("run", "-q", "--", "true", env=agent_env(CI="true"))
    assert res.returncode == 0
    err = res.stderr.decode()
    line = next(line for line in err.splitlines() if "serving" in line)
    assert "token=" not in line, line
    assert re.match(r"agentwatch: serving http://127\.0\.0\.1:\d+/ ", line), line
    assert "server.json" in line  # where the token is
    outside_ci = {k: v for k, v in agent_env().items() if k != "CI"}  # the suite may run in CI
    plain = cli.run("run", "-q", "--", "true", env=outside_ci)
    assert "?token=" in plain.stderr.decode()
    not_ci = cli.run("run", "-q", "--", "true", env=agent_env(CI="false"))
    assert "?token=" in not_ci.stderr.decode()


def test_ci_discovery_still_has_the_token(cli: CLI) -> None:
    proc = cli.popen(
        "run", "-q", "--", sys.executable, "-c", "import time; time.sleep(60)",
        env=agent_env(CI="1"),
    )  # fmt: skip
    found = cli.wait_for(lambda: list(cli.home.glob("runs/*/server.json")), 30, 0.05, "server.json")
    info = json.loads(found[0].read_text())
    assert info["token"]
    proc.terminate()
    proc.wait(timeout=30)
