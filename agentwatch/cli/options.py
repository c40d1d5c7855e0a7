"""Option definitions shared by commands: one definition of each."""

from __future__ import annotations

import os
import re
from pathlib import Path
from typing import Annotated

import typer

from agentwatch.client.discovery import complete_run_ids
from agentwatch.errors import ConfigError

Host = Annotated[
    str, typer.Option("--host", envvar="AGENTWATCH_HOST", help="Address to bind the server to.")
]
Port = Annotated[
    int,
    typer.Option("--port", envvar="AGENTWATCH_PORT", help="Port to serve on (0: any free port)."),
]
NoServer = Annotated[bool, typer.Option("--no-server", help="Do not serve events.")]
QuietServer = Annotated[
    bool, typer.Option("--quiet-server", help="Do not print the 'serving' line.")
]
Token = Annotated[
    str | None,
    typer.Option(
        "--token", envvar="AGENTWATCH_TOKEN", help="Token clients must present (default: random)."
    ),
]
NoAuth = Annotated[bool, typer.Option("--no-auth", help="Serve without a token (loopback only).")]
Insecure = Annotated[
    bool, typer.Option("--insecure", help="Allow --no-auth on a non-loopback host.")
]
CorsOrigin = Annotated[
    list[str] | None,
    typer.Option(
        "--cors-origin", help="Allow this browser origin (repeatable; env AGENTWATCH_CORS_ORIGIN)."
    ),
]
ClientTimeout = Annotated[
    float,
    typer.Option(
        "--client-timeout", help="Drop a subscriber that reads nothing for this long (s)."
    ),
]
JournalPath = Annotated[Path | None, typer.Option("--journal", help="Journal file path.")]
NoJournal = Annotated[bool, typer.Option("--no-journal", help="Keep events in memory only.")]
Restart = Annotated[str, typer.Option("--restart", help="no, on-failure or always.")]
MaxRestarts = Annotated[int, typer.Option("--max-restarts", help="Restarts before giving up.")]
BackoffOpt = Annotated[float, typer.Option("--backoff", help="First restart delay (s), doubling.")]
Timeout = Annotated[float | None, typer.Option("--timeout", help="Stop the child after (s).")]
Grace = Annotated[float, typer.Option("--grace", help="SIGTERM to SIGKILL delay (s).")]
IdleAlert = Annotated[
    float | None, typer.Option("--idle-alert", help="Alert when the child prints nothing for (s).")
]
MaxMemory = Annotated[
    str | None,
    typer.Option("--max-memory", help="Alert when the tree's RSS passes this (K/M/G suffixes)."),
]
KillOnMemory = Annotated[
    bool, typer.Option("--kill-on-memory", help="Stop the child past --max-memory.")
]
StatsInterval = Annotated[
    float, typer.Option("--stats-interval", help="process-stats every (s); 0 off.")
]
MaxLineBytes = Annotated[
    str, typer.Option("--max-line-bytes", help="Split longer lines into pieces.")
]
Tty = Annotated[bool, typer.Option("--tty", help="Give the child a pseudo-terminal stdout.")]
Home = Annotated[
    Path | None,
    typer.Option(
        "--home", envvar="AGENTWATCH_HOME", help="State folder (runs, journals).", hidden=True
    ),
]
# No envvar= on --url: the client resolves AGENTWATCH_URL itself, after --run (SPEC 3).
Url = Annotated[
    str | None,
    typer.Option(
        "--url", help="Server URL (default: --run, $AGENTWATCH_URL, else the newest live run)."
    ),
]
RunIdOpt = Annotated[
    str | None,
    typer.Option(
        "--run",
        help="Pick a live or past run by id (or a unique prefix).",
        autocompletion=complete_run_ids,
    ),
]
Json = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
Quiet = Annotated[bool, typer.Option("--quiet", "-q", help="Do not echo the agents' output.")]
EchoJson = Annotated[bool, typer.Option("--json", help="Echo events as JSON Lines.")]
NoPrefix = Annotated[
    bool, typer.Option("--no-prefix", help="Echo the agents' lines without 'name | '.")
]
Linger = Annotated[
    float | None,
    typer.Option("--linger", min=0, help="Keep serving this long after the agents end (s)."),
]
Summary = Annotated[
    bool,
    typer.Option("--summary", help="Print a closing summary (and to $GITHUB_STEP_SUMMARY)."),
]


ORIGIN_RE = re.compile(r"[a-z][a-z0-9+.-]*://[^/\s?#]+")  # what a browser sends as Origin


def _origin(text: str, where: str) -> str:
    origin = text.strip().rstrip("/").lower()
    if origin == "*" or ORIGIN_RE.fullmatch(origin):
        return origin
    raise ConfigError(
        f"invalid {where} {text!r}: use SCHEME://HOST[:PORT] (e.g. http://localhost:5173) or *"
    )


def cors_origins(flag: list[str] | None) -> tuple[str, ...]:
    """The flag's origins, else ``AGENTWATCH_CORS_ORIGIN`` (comma-separated), checked."""
    if flag:
        return tuple(_origin(o, "--cors-origin") for item in flag for o in item.split(",") if o)
    env = os.environ.get("AGENTWATCH_CORS_ORIGIN", "")
    return tuple(_origin(o, "AGENTWATCH_CORS_ORIGIN") for o in env.split(",") if o.strip())
