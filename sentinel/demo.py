"""``sentinel demo``: the main job end to end on the local broker.

Broker → topics → a simulated history → produce transactions (and labels) → read them back.
"""

from __future__ import annotations

import argparse
import logging
import uuid
from dataclasses import replace

from confluent_kafka import Message

from schemas import Transaction, decode
from sentinel.infra.admin import create_topics
from sentinel.infra.kafka_io import EventProducer, read_all
from sentinel.infra.runtime import ensure_kafka
from sentinel.settings import Settings
from sentinel.topics import TopicSpec, catalog

logger = logging.getLogger(__name__)


def _say(text: str) -> None:
    print(text, flush=True)


def run(settings: Settings, args: argparse.Namespace) -> int:
    from training.producer import produce_history
    from training.simulation.config import SimulationConfig
    from training.simulation.simulator import simulate

    _say("== 1. Kafka")
    bootstrap = ensure_kafka(settings)
    conf = settings.kafka.as_librdkafka_dict(bootstrap)
    for name, outcome in create_topics(conf, catalog(settings.topics)).items():
        _say(f"   {outcome:8} {name}")

    _say(f"== 2. Stream {args.count} simulated transactions (event-time order, keyed by card)")
    history = simulate(SimulationConfig(n_customers=200, n_terminals=400, n_days=10, seed=42))
    # A demo-private topic so that repeated runs read back exactly their own events.
    topic = f"{settings.topics.name('transactions')}.demo-{uuid.uuid4().hex[:6]}"
    create_topics(conf, [_demo_topic(settings, topic)])
    with EventProducer(conf) as producer:
        stats = produce_history(producer, history, topic, settings.topics.name("labels"),
                                count=args.count, with_labels=False)
    _say(f"   produced {stats.transactions} to {topic} at {stats.rate:.0f}/s")

    _say("== 3. Read them back")
    messages = read_all(conf, topic, expected=stats.transactions, timeout_s=60)
    events = [decode(Transaction, m.value()) for m in messages]
    cards = {e.card_id for e in events}
    _say(f"   read {len(events)} transactions of {len(cards)} cards from "
         f"{len({m.partition() for m in messages})} partitions; every card on one partition: "
         f"{_one_partition_per_key(messages)}")
    ok = len(events) == stats.transactions
    _say("== round trip " + ("OK" if ok else "INCOMPLETE"))
    return 0 if ok else 1


def _demo_topic(settings: Settings, name: str) -> TopicSpec:
    spec = next(s for s in catalog(settings.topics) if s.logical == "transactions")
    return replace(spec, name=name, config={**spec.config, "retention.ms": str(3_600_000)})


def _one_partition_per_key(messages: list[Message]) -> bool:
    seen: dict[bytes, int] = {}
    return all(seen.setdefault(m.key(), m.partition()) == m.partition() for m in messages)
