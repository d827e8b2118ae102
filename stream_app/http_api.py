"""The worker's HTTP API on the standard library's threading server, off the stream's loop.

``POST /predict``, ``GET /health``, ``GET /ready``, ``GET /metrics``. Each request runs in its
own thread; ``/predict`` takes one of ``max_concurrent`` slots or answers 429 at once, and a
body above ``max_body_bytes`` answers 413 unread, so a flood of requests cannot starve the
stream's verdicts.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

logger = logging.getLogger(__name__)

Json = tuple[int, Any]
METRICS_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class Routes:
    """What the API serves; the worker provides these callables."""

    def __init__(self, predict: Callable[[Any], Json], health: Callable[[], Json],
                 ready: Callable[[], Json], metrics: Callable[[], bytes],
                 authorize: Callable[[str, dict[str, str]], Json | None] = lambda p, h: None,
                 ) -> None:
        self.predict, self.health, self.ready, self.metrics = predict, health, ready, metrics
        self.authorize = authorize


class Api:
    """Serves :class:`Routes` on ``host:port`` in a daemon thread."""

    def __init__(self, host: str, port: int, routes: Routes, max_body_bytes: int = 1 << 20,
                 max_concurrent: int = 8) -> None:
        slots = threading.BoundedSemaphore(max_concurrent)

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, format: str, *args: Any) -> None:
                logger.debug("http " + format, *args)

            def do_GET(self) -> None:
                path = self.path.split("?")[0]
                if path == "/metrics":
                    self._send(200, routes.metrics(), METRICS_TYPE)
                elif path == "/health":
                    self._json(*routes.health())
                elif path == "/ready":
                    self._json(*routes.ready())
                else:
                    self._json(404, {"error": f"no such path {path!r}"})

            def do_POST(self) -> None:
                path = self.path.split("?")[0]
                if path != "/predict":
                    self._json(404, {"error": f"no such path {path!r}"})
                    return
                denied = routes.authorize(path, {k.lower(): v for k, v in self.headers.items()})
                if denied is not None:
                    self._json(*denied, close=True)
                    return
                length = int(self.headers.get("Content-Length") or 0)
                if length > max_body_bytes:
                    self._json(413, {"error": f"body over {max_body_bytes} bytes"}, close=True)
                    return
                if not slots.acquire(blocking=False):
                    self._json(429, {"error": "too many concurrent requests"}, close=True)
                    return
                try:
                    raw = self.rfile.read(length)
                    try:
                        body = json.loads(raw)
                    except ValueError:
                        self._json(422, {"errors": [{"field": "<body>", "reason": "not JSON"}]})
                        return
                    self._json(*routes.predict(body))
                finally:
                    slots.release()

            def _json(self, status: int, body: Any, close: bool = False) -> None:
                self._send(status, json.dumps(body).encode(), "application/json", close)

            def _send(self, status: int, data: bytes, kind: str, close: bool = False) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                if close:
                    self.send_header("Connection", "close")
                    self.close_connection = True
                self.end_headers()
                self.wfile.write(data)

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self._thread = threading.Thread(target=self.server.serve_forever, name="http",
                                        daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
