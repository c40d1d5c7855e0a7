"""What every request handler of the server can reach."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from agentwatch.config import ServerConfig
from agentwatch.hub import Hub
from agentwatch.server.limits import Limits
from agentwatch.supervisor import Supervisor

if TYPE_CHECKING:
    from agentwatch.server.socketio_session import SessionRegistry


@dataclass
class ServerContext:
    """The run being served: hub, supervisor, config and identity."""

    hub: Hub
    supervisor: Supervisor
    config: ServerConfig
    run_id: str
    version: str
    url: str = ""  # set once bound, e.g. http://127.0.0.1:8765
    shutting_down: bool = False
    next_client: list[int] = field(default_factory=lambda: [0])
    limits: Limits = field(default_factory=Limits)  # sizes and timers (tests shorten them)
    socketio: SessionRegistry | None = None  # Socket.IO sessions, created on first use

    def new_client_id(self, prefix: str) -> str:
        """A short unique id for a new subscriber."""
        self.next_client[0] += 1
        return f"{prefix}-{self.next_client[0]}"
