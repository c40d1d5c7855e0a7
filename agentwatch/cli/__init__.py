"""The Typer app: parse options, call the library, map errors to exit codes.

This package is the only place that calls `trio.run`, reads argv or prints
for people. Errors become one line on stderr (a traceback only with
``AGENTWATCH_DEBUG=1``) and the exit statuses of SPEC 5.
"""

from __future__ import annotations

import os
import sys
from typing import Annotated

import typer
from typer._click.core import Context, Parameter
from typer.core import TyperCommand, TyperGroup, TyperOption

from agentwatch import __version__
from agentwatch.errors import AgentwatchError
from agentwatch.exitcodes import OWN_ERROR

EXIT_OWN_ERROR = OWN_ERROR  # SPEC 5: agentwatch's own errors (bad options, port in use, ...)


def _flags_take_no_value(params: list[Parameter]) -> list[Parameter]:
    """A flag shows no value placeholder in --help (typer would label it ``<bool>``)."""
    for param in params:
        if isinstance(param, TyperOption) and param.is_flag and param.metavar is None:
            param.metavar = ""
    return params


class Command(TyperCommand):
    """Every agentwatch command: its help shows flags without a value."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _flags_take_no_value(super().get_params(ctx))


class Group(TyperGroup):
    """The root command: its help shows flags without a value."""

    def get_params(self, ctx: Context) -> list[Parameter]:
        return _flags_take_no_value(super().get_params(ctx))


app = typer.Typer(
    name="agentwatch",
    cls=Group,
    help="Supervise agent processes; journal and stream everything they print.",
    no_args_is_help=True,
    add_completion=True,
    context_settings={"help_option_names": ["-h", "--help"]},
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"agentwatch {__version__}")
        raise typer.Exit(0)


@app.callback()
def _root(
    version: Annotated[
        bool,
        typer.Option("--version", callback=_version, is_eager=True, help="Print the version."),
    ] = False,
) -> None:
    """Supervise agent processes; journal and stream everything they print."""


def fail(message: str, code: int = EXIT_OWN_ERROR) -> typer.Exit:
    """Print one error line and return the Exit to raise."""
    typer.echo(f"agentwatch: {message}", err=True)
    return typer.Exit(code)


def _leaves(exc: BaseException) -> list[BaseException]:
    if isinstance(exc, BaseExceptionGroup):
        out: list[BaseException] = []
        for e in exc.exceptions:
            out.extend(_leaves(e))
        return out
    return [exc]


def _handle(exc: BaseException) -> int:
    """Map an exception escaping a command to (message printed, exit status)."""
    from typer._click.exceptions import ClickException, NoArgsIsHelpError, UsageError

    leaves = _leaves(exc)
    for leaf in leaves:
        if isinstance(leaf, typer.Exit):
            return leaf.exit_code
    for leaf in leaves:
        if isinstance(leaf, NoArgsIsHelpError):  # the help is printed: say what is missing
            ctx = leaf.ctx
            usage = " ".join([ctx.command_path, *ctx.command.collect_usage_pieces(ctx)])
            typer.echo(f"agentwatch: missing the command: {usage}", err=True)
            return EXIT_OWN_ERROR
        if isinstance(leaf, AgentwatchError):
            typer.echo(f"agentwatch: {leaf}", err=True)
            return leaf.exit_code
        if isinstance(leaf, UsageError):
            hint = f" (see '{leaf.ctx.command_path} --help')" if leaf.ctx else ""
            typer.echo(f"agentwatch: {leaf.format_message()}{hint}", err=True)
            return EXIT_OWN_ERROR
        if isinstance(leaf, ClickException):
            typer.echo(f"agentwatch: {leaf.format_message()}", err=True)
            return EXIT_OWN_ERROR
        if isinstance(leaf, KeyboardInterrupt | typer.Abort):
            return 130
    if os.environ.get("AGENTWATCH_DEBUG") == "1":
        raise exc
    first = leaves[0] if leaves else exc
    typer.echo(f"agentwatch: internal error: {type(first).__name__}: {first}", err=True)
    return EXIT_OWN_ERROR


def main(argv: list[str] | None = None) -> None:
    """Console-script entry point."""
    from agentwatch.cli import run_cmd, up_cmd, subscribe_cmd  # noqa: F401, I001  (help order)
    from agentwatch.cli import client_cmds, emit_cmd  # noqa: F401

    try:
        rv = app(args=argv, prog_name="agentwatch", standalone_mode=False)
    except BaseException as exc:
        if isinstance(exc, SystemExit):
            raise
        if os.environ.get("AGENTWATCH_DEBUG") == "1" and not isinstance(exc, typer.Exit):
            raise
        sys.exit(_handle(exc))
    sys.exit(rv if isinstance(rv, int) else 0)
