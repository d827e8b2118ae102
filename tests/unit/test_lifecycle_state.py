"""The retrainer's durable parts without a broker or registry: guardrail memory, the lifecycle
tables (transactions, alert ids, the event outbox), the lease, and URI redaction."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from lifecycle.guardrails import Guardrails
from lifecycle.leadership import Lease
from lifecycle.state_store import LifecycleStore, event_key
from schemas.events import DriftAlert, ModelEvent
from sentinel.settings import DriftSettings
from training.errors import RegistryUnavailableError, redact_uri

T0 = datetime(2024, 3, 1, tzinfo=UTC)


def _alert(alert_id: str) -> DriftAlert:
    return DriftAlert(alert_id=alert_id, detector="adwin", signal="score", statistic=1.0,
                      current={"blocks": 1.0}, event_time=T0, detected_at=T0, events_seen=1)


def _event(action: str = "promoted", version: str = "2") -> ModelEvent:
    return ModelEvent(event_id="x", model_name="m", action=action,  # type: ignore[arg-type]
                      alias="champion", version=version, previous_version="1", at=T0)


def test_guardrails_memory_round_trips() -> None:
    rails = Guardrails(DriftSettings(retrain_cooldown_s=600, retrain_min_labels=100))
    rails.decide("score", T0, labels_since_shift=5)  # held: pending
    rails.record_retrain(T0 + timedelta(minutes=1))
    rails.decide("amount", T0 + timedelta(minutes=2), labels_since_shift=5)
    again = Guardrails(DriftSettings(retrain_cooldown_s=600, retrain_min_labels=100))
    again.restore(rails.to_dict())
    assert again.to_dict() == rails.to_dict()
    assert again.decide("alert_rate", T0 + timedelta(minutes=3), 1000).reason == "cooldown"
    assert again.retrains_today(T0 + timedelta(hours=1)) == 1


def test_alert_ids_are_queued_once_and_judged_once(tmp_path: Path) -> None:
    store = LifecycleStore(tmp_path / "s.sqlite")
    assert store.enqueue_alerts([_alert("a"), _alert("b")]) == 2
    assert store.enqueue_alerts([_alert("a")]) == 0  # redelivered
    assert [a.alert_id for a in store.queued_alerts()] == ["a", "b"]
    with store.transaction():
        store.mark_alert(_alert("a"), "retrain")
    assert store.alert_done("a") and not store.alert_done("b")
    assert store.enqueue_alerts([_alert("a")]) == 0
    assert [a.alert_id for a in store.queued_alerts()] == ["b"]


def test_a_failed_transaction_leaves_nothing(tmp_path: Path) -> None:
    store = LifecycleStore(tmp_path / "s.sqlite")
    with pytest.raises(RuntimeError), store.transaction():
        store.save_state({"x": 1})
        store.add_job("retrain", {"now": T0.isoformat()})
        raise RuntimeError("crash")
    assert store.load_state() == {} and store.open_jobs() == []
    with store.transaction():
        job = store.add_job("retrain", {"now": T0.isoformat()})
    reopened = LifecycleStore(tmp_path / "s.sqlite")
    assert [j.job_id for j in reopened.open_jobs()] == [job.job_id]
    with reopened.transaction():
        reopened.finish_job(job, "registered")
    assert reopened.open_jobs() == [] and reopened.jobs()[0][:2] == ("retrain", "registered")


def test_the_outbox_keeps_one_event_per_change_with_a_stable_id(tmp_path: Path) -> None:
    store = LifecycleStore(tmp_path / "s.sqlite")
    first = store.add_event(_event())
    again = store.add_event(_event().model_copy(update={"event_id": "other"}))
    assert first.event_id == again.event_id != "x"
    store.add_event(_event(version="3"))
    assert [e.version for _, e in store.unsent_events()] == ["2", "3"]
    store.mark_sent(store.unsent_events()[0][0])
    assert [e.version for _, e in store.unsent_events()] == ["3"]
    assert store.has_event(_event()) and not store.has_event(_event(version="4"))
    assert event_key(_event("rolled_back")) != event_key(_event("promoted"))


def test_one_holder_leads_until_it_releases_or_its_lease_runs_out(tmp_path: Path) -> None:
    path = tmp_path / "s.sqlite"
    a, b = Lease(path, "r", ttl_s=60, holder="a"), Lease(path, "r", ttl_s=60, holder="b")
    assert a.acquire() and a.held()
    assert not b.acquire() and not b.held()
    assert b.holder_of() == "a"
    assert a.acquire() and a.term == 1  # a renewal keeps the term
    a.release()
    assert b.acquire() and b.term == 2 and not a.held()
    short = Lease(path, "s", ttl_s=0.05, holder="c")
    assert short.acquire()
    deadline = time.monotonic() + 5
    while short.held() and time.monotonic() < deadline:
        time.sleep(0.01)
    other = Lease(path, "s", ttl_s=60, holder="d")
    assert other.acquire() and other.holder_of() == "d"  # the dead holder's lease ran out
    assert not short.acquire()
    for lease in (a, b, short, other):
        lease.close()


def test_registry_uris_are_printed_without_credentials() -> None:
    assert redact_uri("at https://bob:s3cret@mlflow.example:5000/api and "
                      "postgresql://u:p@db/mlflow") == (
        "at https://***@mlflow.example:5000/api and postgresql://***@db/mlflow")
    assert redact_uri("sqlite:////data/mlflow.db") == "sqlite:////data/mlflow.db"
    error = RegistryUnavailableError("http://alice:pw@host:5000",
                                     "API request to http://alice:pw@host:5000/x failed")
    assert "pw" not in str(error) and "alice" not in str(error) and "pw" not in error.uri
