"""Offset gaps: found, read back in order, persisted with the state, accepted when empty."""

from __future__ import annotations

import asyncio
from typing import Any

from features import CardState, TerminalState
from sentinel.settings import Settings
from stream_app.metrics import WorkerMetrics
from stream_app.pipeline import Scorer, Source, StateCache, Topics
from stream_app.sequence import Gap, OffsetSequence, expected_key, splice


def src(offset: int, partition: int = 0, topic: str = "tx") -> Source:
    return Source(topic, partition, offset, 0, b"k", b"v%d" % offset)


def test_no_gap_when_contiguous_or_unknown() -> None:
    seq = OffsetSequence(lambda t, p: None)
    assert seq.gaps([src(5), src(6), src(7)]) == []  # first sight: nothing expected yet
    seq.advance([src(5), src(6), src(7)])
    assert seq.expected("tx", 0) == 8
    assert seq.gaps([src(8), src(9)]) == []


def test_gap_inside_a_batch_and_across_batches() -> None:
    seq = OffsetSequence(lambda t, p: 10)
    batch = [src(10), src(11), src(14), src(3, partition=1), src(15)]
    assert seq.gaps(batch) == [(2, Gap("tx", 0, 12, 14))]
    seq.advance(batch)
    assert seq.gaps([src(20)]) == [(0, Gap("tx", 0, 16, 20))]


def test_replays_below_the_expected_offset_are_not_gaps() -> None:
    seq = OffsetSequence(lambda t, p: 100)  # persisted before a crash; committed was 90
    batch = [src(90), src(91), src(99), src(100)]
    assert seq.gaps(batch) == []
    assert seq.advance(batch) == {("tx", 0): 101}
    assert seq.advance([src(95)]) == {}  # a replay never moves it back


def test_forget_reloads_persisted_offsets() -> None:
    store = {("tx", 0): 5}
    seq = OffsetSequence(lambda t, p: store.get((t, p)))
    seq.advance([src(5), src(6)])
    store[("tx", 0)] = 50  # another worker owned the partition meanwhile
    seq.forget()
    assert seq.expected("tx", 0) == 50


def test_splice_inserts_before_the_gap() -> None:
    batch = [src(1), src(4), src(5)]
    out = splice(batch, [(1, [src(2), src(3)])])
    assert [s.offset for s in out] == [1, 2, 3, 4, 5]


class _Store(dict):
    pass


def _scorer(fetch: Any) -> tuple[Scorer, list[tuple[int, str, dict]]]:
    written: list[tuple[int, str, dict]] = []
    store = _Store()

    def persist(partition: int, key: str, value: dict) -> None:
        store[key] = value
        written.append((partition, key, value))

    topics = Topics("tx", "labels", "handoff", "v", "s", "dlq", "drift", 3)
    scorer = Scorer(Settings(), topics, sink=None, models=None,  # type: ignore[arg-type]
                    metrics=WorkerMetrics(),
                    cards=StateCache(store, CardState.from_dict, CardState, persist),
                    terminals=StateCache(store, TerminalState.from_dict, TerminalState, persist),
                    fetch_gap=fetch)
    return scorer, written


def test_scorer_reads_gaps_back_and_persists_the_next_offset() -> None:
    asked: list[Gap] = []

    async def fetch(gap: Gap) -> list[Source]:
        asked.append(gap)
        return [src(o) for o in range(gap.start, gap.end) if o != 12]  # 12: a txn marker

    scorer, written = _scorer(fetch)
    scorer.cards.put_next_offsets({("tx", 0): 10})
    out = asyncio.run(scorer._complete([src(10), src(13), src(14)], scorer.card_offsets,
                                       "cards"))
    assert asked == [Gap("tx", 0, 11, 13)]
    assert [s.offset for s in out] == [10, 11, 13, 14]
    scorer.cards.put_next_offsets(scorer.card_offsets.advance(out))
    assert written[-1] == (0, expected_key("tx", 0), {"o": 15})
    assert scorer.cards.next_offset("tx", 0) == 15
    metrics = scorer.metrics.render().decode()
    assert 'sentinel_offset_gaps_total{topic="tx"} 1.0' in metrics
    assert 'sentinel_offset_gap_records_total{topic="tx"} 1.0' in metrics


def test_each_partition_is_verified_once_per_assignment() -> None:
    calls: list[tuple[str, int]] = []

    async def verify(table: str, partition: int) -> int:
        calls.append((table, partition))
        return 2 if partition == 1 else 0

    scorer, _ = _scorer(None)
    scorer.verify_state = verify
    scorer.cards.get("c1")  # a live object, dropped when a repair happens
    batch = [src(0, partition=1), src(0, partition=0), src(1, partition=1)]
    asyncio.run(scorer._complete(batch, scorer.card_offsets, "cards"))
    assert calls == [("cards", 0), ("cards", 1)]
    assert scorer.cards._live == {}
    asyncio.run(scorer._complete([src(2, partition=1)], scorer.card_offsets, "cards"))
    assert len(calls) == 2  # verified already
    scorer.on_rebalance()
    asyncio.run(scorer._complete([src(3, partition=1)], scorer.card_offsets, "cards"))
    assert calls[-1] == ("cards", 1)
