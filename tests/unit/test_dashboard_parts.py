"""The dashboard's pure parts: objectives agree with alerts.yml, range queries become chart
rows, drift bins keep their numeric order, the timeline is newest first with run links."""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml

from dashboard import objectives
from dashboard.drift_panel import compare
from dashboard.errors import SourceUnavailable
from dashboard.headline import TILES
from dashboard.prometheus import PrometheusAPI
from dashboard.series import CHARTS, WINDOWS, read_charts
from dashboard.timeline import timeline
from drift.reference_profile import Distribution
from schemas import DriftAlert, ModelEvent

ALERTS = Path(__file__).resolve().parents[2] / "deploy" / "prometheus" / "alerts.yml"


def _rules() -> dict[str, str]:
    groups = yaml.safe_load(ALERTS.read_text())["groups"]
    return {r["alert"]: " ".join(str(r["expr"]).split()) for g in groups for r in g["rules"]}


@pytest.mark.parametrize("objective", objectives.ALL, ids=lambda o: o.alert)
def test_each_objective_is_the_threshold_of_its_alert_rule(
    objective: objectives.Objective,
) -> None:
    expr = _rules()[objective.alert]
    assert re.search(re.escape(objective.rule) + r"(\s|$)", expr), (objective.rule, expr)


def test_tiles_with_an_objective_query_what_the_alert_watches() -> None:
    rules = _rules()
    for tile in TILES:
        if tile.objective is not None and tile.key != "latency_p50":
            metric = re.findall(r"sentinel_\w+", tile.expr)[0]
            assert metric in rules[tile.objective.alert], (tile.key, metric)


def _prometheus(handler: Any) -> PrometheusAPI:
    return PrometheusAPI("http://prom.test", transport=httpx.MockTransport(handler))


def _matrix(*series: tuple[dict[str, str], list[tuple[float, str]]]) -> dict[str, Any]:
    return {"status": "success", "data": {"resultType": "matrix", "result": [
        {"metric": labels, "values": values} for labels, values in series]}}


def test_range_queries_become_rows_per_named_series() -> None:
    seen: list[dict[str, str]] = []

    def handler(request: httpx.Request) -> httpx.Response:
        params = dict(request.url.params)
        seen.append(params)
        if "sentinel_verdicts_total[1m]))" in params["query"] and "decision" in params["query"]:
            return httpx.Response(200, json=_matrix(
                ({"decision": "approve"}, [(100.0, "3"), (103.0, "4")]),
                ({"decision": "decline"}, [(100.0, "NaN"), (103.0, "0.5")])))
        if "sentinel_consumer_lag" in params["query"]:
            return httpx.Response(400, json={"status": "error", "error": "bad query"})
        return httpx.Response(200, json=_matrix())

    data = {d.chart.key: d for d in read_charts(_prometheus(handler), WINDOWS["15 min"], 1000.0)}
    assert data["verdicts"].rows == [(100.0, "approve", 3.0), (103.0, "approve", 4.0),
                                     (103.0, "decline", 0.5)]  # NaN is a gap, not a zero
    assert data["throughput"].rows == [] and data["throughput"].error == ""  # no data
    assert "bad query" in data["lag"].error
    assert {p["step"] for p in seen} == {"3.0"}
    assert {p["start"] for p in seen} == {str(1000.0 - 900)}
    assert all("$rate" not in p["query"] for p in seen)
    assert len(data) == len(CHARTS)


def test_unreachable_prometheus_is_one_clear_error() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused")

    with pytest.raises(SourceUnavailable, match=r"Prometheus at http://prom.test unavailable"):
        read_charts(_prometheus(handler), WINDOWS["1 h"], 1000.0)


def test_firing_alerts_come_first() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/alerts"
        return httpx.Response(200, json={"status": "success", "data": {"alerts": [
            {"labels": {"alertname": "B", "severity": "ticket"}, "state": "pending",
             "annotations": {"summary": "b"}, "activeAt": "x"},
            {"labels": {"alertname": "A", "severity": "page"}, "state": "firing",
             "annotations": {"summary": "a"}, "activeAt": "y"}]}})

    alerts = _prometheus(handler).alerts()
    assert [(a.name, a.state, a.severity) for a in alerts] == [("A", "firing", "page"),
                                                               ("B", "pending", "ticket")]


def test_drift_bins_are_in_numeric_order_and_psi_flags_a_shift() -> None:
    import numpy as np

    rng = np.random.default_rng(3)
    reference = Distribution.from_values(rng.lognormal(3.5, 1.0, 5000), bins=10)
    same = compare("amount", reference, list(rng.lognormal(3.5, 1.0, 3000)), 0.2)
    shifted = compare("amount", reference, list(3 * rng.lognormal(3.5, 1.0, 3000)), 0.2)
    lows = [row["low"] for row in same.rows()]
    assert lows == sorted(lows) and len(lows) == 10
    assert [row["order"] for row in same.rows()] == list(range(10))
    # a label sort would put "103 to 118" before "29 to 44": labels follow the numbers
    assert [row["bin"] for row in same.rows()] != sorted(str(r["bin"]) for r in same.rows())
    assert same.psi < 0.05 and same.status == "ok"
    assert shifted.psi > 0.2 and shifted.status == "breach"
    empty = compare("amount", reference, [], 0.2)
    assert math.isnan(empty.psi) and empty.status == "nodata" and empty.n_live == 0


def test_timeline_is_newest_first_with_run_links() -> None:
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    events = [ModelEvent(event_id=str(i), model_name="m", action=action, version=v,
                         previous_version=prev, reason="r", at=t0 + timedelta(minutes=i))
              for i, (action, v, prev) in enumerate([("registered", "1", None),
                                                     ("promoted", "1", None),
                                                     ("rolled_back", "1", "2")])]
    alert = DriftAlert(alert_id="a", detector="adwin", signal="score", statistic=3.0,
                       model_version="1", event_time=t0, detected_at=t0 + timedelta(minutes=1,
                                                                                   seconds=30),
                       events_seen=10)
    markers = timeline(events, [alert], {"1": "http://ui/#/experiments/0/runs/r1"})
    assert [m.kind for m in markers] == ["rollback", "drift alert", "promotion", "registration"]
    assert markers[0].detail == "from version 2 · r"
    assert all(m.run == "http://ui/#/experiments/0/runs/r1" for m in markers)
    assert markers[1].row()["detail"] == "adwin on score, statistic 3"


@pytest.mark.parametrize("module", ["dashboard.access", "dashboard.drift_panel",
                                    "dashboard.objectives", "dashboard.prometheus",
                                    "dashboard.series", "dashboard.timeline",
                                    "drift.reference_profile"])
def test_doctests(module: str) -> None:
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(module))
    assert result.attempted > 0 and result.failed == 0


def test_no_dashboard_module_shadows_a_top_level_package() -> None:
    # `streamlit run dashboard/app.py` puts dashboard/ first on sys.path, so a module there
    # named like a project package (say drift.py) hides that package from every import.
    root = Path(__file__).resolve().parents[2]
    top = {p.name for p in root.iterdir() if (p / "__init__.py").exists()}
    top |= {p.stem for p in root.glob("*.py")}
    mine = {p.stem for p in (root / "dashboard").glob("*.py")}
    assert "drift" in top and "schemas" in top
    assert not mine & top, f"dashboard modules shadow packages: {sorted(mine & top)}"


def test_no_credential_of_a_url_reaches_the_page() -> None:
    from dashboard.champion import ui_base
    from sentinel.settings import MlflowSettings, Settings

    settings = Settings(mlflow=MlflowSettings(tracking_uri="https://ops:s3cret@mlflow.example/"))
    assert ui_base(settings) == "https://mlflow.example/"

    def handler(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    api = PrometheusAPI("http://u:s3cret@prom.test:9090", transport=httpx.MockTransport(handler))
    with pytest.raises(SourceUnavailable) as info:
        api.alerts()
    assert "s3cret" not in str(info.value)
    assert "Prometheus at http://prom.test:9090 unavailable" in str(info.value)
