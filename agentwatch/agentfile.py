"""Per-agent options from one definition, and the `up` TOML file (SPEC 6); no I/O
besides reading the file.

`AGENT_KEYS` is the single table of per-agent options: `run` maps its
command-line flags onto these keys and `up` reads them from each
``[agents.NAME]`` table, and both build the `AgentSpec` with
`build_agent_spec`, so the two cannot drift apart.
"""

from __future__ import annotations

import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentwatch.config import AgentSpec, StdinMode, parse_restart, parse_size
from agentwatch.errors import ConfigError


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ConfigError(f"{key} must be a number, not {type(value).__name__}")
    return float(value)


def _opt_number(key: str, value: Any) -> float | None:
    return None if value is None else _number(key, value)


def _int(key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigError(f"{key} must be an integer, not {type(value).__name__}")
    return value


def _bool(key: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise ConfigError(f"{key} must be true or false")
    return value


def _size(key: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ConfigError(f"{key} must be a size like 512M")
    return parse_size(value)


def _command(key: str, value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            raise ConfigError(f"{key}: {exc}") from None
    elif isinstance(value, list) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        raise ConfigError(f"{key} must be a list of strings or a string")
    if not parts:
        raise ConfigError(f"{key} is empty")
    return tuple(parts)


def _env(key: str, value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise ConfigError(f"{key} must be a table of strings")
    return {str(k): v if isinstance(v, str) else str(v) for k, v in value.items()}


def _names(key: str, value: Any) -> tuple[str, ...]:
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ConfigError(f"{key} must be a list of agent names")
    return tuple(value)


def _str(key: str, value: Any) -> str:
    if not isinstance(value, str):
        raise ConfigError(f"{key} must be a string")
    return value


Converter = Callable[[str, Any], Any]

# key (TOML and `run` flag, with - for _) -> (AgentSpec field, converter)
AGENT_KEYS: dict[str, tuple[str, Converter]] = {
    "command": ("command", _command),
    "cwd": ("cwd", _str),
    "env": ("env", _env),
    "restart": ("restart", lambda k, v: parse_restart(_str(k, v))),
    "max_restarts": ("max_restarts", _int),
    "backoff": ("backoff", _number),
    "timeout": ("timeout", _opt_number),
    "grace": ("grace", _number),
    "idle_alert": ("idle_alert", _opt_number),
    "max_memory": ("max_memory", _size),
    "kill_on_memory": ("kill_on_memory", _bool),
    "stats_interval": ("stats_interval", _number),
    "max_line_bytes": ("max_line_bytes", lambda k, v: _size(k, v)),
    "tty": ("tty", _bool),
    "depends_on": ("depends_on", _names),
}

SERVER_KEYS = ("host", "port", "token", "cors_origins", "journal")


def build_agent_spec(name: str, values: dict[str, Any], *, where: str = "",
                     stdin: StdinMode = StdinMode.INHERIT, base: Path | None = None) -> AgentSpec:
    """An `AgentSpec` from option values keyed as in `AGENT_KEYS`."""
    prefix = f"{where}: " if where else ""
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in AGENT_KEYS:
            known = ", ".join(AGENT_KEYS)
            raise ConfigError(f"{prefix}agent {name!r}: unknown key {key!r} (known: {known})")
        if value is None:
            continue
        field_name, convert = AGENT_KEYS[key]
        try:
            kwargs[field_name] = convert(key, value)
        except ConfigError as exc:
            raise ConfigError(f"{prefix}agent {name!r}: {exc}") from None
    if "command" not in kwargs:
        raise ConfigError(f"{prefix}agent {name!r}: missing key 'command'")
    if kwargs.get("kill_on_memory") and not kwargs.get("max_memory"):
        raise ConfigError(f"{prefix}agent {name!r}: kill_on_memory needs max_memory")
    if base is not None and kwargs.get("cwd") and not Path(kwargs["cwd"]).is_absolute():
        kwargs["cwd"] = str(base / kwargs["cwd"])
    try:
        return AgentSpec(name=name, stdin=stdin, **kwargs)
    except ConfigError as exc:
        raise ConfigError(f"{prefix}{exc}") from None


@dataclass(frozen=True)
class AgentsFile:
    """A parsed `up` file: server settings and agents in file order."""

    path: Path
    server: dict[str, Any]
    agents: list[AgentSpec]


def load_agents_file(path: Path, only: list[str] | None = None) -> AgentsFile:
    """Read and validate an `up` file; raise ConfigError naming file, agent and key."""
    try:
        raw = tomllib.loads(path.read_text())
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except OSError as exc:
        raise ConfigError(f"{path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    for key in raw:
        if key not in ("server", "agents"):
            raise ConfigError(f"{path}: unknown table {key!r} (use [server] and [agents.NAME])")
    server = raw.get("server", {})
    if not isinstance(server, dict):
        raise ConfigError(f"{path}: [server] must be a table")
    for key in server:
        if key not in SERVER_KEYS:
            raise ConfigError(f"{path}: [server]: unknown key {key!r} "
                              f"(known: {', '.join(SERVER_KEYS)})")
    _check_server(path, server)
    agents_raw = raw.get("agents", {})
    if not isinstance(agents_raw, dict) or not agents_raw:
        raise ConfigError(f"{path}: no agents: add an [agents.NAME] table")
    base = path.parent.resolve()
    agents = []
    for name, table in agents_raw.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: agents.{name} must be a table")
        agents.append(build_agent_spec(name, table, where=str(path), stdin=StdinMode.DEVNULL,
                                       base=base))
    check_dependencies(path, agents)
    if only:
        agents = select(path, agents, only)
    return AgentsFile(path, server, agents)


def _check_server(path: Path, server: dict[str, Any]) -> None:
    for key, kind in (("host", str), ("token", str), ("journal", str)):
        if key in server and not isinstance(server[key], kind):
            raise ConfigError(f"{path}: [server]: {key} must be a string")
    port = server.get("port", 0)
    if isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= 65535:
        raise ConfigError(f"{path}: [server]: port must be an integer from 0 to 65535")
    cors = server.get("cors_origins", [])
    if not isinstance(cors, list) or not all(isinstance(c, str) for c in cors):
        raise ConfigError(f"{path}: [server]: cors_origins must be a list of strings")


def check_dependencies(path: Path, agents: list[AgentSpec]) -> None:
    """Unknown dependencies and cycles are errors."""
    names = {a.name for a in agents}
    deps = {a.name: a.depends_on for a in agents}
    for a in agents:
        for d in a.depends_on:
            if d not in names:
                raise ConfigError(f"{path}: agent {a.name!r}: depends_on: unknown agent {d!r}")
    state: dict[str, int] = {}

    def visit(n: str, trail: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = " -> ".join([*trail[trail.index(n):], n])
            raise ConfigError(f"{path}: dependency cycle: {cycle}")
        state[n] = 1
        for d in deps[n]:
            visit(d, [*trail, n])
        state[n] = 2

    for a in agents:
        visit(a.name, [])


def select(path: Path, agents: list[AgentSpec], only: list[str]) -> list[AgentSpec]:
    """The named agents plus everything they depend on, in file order."""
    by_name = {a.name: a for a in agents}
    for n in only:
        if n not in by_name:
            raise ConfigError(f"{path}: no agent named {n!r}")
    wanted: set[str] = set()
    todo = list(only)
    while todo:
        n = todo.pop()
        if n not in wanted:
            wanted.add(n)
            todo.extend(by_name[n].depends_on)
    return [a for a in agents if a.name in wanted]
