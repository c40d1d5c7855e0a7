"""`agentwatch run`: supervise one agent, serve its events, exit with its status."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from typer._click.core import Context
from typer._click.exceptions import UsageError

from agentwatch.agentfile import build_agent_spec
from agentwatch.cli import Command, app, options
from agentwatch.config import (
    DEFAULT_BACKOFF_S,
    DEFAULT_CLIENT_TIMEOUT_S,
    DEFAULT_GRACE_S,
    DEFAULT_MAX_RESTARTS,
    DEFAULT_STATS_INTERVAL_S,
    ServerConfig,
)
from agentwatch.errors import ConfigError

if TYPE_CHECKING:
    from agentwatch.runner import Session


def default_name(command: list[str]) -> str:
    """A processId from the command: its base name, cleaned."""
    base = os.path.basename(command[0]) or "agent"
    name = re.sub(r"[^A-Za-z0-9._-]", "-", base).lstrip(".-_") or "agent"
    return name[:100]


def server_config(
    *,
    no_server: bool,
    host: str,
    port: int,
    token: str | None,
    no_auth: bool,
    insecure: bool,
    cors: list[str] | None,
    client_timeout: float,
) -> ServerConfig | None:
    """Build the server options shared by `run` and `up`."""
    from agentwatch.runner import new_token

    if no_server:
        return None
    if not client_timeout > 0:
        raise ConfigError(
            f"--client-timeout must be a positive number of seconds, not {client_timeout}"
        )
    if no_auth:
        typer.echo(
            "agentwatch: warning: --no-auth: anyone who can reach the port can "
            "read and control the agents",
            err=True,
        )
    return ServerConfig(
        host=host,
        port=port,
        token=None if no_auth else (token or new_token()),
        cors_origins=options.cors_origins(cors),
        client_timeout=client_timeout,
        insecure=insecure,
    )


RUN_USAGE = "agentwatch run [OPTIONS] -- CMD [ARGS]..."


class RunCommand(Command):
    """`run`'s parsing: the command comes after ``--``, or is the first word that is
    not an option; with a ``--``, every word before it must be an option."""

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        return ["[OPTIONS]", "-- CMD [ARGS]..."]

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        given = list(args)
        rest = super().parse_args(ctx, args)
        command = ctx.params.get("command") or []
        if "--" in given and command.count("--") == given.count("--"):
            # no `--` was taken as the separator: a word before it started the command
            raise UsageError(f"unexpected argument {command[0]!r} before '--'", ctx)
        return rest


@app.command(
    "run",
    cls=RunCommand,
    context_settings={"allow_interspersed_args": False},
    no_args_is_help=True,
)
def run(
    command: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="-- CMD [ARGS]...", help="The agent's command line.", show_default=False
        ),
    ] = None,
    name: Annotated[str | None, typer.Option("--name", "-n", help="processId.")] = None,
    host: options.Host = "127.0.0.1",
    port: options.Port = 0,
    no_server: options.NoServer = False,
    quiet_server: options.QuietServer = False,
    token: options.Token = None,
    no_auth: options.NoAuth = False,
    insecure: options.Insecure = False,
    cors_origin: options.CorsOrigin = None,
    client_timeout: options.ClientTimeout = DEFAULT_CLIENT_TIMEOUT_S,
    journal: options.JournalPath = None,
    no_journal: options.NoJournal = False,
    restart: options.Restart = "no",
    max_restarts: options.MaxRestarts = DEFAULT_MAX_RESTARTS,
    backoff: options.BackoffOpt = DEFAULT_BACKOFF_S,
    timeout: options.Timeout = None,
    grace: options.Grace = DEFAULT_GRACE_S,
    idle_alert: options.IdleAlert = None,
    max_memory: options.MaxMemory = None,
    kill_on_memory: options.KillOnMemory = False,
    stats_interval: options.StatsInterval = DEFAULT_STATS_INTERVAL_S,
    max_line_bytes: options.MaxLineBytes = "256K",
    tty: options.Tty = False,
    quiet: options.Quiet = False,
    json_: options.EchoJson = False,
    linger: options.Linger = None,
    summary: options.Summary = False,
    home: options.Home = None,
) -> int:
    """Run and supervise one agent, serve its events, exit with its status."""
    import trio

    from agentwatch.runner import Echo, SessionOptions, run_session

    if not command:
        raise ConfigError(f"missing the command: {RUN_USAGE}")
    if no_journal and journal is not None:
        raise ConfigError("--journal and --no-journal exclude each other")
    if quiet and json_:
        raise ConfigError("--quiet and --json exclude each other")
    spec = build_agent_spec(
        name or default_name(command),
        {
            "command": command,
            "restart": restart,
            "max_restarts": max_restarts,
            "backoff": backoff,
            "timeout": timeout,
            "grace": grace,
            "idle_alert": idle_alert,
            "max_memory": max_memory,
            "kill_on_memory": kill_on_memory,
            "stats_interval": stats_interval,
            "max_line_bytes": max_line_bytes,
            "tty": tty,
        },
    )
    server = server_config(
        no_server=no_server,
        host=host,
        port=port,
        token=token,
        no_auth=no_auth,
        insecure=insecure,
        cors=cors_origin,
        client_timeout=client_timeout,
    )
    echo = Echo.NONE if quiet else Echo.JSON if json_ else Echo.RAW
    opts = SessionOptions(
        server=server,
        journal=journal,
        no_journal=no_journal,
        home=home,
        echo=echo,
        quiet_server=quiet_server,
        linger=linger,
        summary=summary,
        subreaper=True,
    )
    sessions: list[Session] = []
    status = trio.run(lambda: run_session([spec], opts, on_ready=sessions.append))
    ended(sessions, status, summary)
    return status


def ended(sessions: list[Session], status: int, summary: bool) -> None:
    """After a run: the ``--summary``, and on a terminal one line saying where it went."""
    if not sessions:
        return
    session = sessions[0]
    if summary:
        from agentwatch.summary import summary_markdown

        write_summary(summary_markdown(session, status))
    journal = session.hub.journal
    if journal is not None and sys.stderr.isatty():
        run_id = session.run_id
        see = (
            f"--run {run_id}" if journal.path.parent.name == run_id else f"--journal {journal.path}"
        )
        typer.echo(
            f"agentwatch: run {run_id} ended (exit {status}); see: agentwatch logs {see}", err=True
        )


def write_summary(text: str) -> None:
    """Print the summary on stderr and append it to ``$GITHUB_STEP_SUMMARY``."""
    typer.echo(text, err=True)
    target = os.environ.get("GITHUB_STEP_SUMMARY")
    if target:
        try:
            with Path(target).open("a") as f:
                f.write(text + "\n")
        except OSError as exc:
            typer.echo(f"agentwatch: cannot write $GITHUB_STEP_SUMMARY: {exc.strerror}", err=True)
