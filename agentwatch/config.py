"""Frozen option objects shared by `run` and `up`, and value parsing; no I/O.

`AgentSpec` is the one definition of how a process is supervised: `run`
builds it from command-line options, `up` from a ``[agents.NAME]`` table.
"""

from __future__ import annotations

import enum
import re
import types
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import cast

from agentwatch.errors import ConfigError
from agentwatch.proto.lines import DEFAULT_MAX_LINE_BYTES

DEFAULT_GRACE_S = 10.0
DEFAULT_MAX_RESTARTS = 5
DEFAULT_BACKOFF_S = 1.0
BACKOFF_CAP_S = 60.0  # SPEC 5: doubling, capped at 60 s
BACKOFF_RESET_S = 60.0  # ... and reset after the child stays up 60 s
DEFAULT_STATS_INTERVAL_S = 5.0


class RestartPolicy(enum.Enum):
    """When a child that exited is started again."""

    NO = "no"
    ON_FAILURE = "on-failure"
    ALWAYS = "always"


class DependencyCondition(enum.Enum):
    """What an agent waits for of each name in its ``depends_on`` (SPEC 6)."""

    STARTED = "started"  # the dependency is running (a plain list of names means this)
    COMPLETED = "completed"  # it has exited for good, after its restarts, with any status
    SUCCEEDED = "succeeded"  # it has exited for good with status 0


# What `AgentSpec(depends_on=...)` takes: names (each "started"), or name -> condition.
DependsOn = Mapping[str, DependencyCondition | str] | Iterable[str]


def parse_dependencies(value: DependsOn) -> Mapping[str, DependencyCondition]:
    """``["a"]`` or ``{"a": "succeeded"}`` -> a read-only ``{name: condition}``, in order."""
    if isinstance(value, str | bytes):
        raise ConfigError(f"depends_on must be a list of names or a mapping, not {value!r}")
    if isinstance(value, Mapping):
        items = list(value.items())
    else:
        items = [(name, DependencyCondition.STARTED) for name in value]
    out: dict[str, DependencyCondition] = {}
    for name, cond in items:
        if not isinstance(name, str):
            raise ConfigError(f"depends_on: agent names are strings, not {name!r}")
        try:
            out[name] = DependencyCondition(cond)
        except ValueError:
            raise ConfigError(
                f"depends_on: {name}: unknown condition {cond!r}: "
                "use started, completed or succeeded"
            ) from None
    return types.MappingProxyType(out)


class StdinMode(enum.Enum):
    """What the child's standard input is."""

    INHERIT = "inherit"
    DEVNULL = "devnull"


@dataclass(frozen=True, slots=True)
class AgentSpec:
    """Everything needed to start and supervise one process."""

    name: str
    command: tuple[str, ...]
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    restart: RestartPolicy = RestartPolicy.NO
    max_restarts: int = DEFAULT_MAX_RESTARTS
    backoff: float = DEFAULT_BACKOFF_S
    timeout: float | None = None
    grace: float = DEFAULT_GRACE_S
    idle_alert: float | None = None
    max_memory: int | None = None
    kill_on_memory: bool = False
    stats_interval: float = DEFAULT_STATS_INTERVAL_S
    max_line_bytes: int = DEFAULT_MAX_LINE_BYTES
    tty: bool = False
    stdin: StdinMode = StdinMode.INHERIT
    # Names (each "started") or {name: condition}; read it back as `dependencies`.
    depends_on: DependsOn = ()

    def __post_init__(self) -> None:
        try:
            object.__setattr__(self, "depends_on", parse_dependencies(self.depends_on))
        except ConfigError as exc:
            raise ConfigError(f"{self.name}: {exc}") from None
        if not self.command:
            raise ConfigError(f"{self.name}: command is empty")
        if not NAME_RE.fullmatch(self.name):
            raise ConfigError(
                f"invalid process name {self.name!r}: use letters, digits, '.', '_' and '-'"
            )
        for attr in ("timeout", "idle_alert"):
            value = getattr(self, attr)
            if value is not None and value <= 0:
                raise ConfigError(f"{self.name}: {attr} must be positive")
        if self.max_restarts < 0:
            raise ConfigError(f"{self.name}: max_restarts must be >= 0")
        if self.backoff < 0 or self.grace < 0 or self.stats_interval < 0:
            raise ConfigError(f"{self.name}: backoff, grace and stats_interval must be >= 0")
        if self.max_line_bytes < 64:
            raise ConfigError(f"{self.name}: max_line_bytes must be at least 64")

    @property
    def dependencies(self) -> Mapping[str, DependencyCondition]:
        """``depends_on`` as ``{name: condition}``, in the order given."""
        return cast("Mapping[str, DependencyCondition]", self.depends_on)  # by __post_init__


NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")

_SIZE_RE = re.compile(r"\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]?)(i?[bB])?\s*")
_SIZE_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}


def parse_size(text: str | int) -> int:
    """Parse ``512``, ``100K``, ``1.5G``, ``64MiB`` into bytes."""
    if isinstance(text, int):
        return text
    m = _SIZE_RE.fullmatch(text)
    if not m:
        raise ConfigError(f"invalid size {text!r}: use a number with an optional K, M or G")
    return int(float(m.group(1)) * _SIZE_UNITS[m.group(2).lower()])


def parse_restart(text: str) -> RestartPolicy:
    """Parse a ``--restart`` value."""
    try:
        return RestartPolicy(text)
    except ValueError:
        raise ConfigError(
            f"invalid restart policy {text!r}: use no, on-failure or always"
        ) from None


DEFAULT_CLIENT_TIMEOUT_S = 60.0


@dataclass(frozen=True, slots=True)
class ServerConfig:
    """How the one-port server listens and whom it lets in (SPEC 4)."""

    host: str = "127.0.0.1"
    port: int = 0
    token: str | None = None  # None: auth off (--no-auth)
    cors_origins: tuple[str, ...] = ()
    client_timeout: float = DEFAULT_CLIENT_TIMEOUT_S
    insecure: bool = False

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"invalid port {self.port}: use 0 to 65535")
        if self.token is None and not self.insecure and not is_loopback(self.host):
            raise ConfigError(
                f"--no-auth on a non-loopback host ({self.host}) is refused; add --insecure"
            )


def is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine."""
    return host in ("localhost", "::1") or host.startswith("127.")
