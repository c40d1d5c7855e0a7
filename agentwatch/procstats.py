"""Process-tree statistics and needs-input detection (psutil, /proc)."""

from __future__ import annotations

import contextlib
import os
import platform
from dataclasses import dataclass
from typing import Any

import psutil

# syscall numbers of read(2) by machine: /proc/PID/syscall shows the number first
_READ_SYSCALLS = {"x86_64": {0, 17, 19}, "aarch64": {63, 65, 67}, "arm64": {63, 65, 67}}


@dataclass(frozen=True, slots=True)
class TreeStats:
    """Figures summed over a process tree (SPEC 1, `process-stats`)."""

    cpu_percent: float
    rss_bytes: int
    num_threads: int
    num_children: int
    num_fds: int

    def as_json(self) -> dict[str, Any]:
        """The wire fields of a `process-stats` event."""
        return {
            "cpuPercent": round(self.cpu_percent, 1),
            "rssBytes": self.rss_bytes,
            "numThreads": self.num_threads,
            "numChildren": self.num_children,
            "numFds": self.num_fds,
        }


class TreeSampler:
    """Samples a process tree; keeps psutil objects so CPU% has a baseline."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self._procs: dict[int, psutil.Process] = {}

    def _proc(self, pid: int) -> psutil.Process:
        p = self._procs.get(pid)
        if p is None:
            p = psutil.Process(pid)
            p.cpu_percent(None)
            self._procs[pid] = p
        return p

    def sample(self) -> TreeStats | None:
        """Sum the tree's figures; None once the root is gone."""
        try:
            root = self._proc(self.pid)
            kids = root.children(recursive=True)
        except psutil.Error:
            return None
        cpu = 0.0
        rss = threads = fds = 0
        alive: set[int] = set()
        for p in [root, *kids]:
            try:
                proc = self._proc(p.pid)
                with proc.oneshot():
                    cpu += proc.cpu_percent(None)
                    rss += proc.memory_info().rss
                    threads += proc.num_threads()
                    with contextlib.suppress(psutil.Error):
                        fds += proc.num_fds()
                alive.add(p.pid)
            except psutil.Error:
                continue
        for gone in set(self._procs) - alive:
            del self._procs[gone]
        return TreeStats(cpu, rss, threads, len(kids), fds)


def blocked_on_stdin(pid: int) -> bool:
    """Whether ``pid`` sits in a read(2) of its standard input (Linux)."""
    reads = _READ_SYSCALLS.get(platform.machine())
    if reads is None:
        return False
    try:
        with open(f"/proc/{pid}/syscall") as f:
            fields = f.read().split()
    except OSError:
        return False
    if len(fields) < 2 or not fields[0].isdigit() or int(fields[0]) not in reads:
        return False
    try:
        fd = int(fields[1], 16)
    except ValueError:
        return False
    if fd == 0:
        return True
    try:
        return os.readlink(f"/proc/{pid}/fd/{fd}") == os.readlink(f"/proc/{pid}/fd/0")
    except OSError:
        return False
