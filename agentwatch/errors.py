"""The one exception tree of agentwatch.

    AgentwatchError
    ├── ConfigError        bad option, bad TOML, bad value (exit 125)
    ├── SpawnError         the command could not be started (exit 126/127)
    ├── JournalError       the journal could not be opened or read
    ├── ProtocolError      a peer sent something we cannot accept (status hint)
    ├── ControlError       a control request cannot be carried out (fields, no status)
    │   ├── UnknownProcess     no process of that name (the API answers 404)
    │   ├── ControlConflict    not in a state that allows it (the API answers 409)
    │   └── InvalidSignal      not a signal name or number (the API answers 400)
    └── ClientError        a client command could not reach or use a server
        └── ConnectionLost the connection broke; `follow` reconnects (never escapes it)

An agent's own failure is never an exception: it is an event.
"""

from __future__ import annotations

from agentwatch.exitcodes import NOT_FOUND, OWN_ERROR


class AgentwatchError(Exception):
    """Base of every error agentwatch raises on purpose."""

    exit_code: int = OWN_ERROR


class ConfigError(AgentwatchError):
    """An option, a config file or a value is invalid."""


class SpawnError(AgentwatchError):
    """The command could not be started; ``exit_code`` is 126 or 127."""

    def __init__(self, message: str, *, exit_code: int = NOT_FOUND) -> None:
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


class ControlError(AgentwatchError):
    """A control request (add, get, stop, restart, signal) cannot be carried out.

    Raised by the supervisor; the server maps each subclass to its HTTP answer
    (`agentwatch.server.api.control_error`). ``name`` is the process named, if any.
    """

    def __init__(self, message: str, *, name: str | None = None) -> None:
        super().__init__(message)
        self.name = name


class UnknownProcess(ControlError):
    """No process is called ``name``."""

    def __init__(self, name: str) -> None:
        super().__init__(f"unknown process {name!r}", name=name)


class ControlConflict(ControlError):
    """Process ``name`` is in a state that does not allow the request."""


class InvalidSignal(ControlError):
    """``signal`` is neither a signal name nor a signal number."""

    def __init__(self, signal: str | int) -> None:
        super().__init__(f"unknown signal {signal!r}")
        self.signal = signal


class ClientError(AgentwatchError):
    """A client command could not find, reach or use a server."""

    def __init__(self, message: str, *, exit_code: int = 1) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ConnectionLost(ClientError):
    """The connection to a server broke or could not be made: worth another try.

    A transport of `agentwatch.client.follow` raises it; `follow` reconnects
    with backoff and raises a plain `ClientError` once it gives up.
    """
