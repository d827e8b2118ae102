"""Sentinel's monitoring dashboard (Streamlit): live numbers from Prometheus, history and
distributions from the Kafka topics. Only layout lives here; the reads are in
:mod:`stream_app.monitoring` and :mod:`stream_app.topic_samples`.

Run: ``sentinel dashboard --port 8501`` or
``streamlit run stream_app/dashboard.py -- --prometheus http://127.0.0.1:9090 --kafka host:9092``.
The page's query parameters ``?prometheus=...&kafka=...&prefix=...`` override the arguments.
Kafka and the topic names otherwise come from the settings (SENTINEL_KAFKA__BOOTSTRAP_SERVERS,
SENTINEL_TOPICS__PREFIX).
"""

from __future__ import annotations

import argparse
import sys
import time
from dataclasses import dataclass
from typing import Any

import streamlit as st

from schemas import DriftAlert, ModelEvent, Transaction, Verdict
from sentinel.settings import Settings
from stream_app.monitoring import (
    Overview,
    PrometheusAPI,
    SourceUnavailable,
    read_history,
    read_overview,
)
from stream_app.topic_samples import (
    Comparison,
    compare,
    decode_all,
    drift_history,
    promotion_history,
    read_topic,
)

DEFAULT_PROMETHEUS = "http://127.0.0.1:9090"


@dataclass(frozen=True)
class Sources:
    prometheus: str
    kafka: dict[str, Any]
    topics: dict[str, str]
    sample: int


def _sources() -> Sources:
    parser = argparse.ArgumentParser(prog="dashboard")
    parser.add_argument("--prometheus", default=DEFAULT_PROMETHEUS)
    parser.add_argument("--kafka", default=None, help="bootstrap servers (default: settings)")
    parser.add_argument("--prefix", default=None, help="topic prefix (default: settings)")
    parser.add_argument("--sample", type=int, default=2000, help="messages per partition")
    args, _ = parser.parse_known_args(sys.argv[1:])
    params = st.query_params
    settings = Settings()
    topics = settings.topics
    prefix = params.get("prefix", args.prefix)
    if prefix is not None:
        topics = topics.model_copy(update={"prefix": prefix})
    kafka = settings.librdkafka()
    kafka["bootstrap.servers"] = params.get("kafka", args.kafka) or kafka["bootstrap.servers"]
    names = {logical: topics.name(logical)
             for logical in ("transactions", "verdicts", "drift_alerts", "model_events")}
    return Sources(params.get("prometheus", args.prometheus), kafka, names, args.sample)


@st.cache_data(ttl=5, show_spinner=False)
def _overview(url: str) -> tuple[Overview | None, dict[str, list[tuple[float, float | None]]], str]:
    api = PrometheusAPI(url)
    try:
        return read_overview(api), read_history(api, time.time()), ""
    except SourceUnavailable as exc:
        return None, {}, str(exc)
    finally:
        api.close()


@st.cache_data(ttl=15, show_spinner=False)
def _topic(conf: dict[str, Any], topic: str, count: int, from_end: bool) -> tuple[list[bytes], str]:
    try:
        return read_topic(conf, topic, count, from_end=from_end, timeout_s=4.0), ""
    except SourceUnavailable as exc:
        return [], str(exc)


def _fmt(value: float | None, unit: str = "", scale: float = 1.0, digits: int = 2) -> str:
    return "no data" if value is None else f"{value * scale:,.{digits}f}{unit}"


def _headline(view: Overview) -> None:
    cols = st.columns(4)
    cols[0].metric("Fraud rate", _fmt(view.get("fraud_rate"), " %", 100, 3))
    cols[1].metric("Throughput", _fmt(view.get("throughput"), " tx/s", digits=1))
    cols[2].metric("Shadow agreement", _fmt(view.get("shadow_agreement"), " %", 100, 1))
    cols[3].metric("Dead letters", _fmt(view.get("dead_letter_ratio"), " %", 100, 2))
    cols = st.columns(4)
    cols[0].metric("Latency p50", _fmt(view.get("latency_p50"), " ms", 1000, 1))
    cols[1].metric("Latency p95", _fmt(view.get("latency_p95"), " ms", 1000, 1))
    cols[2].metric("Latency p99 (objective 50 ms)", _fmt(view.get("latency_p99"), " ms", 1000, 1))
    cols[3].metric("Scoring p99", _fmt(view.get("scoring_p99"), " ms", 1000, 2))
    ready, total = view.get("workers_ready"), view.get("workers_total")
    registry = view.get("registry_up")
    cols = st.columns(4)
    workers = "no data" if total is None else f"{ready or 0:.0f} / {total:.0f}"
    workers = "no data" if total is None else f"{ready or 0:.0f} / {total:.0f}"
    cols[0].metric("Workers ready", workers)
    cols[1].metric("Registry", "no data" if registry is None else
                   ("reachable" if registry >= 1 else "UNREACHABLE"))


def _prometheus_section(src: Sources) -> None:
    view, history, error = _overview(src.prometheus)
    if view is None:
        st.error(f"Live metrics unavailable. {error}. Start Prometheus or pass "
                 "?prometheus=http://host:9090.")
        return
    _headline(view)
    for problem in view.problems:
        st.warning(f"Query failed: {problem}")
    st.subheader("Models serving")
    if view.models:
        st.table([{"role": m.role, "model": m.model_name, "version": m.model_version,
                   "workers": m.instances} for m in view.models])
    else:
        st.info("No worker reports a loaded model (sentinel_model_info).")
    decisions = {s.labels.get("decision", "?"): s.value for s in view.groups["decisions"]}
    if decisions:
        st.subheader("Verdicts per second by decision")
        st.table([{"decision": k, "per second": round(v or 0.0, 3)} for k, v in decisions.items()])
    counters = [("Drift alerts raised", "drift_alerts", ("detector", "signal")),
                ("Promotions (retrainer)", "promotions", ("action",)),
                ("Dead letters by reason", "dead_letters", ("reason",))]
    cols = st.columns(3)
    for col, (title, key, labels) in zip(cols, counters, strict=True):
        col.markdown(f"**{title}**")
        rows = [{**{k: s.labels.get(k, "") for k in labels}, "total": int(s.value or 0)}
                for s in view.groups[key]]
        if rows:
            col.table(rows)
        else:
            col.caption("none")
    _trend(history)


def _trend(history: dict[str, list[tuple[float, float | None]]]) -> None:
    import pandas as pd

    st.subheader("Last 30 minutes")
    for name, points in history.items():
        if points:
            st.caption(name)
            frame = pd.DataFrame(points, columns=["time", name])
            frame["time"] = pd.to_datetime(frame["time"], unit="s")
            st.line_chart(frame.set_index("time"), height=180)
        else:
            st.caption(f"{name}: no data yet")


def _kafka_section(src: Sources) -> None:
    events_raw, error = _topic(src.kafka, src.topics["model_events"], 200, True)
    if error:
        st.error(f"Topics unavailable. {error}. Promotion history, drift alerts and "
                 "distributions need the Kafka cluster.")
        return
    events, _ = decode_all(ModelEvent, events_raw)
    st.subheader("Promotion history (model-events topic)")
    if events:
        st.table(promotion_history(events)[:20])
    else:
        st.caption("no model events yet")
    alerts_raw, _ = _topic(src.kafka, src.topics["drift_alerts"], 200, True)
    alerts, _ = decode_all(DriftAlert, alerts_raw)
    st.subheader("Drift alerts (drift-alerts topic)")
    if alerts:
        st.table(drift_history(alerts)[:20])
    else:
        st.caption("no drift alerts")
    st.subheader("Reference (oldest retained) vs live (newest)")
    cols = st.columns(2)
    amount = _distribution(src, "transactions", Transaction, "amount", log=True)
    score = _distribution(src, "verdicts", Verdict, "score", log=False)
    for col, title, comparison in ((cols[0], "Amount", amount), (cols[1], "Score", score)):
        col.markdown(f"**{title}**")
        if comparison is None:
            col.caption("no messages yet")
            continue
        col.caption(f"PSI {comparison.psi:.3f} (above 0.2: shifted) · reference "
                    f"{comparison.n_reference} · live {comparison.n_live} messages")
        col.bar_chart(comparison.rows(), x="bin", y=["reference", "live"], stack=False,
                      height=220)


def _distribution(src: Sources, logical: str, event_type: type[Transaction] | type[Verdict],
                  attr: str, log: bool) -> Comparison | None:
    topic = src.topics[logical]
    oldest, _ = _topic(src.kafka, topic, src.sample, False)
    newest, _ = _topic(src.kafka, topic, src.sample, True)
    ref, _ = decode_all(event_type, oldest)
    live, _ = decode_all(event_type, newest)
    return compare([getattr(e, attr) for e in ref], [getattr(e, attr) for e in live], log=log)


def main() -> None:
    st.set_page_config(page_title="Sentinel monitor", layout="wide")
    src = _sources()
    st.title("Sentinel: fraud scoring monitor")
    st.caption(f"Prometheus {src.prometheus} · Kafka {src.kafka['bootstrap.servers']} · "
               f"read at {time.strftime('%H:%M:%S')}")
    if st.button("Refresh"):
        st.cache_data.clear()
    _prometheus_section(src)
    _kafka_section(src)


main()
