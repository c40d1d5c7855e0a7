"""Where runs live on disk, run ids, and discovery files (SPEC 2, 3).

    <home>/runs/<runId>/events.jsonl   the journal (unless --journal/--no-journal)
    <home>/runs/<runId>/server.json    while the run serves: {runId, url, token,
                                       pid, startedAt, processes}, mode 0600

``<home>`` is ``$AGENTWATCH_HOME``, else ``$XDG_STATE_HOME/agentwatch``, else
``~/.local/state/agentwatch``. A ``server.json`` whose pid is gone is stale:
readers ignore and remove it (the reading side is `agentwatch.client.discovery`).
"""

from __future__ import annotations

import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DISCOVERY_FILE = "server.json"
RUN_MARKER_FILE = "run.json"  # every live run, with or without a server (pid, start, names)
JOURNAL_FILE = "events.jsonl"


def state_home(environ: dict[str, str] | None = None) -> Path:
    """``$AGENTWATCH_HOME``, else ``$XDG_STATE_HOME/agentwatch``, else ``~/.local/state/...``."""
    env = os.environ if environ is None else environ
    if env.get("AGENTWATCH_HOME"):
        return Path(env["AGENTWATCH_HOME"])
    if env.get("XDG_STATE_HOME"):
        return Path(env["XDG_STATE_HOME"]) / "agentwatch"
    return Path.home() / ".local" / "state" / "agentwatch"


def new_run_id(now: float | None = None) -> str:
    """A time-sortable run id, e.g. ``20261125T164000Z-3f2a``."""
    t = time.gmtime(time.time() if now is None else now)
    return time.strftime("%Y%m%dT%H%M%SZ", t) + "-" + secrets.token_hex(2)


def runs_dir(home: Path | None = None) -> Path:
    """The folder that holds one folder per run."""
    return (home or state_home()) / "runs"


@dataclass
class Discovery:
    """The contents of a live run's ``server.json``."""

    run_id: str
    url: str
    token: str | None
    pid: int
    started_at: str
    processes: list[str]
    path: Path | None = None

    def as_json(self) -> dict[str, Any]:
        """The file's JSON form."""
        return {
            "runId": self.run_id,
            "url": self.url,
            "token": self.token,
            "pid": self.pid,
            "startedAt": self.started_at,
            "processes": self.processes,
        }


def write_discovery(path: Path, info: Discovery) -> None:
    """Write ``server.json`` atomically with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info.as_json(), f)
    os.replace(tmp, path)
