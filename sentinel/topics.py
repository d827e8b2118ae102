"""The topic catalog: every topic Sentinel uses, its key, partitions and retention."""

from __future__ import annotations

from dataclasses import dataclass

from sentinel.settings import TopicSettings

DAY_MS = 24 * 3600 * 1000


@dataclass(frozen=True)
class TopicSpec:
    logical: str
    name: str
    key: str
    value: str
    partitions: int
    config: dict[str, str]
    description: str


def catalog(topics: TopicSettings) -> list[TopicSpec]:
    """All topics for these settings, in pipeline order."""
    p = topics.partitions
    return [
        TopicSpec("transactions", topics.name("transactions"), "card_id", "Transaction", p,
                  {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)},
                  "card payments to score; keyed by card so per-card order holds"),
        TopicSpec("labels", topics.name("labels"), "terminal_id", "LabelFeedback", p,
                  {"cleanup.policy": "delete", "retention.ms": str(90 * DAY_MS)},
                  "fraud/legit labels arriving later (chargebacks); keyed by terminal"),
        TopicSpec("verdicts", topics.name("verdicts"), "transaction_id", "Verdict", p,
                  {"cleanup.policy": "compact,delete", "retention.ms": str(30 * DAY_MS)},
                  "the champion's decision per transaction; idempotent by key"),
        TopicSpec("shadow", topics.name("shadow"), "transaction_id", "ShadowResult", p,
                  {"cleanup.policy": "compact,delete", "retention.ms": str(30 * DAY_MS)},
                  "the candidate's score beside the champion's"),
        TopicSpec("drift_alerts", topics.name("drift_alerts"), "signal", "DriftAlert", 1,
                  {"cleanup.policy": "delete", "retention.ms": str(90 * DAY_MS)},
                  "drift detector alerts; the retrainer consumes them"),
        TopicSpec("model_events", topics.name("model_events"), "model_name", "ModelEvent", 1,
                  {"cleanup.policy": "delete", "retention.ms": "-1"},
                  "registry changes: registered, promoted, rolled back"),
        TopicSpec("dead_letters", topics.name("dead_letters"), "original key", "DeadLetter", 1,
                  {"cleanup.policy": "delete", "retention.ms": str(30 * DAY_MS)},
                  "inputs that could not be processed, with the original bytes and reason"),
    ]
