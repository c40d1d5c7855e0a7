"""Spawn, pump pipes, stop, restart and watch supervised processes (SPEC 5).

One `Supervisor` owns every process of a run. `serve_process` runs one
process's whole life (starts, restarts with backoff, final exit) and
returns the exit status `agentwatch run` should give. Control requests
(`stop`, `restart`, `send_signal`, `forward_signal`, `kill_all`) are
synchronous and act through each process's wait scope.
"""

from __future__ import annotations

import contextlib
import enum
import math
import os
import signal
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import trio

from agentwatch import spawn as sp
from agentwatch.capture import (
    DRAIN_AFTER_EXIT_S,
    PARTIAL_FLUSH_S,
    READ_BYTES,
    EchoWriter,
    PipeSet,
    Pump,
    drain,
)
from agentwatch.config import AgentSpec, StdinMode
from agentwatch.errors import (
    ControlConflict,
    ControlError,
    InvalidSignal,
    SpawnError,
    UnknownProcess,
)
from agentwatch.events import (
    PROCESS_ERROR,
    PROCESS_RESUMED,
    PROCESS_STARTED,
    PROCESS_STATS,
    PROCESS_STOPPED,
    PROCESS_WAITING,
    SYSTEM_ALERT,
    format_timestamp,
)
from agentwatch.exitcodes import process_status, status_of_returncode
from agentwatch.hub import JOURNAL_BACKLOG_BYTES, Hub
from agentwatch.policy import Backoff, GiveUp, decide
from agentwatch.proto.lines import LineSplitter
from agentwatch.terminal import Console

WAITING_SILENCE_S = 2.0  # SPEC 5: silent this long and reading stdin = waiting
WAITING_POLL_S = 0.25  # how often a silent agent's syscall is checked
MEMORY_POLL_S = 1.0  # how often the tree's RSS is checked under --max-memory
# Restart requests of exited processes wait here for `serve_restarts`: at most one
# per process (its state is `restarting` until served), so never more than the run's.
RESTART_QUEUE = math.inf


class ProcState(enum.Enum):
    """The states of SPEC 4 (`/api/processes`)."""

    PENDING = "pending"  # waiting on depends_on (set and left by the runner)
    STARTING = "starting"
    RUNNING = "running"
    WAITING = "waiting"
    STOPPING = "stopping"
    RESTARTING = "restarting"
    EXITED = "exited"
    FAILED = "failed"
    SKIPPED = "skipped"  # never started: a dependency failed (final)


ACTIVE = (ProcState.RUNNING, ProcState.WAITING)
SIGNAL_NAMES = {s.value: s.name for s in signal.Signals}


def parse_signal(text: str | int) -> int:
    """``TERM``, ``SIGTERM``, ``15`` -> 15; raise InvalidSignal otherwise."""
    if isinstance(text, int) or (isinstance(text, str) and text.isdigit()):
        num = int(text)
        if num in SIGNAL_NAMES:
            return num
    elif isinstance(text, str):
        name = text.upper()
        name = name if name.startswith("SIG") else "SIG" + name
        sig = getattr(signal.Signals, name, None)
        if isinstance(sig, signal.Signals):
            return int(sig)
    raise InvalidSignal(text)


@dataclass
class ManagedProcess:
    """One supervised process and everything `/api/processes` shows of it."""

    spec: AgentSpec
    state: ProcState = ProcState.STARTING
    pid: int | None = None
    started_at: str | None = None
    exit_code: int | None = None
    signal: str | None = None
    restarts: int = 0
    last_seq: int = 0
    lines: dict[str, int] = field(default_factory=lambda: {"stdout": 0, "stderr": 0})
    bytes: dict[str, int] = field(default_factory=lambda: {"stdout": 0, "stderr": 0})
    stats: dict[str, Any] | None = None
    status: int | None = None  # the exit status `run` gives, once final
    stop_reason: str | None = None  # user, signal, timeout, memory, restart
    last_output: float = 0.0
    started_clock: float = 0.0
    idle_alerted: bool = False
    memory_alerted: bool = False
    stop_tree: set[int] = field(default_factory=set)  # descendants seen when stopped
    running_event: trio.Event = field(default_factory=trio.Event)
    done_event: trio.Event = field(default_factory=trio.Event)
    _wait_scope: trio.CancelScope | None = None
    # restart bookkeeping (policy.decide), per process
    _backoff: Backoff = field(default_factory=Backoff)
    _pending_action: Any = None
    _pending_backoff: Backoff = field(default_factory=Backoff)

    @property
    def name(self) -> str:
        """The processId."""
        return self.spec.name

    def as_json(self) -> dict[str, Any]:
        """The wire form of SPEC 4."""
        return {
            "processId": self.name,
            "pid": self.pid,
            "state": self.state.value,
            "command": list(self.spec.command),
            "cwd": self.spec.cwd or os.getcwd(),
            "startedAt": self.started_at,
            "exitCode": self.exit_code,
            "signal": self.signal,
            "restarts": self.restarts,
            "lastSeq": self.last_seq,
            "lines": dict(self.lines),
            "stats": self.stats,
        }


class Supervisor:
    """Runs processes, publishes their events to the hub, obeys control requests."""

    def __init__(
        self,
        hub: Hub,
        *,
        env: dict[str, str] | None = None,
        echo: bool = False,
        watchdog: sp.Watchdog | None = None,
        console: Console | None = None,
        prefix: bool = False,
        log: Callable[[str], None] | None = None,
    ) -> None:
        self.hub = hub
        self.log = log
        self.env = dict(env or {})
        self.echo = echo
        self.watchdog = watchdog
        self.console = console  # relays our terminal to inherited-stdin agents
        self.processes: dict[str, ManagedProcess] = {}
        self.shutting_down = False
        self._pumps: dict[str, list[Pump]] = {}
        self._echo = EchoWriter(prefix=prefix)  # `serve_echo` runs it
        self._again_send, self._again_recv = trio.open_memory_channel[ManagedProcess](RESTART_QUEUE)
        self._serving_restarts = False
        self.ending = False  # the run's final shutdown began: no more starts
        self._again: set[str] = set()  # exited processes started again, until final
        self._again_done = trio.Event()
        self._again_done.set()
        self._requested = trio.Event()  # set (and replaced) on each such restart

    def add(self, spec: AgentSpec) -> ManagedProcess:
        """Register a process (state `starting`) before it is served."""
        if spec.name in self.processes:
            raise ControlConflict(f"process {spec.name!r} exists", name=spec.name)
        proc = ManagedProcess(spec)
        self.processes[spec.name] = proc
        self._echo.add_name(spec.name)
        return proc

    async def serve_echo(
        self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> None:
        """Echo the processes' output to our stdout and stderr, in order, until cancelled."""
        await self._echo.serve(task_status=task_status)

    async def wait_echoed(self) -> None:
        """Wait until every byte read so far was echoed."""
        await self._echo.wait_echoed()

    async def serve_restarts(
        self,
        nursery: trio.Nursery,
        on_exit: Callable[[ManagedProcess, int], None] | None = None,
        *,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Start exited processes again in ``nursery`` when `restart` asks, until
        cancelled; ``on_exit(proc, status)`` after each such life."""
        self._serving_restarts = True
        task_status.started()
        try:
            async for proc in self._again_recv:
                nursery.start_soon(self._serve_again, proc, on_exit)
        finally:
            self._serving_restarts = False

    async def _serve_again(
        self, proc: ManagedProcess, on_exit: Callable[[ManagedProcess, int], None] | None
    ) -> None:
        try:
            status = await self.serve_process(proc)
        finally:
            self._again.discard(proc.name)
            if not self._again:
                self._again_done.set()
        if on_exit is not None:
            on_exit(proc, status)

    async def wait_restarted(self) -> None:
        """Wait until every process started again by `restart` is final."""
        while self._again:
            await self._again_done.wait()

    async def unless_restarted(self, linger: Callable[[], Awaitable[None]]) -> bool:
        """Run ``linger``; return True, cutting it short, as soon as an exited process
        is started again (the run is live again), else False once it returns."""
        if self._again:
            return True
        cut = False
        async with trio.open_nursery() as nursery:

            async def watch() -> None:
                nonlocal cut
                await self._requested.wait()
                cut = True
                nursery.cancel_scope.cancel()

            nursery.start_soon(watch)
            await linger()
            nursery.cancel_scope.cancel()
        return cut or bool(self._again)

    def _start_again(self, proc: ManagedProcess) -> None:
        if self.ending or self.shutting_down:
            raise ControlConflict(
                f"process {proc.name!r} has exited and the run is ending", name=proc.name
            )
        if not self._serving_restarts:
            raise ControlConflict(f"process {proc.name!r} has exited", name=proc.name)
        proc.state = ProcState.RESTARTING
        proc.restarts += 1
        proc.stop_reason = None  # its status stays the last life's until this one ends
        proc._backoff, proc._pending_action = Backoff(), None
        proc.done_event, proc.running_event = trio.Event(), trio.Event()
        self._again.add(proc.name)
        self._again_done = trio.Event()
        self._again_send.send_nowait(proc)
        self._requested.set()
        self._requested = trio.Event()

    def get(self, name: str) -> ManagedProcess:
        """The process ``name``; `UnknownProcess` if there is none."""
        proc = self.processes.get(name)
        if proc is None:
            raise UnknownProcess(name)
        return proc

    # ---- control ----------------------------------------------------------

    def stop(self, name: str, *, reason: str = "user") -> None:
        """SIGTERM the process group, SIGKILL the tree after the grace period."""
        proc = self.get(name)
        if proc.state in (ProcState.EXITED, ProcState.FAILED, ProcState.SKIPPED):
            raise ControlConflict(f"process {name!r} is not running", name=name)
        if proc.state is ProcState.STOPPING:
            return
        proc.stop_reason = reason
        if proc.state in (ProcState.STARTING, ProcState.RESTARTING) or proc.pid is None:
            proc.state = ProcState.STOPPING
            if proc._wait_scope is not None:
                proc._wait_scope.cancel()
            return
        proc.state = ProcState.STOPPING
        proc.stop_tree.update(sp.tree_pids(proc.pid))  # also those outside its group
        sp.signal_group(proc.pid, signal.SIGTERM)
        self._kill_after(proc, proc.spec.grace)

    def restart(self, name: str) -> None:
        """Stop the process and start it again at once (no backoff); start an exited
        or failed one again (`serve_restarts` runs it)."""
        proc = self.get(name)
        if proc.state is ProcState.STOPPING:
            raise ControlConflict(f"process {name!r} is stopping", name=name)
        if proc.state in (ProcState.EXITED, ProcState.FAILED):
            self._start_again(proc)  # SPEC 4: while the run is live
            return
        if proc.state is ProcState.SKIPPED:  # final: what it depends on did not hold
            raise ControlConflict(
                f"process {name!r} was skipped (its depends_on failed); restart that instead",
                name=name,
            )
        if proc.state is ProcState.RESTARTING:  # about to start again: now, not after backoff
            if proc._wait_scope is not None:
                proc._wait_scope.cancel()
            return
        self.stop(name, reason="restart")

    def send_signal(self, name: str, sig: int) -> None:
        """Send ``sig`` to the process group."""
        proc = self.get(name)
        if proc.pid is None or proc.state not in (*ACTIVE, ProcState.STOPPING):
            raise ControlConflict(f"process {name!r} is not running", name=name)
        sp.signal_group(proc.pid, sig)

    def forward_signal(self, sig: int, *, send: bool = True) -> None:
        """A signal reached agentwatch: pass it on and stop every process.

        ``send=False`` when it reached the processes already (a Ctrl-C typed
        into their pseudo-terminal): only the stopping and its grace start.
        """
        self.shutting_down = True
        for proc in self.processes.values():
            if proc.state in (ProcState.EXITED, ProcState.FAILED):
                continue
            proc.stop_reason = proc.stop_reason or "signal"
            if proc.pid is not None and proc.state in (*ACTIVE, ProcState.STOPPING):
                proc.stop_tree.update(sp.tree_pids(proc.pid))
                if send:
                    sp.signal_group(proc.pid, sig)
                if proc.state is not ProcState.STOPPING:
                    proc.state = ProcState.STOPPING
                    self._kill_after(proc, proc.spec.grace)
            else:
                proc.state = ProcState.STOPPING
                if proc._wait_scope is not None:
                    proc._wait_scope.cancel()

    def kill_all(self) -> None:
        """SIGKILL every process tree now (second Ctrl-C)."""
        self.shutting_down = True
        for proc in self.processes.values():
            proc.stop_reason = proc.stop_reason or "signal"
            if proc.state not in (ProcState.EXITED, ProcState.FAILED):
                proc.state = ProcState.STOPPING
                self._kill_after(proc, 0)

    def _kill_after(self, proc: ManagedProcess, delay: float) -> None:
        scope = proc._wait_scope
        if scope is not None:
            scope.deadline = min(scope.deadline, trio.current_time() + delay)

    # ---- life cycle -------------------------------------------------------

    async def serve_process(
        self, proc: ManagedProcess, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED
    ) -> int:
        """Run ``proc`` through starts and restarts; return its exit status."""
        task_status.started()
        backoff = Backoff()
        try:
            async with trio.open_nursery() as nursery:
                while True:
                    if proc.state is ProcState.STOPPING or self.shutting_down:
                        proc.state = ProcState.EXITED
                        proc.status = proc.status if proc.status is not None else 0
                        break
                    outcome = await self._run_once(proc, nursery)
                    if outcome is None:  # spawn failed: final
                        break
                    rc, uptime = outcome
                    if not await self._after_exit(proc, rc, uptime, backoff):
                        break
                    backoff = proc._backoff
                await self._finish(proc, nursery)
        finally:
            proc.done_event.set()
            proc.running_event.set()
        assert proc.status is not None
        return proc.status

    async def _after_exit(
        self, proc: ManagedProcess, rc: int, uptime: float, backoff: Backoff
    ) -> bool:
        """Decide on a restart (and wait for it); False when final."""
        if proc.stop_reason == "restart":
            proc.stop_reason = None
            proc.state = ProcState.RESTARTING  # not STOPPING: serve_process would end
            proc.restarts += 1
            proc._backoff = backoff
            return True
        action = proc._pending_action
        if isinstance(action, GiveUp):
            if action.limit_reached:
                msg = (
                    f"{proc.name} exited {proc.spec.max_restarts + 1} times in a row; "
                    "not restarting"
                )
                self.hub.publish(PROCESS_ERROR, proc.name, {"error": msg, "kind": "restart-limit"})
                self.hub.publish(
                    SYSTEM_ALERT,
                    proc.name,
                    {"level": "error", "message": msg, "code": "restart-limit"},
                )
                if self.log is not None:
                    self.log(msg)
                proc.state = ProcState.FAILED
            return False
        proc.state = ProcState.RESTARTING
        proc.restarts += 1
        proc._backoff = proc._pending_backoff
        with trio.CancelScope() as scope:
            proc._wait_scope = scope
            await trio.sleep(action.delay)
        proc._wait_scope = None
        return not (proc.state is ProcState.STOPPING or self.shutting_down)

    async def _finish(self, proc: ManagedProcess, nursery: trio.Nursery) -> None:
        """Kill what is left of the group, let pumps drain, end the nursery."""
        if proc.pid is not None:
            sp.kill_tree(proc.pid, proc.pid)
            if self.watchdog is not None:
                self.watchdog.remove(proc.pid)
        await drain(self._pumps.pop(proc.name, []), DRAIN_AFTER_EXIT_S)
        nursery.cancel_scope.cancel()

    def _child_env(self, proc: ManagedProcess) -> dict[str, str]:
        env = dict(os.environ)
        env.update(proc.spec.env)
        env.update(self.env)
        env["AGENTWATCH_PROCESS_ID"] = proc.name
        return env

    async def _run_once(
        self, proc: ManagedProcess, nursery: trio.Nursery
    ) -> tuple[int, float] | None:
        spec = proc.spec
        proc.state = ProcState.STARTING
        # psutil's first import blocks the loop for tens of ms: not while the pipes fill,
        # or the first reads would find both streams' first writes (SPEC 5, output order)
        import agentwatch.procstats  # noqa: F401

        try:
            child = sp.spawn(
                spec.command,
                cwd=spec.cwd,
                env=self._child_env(proc),
                stdin=spec.stdin,
                tty=spec.tty,
                console=self.console,
            )
        except SpawnError as exc:
            proc.state = ProcState.FAILED
            proc.status = process_status(None, spawn_failed=exc.exit_code)
            if self.log is not None:
                self.log(f"{proc.name}: {exc}")
            proc.last_seq = self.hub.publish(
                PROCESS_ERROR,
                proc.name,
                {"error": str(exc), "kind": "spawn-failed", "exitStatus": exc.exit_code},
            )
            return None
        if self.watchdog is not None:
            self.watchdog.add(child.pid)
        start_wall = time.time()
        proc.pid = child.pid
        proc.started_at = format_timestamp(start_wall)
        proc.started_clock = proc.last_output = trio.current_time()
        proc.exit_code = proc.signal = None
        proc.idle_alerted = proc.memory_alerted = False
        proc.last_seq = self.hub.publish(
            PROCESS_STARTED,
            proc.name,
            {
                "pid": child.pid,
                "command": list(spec.command),
                "cwd": os.path.abspath(spec.cwd or "."),  # noqa: ASYNC240 - no I/O
                "restarts": proc.restarts,
            },
        )
        if proc.state is ProcState.STARTING:
            proc.state = ProcState.RUNNING
        proc.running_event.set()
        pumps = [Pump(child.stdout_fd), Pump(child.stderr_fd)]
        self._pumps[proc.name] = pumps
        nursery.start_soon(self._capture, proc, pumps)
        if proc.stop_reason is not None:  # stop requested while starting
            sp.signal_group(child.pid, signal.SIGTERM)
        rc = await self._wait_exit(proc, child)
        duration = time.time() - start_wall
        if proc.stop_tree:  # stopped: what is left of its tree goes with it
            sp.kill_tree(child.pid, child.pid, proc.stop_tree)
            proc.stop_tree.clear()
        try:
            await drain(pumps, DRAIN_AFTER_EXIT_S)
        except trio.Cancelled:  # cancelled from outside: leftovers in its group go too
            sp.signal_group(child.pid, signal.SIGKILL)
            raise
        self._record_exit(proc, rc, duration)
        return rc, trio.current_time() - proc.started_clock

    async def _wait_exit(self, proc: ManagedProcess, child: sp.Spawned) -> int:
        async with trio.open_nursery() as watch:
            watch.start_soon(self._monitor, proc, child.pid)
            try:
                while True:
                    with trio.CancelScope() as scope:
                        proc._wait_scope = scope
                        if proc.state is ProcState.STOPPING and proc.stop_reason is not None:
                            self._kill_after(proc, proc.spec.grace)
                        await trio.lowlevel.wait_readable(child.pidfd)
                        break
                    proc._wait_scope = None
                    sp.kill_tree(child.pid, child.pid)  # grace period over
                    # wait for the exit without a deadline now
                    with trio.CancelScope() as scope:
                        proc._wait_scope = scope
                        await trio.lowlevel.wait_readable(child.pidfd)
                        break
                rc = child.popen.wait()
            finally:
                proc._wait_scope = None
                if child.popen.returncode is None:  # cancelled from outside (an embedder)
                    with trio.CancelScope(shield=True):
                        await self._terminate(proc, child)
                with contextlib.suppress(OSError):
                    os.close(child.pidfd)
                watch.cancel_scope.cancel()
        return rc

    async def _terminate(self, proc: ManagedProcess, child: sp.Spawned) -> None:
        """SIGTERM the group, wait up to the grace, SIGKILL the tree, reap (trio's
        `run_process` on cancellation). Call it shielded."""
        proc.state = ProcState.STOPPING
        proc.stop_reason = proc.stop_reason or "signal"
        tree = {*sp.tree_pids(child.pid), *proc.stop_tree}
        sp.signal_group(child.pid, signal.SIGTERM)
        with trio.move_on_after(proc.spec.grace):
            await trio.lowlevel.wait_readable(child.pidfd)
        sp.kill_tree(child.pid, child.pid, tree)
        await trio.lowlevel.wait_readable(child.pidfd)  # SIGKILL cannot be caught
        child.popen.wait()
        proc.state = ProcState.EXITED
        if self.watchdog is not None:
            self.watchdog.remove(child.pid)

    def _record_exit(self, proc: ManagedProcess, rc: int, duration: float) -> None:
        spec = proc.spec
        if rc < 0:
            proc.exit_code, proc.signal = None, SIGNAL_NAMES.get(-rc, f"SIG{-rc}")
        else:
            proc.exit_code, proc.signal = rc, None
        proc.status = status_of_returncode(rc, timed_out=proc.stop_reason == "timeout")
        uptime = trio.current_time() - proc.started_clock
        stopped = proc.stop_reason in ("user", "signal", "timeout") or self.shutting_down
        action, new_backoff = decide(
            spec.restart,
            failed=rc != 0,
            stopped_by_user=stopped,
            state=proc._backoff,
            max_restarts=spec.max_restarts,
            base_delay=spec.backoff,
            uptime=uptime,
        )
        will_restart = proc.stop_reason == "restart" or not isinstance(action, GiveUp)
        proc._pending_action, proc._pending_backoff = action, new_backoff
        if not will_restart:
            proc.state = ProcState.EXITED if (rc == 0 or stopped) else ProcState.FAILED
        proc.last_seq = self.hub.publish(
            PROCESS_STOPPED,
            proc.name,
            {
                "pid": proc.pid,
                "exitCode": proc.exit_code,
                "signal": proc.signal,
                "durationMs": round(duration * 1000),
                "willRestart": will_restart,
            },
        )

    # ---- pumps and monitors ---------------------------------------------------

    def _publish_output(self, proc: ManagedProcess, stream: str, segs: list[Any]) -> None:
        if not segs:
            return
        before = self.hub.published_seq
        proc.last_seq = self.hub.publish_output(proc.name, stream, segs)
        proc.lines[stream] += proc.last_seq - before
        proc.last_output = trio.current_time()
        proc.idle_alerted = False
        if proc.state is ProcState.WAITING:
            proc.state = ProcState.RUNNING
            proc.last_seq = self.hub.publish(PROCESS_RESUMED, proc.name, {})

    async def _capture(self, proc: ManagedProcess, pumps: list[Pump]) -> None:
        """Read stdout and stderr in one loop: journal first, then echo (SPEC 5)."""
        limit = min(READ_BYTES, proc.spec.max_line_bytes)
        streams = {pumps[0].fd: "stdout", pumps[1].fd: "stderr"}
        targets = {pumps[0].fd: 1, pumps[1].fd: 2}
        by_fd = {p.fd: p for p in pumps}
        splitters = {fd: LineSplitter(proc.spec.max_line_bytes) for fd in streams}
        pending_since = dict.fromkeys(streams, math.inf)
        pipes = PipeSet(list(streams))
        echo = self._echo
        try:
            busy = False  # read something last round: read again before waiting
            while pipes.open:
                held = self.echo and echo.full
                if busy and not held:
                    await trio.lowlevel.checkpoint()
                else:
                    with trio.move_on_at(min(pending_since.values()) + PARTIAL_FLUSH_S):
                        if held:
                            await echo.wait_room()  # a slow echo slows the agent, not the journal
                        for p in pumps:
                            p.idle = True
                        try:
                            await pipes.wait()
                        finally:
                            for p in pumps:
                                p.idle = False
                busy = False
                now = trio.current_time()
                for fd in [] if self.echo and echo.full else list(pipes.open):
                    data = pipes.read(fd, limit)  # at most one read per pipe per round
                    if data is None:
                        continue
                    busy = True
                    stream, splitter = streams[fd], splitters[fd]
                    if not data:
                        self._publish_output(proc, stream, splitter.finish())
                        pending_since[fd] = math.inf
                        by_fd[fd].done.set()
                        continue
                    proc.bytes[stream] += len(data)
                    self._publish_output(proc, stream, splitter.feed(data))
                    if self.echo:
                        if echo.running:
                            echo.put(targets[fd], data, proc.name)
                        else:
                            await echo.write_now(targets[fd], data, proc.name)
                    if not splitter.pending:
                        pending_since[fd] = math.inf
                    elif pending_since[fd] == math.inf:
                        pending_since[fd] = now
                for fd, since in pending_since.items():
                    if since + PARTIAL_FLUSH_S <= trio.current_time():
                        self._publish_output(proc, streams[fd], splitters[fd].flush_partial())
                        pending_since[fd] = now if splitters[fd].pending else math.inf
                if self.hub.backlog_bytes > JOURNAL_BACKLOG_BYTES:
                    await self.hub.wait_journal()
        finally:
            for p in pumps:
                p.done.set()
            pipes.close()

    async def _monitor(self, proc: ManagedProcess, pid: int) -> None:
        from agentwatch.procstats import TreeSampler, blocked_on_stdin

        spec = proc.spec
        sampler = TreeSampler(pid)
        start = trio.current_time()
        next_stats = start + spec.stats_interval if spec.stats_interval else math.inf
        next_mem = start + MEMORY_POLL_S if spec.max_memory else math.inf
        watch_stdin = spec.stdin is StdinMode.INHERIT
        timed_out = False
        while True:
            now = trio.current_time()
            silent_since = proc.last_output
            wakes = [next_stats, next_mem]
            if spec.timeout and not timed_out:
                wakes.append(start + spec.timeout)
            if spec.idle_alert and not proc.idle_alerted:
                wakes.append(silent_since + spec.idle_alert)
            if watch_stdin and proc.state is ProcState.RUNNING:
                wakes.append(max(silent_since + WAITING_SILENCE_S, now + WAITING_POLL_S))
            await trio.sleep_until(min(wakes))
            now = trio.current_time()
            if spec.timeout and not timed_out and now - start >= spec.timeout:
                timed_out = True
                proc.last_seq = self.hub.publish(
                    PROCESS_ERROR,
                    proc.name,
                    {"error": f"timed out after {spec.timeout:g} s", "kind": "timeout"},
                )
                with contextlib.suppress(ControlError):
                    self.stop(proc.name, reason="timeout")
            if (
                spec.idle_alert
                and not proc.idle_alerted
                and now - proc.last_output >= spec.idle_alert
                and proc.state in ACTIVE
            ):
                proc.idle_alerted = True
                self.hub.publish(
                    SYSTEM_ALERT,
                    proc.name,
                    {
                        "level": "warning",
                        "code": "idle",
                        "message": f"{proc.name} has printed nothing for {spec.idle_alert:g} s",
                    },
                )
            if (
                watch_stdin
                and proc.state is ProcState.RUNNING
                and now - proc.last_output >= WAITING_SILENCE_S
                and blocked_on_stdin(pid)
            ):
                proc.state = ProcState.WAITING
                proc.last_seq = self.hub.publish(PROCESS_WAITING, proc.name, {})
            if now >= next_stats or now >= next_mem:
                stats = await trio.to_thread.run_sync(sampler.sample)
                if stats is not None:
                    proc.stats = stats.as_json()
                    if now >= next_stats:
                        proc.last_seq = self.hub.publish(PROCESS_STATS, proc.name, stats.as_json())
                        next_stats = now + spec.stats_interval
                    self._check_memory(proc, stats.rss_bytes)
                if now >= next_mem:
                    next_mem = now + MEMORY_POLL_S

    def _check_memory(self, proc: ManagedProcess, rss: int) -> None:
        limit = proc.spec.max_memory
        if not limit or rss <= limit or proc.memory_alerted:
            return
        proc.memory_alerted = True
        msg = f"{proc.name} uses {rss} bytes of memory, over the limit of {limit}"
        self.hub.publish(
            SYSTEM_ALERT,
            proc.name,
            {
                "level": "error" if proc.spec.kill_on_memory else "warning",
                "message": msg,
                "code": "memory-limit",
            },
        )
        if proc.spec.kill_on_memory:
            proc.last_seq = self.hub.publish(
                PROCESS_ERROR, proc.name, {"error": msg, "kind": "memory-limit"}
            )
            with contextlib.suppress(ControlError):
                self.stop(proc.name, reason="memory")
