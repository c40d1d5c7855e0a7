"""What the client commands share: finding the server, options, completion,
printing events and tables for people or scripts."""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import sys
import time
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from agentwatch.client.discovery import EXIT_NOT_FOUND
from agentwatch.errors import ClientError, ConfigError

if TYPE_CHECKING:
    from agentwatch.cli.render import Renderer
    from agentwatch.client import Server

COMPLETE_TIMEOUT_S = 1.0  # shell completion asks the live run; a person is waiting


def complete_processes(ctx: typer.Context, incomplete: str) -> list[str]:
    """Shell completion: the processes of the run the command would talk to."""
    from agentwatch.client import api, find_server

    p = ctx.params
    try:
        server = find_server(p.get("url"), p.get("token"), p.get("run_id"), p.get("home"))
        procs = api(server, "GET", "/api/processes", timeout=COMPLETE_TIMEOUT_S)
    except Exception:  # completion never fails loudly
        return []
    names = [str(x.get("processId")) for x in procs if isinstance(x, dict)]
    return [n for n in names if n.startswith(incomplete)]


def choices(*values: str) -> Any:
    """Shell completion from a fixed list of values."""

    def complete(incomplete: str) -> list[str]:
        return [v for v in values if v.startswith(incomplete)]

    return complete


Processes = Annotated[
    list[str] | None,
    typer.Argument(
        metavar="PROCESS",
        help="Process ids (default: all).",
        autocompletion=complete_processes,
    ),
]
TokenOpt = Annotated[
    str | None,
    typer.Option("--token", help="Server token (default: $AGENTWATCH_TOKEN or discovered)."),
]
Since = Annotated[int | None, typer.Option("--since", min=0, help="Start after this seq.")]
Tail = Annotated[int | None, typer.Option("--tail", min=0, help="Only the last N events.")]


def server_of(url: str | None, token: str | None, run_id: str | None, home: Path | None) -> Server:
    """The server a command talks to (`agentwatch.client.find_server`)."""
    from agentwatch.client import find_server
    from agentwatch.client.discovery import split_url

    if url is not None and split_url(url) is None:  # a bad option (125), not a lost server
        raise ConfigError(f"invalid --url {url!r}: use http://HOST:PORT")
    return find_server(url, token, run_id, home)


@contextlib.contextmanager
def stdout_guard() -> Iterator[None]:
    """A reader that went away (``| head``) ends the command quietly, with status 0."""
    try:
        yield
    except BrokenPipeError:
        with contextlib.suppress(OSError):
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
        raise typer.Exit(0) from None


def print_json(obj: Any) -> None:
    with stdout_guard():
        sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
        sys.stdout.flush()


class Printer:
    """Prints events as JSON Lines or human lines, flushing once per batch."""

    def __init__(self, as_json: bool, names: Iterable[str] = ()) -> None:
        from agentwatch.cli.render import Renderer

        self.as_json = as_json
        colour = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
        self.renderer: Renderer = Renderer(colour=colour, names=list(names))

    def print(self, events: Iterable[dict[str, Any]]) -> None:
        """Print some events."""
        if self.as_json:
            lines = [json.dumps(e, separators=(",", ":"), ensure_ascii=False) for e in events]
        else:
            lines = [line for e in events if (line := self.renderer.line(e)) is not None]
        if lines:
            with stdout_guard():
                sys.stdout.write("\n".join(lines) + "\n")
                sys.stdout.flush()


def check_names(server: Server, wanted: Iterable[str], procs: list[dict[str, Any]]) -> None:
    known = [str(p.get("processId")) for p in procs]
    for name in wanted:
        if name != "*" and name not in known:
            run = f" in run {server.run_id}" if server.run_id else ""
            raise ClientError(
                f"no process {name!r}{run} (processes: {', '.join(known) or 'none'})",
                exit_code=EXIT_NOT_FOUND,
            )


def fmt_bytes(n: Any) -> str:
    if not isinstance(n, int | float) or isinstance(n, bool):
        return "-"
    for unit in ("B", "K", "M", "G"):
        if n < 1024 or unit == "G":
            return f"{n:.0f}{unit}" if unit == "B" else f"{n:.1f}{unit}"
        n /= 1024
    return "-"


def uptime(started: Any, state: Any) -> str:
    if not isinstance(started, str) or state not in ("running", "waiting", "stopping"):
        return "-"
    try:
        t0 = dt.datetime.strptime(started, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    except ValueError:
        return "-"
    secs = max(int(time.time() - t0.timestamp()), 0)
    if secs >= 3600:
        return f"{secs // 3600}h{secs % 3600 // 60:02d}m"
    return f"{secs // 60}m{secs % 60:02d}s" if secs >= 60 else f"{secs}s"


def table(rows: list[list[str]]) -> None:
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    text = "".join(
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip() + "\n" for r in rows
    )
    with stdout_guard():
        sys.stdout.write(text)
        sys.stdout.flush()
