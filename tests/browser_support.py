"""Helpers for the browser tests of the dashboard (tests/test_dashboard.py).

- `browser_unavailable()`: why Playwright + Debian's chromium cannot run here
  (None when they can). `.ci/run` installs both (``apt-get install chromium``,
  ``pip install playwright``; Playwright's own browser download is not used).
- `AgentwatchRun`: a real ``agentwatch run --port 0 -- CMD`` subprocess, with
  the ``agentwatch: serving URL`` line parsed from its stderr.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SERVING_RE = re.compile(r"agentwatch: serving (http://\S+)")


def browser_unavailable() -> str | None:
    """Why the browser tests cannot run here, or None."""
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "playwright is not installed (pip install playwright)"
    if not (os.path.exists(CHROMIUM) or shutil.which("chromium")):
        return f"{CHROMIUM} is not installed (apt-get install chromium)"
    return None


def chromium_path() -> str:
    """Debian's chromium (Playwright's own download does not work here)."""
    return CHROMIUM if os.path.exists(CHROMIUM) else shutil.which("chromium") or CHROMIUM


class AgentwatchRun:
    """``agentwatch run`` in a subprocess; `url` is the dashboard link it printed."""

    def __init__(
        self,
        home: Path,
        command: list[str],
        *,
        name: str = "ticker",
        extra_args: list[str] | None = None,
        stdin_pipe: bool = False,
        up_file: Path | None = None,
    ) -> None:
        env = dict(os.environ)
        env["AGENTWATCH_HOME"] = str(home)
        for var in ("AGENTWATCH_URL", "AGENTWATCH_TOKEN", "AGENTWATCH_PORT"):
            env.pop(var, None)
        argv = [
            sys.executable,
            "-m",
            "agentwatch",
            "run",
            "--port",
            "0",
            "--quiet",
            "--name",
            name,
            *(extra_args or []),
            "--",
            *command,
        ]
        if up_file is not None:  # `agentwatch up -f FILE` instead of `run`
            argv = [sys.executable, "-m", "agentwatch", "up", "-f", str(up_file)]
            argv += ["--port", "0", "--quiet", *(extra_args or [])]
        self.name = name
        self.home = home
        self.stderr_lines: list[str] = []
        self._serving = threading.Event()
        self.url = ""
        # `run` hands its stdin to the agent: a pipe lets a test answer a prompt.
        stdin = subprocess.PIPE if stdin_pipe else subprocess.DEVNULL
        self.proc = subprocess.Popen(
            argv,
            stdin=stdin,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            env=env,
            text=True,
            start_new_session=True,
        )
        self._reader = threading.Thread(target=self._read_stderr, daemon=True)
        self._reader.start()

    def _read_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr_lines.append(line.rstrip("\n"))
            m = SERVING_RE.search(line)
            if m and not self.url:
                self.url = m.group(1)
                self._serving.set()
        self._serving.set()

    def wait_serving(self, timeout: float = 20.0) -> str:
        """The ``http://127.0.0.1:PORT/?token=T`` link, once printed.

        With ``CI`` set, agentwatch prints the link without its token (CI logs
        are often public): the token then comes from the run's discovery file.
        """
        if not self._serving.wait(timeout) or not self.url:
            raise AssertionError(
                "agentwatch did not print its URL; stderr:\n" + "\n".join(self.stderr_lines)
            )
        if "token=" not in self.url:
            for found in sorted((self.home / "runs").glob("*/server.json")):
                info = json.loads(found.read_text())
                if info.get("url") == self.url.split("/?")[0].rstrip("/") and info.get("token"):
                    self.url = f"{info['url']}/?token={info['token']}"
        return self.url

    @property
    def origin(self) -> str:
        parts = urlsplit(self.wait_serving())
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def token(self) -> str:
        return parse_qs(urlsplit(self.wait_serving()).query)["token"][0]

    @property
    def port(self) -> int:
        port = urlsplit(self.wait_serving()).port
        assert port is not None
        return port

    def api(self, path: str) -> Any:
        """GET a JSON route with the bearer token."""
        req = urllib.request.Request(
            self.origin + path, headers={"Authorization": f"Bearer {self.token}"}
        )
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def process(self) -> dict[str, Any]:
        """This run's one process, as ``GET /api/processes/{name}`` reports it."""
        result: dict[str, Any] = self.api(f"/api/processes/{self.name}")
        return result

    def wait_until(self, predicate: Any, timeout: float = 30.0, what: str = "condition") -> Any:
        """Poll the process's REST view until ``predicate(process)`` holds."""
        deadline = time.monotonic() + timeout
        while True:
            info = self.process()
            if predicate(info):
                return info
            if time.monotonic() > deadline:
                raise AssertionError(f"timed out waiting for {what}; last: {info}")
            time.sleep(0.05)

    def send_input(self, text: str) -> None:
        """Write to the agent's stdin (with ``stdin_pipe=True``)."""
        assert self.proc.stdin is not None
        self.proc.stdin.write(text)
        self.proc.stdin.flush()

    def wait_exit(self, timeout: float) -> int:
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(5)
        self._reader.join(5)
        if self.proc.stdin is not None:
            with contextlib.suppress(OSError):
                self.proc.stdin.close()
        if self.proc.stderr is not None:
            self.proc.stderr.close()
