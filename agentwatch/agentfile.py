"""Per-agent options from one definition, and the `up` TOML file (SPEC 6); no I/O
besides reading the file.

`AGENT_KEYS` is the single table of per-agent options: `run` maps its
command-line flags onto these keys (``max_restarts`` is ``--max-restarts``)
and `up` reads them from each ``[agents.NAME]`` table; both build the
`AgentSpec` with `build_agent_spec`, so the two cannot drift apart.

Every error is one `ConfigError` line that names where it comes from: the
file, the agent and the key (``agentwatch.toml: agent 'coder': timeout: must
be a positive number, not 'soon'``), or the flag for `run`.

Relative paths in a file (an agent's ``cwd``, the server's ``journal``) are
relative to the file's folder, and an agent without ``cwd`` runs in that
folder, as `docker compose` resolves paths from the compose file.
"""

from __future__ import annotations

import difflib
import math
import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from agentwatch.config import (
    NAME_RE,
    AgentSpec,
    DependencyCondition,
    StdinMode,
    parse_restart,
    parse_size,
)
from agentwatch.errors import ConfigError

MAX_PORT = 65535


class _Bad(ValueError):
    """A value that does not fit its key (the caller adds where and which key).

    ``sub`` names a key inside the value's table (``.planner`` of ``depends_on``).
    """

    def __init__(self, message: str, sub: str = "") -> None:
        super().__init__(message)
        self.sub = sub


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."


def _number(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        raise _Bad(f"must be a number, not {_show(value)}")
    return float(value)


def _non_negative(value: Any) -> float:
    number = _number(value)
    if number < 0 or math.isinf(number):
        raise _Bad(f"must be a number >= 0, not {_show(value)}")
    return number


def _positive(value: Any) -> float:
    number = _number(value)
    if number <= 0 or math.isinf(number):
        raise _Bad(f"must be a positive number of seconds, not {_show(value)}")
    return number


def _count(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise _Bad(f"must be an integer >= 0, not {_show(value)}")
    return value


def _bool(value: Any) -> bool:
    if not isinstance(value, bool):
        raise _Bad(f"must be true or false, not {_show(value)}")
    return value


def _size(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise _Bad(f"must be a size like 512M, not {_show(value)}")
    try:
        size = parse_size(value)
    except ConfigError:
        raise _Bad(f"must be a size like 512M (K, M, G suffixes), not {_show(value)}") from None
    if size <= 0:
        raise _Bad(f"must be a positive size, not {_show(value)}")
    return size


def _command(value: Any) -> tuple[str, ...]:
    if isinstance(value, str):
        try:
            parts = shlex.split(value)
        except ValueError as exc:
            raise _Bad(f"cannot split {_show(value)} like a shell: {exc}") from None
    elif isinstance(value, list | tuple) and all(isinstance(v, str) for v in value):
        parts = list(value)
    else:
        raise _Bad(f"must be a list of strings or a string, not {_show(value)}")
    if not parts or not parts[0]:
        raise _Bad("is empty")
    return tuple(parts)


def _env(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        raise _Bad(f"must be a table of NAME = value, not {_show(value)}")
    out: dict[str, str] = {}
    for k, v in value.items():
        if not k or "=" in k or "\0" in k:
            raise _Bad(f"invalid variable name {_show(k)}")
        if isinstance(v, bool):
            out[k] = "true" if v else "false"
        elif isinstance(v, str | int | float):
            out[k] = str(v)
        else:
            raise _Bad(f"{k} must be a string or a number, not {_show(v)}")
    return out


CONDITIONS = "started, completed or succeeded"  # the DependencyCondition values
_BARE_KEY = re.compile(r"[A-Za-z0-9_-]+")


def _dependencies(value: Any) -> dict[str, DependencyCondition]:
    """``["a"]`` (each "started") or ``{ a = "succeeded" }`` -> ``{name: condition}``."""
    if isinstance(value, dict):
        out: dict[str, DependencyCondition] = {}
        for name, cond in value.items():
            try:
                out[name] = DependencyCondition(cond)
            except ValueError:
                sub = "." + (name if _BARE_KEY.fullmatch(name) else f'"{name}"')
                raise _Bad(f"must be {CONDITIONS}, not {_show(cond)}", sub) from None
        return out
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        raise _Bad(
            "must be a list of agent names or a table "
            f'{{ NAME = "started" | "completed" | "succeeded" }}, not {_show(value)}'
        )
    return dict.fromkeys(value, DependencyCondition.STARTED)


def _str(value: Any) -> str:
    if not isinstance(value, str) or not value:
        raise _Bad(f"must be a non-empty string, not {_show(value)}")
    return value


def _restart(value: Any) -> Any:
    try:
        return parse_restart(_str(value))
    except ConfigError:
        raise _Bad(f"must be no, on-failure or always, not {_show(value)}") from None


Converter = Callable[[Any], Any]

# The per-agent options of `run` (as --flags, _ becoming -) and of `up` (as TOML keys):
# key -> converter. The AgentSpec field has the key's name.
AGENT_KEYS: dict[str, Converter] = {
    "command": _command,
    "cwd": _str,
    "env": _env,
    "restart": _restart,
    "max_restarts": _count,
    "backoff": _non_negative,
    "timeout": _positive,
    "grace": _non_negative,
    "idle_alert": _positive,
    "max_memory": _size,
    "kill_on_memory": _bool,
    "stats_interval": _non_negative,
    "max_line_bytes": _size,
    "tty": _bool,
    "depends_on": _dependencies,
}
FILE_ONLY_KEYS = ("cwd", "env", "depends_on")  # `run` takes these from its own context

SERVER_KEYS = ("host", "port", "token", "cors_origins", "journal")


def _unknown(key: str, known: tuple[str, ...] | list[str]) -> str:
    close = difflib.get_close_matches(key, known, n=1)
    hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(known)}"
    return f"unknown key {key!r} ({hint})"


def build_agent_spec(
    name: str,
    values: dict[str, Any],
    *,
    where: str = "",
    stdin: StdinMode = StdinMode.INHERIT,
    base: Path | None = None,
) -> AgentSpec:
    """An `AgentSpec` from option values keyed as in `AGENT_KEYS` (None: default).

    ``where`` names the file (errors then name TOML keys, else ``--flags``);
    ``base`` is the folder relative ``cwd`` values start from, and the
    default ``cwd``.
    """
    head = f"{where}: agent {name!r}" if where else f"agent {name!r}"

    def label(key: str) -> str:
        return key if where else "--" + key.replace("_", "-")

    if not isinstance(name, str) or not NAME_RE.fullmatch(name):
        raise ConfigError(
            f"{head}: invalid name: use up to 100 letters, digits, '.', '_' and '-', "
            "starting with a letter or digit"
        )
    kwargs: dict[str, Any] = {}
    for key, value in values.items():
        if key not in AGENT_KEYS:
            raise ConfigError(f"{head}: {_unknown(key, list(AGENT_KEYS))}")
        if value is None:
            continue
        try:
            kwargs[key] = AGENT_KEYS[key](value)
        except _Bad as exc:
            raise ConfigError(f"{head}: {label(key)}{exc.sub} {exc}") from None
    if "command" not in kwargs:
        raise ConfigError(f"{head}: missing key 'command'")
    if kwargs.get("kill_on_memory") and not kwargs.get("max_memory"):
        raise ConfigError(f"{head}: {label('kill_on_memory')} needs {label('max_memory')}")
    if kwargs.get("max_line_bytes", 64) < 64:
        raise ConfigError(f"{head}: {label('max_line_bytes')} must be at least 64 bytes")
    if base is not None:
        kwargs["cwd"] = str(base / kwargs["cwd"]) if kwargs.get("cwd") else str(base)
    try:
        return AgentSpec(name=name, stdin=stdin, **kwargs)
    except ConfigError as exc:  # a check of AgentSpec's own that the converters missed
        raise ConfigError(f"{head}: {exc}") from None


@dataclass(frozen=True)
class ServerTable:
    """The ``[server]`` table of an `up` file; None where the file is silent."""

    host: str | None = None
    port: int | None = None
    token: str | None = None
    cors_origins: tuple[str, ...] | None = None
    journal: Path | None = None


@dataclass(frozen=True)
class AgentsFile:
    """A parsed `up` file: server settings and agents in file order."""

    path: Path
    server: ServerTable = field(default_factory=ServerTable)
    agents: list[AgentSpec] = field(default_factory=list)


def load_agents_file(path: Path, only: list[str] | None = None) -> AgentsFile:
    """Read and validate an `up` file; raise ConfigError naming file, agent and key.

    With ``only``, keep those agents and what they depend on (in file order).
    """
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found (use -f FILE)") from None
    except IsADirectoryError:
        raise ConfigError(f"{path}: is a folder, not a file") from None
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: invalid TOML: not UTF-8") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: invalid TOML: {exc}") from None
    for key in raw:
        if key not in ("server", "agents"):
            raise ConfigError(f"{path}: unknown table {key!r} (use [server] and [agents.NAME])")
    base = path.parent.resolve()
    server = _server_table(path, raw.get("server", {}), base)
    agents_raw = raw.get("agents", {})
    if not isinstance(agents_raw, dict):
        raise ConfigError(f"{path}: 'agents' must be tables: [agents.NAME]")
    if not agents_raw:
        raise ConfigError(f"{path}: no agents: add an [agents.NAME] table")
    agents = []
    for name, table in agents_raw.items():
        if not isinstance(table, dict):
            raise ConfigError(f"{path}: agent {name!r}: must be a table: [agents.{name}]")
        agents.append(
            build_agent_spec(name, table, where=str(path), stdin=StdinMode.DEVNULL, base=base)
        )
    check_dependencies(path, agents)
    if only:
        agents = select(path, agents, only)
    return AgentsFile(path, server, agents)


def _server_table(path: Path, table: Any, base: Path) -> ServerTable:
    where = f"{path}: [server]"
    if not isinstance(table, dict):
        raise ConfigError(f"{where} must be a table")
    for key in table:
        if key not in SERVER_KEYS:
            raise ConfigError(f"{where}: {_unknown(key, SERVER_KEYS)}")
    for key in ("host", "token", "journal"):
        if key in table and (not isinstance(table[key], str) or not table[key]):
            raise ConfigError(f"{where}: {key} must be a non-empty string")
    port = table.get("port")
    if port is not None and (
        isinstance(port, bool) or not isinstance(port, int) or not 0 <= port <= MAX_PORT
    ):
        raise ConfigError(f"{where}: port must be an integer from 0 to {MAX_PORT}")
    cors = table.get("cors_origins")
    if cors is not None and (
        not isinstance(cors, list) or not all(isinstance(c, str) and c for c in cors)
    ):
        raise ConfigError(f"{where}: cors_origins must be a list of origins")
    journal = table.get("journal")
    return ServerTable(
        host=table.get("host"),
        port=port,
        token=table.get("token"),
        cors_origins=tuple(cors) if cors is not None else None,
        journal=base / journal if journal else None,
    )


def check_dependencies(path: Path | str, agents: list[AgentSpec]) -> None:
    """Unknown dependencies and cycles are errors."""
    names = {a.name for a in agents}
    deps = {a.name: a.dependencies for a in agents}
    for a in agents:
        for d in a.dependencies:
            if d not in names:
                raise ConfigError(f"{path}: agent {a.name!r}: depends_on: unknown agent {d!r}")
    state: dict[str, int] = {}  # 1: on the current path, 2: done

    def visit(n: str, trail: list[str]) -> None:
        if state.get(n) == 2:
            return
        if state.get(n) == 1:
            cycle = " -> ".join([*trail[trail.index(n) :], n])
            raise ConfigError(f"{path}: agent {n!r}: depends_on: dependency cycle {cycle}")
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
            raise ConfigError(f"{path}: no agent named {n!r} (agents: {', '.join(by_name)})")
    wanted: set[str] = set()
    todo = list(only)
    while todo:
        n = todo.pop()
        if n not in wanted:
            wanted.add(n)
            todo.extend(by_name[n].dependencies)
    return [a for a in agents if a.name in wanted]
