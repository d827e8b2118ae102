"""`sentinel produce`'s engine on the real broker: transactions by card, labels by terminal."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from schemas import LabelFeedback, Transaction, decode
from sentinel.infra.kafka_io import EventProducer, read_all
from sentinel.settings import Settings
from training.producer import produce_history
from training.simulation.config import SimulationConfig
from training.simulation.simulator import simulate

pytestmark = pytest.mark.integration


def test_history_streams_with_labels_after_their_delay(
    settings_factory: Callable[..., Settings],
) -> None:
    settings = settings_factory()
    history = simulate(SimulationConfig(n_customers=100, n_terminals=200, n_days=12, seed=3))
    count = 1500
    assert len(history) > count
    conf = settings.librdkafka()
    with EventProducer(conf) as producer:
        stats = produce_history(producer, history, settings.topics.name("transactions"),
                                settings.topics.name("labels"), count=count)
    last_sent = history["event_time"].iloc[count - 1]
    due = history.iloc[:count][history["label_time"].iloc[:count] <= last_sent]
    assert stats.transactions == count
    assert stats.labels == len(due) > 0

    txs = read_all(conf, settings.topics.name("transactions"), expected=count)
    labels = read_all(conf, settings.topics.name("labels"), expected=stats.labels)
    sent = [decode(Transaction, m.value()) for m in txs]
    assert sorted(t.transaction_id for t in sent) == sorted(history["transaction_id"][:count])
    assert all(m.key().decode() == t.card_id for m, t in zip(txs, sent, strict=True))
    got = [decode(LabelFeedback, m.value()) for m in labels]
    assert {lab.transaction_id for lab in got} == set(due["transaction_id"])
    assert all(m.key().decode() == lab.terminal_id for m, lab in zip(labels, got, strict=True))
    frauds = dict(zip(history["transaction_id"], history["is_fraud"], strict=True))
    assert all(lab.is_fraud == bool(frauds[lab.transaction_id]) for lab in got)
    assert all((lab.reported_at - lab.transaction_time).days == 7 for lab in got)
