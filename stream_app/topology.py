"""The worker's topics: the catalog's external topics and its own internal ones.

Internal topics are named after the app id (``<prefix><app_id>-<name>``) and created by the
worker. Partition counts: ``-cards`` and its changelog follow the transactions topic (so the
range assignor gives partition ``p`` of both to the same worker); ``-terminals``, ``-labels``
and the terminals changelog all have ``topics.partitions``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sentinel.infra.admin import create_topics, list_topics
from sentinel.settings import Settings
from sentinel.topics import TopicSpec, catalog

WEEK_MS = 7 * 86_400_000


@dataclass(frozen=True)
class Topics:
    """Every topic name the worker uses, with the partition counts it depends on."""

    transactions: str
    labels: str
    verdicts: str
    shadow: str
    dead_letters: str
    drift_alerts: str
    model_events: str
    cards: str
    terminals: str
    labels_internal: str
    cards_changelog: str
    terminals_changelog: str
    card_partitions: int
    terminal_partitions: int
    label_partitions: int

    @property
    def card_inputs(self) -> tuple[str, str, str]:
        return self.transactions, self.cards, self.labels

    @property
    def terminal_inputs(self) -> tuple[str, str]:
        return self.terminals, self.labels_internal


def internal(settings: Settings, name: str) -> str:
    return f"{settings.topics.prefix}{settings.worker.app_id}-{name}"


def ensure(settings: Settings) -> Topics:
    """Create the catalog's and the worker's internal topics (idempotent); their names."""
    conf, t = settings.librdkafka(), settings.topics
    create_topics(conf, catalog(t), t.replication_factor)
    counts = list_topics(conf)
    cards_n, labels_n, n = counts[t.name("transactions")], counts[t.name("labels")], t.partitions
    compact: dict[str, Any] = {"cleanup.policy": "compact", "min.compaction.lag.ms": "60000"}
    delete = {"cleanup.policy": "delete", "retention.ms": str(WEEK_MS)}
    specs = [
        TopicSpec("cards", internal(settings, "cards"), "card_id", "re-keyed Transaction",
                  cards_n, delete, "internal: transactions re-keyed to their card's partition"),
        TopicSpec("terminals", internal(settings, "terminals"), "none", "Handoff batch", n,
                  delete, "internal: card stage -> terminal stage"),
        TopicSpec("labels_internal", internal(settings, "labels"), "terminal_id",
                  "LabelFeedback | frontier marker", n, delete,
                  "internal: labels re-keyed by terminal, with the label frontier"),
        TopicSpec("cards_changelog", internal(settings, "cards-changelog"), "card_id",
                  "card state", cards_n, compact, "internal: card state changelog"),
        TopicSpec("terminals_changelog", internal(settings, "terminals-changelog"),
                  "terminal_id", "terminal state", n, compact,
                  "internal: terminal state changelog"),
    ]
    create_topics(conf, specs, t.replication_factor)
    return Topics(
        transactions=t.name("transactions"), labels=t.name("labels"),
        verdicts=t.name("verdicts"), shadow=t.name("shadow"),
        dead_letters=t.name("dead_letters"), drift_alerts=t.name("drift_alerts"),
        model_events=t.name("model_events"), cards=specs[0].name, terminals=specs[1].name,
        labels_internal=specs[2].name, cards_changelog=specs[3].name,
        terminals_changelog=specs[4].name, card_partitions=cards_n, terminal_partitions=n,
        label_partitions=labels_n)
