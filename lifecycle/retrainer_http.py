"""The retrainer's HTTP endpoints: ``/metrics`` (Prometheus) and ``/ready``.

``/ready`` answers 200 while the retrainer can do its work (the standby is ready too: it is
waiting for the lease) and 503 with the reason while the model registry is unreachable.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.process_collector import ProcessCollector
from prometheus_client.registry import Collector

Status = Callable[[], dict[str, Any]]


class RetrainerMetrics(Collector):
    """Counters and gauges read from the running retrainer when scraped."""

    def __init__(self, retrainer: Any, leader: Callable[[], bool]) -> None:
        self.retrainer, self.leader = retrainer, leader

    def collect(self) -> Iterator[CounterMetricFamily | GaugeMetricFamily]:
        r = self.retrainer
        retrains = CounterMetricFamily("sentinel_retrains", "Retrain decisions and outcomes",
                                       labels=["outcome"])
        for outcome, n in sorted(r.retrains.items()):
            retrains.add_metric([outcome], n)
        promos = CounterMetricFamily("sentinel_promotions", "Promotion decisions",
                                     labels=["action"])
        for action, n in sorted(r.promotions.items()):
            promos.add_metric([action], n)
        yield retrains
        yield promos
        yield CounterMetricFamily("sentinel_registry_failures",
                                  "Registry calls that failed (retried with backoff)",
                                  value=r.registry_failures)
        yield GaugeMetricFamily("sentinel_registry_up",
                                "1 while the model registry answers, 0 after a failure",
                                value=1.0 if r.registry_up else 0.0)
        yield GaugeMetricFamily("sentinel_retrainer_leader",
                                "1 on the active retrainer, 0 on a standby",
                                value=1.0 if self.leader() else 0.0)


def status_of(retrainer: Any, leader: Callable[[], bool]) -> dict[str, Any]:
    """What ``/ready`` reports; ``ready`` is false while the registry is down."""
    return {"ready": bool(retrainer.registry_up), "role": "leader" if leader() else "standby",
            "registry": "up" if retrainer.registry_up else "down",
            "registry_error": retrainer.registry_error}


def serve(port: int, collector: Collector, status: Status,
          host: str = "") -> ThreadingHTTPServer:
    """Serve ``/metrics`` and ``/ready`` on ``port`` (0: a free one) from a daemon thread,
    on every interface by default (Prometheus scrapes it from another host)."""
    registry = CollectorRegistry()
    registry.register(collector)
    ProcessCollector(registry=registry)

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            if self.path.startswith("/metrics"):
                code, ctype, body = 200, CONTENT_TYPE_LATEST, generate_latest(registry)
            elif self.path.startswith("/ready"):
                state = status()
                code, ctype = (200 if state["ready"] else 503), "application/json"
                body = json.dumps(state).encode()
            else:
                code, ctype, body = 404, "text/plain", b"not found\n"
            self.send_response(code)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, format: str, *args: Any) -> None:
            return

    server = ThreadingHTTPServer((host, port), Handler)
    threading.Thread(target=server.serve_forever, name="retrainer-http", daemon=True).start()
    return server
