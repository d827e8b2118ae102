"""Sentinel's monitoring dashboard (Streamlit). Layout only; the reads are in
:mod:`dashboard.headline`, :mod:`dashboard.series`, :mod:`dashboard.topics` and
:mod:`dashboard.champion`, the logic in :mod:`dashboard.drift_panel` and :mod:`dashboard.timeline`.

Run: ``sentinel dashboard``. Every source comes from the settings (``SENTINEL_DASHBOARD__*``,
``SENTINEL_KAFKA__*``, ``SENTINEL_TOPICS__PREFIX``, ``SENTINEL_MLFLOW__*``); the page's URL
changes none of them.
"""

from __future__ import annotations

import html
import math
import os
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import streamlit as st

from dashboard import charts
from dashboard.access import require_password
from dashboard.champion import Champion, read_champion
from dashboard.drift_panel import Drift, compare
from dashboard.errors import SourceUnavailable
from dashboard.headline import Headline, read_headline
from dashboard.objectives import REGISTRY_UP, WORKERS_READY
from dashboard.prometheus import PrometheusAPI, shown
from dashboard.series import WINDOWS, ChartData, Window, read_charts
from dashboard.timeline import Marker, timeline
from dashboard.topics import decode_all, read_topic, read_window
from schemas import DriftAlert, ModelEvent, Transaction, Verdict
from sentinel.settings import Settings

COLOURS = {"ok": ("#2ca02c", "#eaf6ea"), "breach": ("#d62728", "#fdecea"),
           "nodata": ("#9e9e9e", "#f4f4f4")}
REFRESH = {"off": 0, "10 s": 10, "30 s": 30, "1 min": 60}


@st.cache_data(ttl=4, show_spinner=False)
def _prometheus(url: str, window: str, now: float) -> tuple[Headline | None, list[ChartData], str]:
    api = PrometheusAPI(url)
    try:
        return read_headline(api), read_charts(api, WINDOWS[window], now), ""
    except SourceUnavailable as exc:
        return None, [], str(exc)
    finally:
        api.close()


@st.cache_data(ttl=30, show_spinner=False)
def _champion(_settings: Settings, model_name: str, tracking_uri: str) -> Champion:
    """Cached per model and store (``_settings`` is not hashed: it holds secrets)."""
    return read_champion(_settings, Path(tempfile.gettempdir()) / "sentinel-dashboard-profiles")


@st.cache_data(ttl=10, show_spinner=False)
def _newest(conf: dict[str, Any], topic: str) -> tuple[list[bytes], str]:
    try:
        return read_topic(conf, topic, 200, from_end=True, timeout_s=4.0), ""
    except SourceUnavailable as exc:
        return [], str(exc)


@st.cache_data(ttl=10, show_spinner=False)
def _window(conf: dict[str, Any], topic: str, since_ms: int, count: int) -> tuple[list[bytes], str]:
    try:
        return read_window(conf, topic, since_ms, count, timeout_s=4.0), ""
    except SourceUnavailable as exc:
        return [], str(exc)


def _tile(title: str, value: str, status: str, note: str) -> str:
    edge, fill = COLOURS[status]
    return (f'<div class="sentinel-tile" data-status="{status}" style="border-left:6px solid '
            f'{edge};background:{fill};padding:8px 12px;border-radius:4px;margin-bottom:8px">'
            f'<div style="font-size:0.85rem;color:#444">{html.escape(title)}</div>'
            f'<div style="font-size:1.6rem;font-weight:600;color:{edge}">{html.escape(value)}'
            f'</div><div style="font-size:0.75rem;color:#666">{html.escape(note)}</div></div>')


def _status(view: Headline) -> None:
    st.subheader("Status at a glance")
    tiles = [(r.tile.title, r.text, r.status,
              r.tile.objective.text if r.tile.objective else "no objective")
             for r in view.readings]
    ready, total, low = (view.workers.get(k) for k in ("ready", "total", "min"))
    workers = "no data" if total is None else f"{ready or 0:.0f} / {total:.0f}"
    tiles.append(("Workers ready", workers, WORKERS_READY.status(low), WORKERS_READY.text))
    registry = view.registry_up
    tiles.append(("Registry", "no data" if registry is None else
                  ("reachable" if registry >= 1 else "UNREACHABLE"),
                  REGISTRY_UP.status(registry), REGISTRY_UP.text))
    for start in range(0, len(tiles), 5):
        for col, tile in zip(st.columns(5), tiles[start:start + 5], strict=False):
            col.markdown(_tile(*tile), unsafe_allow_html=True)
    firing = [a for a in view.alerts if a.state == "firing"]
    pending = [a for a in view.alerts if a.state != "firing"]
    if firing or pending:
        items = "".join(
            f'<li data-alert-state="{html.escape(a.state)}"><b>{html.escape(a.name)}</b> '
            f"({html.escape(a.state)}, {html.escape(a.severity)}): {html.escape(a.summary)}</li>"
            for a in firing + pending)
        st.markdown(f"**Alerts** ({len(firing)} firing, {len(pending)} pending)<ul>{items}</ul>",
                    unsafe_allow_html=True)
    else:
        st.markdown("**Alerts**: none firing")
    for problem in view.problems:
        st.warning(f"Query failed: {problem}")
    if view.models:
        st.table([{"role": m.role, "model": m.model_name, "version": m.model_version,
                   "workers": m.instances} for m in view.models])
    else:
        st.caption("No worker reports a loaded model (sentinel_model_info).")


def _series(data: list[ChartData], markers: list[Marker], window: Window, now: float) -> None:
    st.subheader(f"Last {window.label}")
    end = datetime.fromtimestamp(now, UTC)
    first = min((t for item in data for t, _, _ in item.rows), default=None)
    start = datetime.fromtimestamp(
        window.axis_start(now, first, [m.at.timestamp() for m in markers]), UTC)
    st.caption(f"{start:%H:%M:%S} to {end:%H:%M:%S} UTC, a point every {window.step_s:g} s; "
               "vertical lines mark the timeline's events")
    for pair in range(0, len(data), 2):
        for col, item in zip(st.columns(2), data[pair:pair + 2], strict=False):
            if not item.rows:
                col.markdown(f"**{item.chart.title}** ({item.chart.unit})")
                col.info(f"no data: {item.error}" if item.error else
                         "no data: no worker exports this metric in this window")
                continue
            col.altair_chart(charts.time_series(item, markers, start, end),
                             use_container_width=True)
            col.caption(f"{item.chart.title}: {len(item.rows)} points, "
                        f"{len(item.series)} series")


def _values(events: list[Any], name: str) -> list[float]:
    out = []
    for event in events:
        value = getattr(event, name, None)
        if value is None:
            value = (getattr(event, "attributes", None) or {}).get(name)
        if isinstance(value, int | float) and math.isfinite(value):
            out.append(float(value))
    return out


def _drift(settings: Settings, champion: Champion, window: Window, now: float) -> None:
    st.subheader(f"Drift: live {window.label} against the training reference")
    if champion.profile is None:
        st.info(f"No reference profile to compare with: {champion.problem}")
        return
    conf, threshold = settings.librdkafka(), settings.drift.psi_threshold
    since_ms = int((now - window.seconds) * 1000)
    decoded: dict[str, list[Any]] = {}
    for source, kind in (("transactions", Transaction), ("verdicts", Verdict)):
        raw, error = _window(conf, settings.topics.name(source), since_ms,
                             settings.dashboard.sample)
        if error:
            st.error(f"Topics unavailable. {error}")
            return
        decoded[source], _ = decode_all(kind, raw)
    st.caption(f"champion version {champion.version} · PSI above {threshold:g} means a "
               "significant shift · bins are the reference's quantiles, open at both ends")
    drifts = [compare(name, ref, _values(decoded[ref.source], name), threshold)
              for name, ref in champion.profile.variables.items()]
    for pair in range(0, len(drifts), 2):
        for col, drift in zip(st.columns(2), drifts[pair:pair + 2], strict=False):
            _drift_panel(col, drift)


def _drift_panel(col: Any, drift: Drift) -> None:
    text = "no live data" if drift.status == "nodata" else f"PSI {drift.psi:.3f}"
    verdict = {"ok": "stable", "breach": "shifted", "nodata": "no live data in the window"}
    col.markdown(_tile(f"{drift.variable}: live window vs training reference", text,
                       drift.status, f"threshold {drift.threshold:g} · {verdict[drift.status]} · "
                       f"reference {drift.n_reference:,} · live {drift.n_live:,}"),
                 unsafe_allow_html=True)
    col.altair_chart(charts.bins(drift, drift.variable), use_container_width=True)


def _timeline_table(markers: list[Marker]) -> None:
    st.subheader("Timeline: promotions, rollbacks, registrations, drift alerts")
    if not markers:
        st.caption("no model events or drift alerts yet")
        return
    head = "".join(f"<th>{html.escape(k)}</th>" for k in markers[0].row())
    rows = []
    for marker in markers[:50]:
        cells = []
        for key, value in marker.row().items():
            if key == "MLflow run" and value.startswith(("http://", "https://")):
                cells.append(f'<td><a href="{html.escape(value)}" target="_blank" '
                             f'rel="noopener">run of v{html.escape(marker.model_version)}</a></td>')
            else:
                cells.append(f"<td>{html.escape(value)}</td>")
        rows.append(f"<tr>{''.join(cells)}</tr>")
    st.markdown(f'<table class="sentinel-timeline"><thead><tr>{head}</tr></thead>'
                f"<tbody>{''.join(rows)}</tbody></table>", unsafe_allow_html=True)


def _events(settings: Settings) -> tuple[list[ModelEvent], list[DriftAlert], str]:
    conf = settings.librdkafka()
    raw_events, error = _newest(conf, settings.topics.name("model_events"))
    if error:  # the cluster is down: do not wait for the second topic's timeout too
        return [], [], error
    raw_alerts, error = _newest(conf, settings.topics.name("drift_alerts"))
    return decode_all(ModelEvent, raw_events)[0], decode_all(DriftAlert, raw_alerts)[0], error


def _live(settings: Settings, window: Window) -> None:
    now = time.time()
    view, data, error = _prometheus(settings.dashboard.prometheus_url, window.label,
                                    round(now))
    events, alerts, kafka_error = _events(settings)
    champion = (Champion(None, None) if kafka_error else
                _champion(settings, settings.mlflow.model_name, settings.tracking_uri))
    markers = timeline(events, alerts, champion.runs)
    st.caption(f"read at {datetime.fromtimestamp(now, UTC):%H:%M:%S} UTC")
    if view is None:
        st.error(f"Live metrics unavailable. {error}. Check SENTINEL_DASHBOARD__PROMETHEUS_URL.")
    else:
        _status(view)
        _series(data, markers, window, now)
    if kafka_error:
        st.error(f"Topics unavailable. {kafka_error}. The timeline and the drift charts need "
                 "the Kafka cluster.")
    else:
        _drift(settings, champion, window, now)
        _timeline_table(markers)
    st.caption(f"page drawn in {time.time() - now:.1f} s")


def main() -> None:
    st.set_page_config(page_title="Sentinel monitor", layout="wide")
    # an MLflow server that is down must not hold the page for minutes of retries
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "1")
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "5")
    settings = Settings()  # the entry point: built once per run of the page, from the environment
    require_password(settings.dashboard.password)
    st.title("Sentinel: fraud scoring monitor")
    st.caption(f"Prometheus {shown(settings.dashboard.prometheus_url)} · Kafka "
               f"{settings.bootstrap_servers} · topics prefix "
               f"'{settings.topics.prefix}' · model {settings.mlflow.model_name}")
    left, right = st.columns([3, 1])
    label = left.radio("Window", list(WINDOWS), horizontal=True, key="window")
    default = next((k for k, v in REFRESH.items() if v == settings.dashboard.refresh_s), "off")
    refresh = right.selectbox("Auto-refresh", list(REFRESH), index=list(REFRESH).index(default),
                              key="refresh")
    every = REFRESH[refresh] or None
    st.fragment(run_every=every)(_live)(settings, WINDOWS[label])


main()
