"""`agentwatch emit`: publish task, alert and custom events to a live run."""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from agentwatch.cli import app, options
from agentwatch.errors import ConfigError


def _json_arg(text: str | None, what: str) -> Any:
    if text is None:
        return None
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{what} is not valid JSON: {exc}") from None


def build_event(type_: str, *, task: str | None, title: str | None, assignee: str | None,
                status: str | None, result: str | None, level: str | None,
                code: str | None, message: list[str] | None, data: str | None,
                process: str | None) -> dict[str, Any]:
    """The event object to publish, checked for the fields its type needs."""
    event: dict[str, Any] = {"type": type_, "processId": process}
    payload = _json_arg(data, "--data")
    if payload is not None and not isinstance(payload, dict) and not type_.startswith("x-"):
        raise ConfigError("--data must be a JSON object")
    if type_ in ("task-assigned", "task-completed"):
        if not task:
            raise ConfigError(f"{type_} needs --task ID")
        event["taskId"] = task
        if type_ == "task-assigned":
            event.update({k: v for k, v in (("title", title), ("assignee", assignee)) if v})
        else:
            if status not in ("success", "failure", "cancelled"):
                raise ConfigError("task-completed needs --status success|failure|cancelled")
            event["status"] = status
            if result is not None:
                event["result"] = _json_arg(result, "--result") if result[:1] in "[{\"" else result
        if payload is not None:
            event["data"] = payload
    elif type_ == "system-alert":
        if level not in ("info", "warning", "error"):
            raise ConfigError("system-alert needs --level info|warning|error")
        if not message:
            raise ConfigError("system-alert needs a MESSAGE")
        event.update({"level": level, "message": " ".join(message)})
        if code:
            event["code"] = code
    elif type_.startswith("x-"):
        if isinstance(payload, dict):
            event.update({k: v for k, v in payload.items() if k not in ("type", "seq")})
        elif payload is not None:
            event["data"] = payload
        if message:
            event["message"] = " ".join(message)
    else:
        raise ConfigError(f"cannot emit {type_!r}: use task-assigned, task-completed, "
                          "system-alert or an x-... type")
    return event


@app.command("emit")
def emit(
    type_: Annotated[str, typer.Argument(metavar="TYPE",
                                         help="task-assigned, task-completed, system-alert, x-...")],
    message: Annotated[list[str] | None, typer.Argument(help="Alert message.")] = None,
    task: Annotated[str | None, typer.Option("--task", help="Task id.")] = None,
    title: Annotated[str | None, typer.Option("--title", help="Task title.")] = None,
    assignee: Annotated[str | None, typer.Option("--assignee", help="Who does the task.")] = None,
    status: Annotated[str | None, typer.Option("--status", help="success|failure|cancelled."),
                      ] = None,
    result: Annotated[str | None, typer.Option("--result", help="Task result (JSON or text).")
                      ] = None,
    level: Annotated[str | None, typer.Option("--level", help="info|warning|error.")] = None,
    code: Annotated[str | None, typer.Option("--code", help="Alert code.")] = None,
    data: Annotated[str | None, typer.Option("--data", help="JSON object.")] = None,
    process: Annotated[str | None, typer.Option(
        "--process", envvar="AGENTWATCH_PROCESS_ID", help="processId (default: the caller's).")
                       ] = None,
    url: options.Url = None,
    token: Annotated[str | None, typer.Option("--token", envvar="AGENTWATCH_TOKEN",
                                              help="Server token.")] = None,
    run_id: options.RunIdOpt = None,
    json_: options.Json = False,
    home: options.Home = None,
) -> int:
    """Publish a task, alert or custom event (works from inside an agent)."""
    from agentwatch.client import api, find_server

    event = build_event(type_, task=task, title=title, assignee=assignee, status=status,
                        result=result, level=level, code=code, message=message, data=data,
                        process=process or os.environ.get("AGENTWATCH_PROCESS_ID"))
    server = find_server(url, token, run_id, home)
    reply = api(server, "POST", "/api/events", event)
    typer.echo(json.dumps(reply) if json_ else str((reply or {}).get("seq", "")))
    return 0
