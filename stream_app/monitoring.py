"""What the monitoring dashboard shows, read from Prometheus' HTTP API.

The queries live here, away from the Streamlit layout, so they are tested against a real
Prometheus without a browser. A source that is down raises :class:`SourceUnavailable` with a
message the dashboard shows as it is; a query with no data yields ``None`` ("no data yet"),
never a made-up zero.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass, field
from typing import Any

import httpx

from sentinel.errors import SentinelError

logger = logging.getLogger(__name__)

LATENCY = "sentinel_event_to_verdict_latency_seconds_bucket"
SCORING = "sentinel_scoring_latency_seconds_bucket"

QUERIES: dict[str, str] = {
    "fraud_rate": "avg(sentinel_fraud_rate)",
    "throughput": "sum(rate(sentinel_transactions_total[1m]))",
    "dead_letter_ratio": "sum(rate(sentinel_dead_letters_total[5m]))"
                         " / sum(rate(sentinel_transactions_total[5m]))",
    "latency_p50": f"histogram_quantile(0.50, sum by (le) (rate({LATENCY}[5m])))",
    "latency_p95": f"histogram_quantile(0.95, sum by (le) (rate({LATENCY}[5m])))",
    "latency_p99": f"histogram_quantile(0.99, sum by (le) (rate({LATENCY}[5m])))",
    "scoring_p99": f"histogram_quantile(0.99, sum by (le) (rate({SCORING}[5m])))",
    "shadow_agreement": 'sum(rate(sentinel_shadow_results_total{agree="true"}[5m]))'
                        " / sum(rate(sentinel_shadow_results_total[5m]))",
    "workers_ready": "sum(sentinel_worker_ready)",
    "workers_total": "count(sentinel_worker_ready)",
    "registry_up": "min(sentinel_registry_up)",
}
GROUPED: dict[str, str] = {
    "models": "sentinel_model_info == 1",
    "decisions": "sum by (decision) (rate(sentinel_verdicts_total[5m]))",
    "drift_alerts": "sum by (detector, signal) (sentinel_drift_alerts_total)",
    "promotions": "sum by (action) (sentinel_promotions_total)",
    "dead_letters": "sum by (reason) (sentinel_dead_letters_total)",
}
HISTORY: dict[str, str] = {
    "throughput (tx/s)": QUERIES["throughput"],
    "p99 latency (ms)": f"1000 * {QUERIES['latency_p99']}",
}


class SourceUnavailable(SentinelError):
    """A data source of the dashboard (Prometheus, Kafka) cannot be read."""

    def __init__(self, source: str, detail: str) -> None:
        super().__init__(f"{source} unavailable: {detail}")
        self.source = source


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float | None


@dataclass(frozen=True)
class ModelServing:
    role: str
    model_name: str
    model_version: str
    instances: int


@dataclass(frozen=True)
class Overview:
    """One consistent read of the headline numbers; ``None`` means no data yet."""

    values: dict[str, float | None]
    models: list[ModelServing]
    groups: dict[str, list[Sample]]
    problems: list[str] = field(default_factory=list)

    def get(self, name: str) -> float | None:
        return self.values.get(name)


class PrometheusAPI:
    """A small client for /api/v1/query and /api/v1/query_range."""

    def __init__(self, base_url: str, timeout_s: float = 3.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s,
                                    transport=transport)

    def query(self, expr: str) -> list[Sample]:
        data = self._get("/api/v1/query", {"query": expr})
        if data["resultType"] == "scalar":
            return [Sample({}, _number(data["result"][1]))]
        return [Sample(item["metric"], _number(item["value"][1])) for item in data["result"]]

    def query_range(self, expr: str, start: float, end: float,
                    step_s: float) -> list[tuple[float, float | None]]:
        """The first series of a range query as (unix time, value) points."""
        data = self._get("/api/v1/query_range",
                         {"query": expr, "start": start, "end": end, "step": step_s})
        if not data["result"]:
            return []
        return [(float(t), _number(v)) for t, v in data["result"][0]["values"]]

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"Prometheus at {self.base_url}", str(exc) or
                                    type(exc).__name__) from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise SourceUnavailable(f"Prometheus at {self.base_url}",
                                    f"HTTP {response.status_code}, not JSON") from exc
        if body.get("status") != "success":
            raise ValueError(f"query failed: {body.get('error', response.status_code)}")
        return dict(body["data"])

    def close(self) -> None:
        self._client.close()


def _number(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else value


def read_overview(api: PrometheusAPI) -> Overview:
    """Run every headline query. Raises SourceUnavailable when Prometheus cannot be reached;
    a single bad query is reported in ``problems`` and shown as no data."""
    values: dict[str, float | None] = {}
    groups: dict[str, list[Sample]] = {}
    problems: list[str] = []
    for name, expr in QUERIES.items():
        try:
            samples = api.query(expr)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            samples = []
        values[name] = samples[0].value if samples else None
    for name, expr in GROUPED.items():
        try:
            groups[name] = api.query(expr)
        except ValueError as exc:
            problems.append(f"{name}: {exc}")
            groups[name] = []
    return Overview(values, models_serving(groups["models"]), groups, problems)


def models_serving(samples: list[Sample]) -> list[ModelServing]:
    """Collapse sentinel_model_info series into one row per (role, name, version)."""
    counts: dict[tuple[str, str, str], int] = {}
    for sample in samples:
        key = (sample.labels.get("role", "?"), sample.labels.get("model_name", "?"),
               sample.labels.get("model_version", "?"))
        counts[key] = counts.get(key, 0) + 1
    order = {"champion": 0, "candidate": 1}
    return [ModelServing(role, name, version, n) for (role, name, version), n in
            sorted(counts.items(), key=lambda kv: (order.get(kv[0][0], 2), kv[0]))]


def read_history(api: PrometheusAPI, now: float, minutes: int = 30,
                 step_s: float = 15.0) -> dict[str, list[tuple[float, float | None]]]:
    """Throughput and p99 latency over the last ``minutes``, for the trend chart."""
    start = now - minutes * 60
    out: dict[str, list[tuple[float, float | None]]] = {}
    for name, expr in HISTORY.items():
        try:
            out[name] = api.query_range(expr, start, now, step_s)
        except ValueError as exc:
            logger.warning("history query failed name=%s error=%s", name, exc)
            out[name] = []
    return out
