"""What every request handler of the server can reach."""

from __future__ import annotations

import itertools
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
    """The run being served: hub, supervisor, config, identity and limits.

    Only what handlers across the server need; what one endpoint needs lives
    with it (the Socket.IO sessions run in `SessionRegistry.serve`, the
    control errors' HTTP answers are in `agentwatch.server.api`).
    """

    hub: Hub
    supervisor: Supervisor
    config: ServerConfig
    run_id: str
    version: str
    url: str = ""  # set once bound, e.g. http://127.0.0.1:8765
    shutting_down: bool = False
    limits: Limits = field(default_factory=Limits)  # sizes and timers (tests shorten them)
    socketio: SessionRegistry | None = None  # Socket.IO sessions (`registry_of`; serve makes it)
    _client_numbers: itertools.count[int] = field(
        default_factory=lambda: itertools.count(1), init=False, repr=False
    )

    def new_client_id(self, prefix: str) -> str:
        """A short unique id for a new subscriber (``ws-1``, ``sse-2``, ...)."""
        return f"{prefix}-{next(self._client_numbers)}"
