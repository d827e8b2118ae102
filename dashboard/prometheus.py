"""Prometheus' HTTP API, as the dashboard reads it: instant queries, range queries, alerts.

A Prometheus that cannot be reached raises :class:`SourceUnavailable` with a message the page
shows as it is; a query with no data yields no samples ("no data"), never a made-up zero; a
query Prometheus rejects raises ``ValueError``.
"""

from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import httpx

from dashboard.errors import SourceUnavailable

logger = logging.getLogger(__name__)

Point = tuple[float, float | None]


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float | None


@dataclass(frozen=True)
class Series:
    """One labelled series of a range query: (unix time, value) points, ``None`` for NaN."""

    labels: dict[str, str]
    points: list[Point]


@dataclass(frozen=True)
class Alert:
    """An alert Prometheus evaluates as pending or firing."""

    name: str
    state: str
    severity: str
    summary: str
    active_at: str


class PrometheusAPI:
    """A small client for /api/v1/query, /api/v1/query_range and /api/v1/alerts."""

    def __init__(self, base_url: str, timeout_s: float = 3.0,
                 transport: httpx.BaseTransport | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.shown_url = shown(self.base_url)
        self._client = httpx.Client(base_url=self.base_url, timeout=timeout_s,
                                    transport=transport, follow_redirects=False)

    def query(self, expr: str) -> list[Sample]:
        data = self._get("/api/v1/query", {"query": expr})
        if data["resultType"] == "scalar":
            return [Sample({}, _number(data["result"][1]))]
        return [Sample(item["metric"], _number(item["value"][1])) for item in data["result"]]

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[Series]:
        """Every series of a range query, in Prometheus' order."""
        data = self._get("/api/v1/query_range",
                         {"query": expr, "start": start, "end": end, "step": step_s})
        return [Series(dict(item["metric"]), [(float(t), _number(v)) for t, v in item["values"]])
                for item in data["result"]]

    def alerts(self) -> list[Alert]:
        """Pending and firing alerts, firing first."""
        data = self._get("/api/v1/alerts", {})
        out = [Alert(a["labels"].get("alertname", "?"), a.get("state", "?"),
                     a["labels"].get("severity", ""), a.get("annotations", {}).get("summary", ""),
                     a.get("activeAt", ""))
               for a in data.get("alerts", [])]
        return sorted(out, key=lambda a: (a.state != "firing", a.name))

    def _get(self, path: str, params: dict[str, Any]) -> dict[str, Any]:
        try:
            response = self._client.get(path, params=params)
        except httpx.HTTPError as exc:
            raise SourceUnavailable(f"Prometheus at {self.shown_url}", str(exc) or
                                    type(exc).__name__) from exc
        try:
            body = response.json()
        except ValueError as exc:
            raise SourceUnavailable(f"Prometheus at {self.shown_url}",
                                    f"HTTP {response.status_code}, not JSON") from exc
        if body.get("status") != "success":
            raise ValueError(f"query failed: {body.get('error', response.status_code)}")
        return dict(body["data"])

    def close(self) -> None:
        self._client.close()


def shown(url: str) -> str:
    """A URL as the page may show it: without user and password.

    >>> shown("https://ops:s3cret@prom.example:9090/api")
    'https://prom.example:9090/api'
    """
    parts = urlsplit(url)
    if parts.username is None and parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = host if parts.port is None else f"{host}:{parts.port}"
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


def _number(text: str) -> float | None:
    value = float(text)
    return None if math.isnan(value) or math.isinf(value) else value
