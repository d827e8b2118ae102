"""Every offset of a stage's inputs is processed: gaps are found and filled from the broker.

Why: the kill-and-restart test showed a transaction that the restarted worker never saw
(no verdict, and every later transaction of its card scored on a state without it) while
the offsets around it were processed; the consumer under Faust had skipped it. A stage
therefore remembers, per source partition, the next offset it expects, persisted with the
stage's state (so a restarted or rebalanced worker knows it from the changelog). When a
batch jumps past it, the stage reads the missing range straight from the broker and
processes it first, in order. Offsets below the expected one are replays (at-least-once),
which the state's replay memory answers. A range that holds no records (transaction markers,
retention) is simply accepted.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol


class Offsetted(Protocol):
    @property
    def topic(self) -> str: ...

    @property
    def partition(self) -> int: ...

    @property
    def offset(self) -> int: ...


@dataclass(frozen=True, slots=True)
class Gap:
    """Offsets ``[start, end)`` of ``topic``/``partition`` that never reached the stage."""

    topic: str
    partition: int
    start: int
    end: int


def expected_key(topic: str, partition: int) -> str:
    """The state-store key holding a partition's next expected offset (never a card or
    terminal id: those are event fields, and this starts with a NUL byte)."""
    return f"\x00next-offset:{topic}:{partition}"


class OffsetSequence:
    """Next expected offset per (topic, partition); ``load`` reads persisted ones lazily."""

    def __init__(self, load: Callable[[str, int], int | None]) -> None:
        self._load = load
        self._next: dict[tuple[str, int], int | None] = {}

    def expected(self, topic: str, partition: int) -> int | None:
        tp = (topic, partition)
        if tp not in self._next:
            self._next[tp] = self._load(topic, partition)
        return self._next[tp]

    def gaps(self, batch: Sequence[Offsetted]) -> list[tuple[int, Gap]]:
        """``(index, gap)`` for each jump: the gap's records belong before ``batch[index]``."""
        out: list[tuple[int, Gap]] = []
        cursor: dict[tuple[str, int], int | None] = {}
        for i, src in enumerate(batch):
            tp = (src.topic, src.partition)
            nxt = cursor[tp] if tp in cursor else self.expected(*tp)
            if nxt is not None and src.offset > nxt:
                out.append((i, Gap(src.topic, src.partition, nxt, src.offset)))
            cursor[tp] = src.offset + 1 if nxt is None else max(nxt, src.offset + 1)
        return out

    def advance(self, batch: Sequence[Offsetted]) -> dict[tuple[str, int], int]:
        """Record the batch as processed; the partitions whose expected offset moved."""
        moved: dict[tuple[str, int], int] = {}
        for src in batch:
            tp = (src.topic, src.partition)
            nxt = self.expected(*tp)
            if nxt is None or src.offset >= nxt:
                self._next[tp] = moved[tp] = src.offset + 1
        return moved

    def forget(self) -> None:
        """After a rebalance the persisted offsets are the truth."""
        self._next.clear()


def splice(batch: list[Any], filled: list[tuple[int, list[Any]]]) -> list[Any]:
    """``batch`` with each filled range inserted before the index where its gap was found."""
    if not filled:
        return batch
    at: dict[int, list[Any]] = {}
    for index, records in filled:
        at.setdefault(index, []).extend(records)
    out: list[Any] = []
    for i, src in enumerate(batch):
        out.extend(at.get(i, ()))
        out.append(src)
    return out
