"""The closed loop end to end: a new fraud pattern in the traffic -> the worker (a process)
alerts on the drift-alerts topic -> the retrainer retrains -> @candidate in the registry -> the
worker shadow-scores it -> promotion on evidence -> verdicts carry the new version.

Small world (300 cards, 1-day label delay, card testing at intensity 10 from day 6) so that it
runs in a few minutes; the retrainer runs in-process (``retrainer_kafka.run`` in a thread, the
same code as ``sentinel retrainer``)."""

from __future__ import annotations

import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path

import pandas as pd
import pytest

from cli.demo_loop import produce
from lifecycle.retrainer_kafka import run as run_retrainer
from schemas import DriftAlert, ShadowResult, Transaction, Verdict
from sentinel.infra.kafka_io import EventProducer
from sentinel.infra.worker_process import free_port
from sentinel.settings import DriftSettings, FeatureSettings
from tests.e2e.worker_support import (
    start_worker,
    stop_worker,
    wait_ready,
    wait_serving,
    worker_env,
)
from tests.plugin import TopicCollector
from training.simulation import DriftScenario, SimulationConfig, simulate

pytestmark = [pytest.mark.e2e, pytest.mark.integration]
ONSET_DAY, PHASE1_DAYS, DAYS = 6, 12, 14
DRIFT_ENV = {
    "SENTINEL_FEATURES__LABEL_DELAY_DAYS": "1",
    "SENTINEL_DRIFT__GRACE_EVENTS": "500",
    "SENTINEL_DRIFT__MIN_BLOCK_EVENTS": "5",
    "SENTINEL_DRIFT__ALERT_COOLDOWN_EVENTS": "1000000",
}


def test_new_pattern_alert_retrain_shadow_promote(worker_settings, tmp_path: Path) -> None:
    settings, registry = worker_settings(champion="1", candidate=None)
    settings = settings.model_copy(update={
        "features": FeatureSettings(label_delay_days=1),
        "drift": DriftSettings(grace_events=500, min_block_events=5, retrainer_port=0,
                               alert_cooldown_events=1_000_000, retrain_min_labels=1500,
                               retrain_cooldown_s=30 * 86_400,  # one shift, one retrain
                               retrain_test_days=1, promotion_interval_s=2.0,
                               promotion_min_labels=300, promotion_min_frauds=10,
                               promotion_min_live=100)})
    frame = simulate(SimulationConfig(n_customers=300, n_terminals=600, n_days=DAYS, seed=1,
                                      label_delay_days=1,
                                      drift=DriftScenario("card_testing", ONSET_DAY, 10.0)))
    frame = frame.sort_values("event_time", kind="stable").reset_index(drop=True)
    day0 = frame["event_time"].min().normalize()
    cut = day0 + timedelta(days=PHASE1_DAYS)
    phase1, phase2 = frame[frame["event_time"] < cut], frame[frame["event_time"] >= cut]
    port = free_port()
    env = worker_env(settings, port, f"w-{uuid.uuid4().hex[:8]}") | DRIFT_ENV
    proc = start_worker(env, tmp_path / "worker.log")
    alerts = TopicCollector(settings, "drift_alerts", DriftAlert, proc)
    verdicts = TopicCollector(settings, "verdicts", Verdict, proc)
    shadows = TopicCollector(settings, "shadow", ShadowResult, proc)
    retrainer: list = []
    thread = threading.Thread(target=lambda: retrainer.append(
        run_retrainer(settings, max_seconds=200, serve_metrics=False)), daemon=True)
    started = time.monotonic()
    try:
        wait_ready(port, proc)
        produce(settings, phase1, phase1[phase1["label_time"] < cut].sort_values("label_time"))
        seen = alerts.until(lambda a: any(x.event_time >= day0 + timedelta(days=ONSET_DAY)
                                          for x in a), timeout_s=150)
        first = next(a for a in seen if a.event_time >= day0 + timedelta(days=ONSET_DAY))
        assert not [a for a in seen if a.event_time < day0 + timedelta(days=ONSET_DAY)]
        assert first.model_version == "1"
        thread.start()
        deadline = time.monotonic() + 150
        while (candidate := registry.resolve("candidate")) is None:
            assert time.monotonic() < deadline, "no candidate registered"
            assert thread.is_alive() or retrainer, "retrainer stopped"
            time.sleep(1)
        assert int(candidate.version) > 3
        wait_serving(port, candidate=candidate.version)  # the worker follows @candidate
        produce(settings, phase2, pd.concat([phase1[phase1["label_time"] >= cut], phase2])
                 .sort_values("label_time"))
        # the worker shadows the candidate (300 results, or fewer when the backfilled evidence
        # of lifecycle/backfill.py promoted it first)
        shadows.until(lambda s: sum(x.candidate_version == candidate.version for x in s) >= 300
                      or (registry.resolve("champion").version == candidate.version
                          and any(x.candidate_version == candidate.version for x in s)))
        deadline = time.monotonic() + 90
        while registry.resolve("champion").version != candidate.version:
            assert time.monotonic() < deadline, "candidate not promoted"
            time.sleep(1)
        tail = frame.iloc[-1]
        extra = Transaction(transaction_id="after-promotion", card_id=tail.card_id,
                            terminal_id=tail.terminal_id, amount=3.0,
                            event_time=tail.event_time + timedelta(minutes=5))
        wait_serving(port, champion=candidate.version)  # the promoted champion is serving
        with EventProducer(settings.librdkafka()) as producer:
            producer.send(settings.topics.name("transactions"), extra.card_id, extra)
        out = verdicts.until(lambda v: any(x.transaction_id == "after-promotion" for x in v))
        last = next(x for x in out if x.transaction_id == "after-promotion")
        assert last.model_version == candidate.version
        assert {x.model_version for x in out if x.transaction_id in set(
            phase1["transaction_id"][:100])} == {"1"}
        elapsed = time.monotonic() - started
        assert elapsed < 420, elapsed
    finally:
        stop_worker(proc)
        thread.join(timeout=210)
        for collector in (alerts, verdicts, shadows):
            collector.close()
    events = retrainer[0] if retrainer else None
    assert events is not None and events.retrains.get("registered") == 1, (
        events.retrains if events else None)
    assert events.promotions.get("promoted") == 1
