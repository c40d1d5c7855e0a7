"""The `up` file and the per-agent option table (SPEC 6): validation, table-tested.

Every bad file is one ConfigError that names the file, the agent and the
key; `run` and `up` share `AGENT_KEYS`.
"""

from __future__ import annotations

import shlex
from pathlib import Path

import pytest
import typer.main
from typer.testing import CliRunner

from agentwatch.agentfile import (
    AGENT_KEYS,
    FILE_ONLY_KEYS,
    build_agent_spec,
    load_agents_file,
)
from agentwatch.cli import app, run_cmd, up_cmd  # the imports register the commands
from agentwatch.config import DependencyCondition, RestartPolicy, StdinMode
from agentwatch.errors import ConfigError

GOOD = """
[server]
port = 8765
token = "team"
cors_origins = ["http://localhost:3000"]
journal = "logs/team.jsonl"

[agents.planner]
command = ["python", "planner.py"]
restart = "on-failure"
max_restarts = 2
backoff = 0.5

[agents.coder]
command = "python coder.py --fast 'two words'"
cwd = "agents"
env = { MODEL = "small", RETRIES = 3, VERBOSE = true }
depends_on = ["planner"]
idle_alert = 120
timeout = 600
grace = 2.5
max_memory = "512M"
kill_on_memory = true
stats_interval = 0
max_line_bytes = "64K"
tty = true
"""


def write(tmp_path: Path, text: str, name: str = "agentwatch.toml") -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_a_good_file(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD)
    spec = load_agents_file(path)
    assert spec.server.port == 8765
    assert spec.server.token == "team"
    assert spec.server.cors_origins == ("http://localhost:3000",)
    assert spec.server.journal == tmp_path.resolve() / "logs/team.jsonl"
    planner, coder = spec.agents
    assert planner.name == "planner"
    assert planner.command == ("python", "planner.py")
    assert planner.restart is RestartPolicy.ON_FAILURE
    assert (planner.max_restarts, planner.backoff) == (2, 0.5)
    assert planner.cwd == str(tmp_path.resolve())  # the file's folder by default
    assert planner.stdin is StdinMode.DEVNULL  # agents of `up` share no terminal
    assert coder.command == ("python", "coder.py", "--fast", "two words")  # split like a shell
    assert coder.cwd == str(tmp_path.resolve() / "agents")
    assert coder.env == {"MODEL": "small", "RETRIES": "3", "VERBOSE": "true"}
    assert coder.dependencies == {"planner": DependencyCondition.STARTED}  # a list: started
    assert list(coder.depends_on) == ["planner"]  # iterating gives the names, as before
    assert (coder.idle_alert, coder.timeout, coder.grace) == (120, 600, 2.5)
    assert (coder.max_memory, coder.kill_on_memory) == (512 * 1024**2, True)
    assert (coder.stats_interval, coder.max_line_bytes, coder.tty) == (0, 64 * 1024, True)


def test_absolute_cwd_and_empty_server(tmp_path: Path) -> None:
    path = write(tmp_path, f'[agents.a]\ncommand = "true"\ncwd = "{tmp_path}"\n')
    spec = load_agents_file(path)
    assert spec.agents[0].cwd == str(tmp_path)
    assert spec.server.port is None
    assert spec.server.journal is None


AGENT = '[agents.coder]\ncommand = ["true"]\n'
B = "[agents.b]\ncommand = 'true'\n"

# (file text, words the one-line message must contain)
BAD: list[tuple[str, tuple[str, ...]]] = [
    ("[agents.coder]\ncomand = ['x']\n", ("agent 'coder'", "unknown key 'comand'", "'command'")),
    ("[agents.coder]\ncwd = '.'\n", ("agent 'coder'", "missing key 'command'")),
    ("[agents.coder]\ncommand = 5\n", ("agent 'coder'", "command", "list of strings")),
    ("[agents.coder]\ncommand = []\n", ("agent 'coder'", "command is empty")),
    ("[agents.coder]\ncommand = ''\n", ("agent 'coder'", "command is empty")),
    ("[agents.coder]\ncommand = [1, 2]\n", ("agent 'coder'", "command")),
    ("[agents.coder]\ncommand = 'a \"b'\n", ("agent 'coder'", "command", "shell")),
    (AGENT + "cwd = 3\n", ("agent 'coder'", "cwd", "string")),
    (AGENT + "env = ['A=1']\n", ("agent 'coder'", "env", "table")),
    (AGENT + "env = { A = [1] }\n", ("agent 'coder'", "env", "A must be")),
    (AGENT + "restart = 'sometimes'\n", ("agent 'coder'", "restart", "on-failure")),
    (AGENT + "restart = true\n", ("agent 'coder'", "restart")),
    (AGENT + "max_restarts = 1.5\n", ("agent 'coder'", "max_restarts", "integer")),
    (AGENT + "max_restarts = -1\n", ("agent 'coder'", "max_restarts", ">= 0")),
    (AGENT + "max_restarts = true\n", ("agent 'coder'", "max_restarts")),
    (AGENT + "backoff = 'soon'\n", ("agent 'coder'", "backoff", "number")),
    (AGENT + "backoff = -1\n", ("agent 'coder'", "backoff", ">= 0")),
    (AGENT + "timeout = 0\n", ("agent 'coder'", "timeout", "positive")),
    (AGENT + "timeout = 'an hour'\n", ("agent 'coder'", "timeout")),
    (AGENT + "grace = -2\n", ("agent 'coder'", "grace", ">= 0")),
    (AGENT + "idle_alert = -5\n", ("agent 'coder'", "idle_alert", "positive")),
    (AGENT + "max_memory = '12X'\n", ("agent 'coder'", "max_memory", "size")),
    (AGENT + "max_memory = 1.5\n", ("agent 'coder'", "max_memory", "size")),
    (AGENT + "kill_on_memory = 'yes'\n", ("agent 'coder'", "kill_on_memory", "true or false")),
    (AGENT + "kill_on_memory = true\n", ("agent 'coder'", "kill_on_memory needs max_memory")),
    (AGENT + "stats_interval = -1\n", ("agent 'coder'", "stats_interval")),
    (AGENT + "max_line_bytes = 10\n", ("agent 'coder'", "max_line_bytes", "64")),
    (AGENT + "tty = 1\n", ("agent 'coder'", "tty", "true or false")),
    (AGENT + "depends_on = 'planner'\n", ("agent 'coder'", "depends_on", "list")),
    (AGENT + "depends_on = ['ghost']\n", ("agent 'coder'", "depends_on", "unknown agent 'ghost'")),
    (
        AGENT + "depends_on = ['b']\n[agents.b]\ncommand = 'true'\ndepends_on = ['coder']\n",
        ("dependency cycle", "coder -> b -> coder"),
    ),
    (AGENT + "depends_on = ['coder']\n", ("dependency cycle", "coder -> coder")),
    (AGENT + "depends_on = [1]\n", ("agent 'coder'", "depends_on", "list", "table")),
    (AGENT + "depends_on = 3\n", ("agent 'coder'", "depends_on", "agent names")),
    (
        AGENT + "depends_on = { b = 'done' }\n" + B,
        ("agent 'coder'", "depends_on.b must be started, completed or succeeded, not 'done'"),
    ),
    (AGENT + "depends_on = { b = 1 }\n" + B, ("agent 'coder'", "depends_on.b", "not 1")),
    (AGENT + "depends_on = { b = ['started'] }\n" + B, ("agent 'coder'", "depends_on.b")),
    (AGENT + "depends_on = { 'x.y' = 'ok' }\n", ("agent 'coder'", 'depends_on."x.y"')),
    (
        AGENT + "depends_on = { ghost = 'succeeded' }\n",
        ("agent 'coder'", "depends_on", "unknown agent 'ghost'"),
    ),
    (
        AGENT + "[agents.coder.depends_on]\nghost = 'completed'\n",  # a sub-table, the same
        ("agent 'coder'", "depends_on", "unknown agent 'ghost'"),
    ),
    (
        AGENT + "depends_on = { b = 'completed' }\n" + B + "depends_on = { coder = 'succeeded' }\n",
        ("agent 'coder'", "depends_on", "dependency cycle", "coder -> b -> coder"),
    ),
    ("[agents.'bad name']\ncommand = 'true'\n", ("agent 'bad name'", "invalid name")),
    ("[agents]\ncoder = 'true'\n", ("agent 'coder'", "must be a table")),
    ("agents = 3\n", ("'agents' must be tables",)),
    ("[server]\nport = 8080\n", ("no agents",)),
    ("", ("no agents",)),
    ("[agent.coder]\ncommand = 'true'\n", ("unknown table 'agent'",)),
    ("[server]\nprot = 1\n" + AGENT, ("[server]", "unknown key 'prot'", "'port'")),
    ("[server]\nport = 70000\n" + AGENT, ("[server]", "port", "65535")),
    ("[server]\nport = '80'\n" + AGENT, ("[server]", "port")),
    ("[server]\nhost = 1\n" + AGENT, ("[server]", "host", "string")),
    ("[server]\ntoken = ''\n" + AGENT, ("[server]", "token")),
    ("[server]\ncors_origins = 'http://x'\n" + AGENT, ("[server]", "cors_origins", "list")),
    ("server = 1\n" + AGENT, ("[server] must be a table",)),
    ("[agents.coder\ncommand = 'x'\n", ("invalid TOML",)),
]


@pytest.mark.parametrize(("text", "words"), BAD, ids=[f"bad{i}" for i in range(len(BAD))])
def test_bad_files_one_clear_message(tmp_path: Path, text: str, words: tuple[str, ...]) -> None:
    path = write(tmp_path, text)
    with pytest.raises(ConfigError) as info:
        load_agents_file(path)
    message = str(info.value)
    assert message.startswith(f"{path}: "), message
    assert "\n" not in message
    for word in words:
        assert word in message, (word, message)


def test_depends_on_conditions(tmp_path: Path) -> None:
    text = (
        AGENT
        + "[agents.b]\ncommand = 'true'\ndepends_on = { coder = 'succeeded' }\n"
        + "[agents.c]\ncommand = 'true'\n"
        + "depends_on = { b = 'completed', coder = 'started' }\n"
        + "[agents.d]\ncommand = 'true'\n[agents.d.depends_on]\nc = 'succeeded'\n"
        + "[agents.e]\ncommand = 'true'\ndepends_on = {}\n"
    )
    coder, b, c, d, e = load_agents_file(write(tmp_path, text)).agents
    assert coder.dependencies == {}
    assert b.dependencies == {"coder": DependencyCondition.SUCCEEDED}
    assert list(c.dependencies.items()) == [  # in the file's order
        ("b", DependencyCondition.COMPLETED),
        ("coder", DependencyCondition.STARTED),
    ]
    assert d.dependencies == {"c": DependencyCondition.SUCCEEDED}
    assert e.dependencies == {}
    only = load_agents_file(write(tmp_path, text), ["c"]).agents  # dependencies come along
    assert [a.name for a in only] == ["coder", "b", "c"]


def test_missing_and_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="file not found"):
        load_agents_file(tmp_path / "nope.toml")
    with pytest.raises(ConfigError, match="is a folder"):
        load_agents_file(tmp_path)
    bad = tmp_path / "latin1.toml"
    bad.write_bytes(b"# caf\xe9\n" + AGENT.encode())
    with pytest.raises(ConfigError, match="not UTF-8"):
        load_agents_file(bad)


def test_select_names_and_their_dependencies(tmp_path: Path) -> None:
    text = "".join(
        f"[agents.{n}]\ncommand = 'true'\ndepends_on = {deps!r}\n"
        for n, deps in [("db", []), ("api", ["db"]), ("web", ["api"]), ("docs", [])]
    )
    path = write(tmp_path, text.replace("'", '"'))
    names = [a.name for a in load_agents_file(path, ["web"]).agents]
    assert names == ["db", "api", "web"]  # file order, dependencies included
    assert [a.name for a in load_agents_file(path, ["docs", "db"]).agents] == ["db", "docs"]
    with pytest.raises(ConfigError, match="no agent named 'wbe'"):
        load_agents_file(path, ["wbe"])


def test_run_flags_cover_the_agent_keys() -> None:
    """`run` takes every per-agent key as a flag: one table, not two."""
    command = typer.main.get_command(app)
    # the commands registered are those of run_cmd and up_cmd (typer wraps them)
    for name, func in (("run", run_cmd.run), ("up", up_cmd.up)):
        assert command.commands[name].callback.__wrapped__ is func  # type: ignore[attr-defined]
    run = command.commands["run"]  # type: ignore[attr-defined]
    flags = {opt for param in run.params for opt in getattr(param, "opts", [])}
    for key in AGENT_KEYS:
        if key in FILE_ONLY_KEYS or key == "command":  # `run -- CMD` takes the command
            continue
        assert "--" + key.replace("_", "-") in flags, key
    assert "grace" in AGENT_KEYS


def test_run_errors_name_the_flag() -> None:
    with pytest.raises(ConfigError, match="--max-memory must be a size"):
        build_agent_spec("a", {"command": ["x"], "max_memory": "12X"})
    with pytest.raises(ConfigError, match="--restart must be no, on-failure or always"):
        build_agent_spec("a", {"command": ["x"], "restart": "maybe"})
    with pytest.raises(ConfigError, match="--kill-on-memory needs --max-memory"):
        build_agent_spec("a", {"command": ["x"], "kill_on_memory": True})


def test_run_bad_value_through_the_cli() -> None:
    """Plain `def`: the command fails before it reaches trio.run."""
    result = CliRunner().invoke(app, ["run", "--max-memory", "lots", "--", "true"])
    assert isinstance(result.exception, ConfigError)
    assert "--max-memory" in str(result.exception)


def test_command_string_splits_like_a_shell() -> None:
    cmd = 'python -c \'print("a b")\' --flag="x y"'
    spec = build_agent_spec("a", {"command": cmd})
    assert spec.command == tuple(shlex.split(cmd))
