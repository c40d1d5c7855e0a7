"""Where a client talks to: live runs on disk, run ids, the server to reach (SPEC 3).

Reading the discovery files a run writes (`agentwatch.paths` has the writing
side and the layout): a ``server.json`` whose pid is gone is stale, and
readers ignore and remove it.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import urllib.parse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from agentwatch.errors import ClientError
from agentwatch.paths import DISCOVERY_FILE, Discovery, runs_dir

EXIT_NOT_FOUND = 4  # a client command named a run or process that does not exist


@dataclass(frozen=True)
class Server:
    """Where a run serves, and the token to present.

    ``discovery`` is the run's ``server.json`` when the run is local: once it
    is gone (or its pid is), the run is over and `follow` finishes from the
    journal beside it instead of waiting for a server that will not return.
    """

    url: str
    token: str | None = None
    run_id: str | None = None
    discovery: Path | None = None

    @classmethod
    def of_run(cls, info: Discovery, token: str | None = None) -> Server:
        """The server of a live run, with ``token`` or else the run's own."""
        return cls(info.url, token or info.token, info.run_id, info.path)

    def headers(self) -> dict[str, str]:
        """The Authorization header, when there is a token."""
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}


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


def split_url(url: str) -> urllib.parse.SplitResult | None:
    """A server URL (``http://`` when it names no scheme) split; None if it is not one."""
    parsed = urllib.parse.urlsplit(url if "://" in url else "http://" + url)
    return parsed if parsed.scheme in ("http", "https") and parsed.hostname else None


def _from_url(url: str, token: str | None, home: Path | None) -> Server:
    parsed = split_url(url)
    if parsed is None:
        raise ClientError(f"invalid server URL {url!r}: use http://HOST:PORT")
    if not token:
        token = urllib.parse.parse_qs(parsed.query).get("token", [None])[0]
    base = f"{parsed.scheme}://{parsed.netloc}"
    for info in live_runs(home):  # a local run: its id, and its token if none was given
        if info.url == base:
            return Server.of_run(info, token)
    return Server(base, token)


def _run_server(run_id: str, token: str | None, home: Path | None, why: str = "") -> Server:
    if not why:  # --run takes a prefix; $AGENTWATCH_RUN_ID is exact, and may have no folder
        run_id = resolve_run_id(run_id, home)
    info = live_discovery(runs_dir(home) / run_id / DISCOVERY_FILE)
    if info is None:
        raise ClientError(
            f"run {run_id}{why} is not serving (it has ended, or runs with --no-server); "
            f"its journal: 'agentwatch logs PROCESS --run {run_id}'"
        )
    return Server.of_run(info, token)


def find_server(
    url: str | None = None,
    token: str | None = None,
    run_id: str | None = None,
    home: Path | None = None,
    *,
    environ: Mapping[str, str] | None = None,
) -> Server:
    """Where to connect, from flags first, then the environment, then discovery.

    ``--url``; else ``--run ID`` (an id or a unique prefix); else
    ``AGENTWATCH_URL``; else ``AGENTWATCH_RUN_ID`` (set inside an agent: its
    own run, never another one); else the newest live run. The token is
    ``--token``, else ``AGENTWATCH_TOKEN`` with ``AGENTWATCH_URL``, else the
    URL's ``?token=``, else the discovery file's.
    """
    env = os.environ if environ is None else environ
    if url:
        return _from_url(url, token, home)
    if run_id:
        return _run_server(run_id, token, home)
    if env.get("AGENTWATCH_URL"):
        return _from_url(env["AGENTWATCH_URL"], token or env.get("AGENTWATCH_TOKEN"), home)
    if env.get("AGENTWATCH_RUN_ID"):
        return _run_server(env["AGENTWATCH_RUN_ID"], token, home, " (AGENTWATCH_RUN_ID)")
    runs = live_runs(home)
    if not runs:
        raise ClientError(
            "no running agentwatch server found in "
            f"{runs_dir(home)} (start one with 'agentwatch run' or 'agentwatch up', "
            "or pass --url)"
        )
    return Server.of_run(runs[0], token)
