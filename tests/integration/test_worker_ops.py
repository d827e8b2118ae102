"""The ops tooling against a real worker process: Prometheus scrapes it, locust loads /predict.

One worker (``sentinel worker``, champion v1 and candidate v2 of a small registered model pair,
its own topics on the session broker) is shared by the module. The stub-based tests of
``test_prometheus_scrape.py`` keep pinning the exact behaviour of the alert rules.
"""

from __future__ import annotations

import signal
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from lifecycle.registry import ModelRegistry
from sentinel.infra.admin import create_topics, delete_topics
from sentinel.infra.worker_process import free_port
from sentinel.settings import KafkaSettings, MlflowSettings, Settings, TopicSettings
from sentinel.topics import catalog
from tests.e2e.worker_support import (
    produce,
    register,
    start_worker,
    stop_worker,
    transactions,
    wait_ready,
    worker_env,
)
from tests.integration.test_locust_predict import run_locust
from tests.integration.test_prometheus_harness import PrometheusServer

pytestmark = [pytest.mark.integration]

PRODUCED = 2000


@dataclass(frozen=True)
class LiveWorker:
    settings: Settings
    port: int
    proc: subprocess.Popen[bytes]
    champion: str
    candidate: str

    @property
    def target(self) -> str:
        return f"127.0.0.1:{self.port}"


@pytest.fixture(scope="module")
def live_worker(kafka_bootstrap: str, tmp_path_factory: pytest.TempPathFactory,
                ) -> Iterator[LiveWorker]:
    """A running worker with a registered champion (v1) and candidate (v2), ready to score."""
    root = tmp_path_factory.mktemp("worker-ops")
    tag = uuid.uuid4().hex[:8]
    uri = f"sqlite:///{root}/mlflow.db"
    settings = Settings(
        data_dir=root / "sentinel",
        kafka=KafkaSettings(bootstrap_servers=kafka_bootstrap),
        topics=TopicSettings(prefix=f"ops{tag}.", partitions=3),
        mlflow=MlflowSettings(model_name=f"ops-{tag}", tracking_uri=uri, registry_uri=uri),
    )
    settings.data_dir.mkdir(parents=True)
    registry = ModelRegistry(settings)
    champion, candidate = register(registry, 1), register(registry, 2)
    name = settings.mlflow.model_name
    registry.client.set_registered_model_alias(name, "champion", champion)
    registry.client.set_registered_model_alias(name, "candidate", candidate)
    topics = catalog(settings.topics)
    create_topics(settings.librdkafka(), topics)
    port = free_port()
    proc = start_worker(worker_env(settings, port, f"ops-{tag}"), root / "worker.log")
    try:
        wait_ready(port, proc)
        yield LiveWorker(settings, port, proc, champion, candidate)
    finally:
        stop_worker(proc, signal.SIGKILL)
        delete_topics(settings.librdkafka(), [t.name for t in topics])


def _value(result: list[dict[str, object]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])  # type: ignore[index]


def _evaluated_rules(prometheus: PrometheusServer, timeout_s: float = 20.0,
                     ) -> list[dict[str, Any]]:
    """The alert rules once each has been evaluated (health is "unknown" before that)."""
    deadline = time.monotonic() + timeout_s
    while True:
        groups = prometheus.api("/api/v1/rules")["groups"]
        rules = [r for g in groups for r in g["rules"]]
        if all(r["health"] != "unknown" for r in rules) or time.monotonic() > deadline:
            return rules
        time.sleep(0.5)


def test_prometheus_scrapes_the_real_worker(live_worker: LiveWorker, tmp_path: Path) -> None:
    prometheus = PrometheusServer(tmp_path, {"sentinel-worker": [live_worker.target]}).start()
    try:
        up = prometheus.wait_for('up{job="sentinel-worker"}', lambda r: r != [])
        assert up[0]["metric"]["instance"] == live_worker.target
        assert _value(up) == 1
        assert _value(prometheus.query("sentinel_worker_ready")) == 1
        assert _value(prometheus.query("sentinel_registry_up")) == 1
        models = {r["metric"]["role"]: (r["metric"]["model_name"], r["metric"]["model_version"])
                  for r in prometheus.query("sentinel_model_info == 1")}
        name = live_worker.settings.mlflow.model_name
        assert models == {"champion": (name, live_worker.champion),
                          "candidate": (name, live_worker.candidate)}

        produce(live_worker.settings, transactions(PRODUCED, seed=11))
        scored = prometheus.wait_for(
            'sentinel_transactions_total{outcome="scored"}',
            lambda r: len(r) == 1 and float(r[0]["value"][1]) >= PRODUCED, timeout_s=90)
        assert _value(scored) == PRODUCED
        for expr in ("sum(sentinel_verdicts_total)",
                     "sum(sentinel_shadow_results_total)"):  # the candidate scored each one
            prometheus.wait_for(expr, lambda r: len(r) == 1 and _value(r) == PRODUCED)

        rules = _evaluated_rules(prometheus)
        assert len(rules) >= 9
        assert {r["name"]: r.get("lastError") for r in rules if r["health"] != "ok"} == {}
        states = {r["name"]: r["state"] for r in rules}
        assert states["SentinelWorkerDown"] == "inactive"
        assert states["SentinelWorkerNotReady"] == "inactive"
        assert states["SentinelRegistryUnreachable"] == "inactive"
    finally:
        prometheus.stop()


def test_locust_drives_the_real_predict_with_zero_failures(
    live_worker: LiveWorker, tmp_path: Path
) -> None:
    stats = run_locust(f"http://{live_worker.target}", tmp_path / "run", seconds=4)
    requests, failures = int(stats["Request Count"]), int(stats["Failure Count"])
    assert failures == 0, stats
    assert requests > 20
    assert live_worker.proc.poll() is None


def test_dashboard_renders_live_values_of_the_running_pipeline(
    live_worker: LiveWorker, tmp_path: Path
) -> None:
    """The Streamlit dashboard in headless Chromium, over a real Prometheus scraping the real
    worker and the worker's real topics; the screenshot is kept as a CI artifact."""
    from sentinel.settings import DashboardSettings
    from tests.integration.test_dashboard_browser import ARTIFACTS, Streamlit, render

    prometheus = PrometheusServer(tmp_path, {"sentinel-worker": [live_worker.target]}).start()
    app = None
    try:
        prometheus.wait_for("sentinel_worker_ready", lambda r: r != [] and _value(r) == 1)
        produce(live_worker.settings, transactions(300, seed=12))
        prometheus.wait_for('sentinel_transactions_total{outcome="scored"}',
                            lambda r: r != [] and _value(r) >= 300, timeout_s=90)
        settings = live_worker.settings.model_copy(update={"dashboard": DashboardSettings(
            prometheus_url=prometheus.url, refresh_s=0)})
        app = Streamlit(tmp_path, settings)
        name = settings.mlflow.model_name
        text = render(app.url, tmp_path,
                      lambda t: "Timeline:" in t and name in t and "page drawn in" in t,
                      ARTIFACTS / "worker-dashboard.png")
    finally:
        if app is not None:
            app.stop()
        prometheus.stop()
    assert "Workers ready" in text and "1 / 1" in text, text
    assert f"champion\t{name}\t{live_worker.champion}" in text or (
        f"champion {name} {live_worker.champion}" in " ".join(text.split())), text
    assert "reachable" in text, text
    assert "unavailable" not in text, text  # both Prometheus and Kafka answered
    assert "Drift: live 15 min against the training reference" in text, text
    assert (ARTIFACTS / "worker-dashboard.png").stat().st_size > 20_000
