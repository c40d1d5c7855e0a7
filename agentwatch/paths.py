"""Where runs live on disk, run ids, and discovery files (SPEC 2, 3).

    <home>/runs/<runId>/events.jsonl   the journal (unless --journal/--no-journal)
    <home>/runs/<runId>/server.json    while the run serves: {runId, url, token,
                                       pid, startedAt, processes}, mode 0600

``<home>`` is ``$AGENTWATCH_HOME``, else ``$XDG_STATE_HOME/agentwatch``, else
``~/.local/state/agentwatch``. A ``server.json`` whose pid is gone is stale:
readers ignore and remove it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentwatch.errors import ClientError

EXIT_NOT_FOUND = 4  # a client command named a run or process that does not exist

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


def pid_alive(pid: int) -> bool:
    """Whether a process with this pid exists (and is not a zombie)."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError, IndexError), open(f"/proc/{pid}/stat") as f:
        if f.read().rsplit(")", 1)[1].split()[0] == "Z":
            return False
    return True


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


def read_discovery(path: Path) -> Discovery | None:
    """Parse a ``server.json``; None if missing or unreadable."""
    try:
        raw = json.loads(path.read_text())
        token = raw.get("token")
        return Discovery(
            str(raw["runId"]),
            str(raw["url"]),
            token if isinstance(token, str) else None,
            int(raw["pid"]),
            str(raw.get("startedAt") or ""),
            [str(p) for p in raw.get("processes") or []],
            path,
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def live_discovery(path: Path) -> Discovery | None:
    """The discovery file at ``path`` if its server is alive; a stale one is removed."""
    info = read_discovery(path)
    if info is None:
        return None
    if not pid_alive(info.pid):
        with contextlib.suppress(OSError):
            path.unlink()
        return None
    return info


def live_runs(home: Path | None = None) -> list[Discovery]:
    """Live servers, newest first; stale discovery files are removed."""
    base = runs_dir(home)
    if not base.is_dir():
        return []
    found = [info for f in base.glob(f"*/{DISCOVERY_FILE}") if (info := live_discovery(f))]
    found.sort(key=lambda d: (d.started_at, d.run_id), reverse=True)  # started_at has µs
    return found


def resolve_run_id(run_id: str, home: Path | None = None) -> str:
    """The run whose id is ``run_id`` or starts with it; ClientError if none or several."""
    base = runs_dir(home)
    if not run_id or "/" in run_id or run_id in (".", ".."):
        raise ClientError(f"invalid run id {run_id!r}", exit_code=EXIT_NOT_FOUND)
    if (base / run_id).is_dir():
        return run_id
    matches = (
        sorted(d.name for d in base.glob(glob.escape(run_id) + "*") if d.is_dir())
        if base.is_dir()
        else []
    )
    if len(matches) == 1:
        return matches[0]
    if not matches:
        raise ClientError(
            f"no run {run_id!r} in {base} (see 'agentwatch runs')", exit_code=EXIT_NOT_FOUND
        )
    raise ClientError(
        f"run id {run_id!r} is ambiguous: {', '.join(matches[:5])}", exit_code=EXIT_NOT_FOUND
    )


def complete_run_ids(incomplete: str) -> list[str]:
    """Shell completion for ``--run``: run ids, newest first."""
    base = runs_dir()
    if not base.is_dir():
        return []
    return sorted(
        (d.name for d in base.glob(glob.escape(incomplete) + "*") if d.is_dir()), reverse=True
    )
