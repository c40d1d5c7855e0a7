"""Tokens, origins and CORS (SPEC 4.0); pure functions over a `Request`.

A request is authenticated by ``Authorization: Bearer T``, ``?token=T`` or
the ``agentwatch_token`` cookie that ``GET /?token=T`` sets; tokens are
compared in constant time. A request with an ``Origin`` header is allowed
only from the server's own origin or a ``--cors-origin`` (``*`` allows any
origin explicitly). "Own" means the origin is the bound URL, or
``http://`` plus the ``Host`` header when that host name is one this server
answers to (a loopback name, or the bound host; any name when bound to a
wildcard address): a DNS-rebinding page on ``evil.example`` whose name
resolves to 127.0.0.1 is not "own".
"""

from __future__ import annotations

import hmac
from urllib.parse import quote, unquote, urlsplit

from agentwatch.config import ServerConfig, is_loopback
from agentwatch.server.http import Request

COOKIE_NAME = "agentwatch_token"
PREFLIGHT_MAX_AGE_S = 600  # browsers may cache a preflight answer this long
ALLOWED_METHODS = "GET, POST, OPTIONS"
ALLOWED_HEADERS = "authorization, content-type, last-event-id"
_WILDCARD_HOSTS = ("0.0.0.0", "::", "")


def token_matches(expected: str | None, given: str | None) -> bool:
    """Whether ``given`` is the server's token (always True when auth is off)."""
    if expected is None:
        return True
    if given is None:
        return False
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode())


def _cookie(request: Request, name: str) -> str | None:
    for part in request.headers.get("cookie", "").split(";"):
        key, eq, value = part.strip().partition("=")
        if eq and key == name:
            return unquote(value.strip().strip('"'))
    return None


def presented_tokens(request: Request) -> list[str]:
    """Every token the request carries: bearer header, ``?token=``, cookie."""
    tokens = []
    auth = request.headers.get("authorization", "")
    scheme, _, value = auth.partition(" ")
    if scheme.lower() == "bearer" and value.strip():
        tokens.append(value.strip())
    query = request.param("token")
    if query:
        tokens.append(query)
    cookie = _cookie(request, COOKIE_NAME)
    if cookie:
        tokens.append(cookie)
    return tokens


def is_authenticated(config: ServerConfig, request: Request) -> bool:
    """Whether the request carries the server's token (or auth is off)."""
    if config.token is None:
        return True
    return any(token_matches(config.token, t) for t in presented_tokens(request))


def auth_cookie(token: str) -> tuple[str, str]:
    """The ``Set-Cookie`` header that lets the dashboard in."""
    return (
        "set-cookie",
        f"{COOKIE_NAME}={quote(token, safe='')}; HttpOnly; SameSite=Strict; Path=/",
    )


def _host_name(host: str) -> str:
    """``[::1]:80`` -> ``::1``, ``Example:80`` -> ``example``."""
    try:
        return (urlsplit("http://" + host).hostname or "").lower()
    except ValueError:
        return ""


def _answers_to(config: ServerConfig, name: str) -> bool:
    bound = config.host.lower().strip("[]")
    return is_loopback(name) or name == bound or bound in _WILDCARD_HOSTS


def origin_allowed(config: ServerConfig, server_url: str, request: Request) -> bool:
    """Whether the request's ``Origin`` (if any) may use this server."""
    origin = request.headers.get("origin")
    if origin is None:
        return True
    origin = origin.strip().rstrip("/")
    if "*" in config.cors_origins or origin in config.cors_origins:
        return True
    origin = origin.lower()
    if server_url and origin == server_url.lower().rstrip("/"):
        return True
    host = request.headers.get("host", "").strip().lower()
    return bool(host) and origin == "http://" + host and _answers_to(config, _host_name(host))


def cors_headers(request: Request) -> list[tuple[str, str]]:
    """CORS headers for an allowed cross-origin request (none without Origin)."""
    origin = request.headers.get("origin")
    if origin is None:
        return []
    return [
        ("access-control-allow-origin", origin),
        ("access-control-allow-credentials", "true"),
        ("vary", "Origin"),
    ]


def preflight_headers(request: Request) -> list[tuple[str, str]]:
    """The extra headers of an ``OPTIONS`` preflight answer."""
    asked = request.headers.get("access-control-request-headers")
    return [
        ("access-control-allow-methods", ALLOWED_METHODS),
        ("access-control-allow-headers", asked or ALLOWED_HEADERS),
        ("access-control-max-age", str(PREFLIGHT_MAX_AGE_S)),
    ]
