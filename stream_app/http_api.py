"""The worker's HTTP API on the standard library's threading server, off the stream's loop.

``POST /predict``, ``POST /reports`` (fraud reports become labels), ``GET /health``,
``GET /ready``, ``GET /metrics``. Each request runs in its
own thread and passes :class:`~sentinel.http_guard.HttpGuard` first: a bearer token when tokens
are configured (the probes and ``/metrics`` stay open), a body above the limit answers 413
unread, and ``/predict`` takes one of the guard's slots or answers 429 at once, so a flood of
requests cannot starve the stream's verdicts.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from sentinel.http_guard import HttpGuard, Rejection

logger = logging.getLogger(__name__)

Json = tuple[int, Any]
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Routes:
    """What the API serves; the worker provides these callables."""

    def __init__(self, predict: Callable[[Any], Json], health: Callable[[], Json],
                 ready: Callable[[], Json], metrics: Callable[[], bytes],
                 reports: Callable[[Any], Json] | None = None) -> None:
        self.predict, self.health, self.ready, self.metrics = predict, health, ready, metrics
        self.posts: dict[str, Callable[[Any], Json]] = {"/predict": predict}
        if reports is not None:
            self.posts["/reports"] = reports


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that went away mid-answer is routine, not a traceback in the log."""
        exc = sys.exc_info()[1]
        if isinstance(exc, ConnectionError):
            logger.debug("http client %s went away: %s", client_address, exc)
            return
        logger.exception("http request from %s failed", client_address)


class Api:
    """Serves :class:`Routes` on ``host:port`` in a daemon thread."""

    def __init__(self, host: str, port: int, routes: Routes, guard: HttpGuard) -> None:
        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("http " + format, *args)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                denied = guard.check("GET", self.path, self.headers)
                if denied is not None:
                    self._refuse(denied)
                elif path == "/metrics":
                    self._send(200, routes.metrics(), METRICS_TYPE)
                elif path == "/health":
                    self._json(*routes.health())
                elif path == "/ready":
                    self._json(*routes.ready())
                else:
                    self._json(404, {"error": f"no such path {path!r}"})

            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                handler = routes.posts.get(path)
                if handler is None:
                    self._json(404, {"error": f"no such path {path!r}"})
                    return
                denied = guard.check("POST", self.path, self.headers)
                if denied is not None:
                    self._refuse(denied)
                    return
                answer: Json | None = None
                with guard.slot() as full:  # released before answering: a client's next
                    if full is None:        # request never finds its own slot still taken
                        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                        try:
                            body = json.loads(raw)
                        except ValueError:
                            answer = 422, {"errors": [{"field": "<body>", "reason": "not JSON"}]}
                        else:
                            answer = handler(body)
                if answer is None:
                    assert full is not None  # noqa: S101 - no answer means no slot
                    self._refuse(full)
                else:
                    self._json(*answer)

            def _refuse(self, rejection: Rejection) -> None:
                self._send(rejection.status, rejection.body(), "application/json", True,
                           rejection.headers)

            def _json(self, status: int, body: Any, close: bool = False) -> None:
                self._send(status, json.dumps(body).encode(), "application/json", close)

            def _send(self, status: int, data: bytes, kind: str, close: bool = False,
                      headers: tuple[tuple[str, str], ...] = ()) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                for name, value in headers:
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(data)))
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

        self.server = _Server((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="http",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
