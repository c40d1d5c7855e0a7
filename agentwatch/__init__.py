"""agentwatch: supervise agents, journal every line they print, serve it live.

The library under the CLI (SPEC 7). A trio program can run agents and
serve their events itself, and follow a run with the async client::

    import trio
    import agentwatch

    async def main() -> int:
        spec = agentwatch.AgentSpec("hello", ("echo", "hi"))
        opts = agentwatch.SessionOptions(server=agentwatch.ServerConfig(token="t"))
        async with trio.open_nursery() as nursery:
            session = await nursery.start(agentwatch.run_session, [spec], opts)
            async with agentwatch.follow_session(session) as events:
                async for event in events:  # from seq 1; ends with the run
                    print(event["seq"], event["type"])
        return agentwatch.exit_status(session)

    trio.run(main)

Another program follows a run with ``follow(find_server(...))`` over the
network (native WebSocket or SSE, reconnecting and resuming by itself).

Names are imported on first use, so ``import agentwatch`` stays cheap (no
trio, psutil or server code until needed). See ``examples/embed.py``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from agentwatch.lazy import lazy_getattr

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS: dict[str, str] = {
    # options and errors (pure, no I/O)
    "AgentSpec": "agentwatch.config",
    "DependencyCondition": "agentwatch.config",
    "RestartPolicy": "agentwatch.config",
    "ServerConfig": "agentwatch.config",
    "StdinMode": "agentwatch.config",
    "AgentwatchError": "agentwatch.errors",
    "ClientError": "agentwatch.errors",
    "ConfigError": "agentwatch.errors",
    "ConnectionLost": "agentwatch.errors",
    "ControlConflict": "agentwatch.errors",
    "ControlError": "agentwatch.errors",
    "InvalidSignal": "agentwatch.errors",
    "UnknownProcess": "agentwatch.errors",
    "JournalError": "agentwatch.errors",
    "ProtocolError": "agentwatch.errors",
    "SpawnError": "agentwatch.errors",
    "AgentsFile": "agentwatch.agentfile",
    "build_agent_spec": "agentwatch.agentfile",
    "load_agents_file": "agentwatch.agentfile",
    # the engine: journal, hub, supervisor, server, a whole run
    "Journal": "agentwatch.journal",
    "Filter": "agentwatch.hub",
    "Hub": "agentwatch.hub",
    "ManagedProcess": "agentwatch.supervisor",
    "ProcState": "agentwatch.supervisor",
    "Supervisor": "agentwatch.supervisor",
    "ServerContext": "agentwatch.server.context",
    "serve": "agentwatch.server",
    "Echo": "agentwatch.runner",
    "Session": "agentwatch.runner",
    "SessionOptions": "agentwatch.runner",
    "exit_status": "agentwatch.runner",
    "run_session": "agentwatch.runner",
    # the client
    "Server": "agentwatch.client",
    "Subscription": "agentwatch.client",
    "api": "agentwatch.client",
    "find_server": "agentwatch.client",
    "follow": "agentwatch.client",
    "follow_batches": "agentwatch.client",
    "follow_session": "agentwatch.client",
}

__all__ = [
    "AgentSpec",
    "AgentsFile",
    "AgentwatchError",
    "ClientError",
    "ConfigError",
    "ConnectionLost",
    "ControlConflict",
    "ControlError",
    "DependencyCondition",
    "Echo",
    "Filter",
    "Hub",
    "InvalidSignal",
    "Journal",
    "JournalError",
    "ManagedProcess",
    "ProcState",
    "ProtocolError",
    "RestartPolicy",
    "Server",
    "ServerConfig",
    "ServerContext",
    "Session",
    "SessionOptions",
    "SpawnError",
    "StdinMode",
    "Subscription",
    "Supervisor",
    "UnknownProcess",
    "__version__",
    "api",
    "build_agent_spec",
    "exit_status",
    "find_server",
    "follow",
    "follow_batches",
    "follow_session",
    "load_agents_file",
    "run_session",
    "serve",
]


__getattr__ = lazy_getattr(globals(), _EXPORTS)


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


if TYPE_CHECKING:  # for type checkers and IDEs; at run time __getattr__ imports lazily
    from agentwatch.agentfile import AgentsFile, build_agent_spec, load_agents_file
    from agentwatch.client import (
        Server,
        Subscription,
        api,
        find_server,
        follow,
        follow_batches,
        follow_session,
    )
    from agentwatch.config import (
        AgentSpec,
        DependencyCondition,
        RestartPolicy,
        ServerConfig,
        StdinMode,
    )
    from agentwatch.errors import (
        AgentwatchError,
        ClientError,
        ConfigError,
        ConnectionLost,
        ControlConflict,
        ControlError,
        InvalidSignal,
        JournalError,
        ProtocolError,
        SpawnError,
        UnknownProcess,
    )
    from agentwatch.hub import Filter, Hub
    from agentwatch.journal import Journal
    from agentwatch.runner import Echo, Session, SessionOptions, exit_status, run_session
    from agentwatch.server import serve
    from agentwatch.server.context import ServerContext
    from agentwatch.supervisor import ManagedProcess, ProcState, Supervisor
