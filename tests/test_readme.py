"""The README's code blocks, run by the suite, so the README cannot rot.

Every fenced block of README.md is read at test time and checked by its
language:

- ``python``: executed for real (``python BLOCK``, a fresh interpreter, a
  timeout, ``AGENTWATCH_HOME`` in a temporary folder); it must exit 0.
- ``sh``: every ``agentwatch ...`` command in it must parse: its subcommand
  exists and each of its flags is one that ``agentwatch CMD --help`` lists
  (up to ``--``, after which the agent's own command begins). Then it is run,
  with ``AGENTWATCH_HOME`` in a temporary folder, the chatty example at a
  fast pace (``CHATTY_STEPS``/``CHATTY_DELAY``) and ``pip`` a no-op (the
  package is installed already): each ``agentwatch`` line is one command a
  person types, run in order from the repository's root, and none may fail
  as a usage error (status 2 or 125) or with a traceback. Illustrative
  values (a run id from the README, say) may fail in other ways. When the
  block's first command starts a run (``agentwatch run``/``up``) and later
  lines are client commands, the first one runs in the background as the
  person's first terminal, and the rest start once it serves; it must end
  with status 0. A block made only of ``agentwatch emit`` lines is what an
  agent's own script runs: it runs as the agent of ``agentwatch run``, and
  each line must publish its event.
- ``toml``: loaded by the ``up`` file loader (`load_agents_file`).
- ``json``: each line is a native WebSocket operation the server accepts.
- ``js``: valid JavaScript (``node --check``), when Node is installed.

Blocks that must not run are marked by an HTML comment on the line just
before the fence, used sparingly::

    <!-- no-run: why -->

A ``no-run`` sh block is still checked for its ``agentwatch`` commands.
"""

from __future__ import annotations

import functools
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest

from agentwatch.agentfile import load_agents_file
from agentwatch.proto.wsops import parse_client_message

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
BLOCK_TIMEOUT_S = 120  # one python block, or one sh line
SERVE_TIMEOUT_S = 30  # a backgrounded `agentwatch run` prints its URL within this
NO_RUN = re.compile(r"^<!--\s*no-run\b.*-->$")
FENCE = re.compile(r"^```(\w*)\s*$")
USAGE_STATUSES = (2, 125)
STARTS_A_RUN = ("run", "up")
BIN = Path(sys.executable).parent


@dataclass(frozen=True)
class Block:
    lang: str
    code: str
    line: int  # 1-based line of the opening fence
    no_run: bool

    @property
    def id(self) -> str:
        return f"{self.lang or 'text'}@{self.line}"


def readme_blocks() -> list[Block]:
    """Every fenced block of README.md, with its language and the no-run mark."""
    lines = README.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    i = 0
    while i < len(lines):
        m = FENCE.match(lines[i])
        if not m:
            i += 1
            continue
        before = next((x.strip() for x in reversed(lines[:i]) if x.strip()), "")
        start = i
        i += 1
        body: list[str] = []
        while i < len(lines) and lines[i].strip() != "```":
            body.append(lines[i])
            i += 1
        blocks.append(
            Block(m.group(1), "\n".join(body) + "\n", start + 1, bool(NO_RUN.match(before)))
        )
        i += 1
    return blocks


def blocks_of(*langs: str) -> list[Block]:
    return [b for b in readme_blocks() if b.lang in langs]


def ids(blocks: list[Block]) -> list[str]:
    return [b.id for b in blocks]


def test_the_readme_has_the_blocks_this_file_checks() -> None:
    langs = {b.lang for b in readme_blocks()}
    assert {"python", "sh", "toml"} <= langs
    unknown = langs - {"python", "sh", "toml", "json", "js", ""}
    assert not unknown, f"add a check for README blocks in {unknown}"


def env_for(home: Path) -> dict[str, str]:
    env = dict(os.environ)
    for var in ("AGENTWATCH_URL", "AGENTWATCH_TOKEN", "AGENTWATCH_RUN_ID", "AGENTWATCH_PORT"):
        env.pop(var, None)
    env["AGENTWATCH_HOME"] = str(home)
    env["PYTHONPATH"] = os.pathsep.join([str(ROOT), *filter(None, [env.get("PYTHONPATH")])])
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"  # agentwatch and python3 of this venv
    env["CHATTY_STEPS"] = "4"
    env["CHATTY_DELAY"] = "0.2"
    env["COLUMNS"] = "200"  # help text on one line per option
    env.pop("FORCE_COLOR", None)
    return env


# ---------------------------------------------------------------------------
# python


@pytest.mark.parametrize("block", blocks_of("python"), ids=ids(blocks_of("python")))
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    if block.no_run:
        compile(block.code, f"README.md:{block.line}", "exec")
        return
    script = tmp_path / "block.py"
    script.write_text(block.code)
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=ROOT,
        env=env_for(tmp_path / "home"),
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )
    assert done.returncode == 0, (
        f"README.md:{block.line} exited {done.returncode}\n{done.stdout}\n{done.stderr}"
    )


# ---------------------------------------------------------------------------
# sh: every agentwatch command parses


@functools.cache
def help_text(command: str | None) -> str:
    argv = [sys.executable, "-m", "agentwatch", *([command] if command else []), "--help"]
    env = env_for(Path("/nonexistent-agentwatch-home"))
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, f"agentwatch {command or ''} --help failed: {done.stderr}"
    return done.stdout


def subcommands() -> set[str]:
    """The command names in ``agentwatch --help``'s Commands panel."""
    text = help_text(None)
    panel = text[text.index("Commands") :]
    return set(re.findall(r"^[│|]\s+([a-z][a-z-]*)\s{2,}", panel, re.MULTILINE))


def flags_of(command: str | None) -> set[str]:
    return set(re.findall(r"(?<![\w-])(--[a-z][a-z0-9-]*|-[a-zA-Z])(?![\w-])", help_text(command)))


def commands_in(code: str) -> list[list[str]]:
    """Each simple command of a shell block (split at ``&&``, ``||``, ``;``, ``|``)."""
    out: list[list[str]] = []
    for raw in code.splitlines():
        lexer = shlex.shlex(raw, posix=True, punctuation_chars=True)
        lexer.whitespace_split = True
        lexer.commenters = "#"
        current: list[str] = []
        for token in lexer:
            if token in ("&&", "||", ";", "|", "&"):
                if current:
                    out.append(current)
                current = []
            else:
                current.append(token)
        if current:
            out.append(current)
    return out


def agentwatch_commands(code: str) -> list[list[str]]:
    return [c for c in commands_in(code) if c and c[0] == "agentwatch"]


def check_command(words: list[str]) -> str | None:
    """Why an ``agentwatch ...`` command would not parse, or None."""
    rest = words[1:]
    top = flags_of(None)
    while rest and rest[0].startswith("-"):
        if rest[0].split("=")[0] not in top:
            return f"unknown option {rest[0]!r} of agentwatch"
        rest = rest[1:]
    if not rest:
        return None
    command, args = rest[0], rest[1:]
    if command not in subcommands():
        return f"unknown command {command!r}"
    known = flags_of(command)
    for word in args:
        if word == "--":
            break  # the agent's own command follows
        option = word.startswith("-") and not re.fullmatch(r"-\d+(\.\d+)?", word)
        if option and word.split("=")[0] not in known:
            return f"agentwatch {command} has no option {word!r}"
    return None


SH_BLOCKS = blocks_of("sh")


@pytest.mark.parametrize("block", SH_BLOCKS, ids=ids(SH_BLOCKS))
def test_sh_block_agentwatch_commands_parse(block: Block) -> None:
    problems = [
        f"README.md:{block.line}: {' '.join(words)}: {why}"
        for words in agentwatch_commands(block.code)
        if (why := check_command(words))
    ]
    assert not problems, "\n".join(problems)


def test_the_command_checker_catches_rot() -> None:
    assert check_command(["agentwatch", "run", "--name", "x", "--", "ls", "--nosuch"]) is None
    assert check_command(["agentwatch", "subscribe", "--tail", "5"]) is None
    assert "no option" in (check_command(["agentwatch", "subscribe", "--nosuch"]) or "")
    assert "unknown command" in (check_command(["agentwatch", "nosuch"]) or "")


# ---------------------------------------------------------------------------
# sh: run


def shell_lines(code: str) -> list[str]:
    """The lines of a block a person would type (comments and blank lines dropped)."""
    lines = []
    for raw in code.splitlines():
        words = commands_in(raw)
        if words:
            lines.append(raw)
    return lines


def runs_agentwatch(line: str) -> bool:
    return any(c[0] == "agentwatch" for c in commands_in(line) if c)


def starts_a_run(line: str) -> bool:
    cmds = [c for c in commands_in(line) if c and c[0] == "agentwatch"]
    return bool(cmds) and len(cmds[0]) > 1 and cmds[0][1] in STARTS_A_RUN


def bash(line: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["bash", "-c", "pip() { :; }\n" + line],  # the package is installed already
        cwd=ROOT,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=BLOCK_TIMEOUT_S,
        check=False,
    )


def assert_no_usage_error(line: str, status: int, stderr: str) -> None:
    assert status not in USAGE_STATUSES, f"{line!r}: usage error ({status}): {stderr}"
    assert "Traceback" not in stderr, f"{line!r} crashed: {stderr}"


def live_run(home: Path) -> bool:
    return any((home / "runs").glob("*/server.json"))


def run_as_agent(block: Block, tmp_path: Path, env: dict[str, str]) -> None:
    script = tmp_path / "agent.sh"
    script.write_text("set -e\n" + block.code)
    journal = tmp_path / "events.jsonl"
    argv = ["agentwatch", "run", "--quiet-server", "--journal", str(journal), "--"]
    done = bash(shlex.join([*argv, "bash", str(script)]), env)
    assert done.returncode == 0, f"README.md:{block.line} as an agent: {done.stderr}"
    published = [json.loads(x)["type"] for x in journal.read_text().splitlines()]
    wanted = [c[2] for c in agentwatch_commands(block.code)]
    assert [t for t in published if t in wanted] == wanted


def run_lines(block: Block, env: dict[str, str], home: Path) -> None:
    lines = [x for x in shell_lines(block.code) if runs_agentwatch(x)]
    first: subprocess.Popen[str] | None = None
    if lines and starts_a_run(lines[0]) and len(lines) > 1:  # the person's first terminal
        first = subprocess.Popen(
            ["bash", "-c", lines.pop(0)],
            cwd=ROOT,
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        deadline = time.monotonic() + SERVE_TIMEOUT_S
        while not live_run(home) and first.poll() is None:
            assert time.monotonic() < deadline, "the block's first command never served"
            time.sleep(0.02)
    try:
        for line in lines:
            done = bash(line, env)
            assert_no_usage_error(line, done.returncode, done.stderr)
    finally:
        if first is not None:
            try:
                _, stderr = first.communicate(timeout=BLOCK_TIMEOUT_S)
            finally:
                if first.poll() is None:
                    first.kill()
                    first.communicate()
    if first is not None:
        assert first.returncode == 0, f"README.md:{block.line}: the run ended {first.returncode}"
        assert "Traceback" not in stderr, stderr


@pytest.mark.parametrize("block", SH_BLOCKS, ids=ids(SH_BLOCKS))
def test_sh_block_runs(block: Block, tmp_path: Path) -> None:
    if block.no_run:
        pytest.skip(f"README.md:{block.line} is marked no-run")
    home = tmp_path / "home"
    env = env_for(home)
    cmds = agentwatch_commands(block.code)
    if cmds and all(len(c) > 2 and c[1] == "emit" for c in cmds):
        run_as_agent(block, tmp_path, env)
    else:
        run_lines(block, env, home)


# ---------------------------------------------------------------------------
# toml, json, js


@pytest.mark.parametrize("block", blocks_of("toml"), ids=ids(blocks_of("toml")))
def test_toml_block_is_a_valid_up_file(block: Block, tmp_path: Path) -> None:
    path = tmp_path / "agentwatch.toml"
    path.write_text(block.code)
    loaded = load_agents_file(path)
    assert loaded.agents  # at least one agent


@pytest.mark.parametrize("block", blocks_of("json"), ids=ids(blocks_of("json")))
def test_json_block_lines_are_websocket_operations(block: Block) -> None:
    for line in block.code.splitlines():
        if line.strip():
            parse_client_message(line)  # raises ProtocolError when the server would refuse it


@pytest.mark.parametrize("block", blocks_of("js"), ids=ids(blocks_of("js")))
def test_js_block_is_valid_javascript(block: Block, tmp_path: Path) -> None:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed")
    script = tmp_path / "block.js"
    script.write_text(block.code)
    done = subprocess.run(
        [node, "--check", str(script)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
