"""The one exception tree of agentwatch.

    AgentwatchError
    ├── ConfigError        bad option, bad TOML, bad value (exit 125)
    ├── SpawnError         the command could not be started (exit 126/127)
    ├── JournalError       the journal could not be opened or read
    ├── ProtocolError      a peer sent something we cannot accept (status hint)
    └── ClientError        a client command could not reach or use a server

An agent's own failure is never an exception: it is an event.
"""

from __future__ import annotations


class AgentwatchError(Exception):
    """Base of every error agentwatch raises on purpose."""

    exit_code: int = 125


class ConfigError(AgentwatchError):
    """An option, a config file or a value is invalid."""


class SpawnError(AgentwatchError):
    """The command could not be started; ``exit_code`` is 126 or 127."""

    def __init__(self, message: str, *, exit_code: int = 127) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class JournalError(AgentwatchError):
    """The journal could not be opened, written or read."""


class ProtocolError(AgentwatchError):
    """A peer violated a protocol; ``status`` is the HTTP status to answer."""

    def __init__(self, message: str, *, status: int = 400, code: str = "bad-request") -> None:
        super().__init__(message)
        self.status = status
        self.code = code


class ClientError(AgentwatchError):
    """A client command could not find, reach or use a server."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code
