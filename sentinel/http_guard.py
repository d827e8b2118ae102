"""The gate in front of every HTTP API: bearer tokens, a body limit and a concurrency limit.

Framework-independent: a server (the worker's ``ThreadingHTTPServer``, a test) asks
:meth:`HttpGuard.check` about a request before reading its body, then holds a
:meth:`HttpGuard.slot` while it does the work::

    guard = HttpGuard.from_settings(settings)
    rejection = guard.check(self.command, self.path, self.headers)
    if rejection is None:
        with guard.slot() as full:
            rejection = full
            if full is None:
                ...  # read the body (at most guard.max_body_bytes) and answer
    if rejection is not None:
        send(rejection.status, rejection.headers, rejection.body())

Tokens are compared in constant time against every configured one (rotation: add the new
token, move the clients, remove the old one). The slots never block: a request over the limit is
answered 429 at once, so a flood costs the server one refusal per request, never a queue that
competes with the stream. :func:`bind_allowed` is the rule for where a server may listen.
"""

from __future__ import annotations

import hmac
import ipaddress
import json
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Protocol

from prometheus_client import REGISTRY, Counter
from pydantic import SecretStr

from sentinel.errors import ConfigurationError
from sentinel.settings import HttpSettings, Settings

_BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})

REJECTED = Counter("sentinel_http_rejected", "HTTP requests refused by the guard, by status",
                   ["status"], registry=None)
for _status in ("400", "401", "413", "429"):
    REJECTED.labels(_status)
REGISTRY.register(REJECTED)  # a server with its own CollectorRegistry registers it there too


class Headers(Protocol):
    """What the guard reads of request headers (``http.client.HTTPMessage`` or a dict)."""

    def get(self, name: str, default: Any = None) -> Any: ...


@dataclass(frozen=True)
class Rejection:
    """An answer that refuses a request: status, headers to send, and a one-line reason."""

    status: int
    message: str
    headers: tuple[tuple[str, str], ...] = ()

    def body(self) -> bytes:
        """The JSON body: ``{"error": message}``."""
        return json.dumps({"error": self.message}).encode()


def _header(headers: Headers, name: str) -> str | None:
    value = headers.get(name)
    if value is None:
        value = headers.get(name.lower())
    return None if value is None else str(value)


class HttpGuard:
    """Authentication, body limit and concurrency limit of one HTTP server."""

    def __init__(self, tokens: Iterable[str | SecretStr] = (), *, max_body_bytes: int = 65536,
                 max_concurrent: int = 4,
                 open_paths: Iterable[str] = ("/metrics", "/health", "/ready")) -> None:
        self._tokens = [
            (t.get_secret_value() if isinstance(t, SecretStr) else t).encode() for t in tokens
        ]
        if max_body_bytes < 1 or max_concurrent < 1:
            raise ConfigurationError("max_body_bytes and max_concurrent must be at least 1")
        self.max_body_bytes = max_body_bytes
        self.max_concurrent = max_concurrent
        self.open_paths = frozenset(open_paths)
        self._slots = threading.BoundedSemaphore(max_concurrent)

    @classmethod
    def from_settings(cls, settings: Settings | HttpSettings) -> HttpGuard:
        http = settings.http if isinstance(settings, Settings) else settings
        return cls(http.tokens, max_body_bytes=http.max_body_bytes,
                   max_concurrent=http.max_concurrent, open_paths=http.open_paths)

    @property
    def requires_token(self) -> bool:
        return bool(self._tokens)

    def is_open(self, path: str) -> bool:
        """Whether ``path`` (query string ignored, exact match) needs no token."""
        return path.split("?", 1)[0].split("#", 1)[0] in self.open_paths

    def authenticated(self, headers: Headers) -> bool:
        """A configured token in ``Authorization: Bearer <token>`` (or no token configured)."""
        if not self._tokens:
            return True
        scheme, _, presented = (_header(headers, "Authorization") or "").strip().partition(" ")
        if scheme.lower() != "bearer" or not presented.strip():
            return False
        given = presented.strip().encode()
        match = False
        for token in self._tokens:  # every token compared: timing says nothing about which
            match |= hmac.compare_digest(given, token)
        return match

    def check(self, method: str, path: str, headers: Headers,
              content_length: int | None = None) -> Rejection | None:
        """``None`` if the request may proceed, else the answer to send (401, 413 or 400).

        ``content_length`` defaults to the ``Content-Length`` header. Checked before the body
        is read, so a refused request costs nothing more.
        """
        if not self.is_open(path) and not self.authenticated(headers):
            return self._reject(401, "missing or invalid bearer token",
                                (("WWW-Authenticate", 'Bearer realm="sentinel"'),))
        if content_length is None:
            raw = _header(headers, "Content-Length")
            if raw is not None:
                try:
                    content_length = int(raw)
                except ValueError:
                    return self._reject(400, "Content-Length is not a number")
        if content_length is not None and content_length < 0:
            return self._reject(400, "Content-Length is negative")
        if (content_length or 0) > self.max_body_bytes:
            return self._reject(413, f"request body over {self.max_body_bytes} bytes")
        if method.upper() in _BODY_METHODS and _header(headers, "Transfer-Encoding"):
            return self._reject(411, "send a Content-Length, not a chunked body")
        return None

    @contextmanager
    def slot(self) -> Iterator[Rejection | None]:
        """Hold one of ``max_concurrent`` slots: yields ``None``, or a 429 Rejection at once
        when all are taken (never waits)."""
        if not self._slots.acquire(blocking=False):
            yield self._reject(429, f"over {self.max_concurrent} concurrent requests, retry",
                               (("Retry-After", "1"),))
            return
        try:
            yield None
        finally:
            self._slots.release()

    def _reject(self, status: int, message: str,
                headers: tuple[tuple[str, str], ...] = ()) -> Rejection:
        REJECTED.labels(str(status)).inc()
        return Rejection(status, message, headers)


def is_loopback(host: str) -> bool:
    """``localhost`` or a loopback address; anything else (``0.0.0.0``, ``""``, a name) is not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def bind_allowed(host: str, settings: Settings | HttpSettings) -> bool:
    """Loopback always; beyond it only with a token set, or ``allow_insecure_bind``."""
    http = settings.http if isinstance(settings, Settings) else settings
    return is_loopback(host) or bool(http.tokens) or http.allow_insecure_bind


def require_bind_allowed(host: str, settings: Settings | HttpSettings) -> None:
    """Raise a one-line :class:`ConfigurationError` when :func:`bind_allowed` says no."""
    if not bind_allowed(host, settings):
        raise ConfigurationError(
            f"refusing to serve HTTP on {host or 'all interfaces'} without authentication: set "
            "SENTINEL_HTTP__TOKENS (at least 16 characters each), bind to 127.0.0.1, or set "
            "SENTINEL_HTTP__ALLOW_INSECURE_BIND=true to let anyone who reaches the port call it"
        )
