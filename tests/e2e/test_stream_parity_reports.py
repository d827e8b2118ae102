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

import collections
import json
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
from schemas import FraudReport
from sentinel.settings import Settings
from tests.conftest import free_port
from tests.e2e.test_stream_parity import _Feed, _Reader
from tests.e2e.worker_support import log_tail, start_worker, stop_worker, wait_ready, worker_env
from training.producer import label_event, transaction_event
from training.simulation import SimulationConfig, simulate
from training.simulation.arrival import REPORTS
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
    verdicts = _Reader(settings, settings.topics.name("verdicts"))
    n_tx = len(frame)
    try:
        wait_ready(port, proc, timeout_s=180)
        produce(items[cut:])
        verdicts.until(lambda: len(verdicts.values) >= n_tx, lambda: proc.poll() is None, 900)
        verdicts.drain(2.0)
        assert proc.poll() is None, "the worker exited"
    except (TimeoutError, AssertionError) as exc:
        raise AssertionError(f"{exc}\n{log_tail(tmp_path)}") from exc
    finally:
        stop_worker(proc, signal.SIGTERM)
        verdicts.close()
    assert reports > 20

    seen: collections.Counter[str] = collections.Counter()
    rows: dict[str, list[float]] = {}
    for raw in verdicts.values:
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
