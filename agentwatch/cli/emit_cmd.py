"""`agentwatch emit`: publish task, alert and custom events to a live run.

Inside an agent it needs nothing but the ``AGENTWATCH_*`` variables its
supervisor set (URL, token, run id, process id), so a shell script agent
can report its work::

    agentwatch emit task-assigned --task T-1 --title "parse" --assignee coder
    agentwatch emit task-completed --task T-1 --status success --result '{"files": 2}'
    agentwatch emit system-alert --level warning "rate limited, backing off"
    agentwatch emit x-tokens-used --data '{"input": 1200, "output": 300}'

It prints nothing (an agent's output stays its own) unless ``--json``,
which prints the server's answer, ``{"seq": N}``.
"""

from __future__ import annotations

import json
import os
from typing import Annotated, Any

import typer

from agentwatch.cli import Command, app, options
from agentwatch.errors import ConfigError
from agentwatch.events import SYSTEM_ALERT, TASK_ASSIGNED, TASK_COMPLETED
from agentwatch.publishable import (
    ALERT_LEVELS,
    COMMON_FIELDS,
    CUSTOM_PREFIX,
    PUBLISH_SCHEMA,
    TASK_STATUSES,
    own_fields,
)

# Each option of `emit` and the event field it fills (the schema says which a type takes).
_OPTION_FIELDS = {
    "--task": "taskId",
    "--title": "title",
    "--assignee": "assignee",
    "--status": "status",
    "--result": "result",
    "--level": "level",
    "--code": "code",
    "a MESSAGE": "message",
    "--data": "data",
}
# A custom event gets its fields from --data and a MESSAGE only.
_CUSTOM_FIELDS = frozenset({"data", "message"})


def _json_arg(text: str, what: str) -> Any:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"{what} is not valid JSON: {exc}") from None


def _refuse(type_: str, given: dict[str, Any]) -> None:
    """Options that mean nothing for this type are an error, not silently dropped."""
    takes = _CUSTOM_FIELDS if type_.startswith(CUSTOM_PREFIX) else own_fields(type_)
    extra = [opt for opt, value in given.items() if value and _OPTION_FIELDS[opt] not in takes]
    if extra:
        raise ConfigError(f"{type_} does not take {', '.join(extra)}")


def build_event(
    type_: str,
    *,
    task: str | None = None,
    title: str | None = None,
    assignee: str | None = None,
    status: str | None = None,
    result: str | None = None,
    level: str | None = None,
    code: str | None = None,
    message: list[str] | None = None,
    data: str | None = None,
    process: str | None = None,
) -> dict[str, Any]:
    """The event object to publish, checked for the fields its type needs."""
    event: dict[str, Any] = {"type": type_, "processId": process or None}
    payload = None if data is None else _json_arg(data, "--data")
    text = " ".join(message) if message else None
    given = {
        "--task": task,
        "--title": title,
        "--assignee": assignee,
        "--status": status,
        "--result": result,
        "--level": level,
        "--code": code,
        "a MESSAGE": text,
        "--data": data,
    }
    if type_ in (TASK_ASSIGNED, TASK_COMPLETED):
        if not task:
            raise ConfigError(f"{type_} needs --task ID")
        if payload is not None and not isinstance(payload, dict):
            raise ConfigError("--data must be a JSON object")
        _refuse(type_, given)
        event["taskId"] = task
        if type_ == TASK_ASSIGNED:
            event.update({k: v for k, v in (("title", title), ("assignee", assignee)) if v})
        else:
            if status not in TASK_STATUSES:
                raise ConfigError(f"task-completed needs --status {'|'.join(TASK_STATUSES)}")
            event["status"] = status
            if result is not None:
                structured = result[:1] in ("[", "{", '"')
                event["result"] = _json_arg(result, "--result") if structured else result
        if payload is not None:
            event["data"] = payload
    elif type_ == SYSTEM_ALERT:
        _refuse(type_, given)
        if level not in ALERT_LEVELS:
            raise ConfigError(f"system-alert needs --level {'|'.join(ALERT_LEVELS)}")
        if not text:
            raise ConfigError("system-alert needs a MESSAGE")
        event.update({"level": level, "message": text})
        if code:
            event["code"] = code
    elif type_.startswith(CUSTOM_PREFIX):
        _refuse(type_, given)
        if isinstance(payload, dict):  # a custom event's own fields
            event.update({k: v for k, v in payload.items() if k not in COMMON_FIELDS})
        elif payload is not None:
            event["data"] = payload
        if text:
            event["message"] = text
    else:
        raise ConfigError(
            f"cannot emit {type_!r}: use {', '.join(PUBLISH_SCHEMA)} or a custom x-... type"
        )
    return event


def _complete_type(incomplete: str) -> list[str]:
    kinds = (*PUBLISH_SCHEMA, CUSTOM_PREFIX)
    return [k for k in kinds if k.startswith(incomplete)]


@app.command("emit", cls=Command)
def emit(
    type_: Annotated[
        str,
        typer.Argument(
            metavar="TYPE",
            help="task-assigned, task-completed, system-alert, x-...",
            autocompletion=_complete_type,
        ),
    ],
    message: Annotated[
        list[str] | None, typer.Argument(help="The alert's message (system-alert, x-...).")
    ] = None,
    task: Annotated[str | None, typer.Option("--task", help="Task id.")] = None,
    title: Annotated[str | None, typer.Option("--title", help="Task title.")] = None,
    assignee: Annotated[str | None, typer.Option("--assignee", help="Who does the task.")] = None,
    status: Annotated[
        str | None,
        typer.Option(
            "--status", help="success, failure or cancelled.", autocompletion=lambda: TASK_STATUSES
        ),
    ] = None,
    result: Annotated[
        str | None, typer.Option("--result", help="Task result (JSON, or plain text).")
    ] = None,
    level: Annotated[str | None, typer.Option("--level", help="info, warning or error.")] = None,
    code: Annotated[str | None, typer.Option("--code", help="Alert code.")] = None,
    data: Annotated[
        str | None, typer.Option("--data", help="JSON: a task's data, an x- event's fields.")
    ] = None,
    process: Annotated[
        str | None,
        typer.Option("--process", help="processId (default: $AGENTWATCH_PROCESS_ID, the agent's)."),
    ] = None,
    url: options.Url = None,
    token: Annotated[
        str | None, typer.Option("--token", help="Server token (default: $AGENTWATCH_TOKEN).")
    ] = None,
    run_id: options.RunIdOpt = None,
    json_: Annotated[
        bool, typer.Option("--json", help='Print the server\'s answer, {"seq": N}.')
    ] = False,
    home: options.Home = None,
) -> int:
    """Publish a task, alert or custom event (works from inside an agent)."""
    from agentwatch.cli.client_common import server_of
    from agentwatch.client import api

    event = build_event(
        type_,
        task=task,
        title=title,
        assignee=assignee,
        status=status,
        result=result,
        level=level,
        code=code,
        message=message,
        data=data,
        process=process or os.environ.get("AGENTWATCH_PROCESS_ID"),
    )
    server = server_of(url, token, run_id, home)
    reply = api(server, "POST", "/api/events", event)
    if json_:
        typer.echo(json.dumps(reply, separators=(",", ":")))
    return 0
