
"""A real Prometheus scrapes a fake worker publishing the worker's metric names with steady,
known traffic: the values come back through its HTTP API and the alert rules evaluate to exact
numbers (quantiles, ratios) and fire (drift). The real worker process is scraped in
``test_worker_ops.py``; these tests pin the rules' behaviour on traffic no real run makes
exactly repeatable."""

from __future__ import annotations

import time

import pytest

from tests.integration.test_prometheus_harness import (
    FRAUD_RATE,
    FakeWorkerMetrics,
    PrometheusServer,
)


def _value(result: list[dict[str, object]]) -> float:
    assert len(result) == 1, result
    return float(result[0]["value"][1])  # type: ignore[index]


def test_the_worker_target_is_scraped_and_its_metrics_queried(
    prometheus: PrometheusServer, fake_worker: FakeWorkerMetrics
) -> None:
    up = prometheus.query('up{job="sentinel-worker"}')
    assert up[0]["metric"]["instance"] == fake_worker.target
    assert _value(up) == 1
    assert _value(prometheus.query("sentinel_fraud_rate")) == pytest.approx(FRAUD_RATE)
    models = {r["metric"]["role"]: r["metric"]["model_version"]
              for r in prometheus.query("sentinel_model_info == 1")}
    assert models == {"champion": "7", "candidate": "8"}
    assert _value(prometheus.query("sum(rate(sentinel_transactions_total[1m]))")) > 0


def test_latency_quantiles_come_from_the_histogram_buckets(prometheus: PrometheusServer) -> None:
    p99 = prometheus.query("histogram_quantile(0.99, sum by (le) "
                           "(rate(sentinel_event_to_verdict_latency_seconds_bucket[1m])))")
    # Every observation is 12 ms, inside the (10 ms, 25 ms] bucket: linear interpolation.
    assert _value(p99) == pytest.approx(0.01 + 0.015 * 0.99, rel=1e-6)


def test_ratios_match_the_traffic_mix(prometheus: PrometheusServer) -> None:
    agreement = _value(prometheus.query(
        'sum(rate(sentinel_shadow_results_total{agree="true"}[1m]))'
        " / sum(rate(sentinel_shadow_results_total[1m]))"))
    dead = _value(prometheus.query("sum(rate(sentinel_dead_letters_total[1m]))"
                                   " / sum(rate(sentinel_transactions_total[1m]))"))
    assert agreement == pytest.approx(0.95, abs=0.01)
    assert dead == pytest.approx(0.05, abs=0.01)


def test_the_alert_rules_load_and_a_drift_alert_fires(
    prometheus: PrometheusServer, fake_worker: FakeWorkerMetrics
) -> None:
    deadline = time.monotonic() + 20
    while True:
        rules = [r for g in prometheus.api("/api/v1/rules")["groups"] for r in g["rules"]]
        if all(r["health"] == "ok" for r in rules) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert len(rules) >= 9
    assert {r["name"]: r["health"] for r in rules if r["health"] != "ok"} == {}
    assert not [a for a in prometheus.api("/api/v1/alerts")["alerts"]
                if a["labels"]["alertname"] == "SentinelDriftDetected"]

    fake_worker.drift.labels("adwin", "score").inc()

    deadline = time.monotonic() + 20
    firing: list[dict[str, object]] = []
    while not firing and time.monotonic() < deadline:
        firing = [a for a in prometheus.api("/api/v1/alerts")["alerts"]
                  if a["labels"]["alertname"] == "SentinelDriftDetected"
                  and a["state"] == "firing"]
        time.sleep(0.5)
    assert firing, prometheus.log()
    assert firing[0]["labels"]["signal"] == "score"  # type: ignore[index]
    assert "adwin" in firing[0]["annotations"]["summary"]  # type: ignore[index]
