"""Fraud reports resolved once (``features.reports``): the online form (a card's payments and
open reports, in any reading order the engine allows) equals the offline form, and several
labels of one payment give the same features in any order (monotone labels)."""

from __future__ import annotations

import json
import random
from collections import defaultdict
from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd
import pytest

from features import FeatureConfig, TerminalState, compute_features
from features.card_state import CardState
from features.clock import from_micros, series_to_micros, to_micros
from features.reports import (
    MAX_OPEN,
    CardPayments,
    OpenReport,
    ReportRecord,
    lookback_us,
    report_frame,
    resolve_reports,
)
from features.spec import DAY_US, HOUR_US
from schemas import FraudReport
from stream_app.state import decode_value, encode_value

T0 = datetime(2018, 4, 1, tzinfo=UTC)
T0_US = to_micros(T0)


def _world(seed: int, cards: int = 40, days: int = 40) -> tuple[pd.DataFrame, list[FraudReport]]:
    """Payments of a few cards and reports of every kind: by id (known, unknown, of another
    card, after the report), by range, complete."""
    rng = random.Random(seed)
    rows = []
    for c in range(cards):
        t = T0_US + rng.randrange(DAY_US)
        while t < T0_US + days * DAY_US:
            rows.append((f"tx{len(rows)}", f"c{c}", f"m{rng.randrange(30)}", t))
            t += rng.randrange(HOUR_US, 3 * DAY_US)
    frame = pd.DataFrame(rows, columns=["transaction_id", "card_id", "terminal_id", "t"])
    frame["event_time"] = pd.to_datetime(frame["t"], unit="us", utc=True)
    frame["amount"] = 10.0
    reports: list[FraudReport] = []
    for i in range(cards * 4):
        p = frame.iloc[rng.randrange(len(frame))]
        r = int(p.t) + rng.randrange(1, 6 * DAY_US)
        base = {"report_id": f"r{i}", "card_id": p.card_id, "reported_at": from_micros(r)}
        kind = rng.random()
        if kind < 0.35:
            base["transaction_id"] = p.transaction_id
        elif kind < 0.45:
            base["transaction_id"] = rng.choice([f"nope{i}", str(frame.transaction_id.iloc[0])])
        elif kind < 0.5:
            base |= {"transaction_id": p.transaction_id, "reported_at": from_micros(int(p.t))}
        elif kind < 0.9:
            start = int(p.t) - rng.randrange(0, 2 * DAY_US)
            base |= {"start": from_micros(start),
                     "end": from_micros(start + rng.randrange(1, 4 * DAY_US))}
        else:
            base |= {"transaction_id": p.transaction_id, "terminal_id": p.terminal_id,
                     "transaction_time": from_micros(int(p.t))}
        reports.append(FraudReport(**base))
    return frame, reports


def _online(frame: pd.DataFrame, reports: list[FraudReport], lookback: int, seed: int,
            ) -> tuple[dict[str, int], set[str]]:
    """Every card's payments in time order; each report read at a random point, before or
    after the payments it names, but before its card's payments pass ``reported_at`` by a day
    (a backlog either way); the earliest report time per labelled payment, and the unresolved
    reports."""
    rng = random.Random(seed)
    by_card: dict[str, list[tuple[str, str, int]]] = defaultdict(list)
    for row in frame.itertuples():
        by_card[row.card_id].append((row.transaction_id, row.terminal_id, row.t))
    queues = {c: sorted(v, key=lambda p: p[2]) for c, v in by_card.items()}
    waiting = defaultdict(list)
    for report in reports:
        if not report.complete:
            waiting[report.card_id].append(report)
    for card in waiting:
        rng.shuffle(waiting[card])
    cards = {c: CardPayments() for c in queues}
    labels: dict[str, int] = {}
    unresolved: set[str] = set()

    def label(transaction_id: str, r: int) -> None:
        labels[transaction_id] = min(r, labels.get(transaction_id, r))

    for report in reports:
        if report.complete:
            t = to_micros(report.transaction_time)
            if t < to_micros(report.reported_at):
                label(str(report.transaction_id), to_micros(report.reported_at))
    live = [c for c in queues if queues[c] or waiting[c]]
    while live:
        card = rng.choice(live)
        state = cards[card]
        upcoming = queues[card][0][2] if queues[card] else None
        overdue = [x for x in waiting[card]
                   if upcoming is None or to_micros(x.reported_at) + DAY_US < upcoming]
        if overdue or (waiting[card] and rng.random() < 0.3):
            report = (overdue or waiting[card])[0]
            waiting[card].remove(report)
            hits, closed = state.report(ReportRecord.from_event(report), b"", lookback)
            for transaction_id, _, _ in hits:
                label(transaction_id, to_micros(report.reported_at))
            unresolved |= {x.record.report_id for x in closed}
        else:
            transaction_id, terminal, t = queues[card].pop(0)
            reported, closed = state.payment(transaction_id, terminal, t, lookback)
            if reported is not None:
                label(transaction_id, reported)
            unresolved |= {x.record.report_id for x in closed}
            if rng.random() < 0.1:  # a restore from the changelog now and then
                cards[card] = CardPayments.from_dict(decode_value(encode_value(state.pack())))
        live = [c for c in queues if queues[c] or waiting[c]]
    return labels, unresolved


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_online_resolution_equals_offline_in_any_reading_order(seed: int) -> None:
    frame, reports = _world(seed)
    days = 20.0
    labels, unresolved = _online(frame, reports, lookback_us(days), seed)
    offline, offline_unresolved = resolve_reports(frame, report_frame(reports), days)
    earliest = offline.groupby("transaction_id")["label_time"].min()
    expected = dict(zip(earliest.index, series_to_micros(earliest).tolist(), strict=True))
    assert len(expected) > 50
    assert labels == expected
    # by-id reports never closed online are those whose card has no later payment
    last = frame.groupby("card_id")["t"].max()
    open_ids = {r.report_id for r in reports if r.transaction_id is not None and not r.complete
                and to_micros(r.reported_at) > last[r.card_id]}
    assert unresolved == set(offline_unresolved) - open_ids
    assert len(unresolved) > 5


def test_offline_resolution_by_kind() -> None:
    day = timedelta(days=1)
    frame = pd.DataFrame({
        "transaction_id": ["a", "b", "c", "d", "e"], "card_id": ["c1", "c1", "c1", "c2", "c1"],
        "terminal_id": ["m1", "m2", "m3", "m1", "m4"],
        "event_time": [T0, T0 + day, T0 + 3 * day, T0 + day, T0 - 200 * day]})
    reports = [
        FraudReport(report_id="id", card_id="c1", transaction_id="b", reported_at=T0 + 2 * day),
        FraudReport(report_id="late", card_id="c1", transaction_id="c",
                    reported_at=T0 + 2 * day),  # the payment is after the report
        FraudReport(report_id="other", card_id="c1", transaction_id="d",
                    reported_at=T0 + 2 * day),  # a payment of another card
        FraudReport(report_id="old", card_id="c1", transaction_id="e",
                    reported_at=T0 + 2 * day),  # beyond the lookback
        FraudReport(report_id="range", card_id="c1", start=T0 - 300 * day, end=T0 + 9 * day,
                    reported_at=T0 + 2 * day),
        FraudReport(report_id="full", card_id="c9", transaction_id="z", terminal_id="m9",
                    transaction_time=T0, reported_at=T0 + day),
    ]
    labels, unresolved = resolve_reports(frame, report_frame(reports), 120)
    assert unresolved == ["late", "old", "other"]
    got = sorted(zip(labels.transaction_id, labels.label_time, strict=True))
    assert got == [("a", T0 + 2 * day), ("b", T0 + 2 * day), ("b", T0 + 2 * day),
                   ("z", T0 + day)]
    assert set(labels.label_source) == {"report"} and labels.is_fraud.all()
    assert list(resolve_reports(frame, report_frame(reports), 0)[1]) == [
        "id", "late", "old", "other"]


def test_the_card_state_keeps_payments_for_the_lookback_and_restores_with_open_reports() -> None:
    state, lookback = CardPayments(), lookback_us(10)
    for i in range(30):
        state.payment(f"t{i}", "m1", T0_US + i * DAY_US, lookback)
    assert state.ids[0] == "t20" and len(state) == 10  # older than 10 days: dropped
    record = ReportRecord("r", "c1", T0_US + 40 * DAY_US, "t35")
    assert state.report(record, b"note", lookback) == ([], [])
    [kept] = state.open
    assert kept == OpenReport(record, b"note", False)
    for back in (CardPayments.from_dict(json.loads(json.dumps(state.to_dict()))),
                 CardPayments.from_dict(decode_value(encode_value(state.pack())))):
        assert back.to_dict() == state.to_dict()
    card = CardState()
    card.payments = state
    assert CardState.from_dict(decode_value(encode_value(card.pack()))).payments.open == [kept]
    assert "p" not in CardState().pack()  # a card without payments keeps the old form


def test_a_by_id_report_closes_unresolved_when_the_card_passes_it_without_the_payment() -> None:
    state, lookback = CardPayments(), lookback_us(120)
    state.payment("t1", "m1", T0_US, lookback)
    missing = ReportRecord("r1", "c1", T0_US + DAY_US, "t9")
    found = ReportRecord("r2", "c1", T0_US + DAY_US, "t2")
    assert state.report(missing, b"1", lookback) == ([], [])
    assert state.report(found, b"2", lookback) == ([], [])
    assert state.payment("t2", "m2", T0_US + HOUR_US, lookback) == (T0_US + DAY_US, [])
    reported, closed = state.payment("t3", "m3", T0_US + DAY_US, lookback)
    assert reported is None and [x.record for x in closed] == [missing]
    assert state.open == []
    # read after the card passed it: resolved or unresolved at once
    assert state.report(found, b"2", lookback) == ([("t2", "m2", T0_US + HOUR_US)], [])
    assert [x.note for x in state.report(missing, b"1", lookback)[1]] == [b"1"]
    assert state.open == []


def test_open_reports_are_bounded_per_card() -> None:
    state, lookback = CardPayments(), lookback_us(120)
    closed = []
    for i in range(MAX_OPEN + 3):
        record = ReportRecord(f"r{i}", "c1", T0_US + (10 + i) * DAY_US, f"t{i}")
        closed += state.report(record, b"", lookback)[1]
        state.report(record, b"", lookback)  # the same report again is kept once
    assert len(state.open) == MAX_OPEN
    assert [x.record.report_id for x in closed] == ["r0", "r1", "r2"]  # the earliest made


def _features(order: list[tuple[str, int, bool, int]]) -> list[list[float]]:
    config = FeatureConfig(label_delay_days=0)
    state = TerminalState()
    t = T0_US
    applied = False
    for item in order:
        if item[0] == "tx":
            state.insert("a", t)
            applied = True
        else:
            state.apply_label("a", t, item[2], item[3])
    assert applied
    return [state.features(t + k * HOUR_US, config) for k in (1, 3, 5, 7)]


def test_several_labels_of_one_payment_give_the_same_features_in_any_order() -> None:
    """A chargeback genuine label and two fraud reports: a fraud from the earliest report,
    never taken back, whatever the order (labels before the payment included)."""
    items = [("tx", 0, False, 0), ("label", 0, False, T0_US + 2 * HOUR_US),
             ("label", 0, True, T0_US + 4 * HOUR_US), ("label", 0, True, T0_US + 6 * HOUR_US)]
    rng = random.Random(4)
    results = []
    for _ in range(12):
        rng.shuffle(items)
        results.append(_features(items))
    assert all(r == results[0] for r in results)
    assert [row[-3] for row in results[0]] == [0.0, 0.0, 1.0, 1.0]  # counted from 4 h

    frame = pd.DataFrame({"transaction_id": ["a", "b"], "card_id": ["c", "c"],
                          "terminal_id": ["m", "m"], "amount": [1.0, 1.0],
                          "event_time": pd.to_datetime([T0_US, T0_US + 5 * HOUR_US], unit="us",
                                                       utc=True)})
    labels = pd.DataFrame({"transaction_id": ["a"] * 4, "is_fraud": [False, True, True, True],
                           "label_time": pd.to_datetime(
                               [T0_US + 2 * HOUR_US, T0_US + 6 * HOUR_US, T0_US + 4 * HOUR_US,
                                T0_US], unit="us", utc=True)})
    offline = compute_features(frame, labels, FeatureConfig(label_delay_days=0))
    assert offline["terminal_nb_fraud_30d"].tolist() == [0.0, 1.0]
    assert np.isclose(offline["terminal_seconds_since_first_fraud_30d"].iloc[1], 5 * 3600)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_one_merged_label_per_payment_gives_the_same_features_as_all_of_them(seed: int) -> None:
    """Chargebacks (fraud or genuine, some known no later than their payment) and the labels
    of reports, several per payment: ``merge_labels`` keeps one per payment, and the features
    over it equal those over all of them (the retrainer trains on it, ``lifecycle.labelstore``).
    """
    from features.offline import merge_labels

    frame, reports = _world(seed)
    rng = np.random.default_rng(seed)
    picked = frame.sample(frac=0.6, random_state=seed)
    shift = rng.integers(-HOUR_US, 10 * DAY_US, len(picked))  # some known before the payment
    chargebacks = pd.DataFrame({
        "transaction_id": picked["transaction_id"].to_numpy(),
        "is_fraud": rng.random(len(picked)) < 0.3,
        "label_time": pd.to_datetime(picked["t"].to_numpy() + shift, unit="us", utc=True),
        "label_source": "chargeback"})
    resolved, _ = resolve_reports(frame, report_frame(reports), 120)
    early = frame.sample(n=30, random_state=seed)  # a fraud label at the payment's own time
    late = early.assign(t=early["t"] + DAY_US)  # ... and one that counts, a day later
    extra = pd.DataFrame({
        "transaction_id": pd.concat([early, late])["transaction_id"].to_numpy(),
        "is_fraud": True, "label_source": "investigation",
        "label_time": pd.to_datetime(pd.concat([early, late])["t"].to_numpy(), unit="us",
                                     utc=True)})
    labels = pd.concat([chargebacks, resolved[list(chargebacks.columns)], extra],
                       ignore_index=True)
    labels = labels.sample(frac=1.0, random_state=seed).reset_index(drop=True)  # any order
    merged = merge_labels(frame, labels)
    assert merged["transaction_id"].is_unique
    assert set(merged["transaction_id"]) == set(labels["transaction_id"])
    assert len(merged) < len(labels)  # some payments had several labels
    config = FeatureConfig(label_delay_days=0)
    pd.testing.assert_frame_equal(compute_features(frame, merged, config),
                                  compute_features(frame, labels, config))
    fraud = merged.set_index("transaction_id")["is_fraud"].astype(bool)
    assert fraud.loc[list(set(resolved["transaction_id"]))].all()  # never taken back
    both = set(resolved["transaction_id"]) & set(chargebacks["transaction_id"])
    assert (merged.set_index("transaction_id").loc[list(both), "label_source"] == "report").any()


def test_the_simulators_reports_keep_every_reported_fraud_labelled() -> None:
    """Frauds turned into reports by range or id are still labelled (by the resolution), no
    later than their own report; a range also names the card's genuine payments in it."""
    from training.simulation import SimulationConfig, simulate
    from training.simulation.arrival import REPORTS
    from training.simulation.reports import fraud_reports, labels_with_reports
    from training.stream_order import label_frame

    frame = simulate(SimulationConfig(n_customers=120, n_terminals=240, n_days=20, seed=7,
                                      arrival=REPORTS))
    labels = label_frame(frame)
    kept, reports = fraud_reports(frame, labels, seed=3)
    again = fraud_reports(frame, labels, seed=3)
    assert kept.equals(again[0]) and reports.equals(again[1])
    assert {"range", "id"} <= {r.split("-")[0] for r in reports.report_id}
    combined = labels_with_reports(frame, kept, reports)
    frauds = combined[combined.is_fraud.astype(bool)]
    earliest = frauds.groupby("transaction_id")["label_time"].min()
    own = labels[labels.is_fraud].set_index("transaction_id")["label_time"]
    assert set(own.index) <= set(earliest.index)
    assert (earliest.loc[own.index] <= own).all()
    assert len(kept) < len(labels) and len(set(earliest.index) - set(own.index)) > 0


def test_the_modules_example_runs() -> None:
    import doctest

    import features.reports

    result = doctest.testmod(features.reports)
    assert result.attempted > 0 and result.failed == 0
