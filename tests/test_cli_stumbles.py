"""What a new user types in the first hour (issue 8): a missing command, flags in
--help, words before ``--``, bad --type values, bad option values everywhere,
and the line saying where a run went when it ends in a terminal."""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CLI, ROOT
from test_cli_support import agent_env, client, json_lines, one_error_line
from typer.testing import CliRunner

import agentwatch.cli.render
from agentwatch.cli import app, client_cmds

pytestmark = pytest.mark.timeout(120)
COMMANDS = ["run", "up", "subscribe", "ps", "logs", "runs", "stop", "restart", "signal", "emit"]
RUN_USAGE = "agentwatch run [OPTIONS] -- CMD [ARGS]..."
for _module in ("run_cmd", "up_cmd", "subscribe_cmd", "emit_cmd"):  # registers the commands
    importlib.import_module(f"agentwatch.cli.{_module}")


@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_flags_show_no_value_in_help(command: str | None) -> None:
    args = [command, "--help"] if command else ["--help"]
    res = CliRunner().invoke(app, args, prog_name="agentwatch", env={"COLUMNS": "200"})
    assert res.exit_code == 0, res.output
    assert "<bool>" not in res.output
    help_line = next(line for line in res.output.splitlines() if "--help" in line)
    assert "<" not in help_line, help_line
    if command == "run":
        assert f"Usage: {RUN_USAGE}" in res.output
        no_server = next(line for line in res.output.splitlines() if "--no-server" in line)
        assert "<" not in no_server
        assert "<int>" in next(line for line in res.output.splitlines() if "--port" in line)


@pytest.mark.parametrize(
    ("args", "missing"),
    [
        ([], "agentwatch [OPTIONS] COMMAND [ARGS]..."),
        (["run"], RUN_USAGE),
        (["run", "--no-server", "-q"], RUN_USAGE),
        (["run", "--no-server", "--"], RUN_USAGE),
    ],
    ids=["bare", "run", "run-options", "run-dashdash"],
)
def test_a_missing_command_is_named_once(cli: CLI, args: list[str], missing: str) -> None:
    res = client(cli, *args)
    assert res.returncode == 125, res.stderr
    errors = [line for line in res.stderr.decode().splitlines() if line.startswith("agentwatch:")]
    assert errors == [f"agentwatch: missing the command: {missing}"]


def test_every_word_before_dashdash_is_an_option(cli: CLI) -> None:
    res = client(cli, "run", "--no-server", "true", "--", "ls")
    one_error_line(res, 125, "unexpected argument 'true' before '--'")
    assert not cli.runs()  # nothing ran
    plain = client(cli, "run", "--no-server", "sh", "-c", "echo plain")  # no `--`: runs it
    assert (plain.returncode, plain.stdout) == (0, b"plain\n")
    after = client(cli, "run", "--no-server", "--", "echo", "a", "--", "b")
    assert (after.returncode, after.stdout) == (0, b"a -- b\n")


def test_subscribe_types_are_checked_and_take_comma_lists(cli: CLI) -> None:
    line = one_error_line(client(cli, "subscribe", "--type", "nosuch"), 125, "'nosuch'")
    assert "task-assigned" in line
    assert "x-" in line
    one_error_line(client(cli, "subscribe", "--type", "process-output,bogus"), 125, "'bogus'")
    agent = "agentwatch emit x-note --data '{\"n\": 1}'; echo out; exit 2"
    res = cli.run("run", "-q", "--quiet-server", "--name", "q", "--", "sh", "-c", agent,
                  env=agent_env())  # fmt: skip
    assert res.returncode == 2, res.stderr
    both = client(cli, "subscribe", "q", "--until-exit", "--json",
                  "--type", "process-started,x-note")  # fmt: skip
    assert both.returncode == 2, both.stderr
    assert [e["type"] for e in json_lines(both.stdout)] == ["process-started", "x-note"]
    again = client(cli, "subscribe", "q", "--until-exit", "--json",
                   "--type", "x-note", "--type", "process-stopped")  # fmt: skip
    assert [e["type"] for e in json_lines(again.stdout)] == ["x-note", "process-stopped"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["signal", "coder", "NOSUCH"], ["NOSUCH"]),
        (["signal", "coder", "0"], ["'0'"]),
        (["run", "--linger", "-1", "--", "true"], ["--linger"]),
        (["run", "--client-timeout", "0", "--", "true"], ["--client-timeout"]),
        (["run", "--cors-origin", "nope", "--", "true"], ["--cors-origin", "nope"]),
        (["run", "--json", "-q", "--", "true"], ["exclude"]),
        (["ps", "--url", "ftp://x"], ["ftp://x"]),
        (["subscribe", "--url", "nope://"], ["nope://"]),
        (["subscribe", "--until-exit", "--wait", "-1"], ["--wait"]),
        (["logs", "x", "--tail", "-1"], ["--tail"]),
        (["emit", "task-completed", "--task", "T", "--status", "meh"], ["--status"]),
    ],
)
def test_bad_option_values_exit_125(cli: CLI, args: list[str], words: list[str]) -> None:
    one_error_line(client(cli, *args), 125, *words)


def test_signal_names_and_numbers_pass_the_check() -> None:
    assert client_cmds.signal_name("term") == "SIGTERM"
    assert client_cmds.signal_name("SIGHUP") == "SIGHUP"
    assert client_cmds.signal_name("9") == "SIGKILL"


def _on_a_terminal(cli: CLI, *args: str) -> str:
    """Run ``agentwatch ARGS`` with its stderr on a pseudo-terminal; what it wrote there."""
    master, slave = os.openpty()
    proc = subprocess.Popen(
        cli.argv(*args), stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=slave,
        env=agent_env(), cwd=cli.home,
    )  # fmt: skip
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 1)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # EIO: every writer closed the terminal
                break
            if not chunk:
                break
            out += chunk
        elif proc.poll() is not None:
            break
    with contextlib.suppress(OSError):
        os.close(master)
    assert proc.wait(timeout=30) == 3
    return out.decode().replace("\r\n", "\n")


def test_where_the_run_went_on_a_terminal(cli: CLI) -> None:
    err = _on_a_terminal(cli, "run", "-q", "--no-server", "--", sys.executable, "-c", "exit(3)")
    [run] = cli.runs()
    assert (
        f"agentwatch: run {run.name} ended (exit 3); see: agentwatch logs --run {run.name}\n" in err
    )
    assert client(cli, "logs", "--run", run.name).returncode == 0  # the advice works
    one_error_line(client(cli, "logs"), 125, "missing the process")
    quiet = _on_a_terminal(cli, "run", "-q", "--no-server", "--no-journal", "--",
                           sys.executable, "-c", "exit(3)")  # fmt: skip
    assert "ended" not in quiet  # no journal: nothing to point at
    piped = client(cli, "run", "-q", "--no-server", "--", sys.executable, "-c", "exit(3)")
    assert piped.returncode == 3
    assert b"ended" not in piped.stderr  # scripts and CI logs: no extra line


def test_dead_code_is_gone() -> None:
    assert not hasattr(agentwatch.cli.render, "output_bytes")


def test_help_text_names_every_command(cli: CLI) -> None:
    res = client(cli, "--help", env=agent_env(COLUMNS="200"))
    assert res.returncode == 0
    for name in COMMANDS:
        assert re.search(rf"\b{name}\b", res.stdout.decode()), name


def test_chatty_agent_can_be_followed_live_or_run_fast(tmp_path: Path) -> None:
    path = ROOT / "examples" / "chatty_agent.py"
    spec = importlib.util.spec_from_file_location("chatty_agent", path)
    assert spec is not None
    assert spec.loader is not None
    chatty = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(chatty)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AGENTWATCH_", "CHATTY_"))}
    with pytest.MonkeyPatch.context() as mp:
        for name in ("CHATTY_STEPS", "CHATTY_DELAY"):
            mp.delenv(name, raising=False)
        default = chatty.options([])
    assert default.steps * default.delay * 1.25 >= 25  # time to click the dashboard link
    res = subprocess.run(
        [sys.executable, path, "--steps", "3", "--delay", "0"],
        env=env, capture_output=True, timeout=60, check=False, cwd=tmp_path,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    steps = [line for line in res.stdout.decode().splitlines() if line.startswith("step")]
    assert [line.split(":")[0] for line in steps] == ["step 1/3", "step 2/3", "step 3/3"]
    assert b"done" in res.stdout
    bad = subprocess.run([sys.executable, path, "--steps", "0"], capture_output=True, check=False)
    assert bad.returncode == 2
