"""Stream/offline parity on the real worker with fraud reports: per-label arrival times.

60,000+ simulated payments whose fraud labels arrive as card-holders' reports (the
``reports`` arrival: 30 % within a day, 30 % in 1-3 days, 40 % in 3-14 days; genuine labels
after 7 days). The worker runs in the per-label mode (``SENTINEL_FEATURES__LABEL_DELAY_DAYS=0``:
no global shift, each label counted from its own ``reported_at``). A backlog is produced before
the worker starts with its labels *ahead* of its transactions (the labels topic first), so many
labels are read before their payment; every fifth fraud travels as a complete ``FraudReport``
instead of a ``LabelFeedback``. Every transaction must get exactly one committed verdict whose
feature row equals ``features.offline.compute_features`` with ``label_delay_days=0``.
"""

from __future__ import annotations

import base64
import collections
import json
import random
import signal
import uuid
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from features import FeatureConfig
from features.offline import compute_features
from features.reports import resolve_reports
from schemas import DeadLetter, FraudReport, decode
from sentinel.infra.worker_process import free_port
from sentinel.settings import Settings
from tests.e2e.test_stream_parity import _Feed
from tests.e2e.worker_support import (
    http,
    log_tail,
    start_worker,
    stop_worker,
    wait_ready,
    worker_env,
)
from tests.plugin import TopicCollector
from training.producer import label_event, transaction_event
from training.simulation import SimulationConfig, simulate
from training.simulation.arrival import REPORTS
from training.simulation.reports import fraud_reports, labels_with_reports
from training.stream_order import label_frame, stream_order

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

CONFIG = FeatureConfig(label_delay_days=0)


def _report(row: Any, i: int) -> bytes:
    event = label_event(row)
    return FraudReport(report_id=f"r{i}", card_id=event.card_id,
                       transaction_id=event.transaction_id, terminal_id=event.terminal_id,
                       transaction_time=event.transaction_time,
                       reported_at=event.reported_at).model_dump_json().encode()


def test_verdicts_equal_offline_features_with_reported_labels_ahead_of_payments(
    worker_settings: Callable[..., tuple[Settings, Any]], tmp_path: Path
) -> None:
    settings, _ = worker_settings(champion="1", candidate=None)
    frame = simulate(SimulationConfig(n_customers=700, n_terminals=1400, n_days=45, seed=23,
                                      arrival=REPORTS))
    assert len(frame) >= 60_000
    labels = label_frame(frame)
    last_time = frame["event_time"].max()
    items = [(k, r) for k, r in stream_order(frame, labels)
             if k == "transaction" or r.label_time <= last_time]
    sent_labels = labels[labels["label_time"] <= last_time]
    feed = _Feed(settings, settings.topics.partitions)
    reports = 0

    def produce(part: list[tuple[str, Any]]) -> None:
        nonlocal reports
        for kind, row in part:
            if kind == "transaction":
                event = transaction_event(row)
                feed.transaction(event.card_id, event.model_dump_json().encode())
            elif row.is_fraud and zlib.crc32(row.transaction_id.encode()) % 5 == 0:
                reports += 1
                feed.label(row.card_id, _report(row, reports))
            else:
                feed.label(row.card_id, label_event(row).model_dump_json().encode())
        feed.flush()

    cut = len(items) // 2
    backlog = items[:cut]
    # the backlog's labels first: read before the payments they label
    produce([x for x in backlog if x[0] == "label"] + [x for x in backlog if x[0] != "label"])
    app_id = f"reports-{uuid.uuid4().hex[:8]}"
    env = worker_env(settings, free_port(), app_id)
    env["SENTINEL_SCORING__VERDICT_FEATURES"] = "true"
    env["SENTINEL_FEATURES__LABEL_DELAY_DAYS"] = "0"
    port = int(env["SENTINEL_WORKER__WEB_PORT"])
    log = tmp_path / f"{app_id}.log"
    proc = start_worker(env, log)
    verdicts = TopicCollector(settings, "verdicts", None, proc)
    n_tx = len(frame)
    try:
        wait_ready(port, proc, timeout_s=180)
        produce(items[cut:])
        verdicts.until(lambda got: len(got) >= n_tx, 900)
        verdicts.drain()
        assert proc.poll() is None, "the worker exited"
    except (TimeoutError, AssertionError, RuntimeError) as exc:
        raise AssertionError(f"{exc}\n{log_tail(tmp_path)}") from exc
    finally:
        stop_worker(proc, signal.SIGTERM)
        verdicts.close()
    assert reports > 20

    seen: collections.Counter[str] = collections.Counter()
    rows: dict[str, list[float]] = {}
    for raw in verdicts.items:
        v = json.loads(raw)
        seen[v["transaction_id"]] += 1
        rows[v["transaction_id"]] = v["features"]
    assert set(seen) == set(frame["transaction_id"].astype(str))
    assert max(seen.values()) == 1

    offline = compute_features(frame, sent_labels, CONFIG).set_index("transaction_id")
    online = pd.DataFrame.from_dict(rows, orient="index", columns=list(CONFIG.names))
    online = online.loc[offline.index.astype(str)]
    diff = ~np.isclose(online.to_numpy(), offline.to_numpy(), atol=1e-9, rtol=0)
    bad = np.flatnonzero(diff.any(axis=1))
    assert not len(bad), (
        f"{len(bad)} of {len(offline)} rows differ; first {offline.index[bad[0]]}: "
        f"stream {online.iloc[bad[0]].to_dict()} offline {offline.iloc[bad[0]].to_dict()}")
    # the mode matters: the book's shifted windows would give other rows
    shifted = compute_features(frame, sent_labels, FeatureConfig()).set_index("transaction_id")
    assert not np.allclose(shifted.to_numpy(), offline.to_numpy())


def _report_event(row: Any) -> bytes:
    """A ``FraudReport`` from a ``training.simulation.reports`` row (its non-empty fields)."""
    fields = {k: v for k, v in row._asdict().items() if v is not None and not pd.isna(v)}
    for k in ("reported_at", "start", "end", "transaction_time"):
        if k in fields:
            fields[k] = pd.Timestamp(fields[k]).to_pydatetime()
    return FraudReport(**fields).model_dump_json().encode()


def test_reports_by_range_and_id_resolve_in_the_stream_under_backlog_poison_and_kill(
    worker_settings: Callable[..., tuple[Settings, Any]], tmp_path: Path
) -> None:
    """Card-holders report frauds by a card's time range or by transaction id alone (on the
    labels topic, and a few through ``POST /reports``), interleaved with payments and
    chargeback labels. Half the stream is a backlog produced before the worker starts, its
    labels and reports first, so most reports are read before their card's payments; the
    worker is killed (SIGKILL) mid-stream and restarted. Reports naming payments their card
    never had are dead-lettered ``report_unresolved``, a poison report ``invalid_json`` /
    ``schema``. Every transaction gets exactly one verdict whose feature row equals the
    offline features with the labels ``features.reports.resolve_reports`` gives."""
    settings, _ = worker_settings(champion="1", candidate=None)
    frame = simulate(SimulationConfig(n_customers=300, n_terminals=600, n_days=30, seed=31,
                                      arrival=REPORTS))
    rng = random.Random(31)
    labels, reports = fraud_reports(frame, label_frame(frame), range_share=0.4, id_share=0.4,
                                    seed=31)
    # reports of payments the card never had: unresolved once the card is read past them
    ghosts = []
    busy = frame["card_id"].value_counts()
    for i, card in enumerate(rng.sample(sorted(busy[busy >= 10].index), 3)):
        times = frame.loc[frame["card_id"] == card, "event_time"].sort_values()
        ghosts.append({"report_id": f"ghost-{i}", "card_id": card,
                       "transaction_id": f"ghost-{i}",
                       "reported_at": times.iloc[len(times) // 2] + pd.Timedelta(minutes=1)})
    reports = pd.concat([reports, pd.DataFrame(ghosts)], ignore_index=True)
    last = frame["event_time"].max()
    labels = labels[labels["label_time"] <= last]
    reports = reports[reports["reported_at"] <= last].reset_index(drop=True)
    assert (reports["report_id"].str.startswith("range").sum() > 20
            and reports["report_id"].str.startswith("id").sum() > 20)

    # one stream in event-time order; at equal times labels and reports come first
    items: list[tuple[int, int, str, Any]] = []
    for row in frame.itertuples(index=False):
        items.append((pd.Timestamp(row.event_time).value, 1, "transaction", row))
    for row in labels.itertuples(index=False):
        items.append((pd.Timestamp(row.label_time).value, 0, "label", row))
    for row in reports.itertuples(index=False):
        items.append((pd.Timestamp(row.reported_at).value, 0, "report", row))
    items.sort(key=lambda x: (x[0], x[1]))
    feed = _Feed(settings, settings.topics.partitions)
    poison = [b'{"report_id": "poison-1", "card_id": ', json.dumps({
        "report_id": "poison-2", "card_id": "c00001", "start": "2018-04-03T00:00:00Z",
        "end": "2018-04-02T00:00:00Z", "reported_at": "2018-04-04T00:00:00Z"}).encode()]

    def send(kind: str, row: Any) -> None:
        if kind == "transaction":
            event = transaction_event(row)
            feed.transaction(event.card_id, event.model_dump_json().encode())
        elif kind == "label":
            feed.label(row.card_id, label_event(row).model_dump_json().encode())
        else:
            feed.label(row.card_id, _report_event(row))

    cut = len(items) // 2
    backlog = [x for x in items[:cut] if x[2] != "transaction"] + [
        x for x in items[:cut] if x[2] == "transaction"]
    for _, _, kind, row in backlog:
        send(kind, row)
    feed.raw(feed.label_topic, b"poison", poison[0])
    feed.flush()
    early = sum(1 for _, _, kind, _ in items[:cut] if kind == "report")
    assert early > 20  # reports produced ahead of the payments they name

    app_id = f"reports-intake-{uuid.uuid4().hex[:8]}"
    env = worker_env(settings, free_port(), app_id)
    env["SENTINEL_SCORING__VERDICT_FEATURES"] = "true"
    env["SENTINEL_FEATURES__LABEL_DELAY_DAYS"] = "0"
    port = int(env["SENTINEL_WORKER__WEB_PORT"])
    proc = start_worker(env, tmp_path / f"{app_id}.log")
    verdicts = TopicCollector(settings, "verdicts", None, proc)
    letters = TopicCollector(settings, "dead_letters", None, proc)
    n_tx = len(frame)
    middle = cut + (len(items) - cut) // 2
    live = items[cut:middle]
    by_http = set(rng.sample([i for i, x in enumerate(live) if x[2] == "report"], 4))
    try:
        wait_ready(port, proc, timeout_s=180)
        for i, (_, _, kind, row) in enumerate(live):
            if i in by_http:  # through the worker's HTTP API, in its place in the stream
                feed.flush()
                body = json.loads(_report_event(row))
                status, answer = http(port, "/reports", body)
                assert (status, answer) == (202, {"report_id": row.report_id,
                                                  "accepted": True}), answer
            else:
                send(kind, row)
        feed.raw(feed.label_topic, b"poison", poison[1])
        feed.flush()
        kill_at = rng.randrange(n_tx // 4, n_tx // 2)
        verdicts.until(lambda got: len(got) >= kill_at, 300)
        stop_worker(proc, signal.SIGKILL)
        for _, _, kind, row in items[middle:]:
            send(kind, row)
        feed.flush()
        proc = verdicts.proc = letters.proc = start_worker(env, tmp_path / f"{app_id}.log")
        verdicts.until(lambda got: len(got) >= n_tx, 600)
        letters.until(lambda got: len(got) >= len(ghosts) + len(poison), 120)
        verdicts.drain()
        letters.drain()
        assert proc.poll() is None, "the worker exited"
    except (TimeoutError, AssertionError, RuntimeError) as exc:
        raise AssertionError(f"{exc}\n{log_tail(tmp_path)}") from exc
    finally:
        stop_worker(proc, signal.SIGTERM)
        verdicts.close()
        letters.close()

    seen: collections.Counter[str] = collections.Counter()
    rows: dict[str, list[float]] = {}
    for raw in verdicts.items:
        v = json.loads(raw)
        seen[v["transaction_id"]] += 1
        rows[v["transaction_id"]] = v["features"]
    assert set(seen) == set(frame["transaction_id"].astype(str))
    assert max(seen.values()) == 1, f"{sum(c - 1 for c in seen.values())} duplicates"

    resolved, unresolved = resolve_reports(frame, reports)
    assert unresolved == [g["report_id"] for g in ghosts]
    offline = compute_features(frame, labels_with_reports(frame, labels, reports), CONFIG
                               ).set_index("transaction_id")
    online = pd.DataFrame.from_dict(rows, orient="index", columns=list(CONFIG.names))
    online = online.loc[offline.index.astype(str)]
    diff = ~np.isclose(online.to_numpy(), offline.to_numpy(), atol=1e-9, rtol=0)
    bad = np.flatnonzero(diff.any(axis=1))
    assert not len(bad), (
        f"{len(bad)} of {len(offline)} rows differ; first {offline.index[bad[0]]}: "
        f"stream {online.iloc[bad[0]].to_dict()} offline {offline.iloc[bad[0]].to_dict()}")
    # the reports matter: without their labels the rows differ
    without = compute_features(frame, labels, CONFIG).set_index("transaction_id")
    assert not np.allclose(without.to_numpy(), offline.to_numpy())
    assert len(resolved) > len(reports)  # ranges name several payments

    dead = [decode(DeadLetter, v) for v in letters.items]
    assert collections.Counter(d.reason for d in dead) == {
        "report_unresolved": len(ghosts), "invalid_json": 1, "schema": 1}
    ghost_ids = {json.loads(base64.b64decode(d.original_base64))["report_id"]
                 for d in dead if d.reason == "report_unresolved"}
    assert ghost_ids == {g["report_id"] for g in ghosts}
