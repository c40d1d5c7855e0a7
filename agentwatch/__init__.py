"""agentwatch: supervise agents, journal every line they print, serve it live."""

__version__ = "0.1.0"
