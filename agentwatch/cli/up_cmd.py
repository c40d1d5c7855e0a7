"""`agentwatch up`: run a team of agents from a TOML file under one server."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from agentwatch.cli import app, options
from agentwatch.cli.run_cmd import server_config
from agentwatch.config import DEFAULT_CLIENT_TIMEOUT_S
from agentwatch.errors import ConfigError


@app.command("up")
def up(
    names: Annotated[list[str] | None, typer.Argument(
        help="Agents to start (and their dependencies); default all.")] = None,
    file: Annotated[Path, typer.Option("--file", "-f", help="The agents file.")] = Path(
        "agentwatch.toml"),
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
    quiet: Annotated[bool, typer.Option("--quiet", "-q",
                                        help="Do not echo the agents' output.")] = False,
    json_: Annotated[bool, typer.Option("--json", help="Echo events as JSON Lines.")] = False,
    linger: Annotated[float | None, typer.Option(
        "--linger", help="Keep serving this long after the agents end (s).")] = None,
    home: options.Home = None,
) -> int:
    """Run several agents from a TOML file, one server for all."""
    import trio

    from agentwatch.agentfile import load_agents_file
    from agentwatch.runner import Echo, SessionOptions, run_session

    spec = load_agents_file(file, names or None)
    srv = spec.server
    if no_journal and journal is not None:
        raise ConfigError("--journal and --no-journal exclude each other")
    server = server_config(
        no_server=no_server, host=host if host != "127.0.0.1" else srv.get("host", host),
        port=port or srv.get("port", 0), token=token or srv.get("token"), no_auth=no_auth,
        insecure=insecure, cors=cors_origin or srv.get("cors_origins") or None,
        client_timeout=client_timeout)
    journal_path = journal or (Path(srv["journal"]) if srv.get("journal") else None)
    echo = Echo.NONE if quiet else Echo.JSON if json_ else Echo.RAW
    opts = SessionOptions(server=server, journal=journal_path, no_journal=no_journal, home=home,
                          echo=echo, quiet_server=quiet_server, linger=linger, subreaper=True)
    return trio.run(run_session, spec.agents, opts)
