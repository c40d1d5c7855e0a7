"""Where runs live on disk, run ids, and discovery files (SPEC 2, 3)."""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any


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
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    with contextlib.suppress(OSError):
        with open(f"/proc/{pid}/stat") as f:
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
        return {"runId": self.run_id, "url": self.url, "token": self.token, "pid": self.pid,
                "startedAt": self.started_at, "processes": self.processes}


def write_discovery(path: Path, info: Discovery) -> None:
    """Write ``server.json`` atomically with mode 0600."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(info.as_json(), f)
    os.replace(tmp, path)


def read_discovery(path: Path) -> Discovery | None:
    """Parse a ``server.json``; None if unreadable."""
    try:
        raw = json.loads(path.read_text())
        return Discovery(raw["runId"], raw["url"], raw.get("token"), int(raw["pid"]),
                         raw.get("startedAt", ""), list(raw.get("processes", [])), path)
    except (OSError, ValueError, KeyError, TypeError):
        return None


def live_runs(home: Path | None = None) -> list[Discovery]:
    """Live servers, newest first; stale discovery files are removed."""
    found: list[Discovery] = []
    base = runs_dir(home)
    if not base.is_dir():
        return found
    for f in base.glob("*/server.json"):
        info = read_discovery(f)
        if info is None:
            continue
        if not pid_alive(info.pid):
            with contextlib.suppress(OSError):
                f.unlink()
            continue
        found.append(info)
    found.sort(key=lambda d: d.run_id, reverse=True)
    return found
