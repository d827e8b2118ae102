"""Test harness: a real Prometheus (Debian's binary) on a free loopback port, and a small real
HTTP target publishing the worker's metric names with prometheus-client.

Shared by the Prometheus, dashboard and load tests; it holds no tests. Its fixtures
(``fake_worker``, ``prometheus``) are in the suite's plugin, :mod:`tests.plugin`.
"""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server

from sentinel.infra.worker_process import free_port

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"
LATENCY_S = 0.012  # every fake event-to-verdict latency: p99 = 0.01 + 0.015 * 0.99 = 24.85 ms
SCORING_S = 0.0015
FRAUD_RATE = 0.0123


class FakeWorkerMetrics:
    """The worker's metrics on a private registry, served over real HTTP, with steady traffic:
    per tick 20 transactions (19 scored, 1 dead-lettered), shadow agreeing on 19 of 20."""

    def __init__(self, champion: str = "7", candidate: str = "8") -> None:
        reg = self.registry = CollectorRegistry()
        self.transactions = Counter("sentinel_transactions", "transactions", ["outcome"],
                                    registry=reg)
        self.verdicts = Counter("sentinel_verdicts", "verdicts", ["decision", "model_version"],
                                registry=reg)
        self.dead = Counter("sentinel_dead_letters", "dead letters", ["reason"], registry=reg)
        self.shadow = Counter("sentinel_shadow_results", "shadow", ["agree"], registry=reg)
        Counter("sentinel_candidate_failures", "candidate failures", ["kind"], registry=reg)
        buckets = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0)
        self.scoring = Histogram("sentinel_scoring_latency_seconds", "scoring", registry=reg,
                                 buckets=buckets)
        self.e2v = Histogram("sentinel_event_to_verdict_latency_seconds", "event to verdict",
                             registry=reg, buckets=buckets)
        self.batch = Histogram("sentinel_batch_size", "batch", registry=reg,
                               buckets=(1, 10, 50, 100, 500))
        info = Gauge("sentinel_model_info", "models", ["role", "model_name", "model_version"],
                     registry=reg)
        info.labels("champion", "sentinel-fraud", champion).set(1)
        info.labels("candidate", "sentinel-fraud", candidate).set(1)
        Gauge("sentinel_registry_up", "registry", registry=reg).set(1)
        Gauge("sentinel_worker_ready", "ready", registry=reg).set(1)
        Gauge("sentinel_fraud_rate", "fraud rate", registry=reg).set(FRAUD_RATE)
        Counter("sentinel_labels", "labels", registry=reg)
        self.drift = Counter("sentinel_drift_alerts", "drift", ["detector", "signal"],
                             registry=reg)
        Counter("sentinel_model_swaps", "swaps", ["role"], registry=reg)
        self._stop = threading.Event()
        self.port = 0

    def tick(self) -> None:
        self.transactions.labels("scored").inc(19)
        self.transactions.labels("dead_lettered").inc(1)
        self.dead.labels("schema").inc(1)
        self.verdicts.labels("approve", "7").inc(18)
        self.verdicts.labels("decline", "7").inc(1)
        self.shadow.labels("true").inc(19)
        self.shadow.labels("false").inc(1)
        self.batch.observe(19)
        for _ in range(19):
            self.e2v.observe(LATENCY_S)
            self.scoring.observe(SCORING_S)

    def start(self, tick_s: float = 0.1) -> FakeWorkerMetrics:
        self.port = free_port()
        self._server, _ = start_http_server(self.port, addr="127.0.0.1", registry=self.registry)
        thread = threading.Thread(target=self._run, args=(tick_s,), daemon=True)
        thread.start()
        return self

    def _run(self, tick_s: float) -> None:
        while not self._stop.wait(tick_s):
            self.tick()

    def stop(self) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


class PrometheusServer:
    """The Debian ``prometheus`` binary with a generated config, alerts.yml loaded."""

    def __init__(self, home: Path, jobs: dict[str, list[str]], interval: str = "1s") -> None:
        self.home = home
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.config = {
            "global": {"scrape_interval": interval, "evaluation_interval": interval,
                       "scrape_timeout": interval},
            "rule_files": [str(ALERTS)],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": targets}]}
                               for job, targets in jobs.items()],
        }
        self._proc: subprocess.Popen[bytes] | None = None

    def start(self, timeout_s: float = 30.0) -> PrometheusServer:
        binary = shutil.which("prometheus")
        if binary is None:
            pytest.skip("prometheus not installed (Debian package 'prometheus'; "
                        "run scripts/install-system-deps.sh)")
        config = self.home / "prometheus.yml"
        config.write_text(yaml.safe_dump(self.config))
        log = (self.home / "prometheus.log").open("wb")
        self._proc = subprocess.Popen(
            [binary, f"--config.file={config}", f"--storage.tsdb.path={self.home / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._proc.poll() is not None:
                raise RuntimeError(f"prometheus exited: {self.log()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return self
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready in {timeout_s}s: {self.log()}")

    def log(self) -> str:
        return (self.home / "prometheus.log").read_text(errors="replace")[-2000:]

    def query(self, expr: str) -> list[dict[str, Any]]:
        body = httpx.get(f"{self.url}/api/v1/query", params={"query": expr}, timeout=5).json()
        assert body["status"] == "success", body
        return list(body["data"]["result"])

    def api(self, path: str) -> dict[str, Any]:
        body = httpx.get(f"{self.url}{path}", timeout=5).json()
        assert body["status"] == "success", body
        return dict(body["data"])

    def wait_for(self, expr: str, check: Callable[[list[dict[str, Any]]], bool] = bool,
                 timeout_s: float = 30.0) -> list[dict[str, Any]]:
        """Poll a query until ``check`` accepts its result."""
        deadline = time.monotonic() + timeout_s
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if check(result):
                return result
            time.sleep(0.5)
        raise AssertionError(f"{expr} never satisfied the check; last {result}\n{self.log()}")

    def stop(self) -> None:
        if self._proc is not None and self._proc.poll() is None:
            self._proc.terminate()
            try:
                self._proc.wait(10)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)

