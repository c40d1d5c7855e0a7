"""`agentwatch up`: run a team of agents from a TOML file under one server."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer
from typer._click.core import ParameterSource

from agentwatch.cli import Command, app, options
from agentwatch.cli.run_cmd import server_config
from agentwatch.config import DEFAULT_CLIENT_TIMEOUT_S
from agentwatch.errors import ConfigError

DEFAULT_FILE = Path("agentwatch.toml")


def _pick(ctx: typer.Context, name: str, value: Any, from_file: Any) -> Any:
    """A flag or its environment variable wins over the file, which wins over the default."""
    if from_file is None or ctx.get_parameter_source(name) not in (
        ParameterSource.DEFAULT,
        ParameterSource.DEFAULT_MAP,
        None,
    ):
        return value
    return from_file


@app.command("up", cls=Command)
def up(
    ctx: typer.Context,
    names: Annotated[
        list[str] | None,
        typer.Argument(
            metavar="NAME", help="Agents to start (and what they depend on); default all."
        ),
    ] = None,
    file: Annotated[Path, typer.Option("--file", "-f", help="The agents file.")] = DEFAULT_FILE,
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
    quiet: options.Quiet = False,
    json_: options.EchoJson = False,
    no_prefix: options.NoPrefix = False,
    linger: options.Linger = None,
    summary: options.Summary = False,
    home: options.Home = None,
) -> int:
    """Run several agents from a TOML file, one server for all.

    Each \\[agents.NAME] table takes the per-agent options of `run` (command,
    cwd, env, restart, max_restarts, backoff, timeout, grace, idle_alert,
    max_memory, kill_on_memory, stats_interval, max_line_bytes, tty) and
    depends_on; \\[server] takes host, port, token, cors_origins, journal.
    A flag (or its AGENTWATCH_* variable) wins over the file. Exits 0 when
    every agent exits 0, else with the status of the first that failed.
    """
    import trio

    from agentwatch.agentfile import load_agents_file
    from agentwatch.cli.run_cmd import ended
    from agentwatch.runner import Echo, Session, SessionOptions, run_session

    if no_journal and journal is not None:
        raise ConfigError("--journal and --no-journal exclude each other")
    if quiet and json_:
        raise ConfigError("--quiet and --json exclude each other")
    spec = load_agents_file(file, names or None)
    srv = spec.server
    cors = cors_origin
    if not cors and srv.cors_origins and not os.environ.get("AGENTWATCH_CORS_ORIGIN"):
        cors = list(srv.cors_origins)
    server = server_config(
        no_server=no_server,
        host=_pick(ctx, "host", host, srv.host),
        port=_pick(ctx, "port", port, srv.port),
        token=_pick(ctx, "token", token, srv.token),
        no_auth=no_auth,
        insecure=insecure,
        cors=cors,
        client_timeout=client_timeout,
    )
    echo = Echo.NONE if quiet else Echo.JSON if json_ else Echo.RAW
    opts = SessionOptions(
        server=server,
        journal=journal or (None if no_journal else srv.journal),
        no_journal=no_journal,
        home=home,
        echo=echo,
        quiet_server=quiet_server,
        linger=linger,
        summary=summary,
        subreaper=True,
        prefix=not no_prefix,  # `name | ` before each echoed line, as docker compose does
    )
    sessions: list[Session] = []
    status = trio.run(lambda: run_session(spec.agents, opts, on_ready=sessions.append))
    ended(sessions, status, summary)
    return status
