"""The label store, the lifecycle tables and the lease on both backends: SQLite (a file) and
PostgreSQL (the session's private server, a fresh database per test); the same answers from
both, a lease that one of many racing holders gets, and failures that are one typed line
without the URI's password."""

from __future__ import annotations

import itertools
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lifecycle.labelstore import LabelStore
from lifecycle.leadership import Lease
from lifecycle.state_store import LifecycleStore, event_key
from schemas.events import (
    DriftAlert,
    FraudReport,
    LabelFeedback,
    ModelEvent,
    ShadowResult,
    Transaction,
    Verdict,
)
from sentinel.errors import StoreDataError, StoreUnavailableError
from sentinel.infra.worker_process import free_port
from tests.integration.postgres_server import PostgresServer
from tests.plugin import FakeMessage, FakeProducer

pytestmark = pytest.mark.integration
T0 = datetime(2024, 3, 1, tzinfo=UTC)


@pytest.fixture
def where(store_uri: str | None, tmp_path: Path) -> str | Path:
    """The store of one test: a SQLite file, or a fresh PostgreSQL database."""
    return store_uri or tmp_path / "store.sqlite"


def _alert(alert_id: str) -> DriftAlert:
    return DriftAlert(alert_id=alert_id, detector="adwin", signal="score", statistic=1.0,
                      current={"blocks": 1.0}, event_time=T0, detected_at=T0, events_seen=1)


def _event(action: str = "promoted", version: str = "2") -> ModelEvent:
    return ModelEvent(event_id="x", model_name="m", action=action,  # type: ignore[arg-type]
                      alias="champion", version=version, previous_version="1", at=T0)


# -- the lifecycle tables -------------------------------------------------------------------


def test_alert_ids_are_queued_once_and_judged_once(where: str | Path) -> None:
    store = LifecycleStore(where)
    assert store.enqueue_alerts([_alert("a"), _alert("b")]) == 2
    assert store.enqueue_alerts([_alert("a")]) == 0  # redelivered
    assert store.enqueue_alerts([_alert("c"), _alert("b")]) == 1
    assert [a.alert_id for a in store.queued_alerts()] == ["a", "b", "c"]  # queued order
    with store.transaction():
        store.mark_alert(_alert("a"), "retrain")
    assert store.alert_done("a") and not store.alert_done("b")
    assert store.enqueue_alerts([_alert("a")]) == 0
    assert [a.alert_id for a in store.queued_alerts()] == ["b", "c"]
    store.close()


def test_a_failed_transaction_leaves_nothing(where: str | Path) -> None:
    store = LifecycleStore(where)
    with pytest.raises(RuntimeError), store.transaction():
        store.save_state({"x": 1})
        store.add_job("retrain", {"now": T0.isoformat()})
        store.record("alert", "a", {"decision": "retrain"})
        raise RuntimeError("crash")
    assert store.load_state() == {} and store.open_jobs() == [] and store.decisions() == []
    with store.transaction():
        job = store.add_job("retrain", {"now": T0.isoformat()})
        store.save_state({"x": 2})
        with store.transaction():  # nested: joins the outer one
            store.record("retrain", job.job_id, "started")
    reopened = LifecycleStore(where)  # what a restarted retrainer reads
    assert [j.job_id for j in reopened.open_jobs()] == [job.job_id]
    assert reopened.load_state() == {"x": 2}
    assert reopened.decisions("retrain") == [("retrain", job.job_id, "started")]
    with reopened.transaction():
        reopened.finish_job(job, "registered")
    assert reopened.open_jobs() == [] and reopened.jobs()[0][:2] == ("retrain", "registered")
    store.close()
    reopened.close()


def test_the_outbox_keeps_one_event_per_change_with_a_stable_id(where: str | Path) -> None:
    store = LifecycleStore(where)
    first = store.add_event(_event())
    again = store.add_event(_event().model_copy(update={"event_id": "other"}))
    assert first.event_id == again.event_id != "x"
    store.add_event(_event(version="3"))
    assert [e.version for _, e in store.unsent_events()] == ["2", "3"]
    store.mark_sent(store.unsent_events()[0][0])
    assert [e.version for _, e in store.unsent_events()] == ["3"]
    assert store.has_event(_event()) and not store.has_event(_event(version="4"))
    assert event_key(_event("rolled_back")) != event_key(_event("promoted"))
    store.close()


# -- the lease ------------------------------------------------------------------------------


def test_one_holder_leads_until_it_releases_or_its_lease_runs_out(where: str | Path) -> None:
    a, b = Lease(where, "r", ttl_s=60, holder="a"), Lease(where, "r", ttl_s=60, holder="b")
    assert a.acquire() and a.held()
    assert not b.acquire() and not b.held()
    assert b.holder_of() == "a"
    assert a.acquire() and a.term == 1  # a renewal keeps the term
    a.release()
    assert b.holder_of() is None
    assert b.acquire() and b.term == 2 and not a.held()
    short = Lease(where, "s", ttl_s=0.2, holder="c")
    assert short.acquire()
    deadline = time.monotonic() + 5
    while short.held() and time.monotonic() < deadline:
        time.sleep(0.01)
    other = Lease(where, "s", ttl_s=60, holder="d")
    deadline = time.monotonic() + 5  # the database's clock decides when it has run out
    while not other.acquire() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert other.holder_of() == "d" and other.term == 2  # the dead holder's lease ran out
    assert not short.acquire()
    for lease in (a, b, short, other):
        lease.close()


def test_many_holders_racing_for_a_lease_one_gets_it_each_time(where: str | Path) -> None:
    """Eight holders, each with its own connection, ask at the same instant, five times (the
    winner releases between rounds): exactly one wins each round, and the term counts each
    change of holder once."""
    leases = [Lease(where, "race", ttl_s=60, holder=f"h{i}") for i in range(8)]
    terms, holders = [], []
    for _ in range(5):
        start = threading.Barrier(len(leases))
        won: dict[str, bool] = {}

        def ask(lease: Lease, start: threading.Barrier = start,
                won: dict[str, bool] = won) -> None:
            start.wait()
            won[lease.holder] = lease.acquire()

        threads = [threading.Thread(target=ask, args=(lease,)) for lease in leases]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        winners = [h for h, ok in won.items() if ok]
        assert len(won) == len(leases) and len(winners) == 1, won
        winner = next(lease for lease in leases if lease.holder == winners[0])
        assert winner.holder_of() == winner.holder
        terms.append(winner.term)
        holders.append(winner.holder)
        winner.release()
    changes = [0, *(int(a != b) for a, b in itertools.pairwise(holders))]
    assert terms == list(np.cumsum(changes) + 1), (holders, terms)
    for lease in leases:
        lease.close()


# -- the label store ------------------------------------------------------------------------


def _fill(store: LabelStore, seed: int) -> list[str]:
    """Payments over two days with labels for most, verdicts of two versions and shadow
    results, with redeliveries; returns the ids."""
    rng = np.random.default_rng(seed)
    n = 400
    ids = [f"tx-{i:04d}" for i in range(n)]
    times = [T0 + timedelta(seconds=int(s)) for s in np.sort(rng.integers(0, 2 * 86400, n))]
    fraud = rng.random(n) < 0.1
    scores = np.clip(0.5 * fraud + rng.normal(0.3, 0.2, n), 0, 1)
    txs = [Transaction(transaction_id=i, card_id=f"c{k % 17}", terminal_id=f"t{k % 29}",
                       amount=float(np.round(rng.gamma(2, 30), 2)), event_time=t)
           for k, (i, t) in enumerate(zip(ids, times, strict=True))]
    labels = [LabelFeedback(transaction_id=i, card_id="c", terminal_id="t", is_fraud=bool(f),
                            transaction_time=t, reported_at=t + timedelta(hours=6),
                            source="simulator")
              for i, f, t in zip(ids[:300], fraud, times, strict=False)]
    verdicts = [Verdict(transaction_id=i, card_id="c", model_name="m",
                        model_version="1" if k % 2 else "2", score=float(s),
                        decision="review" if s >= 0.5 else "approve", feature_hash="h",
                        event_time=t, scored_at=t, latency_ms=1.0)
                for k, (i, s, t) in enumerate(zip(ids, scores, times, strict=True))]
    shadow = [ShadowResult(transaction_id=i, card_id="c", champion_version="1",
                           candidate_version="3", champion_score=float(s),
                           candidate_score=float(1 - s),
                           champion_decision="review" if s >= 0.5 else "approve",
                           candidate_decision="approve" if s >= 0.5 else "review",
                           agree=False, event_time=t)
              for i, s, t in zip(ids[::3], scores[::3], times[::3], strict=True)]
    reports = [FraudReport(report_id=f"r{k}", card_id=tx.card_id,
                           reported_at=tx.event_time + timedelta(hours=3),
                           **({"transaction_id": tx.transaction_id} if k % 3 == 0 else
                              {"transaction_id": tx.transaction_id,
                               "terminal_id": tx.terminal_id,
                               "transaction_time": tx.event_time} if k % 3 == 1 else
                              {"start": tx.event_time - timedelta(hours=5),
                               "end": tx.event_time + timedelta(hours=1)}))
               for k, tx in enumerate(txs[250::9])]
    for _ in range(2):  # at-least-once: a redelivered batch overwrites itself
        store.add_reports(reports)
        store.add_transactions(txs)
        store.add_labels(labels)
        store.add_verdicts(verdicts)
        store.add_shadow(shadow)
    return ids


def test_both_backends_answer_the_same(tmp_path: Path, postgres_uri: str) -> None:
    """The same messages into a SQLite and a PostgreSQL store: every read the retrainer
    makes gives the same frame (values, column order and dtypes) and the same counts."""
    lite, pg = LabelStore(tmp_path / "s.sqlite"), LabelStore(postgres_uri)
    ids = _fill(lite, seed=11)
    assert _fill(pg, seed=11) == ids
    since = T0 + timedelta(hours=30)
    for name in ("transactions", "labels", "reports", "verdicts", "shadow"):
        assert lite.count(name) == pg.count(name) > 0
    pd.testing.assert_frame_equal(_by_report(lite.reports_frame()),
                                  _by_report(pg.reports_frame()))
    for moment in (None, since):
        pd.testing.assert_frame_equal(_by_id(lite.report_labels(moment)),
                                      _by_id(pg.report_labels(moment)))
    assert len(lite.report_labels()) > 0
    assert lite.newest_transaction_time() == pg.newest_transaction_time() is not None
    assert lite.labels_since(since) == pg.labels_since(since) > 0
    assert lite.frauds_since(since) == pg.frauds_since(since) > 0
    for a, b in (lite.training_frame(), pg.training_frame()), \
            (lite.training_frame(since), pg.training_frame(since)):
        pd.testing.assert_frame_equal(a[0], b[0])
        pd.testing.assert_frame_equal(_by_id(a[1]), _by_id(b[1]))
    pd.testing.assert_frame_equal(_by_id(lite.shadow_joined("3")), _by_id(pg.shadow_joined("3")))
    for version in ("1", "2"):
        pd.testing.assert_frame_equal(_by_id(lite.verdicts_joined(version)),
                                      _by_id(pg.verdicts_joined(version)))
    wanted = [*ids[::7], "missing"] * 2  # more than one chunk of 500
    pd.testing.assert_frame_equal(_by_id(lite.verdicts_of(wanted)), _by_id(pg.verdicts_of(wanted)))

    # backfill: a result of the same candidate is kept, an older candidate's replaced
    args = (["tx-0000", "tx-0001", "tx-0002"], "1", "3", [0.1] * 3, [0.9] * 3, [False] * 3,
            [True] * 3, [T0] * 3)
    assert lite.add_backfilled_shadow(*args) == pg.add_backfilled_shadow(*args) == 2
    args = (["tx-0000"], "1", "4", [0.1], [0.2], [False], [False], [T0])
    assert lite.add_backfilled_shadow(*args) == pg.add_backfilled_shadow(*args) == 1
    pd.testing.assert_frame_equal(_by_id(lite.shadow_joined("4")), _by_id(pg.shadow_joined("4")))
    lite.close()
    pg.close()


def _by_id(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("transaction_id").reset_index(drop=True)


def _by_report(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.sort_values("report_id").reset_index(drop=True)


def test_time_order_is_byte_order_whatever_the_database_locale(
        postgres: PostgresServer) -> None:
    """ISO times of one instant with and without a fraction: ``+`` sorts before ``.`` byte by
    byte, as in SQLite; an ICU collation puts ``.`` first (a newest time that is not)."""
    name = postgres.create_database(icu=True)
    store = LabelStore(postgres.uri(name))
    whole, fraction = T0, T0 + timedelta(microseconds=500)
    store.add_transactions([Transaction(transaction_id=i, card_id="c", terminal_id="t",
                                        amount=1.0, event_time=t)
                            for i, t in (("b", fraction), ("a", whole))])
    frame, _ = store.training_frame(whole)
    assert frame["transaction_id"].tolist() == ["a", "b"]
    assert store.newest_transaction_time() == fraction
    assert store.labels_since(fraction) == 0  # no labels; the comparison itself must run
    store.close()
    postgres.drop_database(name)


def test_a_row_postgresql_cannot_hold_is_a_data_error_and_nothing_of_its_batch_stays(
        postgres_uri: str) -> None:
    store = LabelStore(postgres_uri)
    good = Transaction(transaction_id="ok", card_id="c", terminal_id="t", amount=1.0,
                       event_time=T0)
    bad = good.model_copy(update={"transaction_id": "nul\x00byte"})
    with pytest.raises(StoreDataError, match="refused a row"):
        store.add_transactions([good, bad])
    assert store.count("transactions") == 0  # the batch is all or nothing
    store.add_transactions([good])  # the connection is fine afterwards
    assert store.count("transactions") == 1
    store.close()


def test_a_dropped_connection_is_one_error_then_opened_again(
        postgres: PostgresServer, postgres_uri: str) -> None:
    import psycopg

    store = LabelStore(postgres_uri)
    store.add_transactions([Transaction(transaction_id="x", card_id="c", terminal_id="t",
                                        amount=1.0, event_time=T0)])
    with psycopg.connect(postgres.uri(), autocommit=True) as admin:  # a failover, a restart
        admin.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                      "WHERE datname = %s AND pid <> pg_backend_pid()",
                      (postgres_uri.rsplit("/", 1)[1],))
    with pytest.raises(StoreUnavailableError) as lost:
        store.count("transactions")
    assert postgres.password not in str(lost.value) and "\n" not in str(lost.value)
    assert store.count("transactions") == 1
    store.close()


def test_unreachable_or_refused_postgresql_is_one_line_without_the_password(
        postgres: PostgresServer) -> None:
    closed = f"postgresql://app:Secr3t-pw@127.0.0.1:{free_port()}/sentinel"
    wrong = postgres.uri("postgres", password="Wr0ng-secret")
    missing = postgres.uri("no_such_database")
    for uri, secret, says in ((closed, "Secr3t-pw", "refused"),
                              (wrong, "Wr0ng-secret", "password authentication failed"),
                              (missing, postgres.password, "does not exist")):
        with pytest.raises(StoreUnavailableError) as failed:
            LabelStore(uri)
        message = str(failed.value)
        assert message.startswith("cannot connect to the label store at postgresql://***@")
        assert says in message and "SENTINEL_LABEL_STORE__URI" in message
        assert secret not in message and "\n" not in message



def test_a_payment_postgresql_refuses_is_dead_lettered_and_its_batch_stored(
        postgres_uri: str, tmp_path: Path) -> None:
    """The retrainer's store step on PostgreSQL: a payment whose id holds a NUL character
    (SQLite keeps it, PostgreSQL's text cannot) goes to the dead-letter topic with the
    store's reason; the payments beside it in the batch are stored."""
    from lifecycle.retrainer import Retrainer
    from lifecycle.retrainer_kafka import TermLoop
    from schemas import encode
    from schemas.events import DeadLetter
    from sentinel.settings import DriftSettings, LabelStoreSettings, Settings

    settings = Settings(data_dir=tmp_path, drift=DriftSettings(enabled=False),
                        label_store=LabelStoreSettings(uri=postgres_uri))  # type: ignore[arg-type]
    store = LabelStore(settings.label_store_location)
    producer = FakeProducer()
    loop = TermLoop(settings, Retrainer(settings, store, None, lambda e: None), producer)  # type: ignore[arg-type]
    topic = settings.topics.name("transactions")
    ids = ["ok-1", "nul\x00id", "ok-2"]
    loop.store([FakeMessage(topic, encode(Transaction(
        transaction_id=i, card_id="c", terminal_id="t", amount=1.0, event_time=T0)), n)
        for n, i in enumerate(ids)])
    assert store.count("transactions") == 2
    assert list(store.training_frame()[0]["transaction_id"]) == ["ok-1", "ok-2"]
    [(to, dead)] = producer.sent
    assert to == settings.topics.name("dead_letters") and isinstance(dead, DeadLetter)
    assert dead.source_offset == 1 and dead.error_type == "StoreDataError"
    assert "refused a row" in dead.reason and loop.retrainer.retrains["bad_input"] == 1
    store.close()


# -- fraud reports in the label store ---------------------------------------------------------


def _report_world(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, list[FraudReport]]:
    """Payments of a few cards, chargebacks (fraud or genuine, 7 days late; a genuine one for
    some payments a report names) and reports of every kind (``test_report_resolution``)."""
    from tests.unit.test_report_resolution import _world

    frame, reports = _world(seed, cards=25, days=30)
    rng = np.random.default_rng(seed)
    charged = frame.sample(frac=0.7, random_state=seed)
    chargebacks = pd.DataFrame({
        "transaction_id": charged["transaction_id"].to_numpy(),
        "card_id": charged["card_id"].to_numpy(), "terminal_id": charged["terminal_id"].to_numpy(),
        "transaction_time": charged["event_time"].to_numpy(),
        "is_fraud": rng.random(len(charged)) < 0.2,
        "label_time": charged["event_time"].to_numpy() + pd.Timedelta(days=7),
        "label_source": "chargeback"})
    return frame, chargebacks, reports


def _feedback(labels: pd.DataFrame) -> list[LabelFeedback]:
    return [LabelFeedback(transaction_id=x.transaction_id, card_id=x.card_id,
                          terminal_id=x.terminal_id, is_fraud=bool(x.is_fraud),
                          transaction_time=x.transaction_time, reported_at=x.label_time,
                          source=x.label_source) for x in labels.itertuples(index=False)]


def _offline_labels(frame: pd.DataFrame, chargebacks: pd.DataFrame,
                    reports: list[FraudReport]) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(every label, one per payment): what training offline gives the same history."""
    from features.offline import merge_labels
    from features.reports import report_frame, resolve_reports

    resolved, _ = resolve_reports(frame, report_frame(reports), 120)
    columns = ["transaction_id", "is_fraud", "label_time", "label_source"]
    every = pd.concat([chargebacks[columns], resolved[columns]], ignore_index=True)
    return every, merge_labels(frame, every)


def test_reports_are_stored_once_and_resolved_into_every_label_read(where: str | Path) -> None:
    """Reports stored before the payments they name (and redelivered) resolve once the
    payments are stored: the training frame has exactly the labels offline resolution and
    the chargebacks give (one per payment, a report's fraud winning over a genuine
    chargeback), the same features, and the counts, verdicts and shadow evidence see them."""
    from features import FeatureConfig, compute_features

    frame, chargebacks, reports = _report_world(seed=5)
    every, expected = _offline_labels(frame, chargebacks, reports)
    store = LabelStore(where)
    assert store.add_reports(reports) == len(reports)
    assert store.report_labels().empty  # no payment stored yet: nothing to label
    store.add_reports(reports[::2])  # redelivered
    store.add_transactions([Transaction(transaction_id=x.transaction_id, card_id=x.card_id,
                                        terminal_id=x.terminal_id, amount=x.amount,
                                        event_time=x.event_time)
                            for x in frame.itertuples(index=False)])
    store.add_labels(_feedback(chargebacks))
    assert store.count("reports") == len(reports)

    tx, labels = store.training_frame()
    assert labels["transaction_id"].is_unique
    pd.testing.assert_frame_equal(_by_id(labels), _by_id(expected), check_dtype=False)
    assert labels["is_fraud"].dtype == np.int64
    reported = labels[labels["label_source"] == "report"]
    assert len(reported) > 0 and reported["is_fraud"].eq(1).all()
    genuine_then_reported = set(chargebacks.loc[~chargebacks["is_fraud"], "transaction_id"])
    assert genuine_then_reported & set(reported["transaction_id"])  # the report wins
    config = FeatureConfig(label_delay_days=0)
    ordered = frame.sort_values("event_time", kind="stable").reset_index(drop=True)
    pd.testing.assert_frame_equal(compute_features(tx, labels, config),
                                  compute_features(ordered, every, config))

    since = T0 + timedelta(days=12)
    later = expected.merge(frame[["transaction_id", "event_time"]], on="transaction_id")
    later = later[later["event_time"] >= since]
    _, labels_since = store.training_frame(since)
    assert set(labels_since["transaction_id"]) == set(later["transaction_id"])
    assert store.labels_since(since) == len(later)
    assert store.frauds_since(since) == int(later["is_fraud"].sum())

    # a genuine label never takes a fraud back, a later fraud label never delays one
    fraud = chargebacks[chargebacks["is_fraud"]].head(3)
    store.add_labels(_feedback(fraud.assign(is_fraud=False, label_time=fraud["label_time"]
                                            + pd.Timedelta(days=1))))
    store.add_labels(_feedback(fraud.assign(label_time=fraud["label_time"]
                                            + pd.Timedelta(days=2))))
    pd.testing.assert_frame_equal(_by_id(store.training_frame()[1]), _by_id(labels))

    # the verdicts and the shadow evidence (a backfill) are joined with the same labels
    ids = frame["transaction_id"].tolist()
    store.add_verdicts([Verdict(transaction_id=x.transaction_id, card_id=x.card_id,
                                model_name="m", model_version="1", score=0.5,
                                decision="review", feature_hash="h", event_time=x.event_time,
                                scored_at=x.event_time, latency_ms=1.0)
                        for x in frame.itertuples(index=False)])
    store.add_backfilled_shadow(ids, "1", "2", [0.1] * len(ids), [0.9] * len(ids),
                                [False] * len(ids), [True] * len(ids),
                                frame["event_time"].tolist())
    for joined in (store.verdicts_joined("1"), store.shadow_joined("2")):
        got = _by_id(joined[["transaction_id", "is_fraud", "label_time", "label_source"]])
        pd.testing.assert_frame_equal(got, _by_id(labels), check_dtype=False)
    store.close()


def test_a_store_from_before_reports_gains_them(tmp_path: Path) -> None:
    """A SQLite store whose labels table has no source column (written before reports) is
    upgraded on open; its labels read back with no source."""
    import sqlite3

    path = tmp_path / "old.sqlite"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE labels (transaction_id TEXT PRIMARY KEY, is_fraud INTEGER, "
                    "label_time TEXT)")
        old.execute("INSERT INTO labels VALUES ('a', 1, '2024-03-02T00:00:00+00:00')")
    store = LabelStore(path)
    store.add_transactions([Transaction(transaction_id=i, card_id="c", terminal_id="t",
                                        amount=1.0, event_time=T0) for i in ("a", "b")])
    store.add_reports([FraudReport(report_id="r", card_id="c", transaction_id="b",
                                   reported_at=T0 + timedelta(hours=1))])
    _, labels = store.training_frame()
    assert labels[["transaction_id", "is_fraud", "label_source"]].values.tolist() == [
        ["b", 1, "report"], ["a", 1, None]]
    store.close()
