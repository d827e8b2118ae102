"""Samples of Sentinel's topics for the dashboard: model events, drift alerts, and the
reference-vs-live distributions of amounts and scores.

:func:`read_topic` is the Kafka adapter (confluent-kafka, no consumer group offsets committed:
the dashboard never moves anyone's position). Everything else is pure and works on decoded
events, so it is tested without a broker.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeVar

import numpy as np

from schemas import DriftAlert, Event, ModelEvent, SchemaValidationError, decode
from stream_app.monitoring import SourceUnavailable

logger = logging.getLogger(__name__)

E = TypeVar("E", bound=Event)


def read_topic(conf: dict[str, Any], topic: str, count: int, *, from_end: bool,
               timeout_s: float = 5.0) -> list[bytes]:
    """Up to ``count`` message values per partition, the oldest (``from_end=False``, the
    reference) or the newest (``from_end=True``, live) still retained."""
    from confluent_kafka import Consumer, KafkaException, TopicPartition

    consumer = Consumer({**conf, "group.id": f"sentinel-dashboard-{uuid.uuid4().hex[:8]}",
                         "enable.auto.commit": False, "socket.timeout.ms": int(timeout_s * 1000),
                         "session.timeout.ms": 6000, "log_level": 3})
    try:
        meta = consumer.list_topics(topic, timeout=timeout_s)
        if meta.topics[topic].error is not None:
            raise SourceUnavailable(f"Kafka topic {topic}", str(meta.topics[topic].error))
        assignment: list[TopicPartition] = []
        ends: dict[int, int] = {}
        for partition in meta.topics[topic].partitions:
            low, high = consumer.get_watermark_offsets(TopicPartition(topic, partition),
                                                       timeout=timeout_s)
            start = max(low, high - count) if from_end else low
            stop = high if from_end else min(high, low + count)
            if stop > start:
                assignment.append(TopicPartition(topic, partition, start))
                ends[partition] = stop
        return _consume(consumer, assignment, ends, timeout_s)
    except KafkaException as exc:
        raise SourceUnavailable(f"Kafka at {conf.get('bootstrap.servers')}", str(exc)) from exc
    finally:
        consumer.close()


def _consume(consumer: Any, assignment: list[Any], ends: dict[int, int],
             timeout_s: float) -> list[bytes]:
    if not assignment:
        return []
    consumer.assign(assignment)
    values: list[bytes] = []
    remaining = dict(ends)
    deadline = time.monotonic() + timeout_s
    while remaining and time.monotonic() < deadline:
        for msg in consumer.consume(500, timeout=0.5):
            if msg.error() is not None:
                continue
            partition, offset = msg.partition(), msg.offset()
            if partition in remaining and offset < remaining[partition]:
                values.append(msg.value())
            if partition in remaining and offset >= remaining[partition] - 1:
                del remaining[partition]
    return values


def decode_all(event_type: type[E], values: Iterable[bytes]) -> tuple[list[E], int]:
    """The values that decode as ``event_type``, and how many did not."""
    events: list[E] = []
    bad = 0
    for value in values:
        try:
            events.append(decode(event_type, value))
        except SchemaValidationError:
            bad += 1
    return events, bad


def promotion_history(events: Sequence[ModelEvent]) -> list[dict[str, str]]:
    """Registry changes, newest first, as table rows."""
    return [{"at": e.at.strftime("%Y-%m-%d %H:%M:%S"), "action": e.action, "model": e.model_name,
             "version": e.version, "previous": e.previous_version or "", "alias": e.alias or "",
             "reason": e.reason}
            for e in sorted(events, key=lambda e: e.at, reverse=True)]


def drift_history(alerts: Sequence[DriftAlert]) -> list[dict[str, str | float | int]]:
    """Drift alerts, newest first, as table rows."""
    return [{"detected_at": a.detected_at.strftime("%Y-%m-%d %H:%M:%S"), "detector": a.detector,
             "signal": a.signal, "statistic": round(a.statistic, 4),
             "model_version": a.model_version or "", "events_seen": a.events_seen}
            for a in sorted(alerts, key=lambda a: a.detected_at, reverse=True)]


@dataclass(frozen=True)
class Comparison:
    """Two samples binned on common edges, as shares, and their population stability index."""

    edges: list[float]
    reference: list[float]
    live: list[float]
    psi: float
    n_reference: int
    n_live: int

    def rows(self) -> list[dict[str, float | str]]:
        return [{"bin": f"{lo:,.3g} to {hi:,.3g}", "reference": r, "live": v}
                for lo, hi, r, v in zip(self.edges, self.edges[1:], self.reference, self.live,
                                        strict=False)]


def compare(reference: Sequence[float], live: Sequence[float], bins: int = 12,
            log: bool = False) -> Comparison | None:
    """Bin both samples on the reference's quantile edges (equal-mass bins, so the PSI is
    stable for skewed amounts); ``None`` when either sample is empty.

    >>> c = compare([1, 2, 3, 4] * 25, [1, 2, 3, 4] * 25, bins=4)
    >>> round(c.psi, 6)
    0.0
    """
    ref = np.asarray(reference, dtype=float)
    cur = np.asarray(live, dtype=float)
    if ref.size == 0 or cur.size == 0:
        return None
    if log:
        ref, cur = np.log1p(np.clip(ref, 0, None)), np.log1p(np.clip(cur, 0, None))
    edges = np.unique(np.quantile(ref, np.linspace(0, 1, bins + 1)))
    if edges.size < 2:
        edges = np.array([ref.min() - 0.5, ref.max() + 0.5])
    edges[0], edges[-1] = min(edges[0], cur.min()), max(edges[-1], cur.max())
    ref_share = np.histogram(ref, edges)[0] / ref.size
    cur_share = np.histogram(cur, edges)[0] / cur.size
    eps = 1e-4
    psi = float(np.sum((cur_share - ref_share) * np.log((cur_share + eps) / (ref_share + eps))))
    shown = np.expm1(edges) if log else edges
    return Comparison([float(x) for x in shown], ref_share.tolist(), cur_share.tolist(),
                      abs(psi), int(ref.size), int(cur.size))
