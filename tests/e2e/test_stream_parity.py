"""Stream/offline parity on the real worker process, under a backlog, poison and kill -9.

100,000+ simulated transactions with their labels 7 days later, interleaved by time as a
chargeback feed sends them, are produced by an independent producer: the first part as a
backlog before the worker starts, the rest while it runs. A third of the cards are produced to
partitions other than the worker's own partitioner would choose (as a Java client's murmur2
would), labels are keyed by card, and poison messages sit in the middle of every input, the
worker's internal topics included. The worker is killed with SIGKILL at a seeded random point
and restarted. Then every valid transaction must have exactly one committed verdict, and the
feature row it was scored on must equal ``features.offline.compute_features`` over the same
transactions and labels, value for value.
"""

from __future__ import annotations

import base64
import collections
import json
import random
import signal
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from confluent_kafka import Producer

from features import FeatureConfig
from features.offline import compute_features
from features.spec import DAY_US
from schemas import DeadLetter, decode
from sentinel.infra.worker_process import free_port
from sentinel.settings import Settings
from stream_app.partitioning import partition_for
from stream_app.topology import internal
from tests.e2e.worker_support import log_tail, start_worker, stop_worker, wait_ready, worker_env
from tests.plugin import TopicCollector
from training.producer import label_event, transaction_event
from training.simulation import SimulationConfig, simulate
from training.stream_order import label_frame, stream_order

pytestmark = [pytest.mark.e2e, pytest.mark.integration]

def _poison(example: dict[str, Any]) -> list[tuple[str, bytes | None, bytes | None]]:
    """(expected reason, key, value) of each bad transaction."""
    def variant(**changes: Any) -> bytes:
        return json.dumps({**example, **changes}).encode()

    return [
        ("invalid_json", b"c1", b"{not json"),
        ("invalid_json", b"c1", b"\xff\xfe\x00garbage"),
        ("schema", b"c1", None),  # a tombstone
        ("schema", b"c1", variant(amount="12.5")),
        ("schema", b"c1", variant(schema_version=2)),
        ("schema", None, variant(transaction_id="x" * 800_000)),  # 800 KB, null key
        ("event_time_skew", b"c1", variant(event_time="9999-12-30T00:00:00Z")),
    ]


class _Feed:
    """An independent producer: librdkafka with its own partition choices."""

    def __init__(self, settings: Settings, partitions: int) -> None:
        self.settings = settings
        self.partitions = partitions
        self.producer = Producer({**settings.librdkafka(), "linger.ms": 5,
                                  "compression.type": "lz4", "enable.idempotence": True,
                                  "message.max.bytes": 2_000_000})
        self.tx_topic = settings.topics.name("transactions")
        self.label_topic = settings.topics.name("labels")

    def transaction(self, card: str, value: bytes) -> None:
        home = partition_for(card.encode(), self.partitions)
        misrouted = hash_card(card) % 3 == 0  # consistently elsewhere, like murmur2 would
        partition = (home + 1) % self.partitions if misrouted else home
        self._send(self.tx_topic, card.encode(), value, partition)

    def label(self, card: str, value: bytes) -> None:
        self._send(self.label_topic, card.encode(), value, None)  # keyed by card, not terminal

    def raw(self, topic: str, key: bytes | None, value: bytes | None) -> None:
        self._send(topic, key, value, None)

    def _send(self, topic: str, key: bytes | None, value: bytes | None,
              partition: int | None) -> None:
        kwargs: dict[str, Any] = {} if partition is None else {"partition": partition}
        while True:
            try:
                self.producer.produce(topic, value, key, **kwargs)
                break
            except BufferError:
                self.producer.poll(0.05)
        self.producer.poll(0)

    def flush(self) -> None:
        assert self.producer.flush(60) == 0


def hash_card(card: str) -> int:
    digits = card.lstrip("cC")
    return int(digits) if digits.isdigit() else len(card)


def _Reader(settings: Settings, topic: str) -> TopicCollector:
    """The raw values of ``topic``: bench/bench_faults.py reads the verdicts with this name
    (its ``consumer`` and ``close``)."""
    return TopicCollector(settings, None, None, topic=topic)


def test_verdicts_equal_offline_features_under_backlog_poison_and_kill(
    worker_settings: Callable[..., tuple[Settings, Any]], tmp_path: Path
) -> None:
    settings, _ = worker_settings(champion="1", candidate="2")
    frame = simulate(SimulationConfig(n_customers=1100, n_terminals=2000, n_days=50, seed=21))
    assert len(frame) >= 100_000
    labels = label_frame(frame)
    items = list(stream_order(frame, labels))
    last_time = frame["event_time"].max()
    items = [(k, r) for k, r in items if k == "transaction" or r.label_time <= last_time]
    rng = random.Random(21)
    cut = len(items) * 6 // 10  # 60 % as a backlog before the worker starts

    feed = _Feed(settings, settings.topics.partitions)
    example = json.loads(transaction_event(next(r for k, r in items if k == "transaction"))
                         .model_dump_json())
    poison = _poison(example)
    bad_labels = [("invalid_json", b"l1", b"not a label"),
                  ("schema", b"l1", json.dumps({"transaction_id": "t", "is_fraud": "yes"})
                   .encode())]
    poison_at = sorted(rng.sample(range(1000, len(items) - 1000), len(poison) + len(bad_labels)))

    def produce(start: int, end: int) -> None:
        for i in range(start, end):
            kind, row = items[i]
            if kind == "label":
                event = label_event(row)
                feed.label(event.card_id, event.model_dump_json().encode())
            else:
                event = transaction_event(row)
                feed.transaction(event.card_id, event.model_dump_json().encode())
            if i in poison_at:
                j = poison_at.index(i)
                if j < len(poison):
                    feed.raw(feed.tx_topic, poison[j][1], poison[j][2])
                else:
                    feed.raw(feed.label_topic, *bad_labels[j - len(poison)][1:])
        feed.flush()

    produce(0, cut)  # the backlog
    app_id = f"parity-{uuid.uuid4().hex[:8]}"
    env = worker_env(settings, free_port(), app_id)
    env["SENTINEL_SCORING__VERDICT_FEATURES"] = "true"
    port = int(env["SENTINEL_WORKER__WEB_PORT"])
    log = tmp_path / f"{app_id}.log"
    proc = start_worker(env, log)
    verdicts = TopicCollector(settings, "verdicts", None, proc)
    letters = TopicCollector(settings, "dead_letters", None, proc)
    n_tx = len(frame)
    try:
        wait_ready(port, proc, timeout_s=180)
        hostile = [(internal(settings.model_copy(update={"worker": settings.worker.model_copy(
            update={"app_id": app_id})}), name), b"\x00junk") for name in
            ("terminals", "labels", "cards")]
        kill_at = rng.randrange(n_tx // 10, n_tx * 7 // 10)  # verdicts seen at the kill
        produce(cut, cut + (len(items) - cut) // 2)
        for topic, value in hostile:  # a hostile record on each internal topic
            feed.raw(topic, b"k", value)
        feed.flush()
        verdicts.until(lambda got: len(got) >= kill_at, 600)
        stop_worker(proc, signal.SIGKILL)
        produce(cut + (len(items) - cut) // 2, len(items))
        proc = verdicts.proc = letters.proc = start_worker(env, log)
        verdicts.until(lambda got: len(got) >= n_tx, 900)
        expected_letters = len(poison) + len(bad_labels) + len(hostile)
        letters.until(lambda got: len(got) >= expected_letters, 120)
        verdicts.drain()
        letters.drain()
        assert proc.poll() is None, "the worker exited"
    except (TimeoutError, AssertionError, RuntimeError) as exc:
        raise AssertionError(f"{exc}\n{log_tail(tmp_path)}") from exc
    finally:
        stop_worker(proc, signal.SIGTERM)
        verdicts.close()
        letters.close()

    # exactly one committed verdict per valid transaction
    seen = collections.Counter()
    rows: dict[str, list[float]] = {}
    for raw in verdicts.items:
        v = json.loads(raw)
        seen[v["transaction_id"]] += 1
        rows[v["transaction_id"]] = v["features"]
    ids = set(frame["transaction_id"].astype(str))
    assert set(seen) == ids, f"{len(ids - set(seen))} without a verdict"
    assert max(seen.values()) == 1, f"{sum(c - 1 for c in seen.values())} duplicates"

    # every feature row equals the offline form over the same transactions and labels
    config = FeatureConfig()
    offline = compute_features(frame, labels, config).set_index("transaction_id")
    online = pd.DataFrame.from_dict(rows, orient="index", columns=list(config.names))
    online = online.loc[offline.index.astype(str)]
    diff = ~np.isclose(online.to_numpy(), offline.to_numpy(), atol=1e-9, rtol=0)
    bad = np.flatnonzero(diff.any(axis=1))
    if len(bad):
        i = bad[0]
        cols = [config.names[c] for c in np.flatnonzero(diff[i])]
        tx = offline.index[i]
        day = int((pd.Timestamp(frame.set_index("transaction_id").loc[tx, "event_time"])
                   .value // 1000 - frame["event_time"].min().value // 1000) // DAY_US)
        days = ((frame.set_index("transaction_id").loc[offline.index[bad], "event_time"]
                 - frame["event_time"].min()).dt.days.value_counts().sort_index())
        raise AssertionError(
            f"{len(bad)} of {len(offline)} rows differ (by day: {days.to_dict()}); first {tx} "
            f"(day {day}) in {cols}:\n"
            f"stream  {online.iloc[i][cols].to_dict()}\noffline {offline.iloc[i][cols].to_dict()}")

    # every bad input is dead-lettered once, with its reason, and the huge one truncated
    dead = [decode(DeadLetter, v) for v in letters.items]
    reasons = collections.Counter(d.reason for d in dead)
    expected = collections.Counter(r for r, _, _ in poison + bad_labels)
    expected["internal_undecodable"] += len(hostile)
    assert reasons == expected, (reasons, expected)
    huge = [d for d in dead if (d.original_length or 0) > 700_000]
    assert len(huge) == 1 and huge[0].truncated
    assert len(base64.b64decode(huge[0].original_base64)) == settings.scoring.dead_letter_max_bytes
