"""Per-partition state stores backed by compacted changelog topics (quix-streams' ``state/``).

A store holds, for each assigned partition, the feature state of its keys. Values restored from
the changelog stay as bytes until a key is first used. Keys written during a checkpoint are
*dirty*; :meth:`StateStore.flush` sends each dirty key's value to the changelog partition of
the same number, inside the checkpoint's Kafka transaction, so state and input offsets commit
together. After an aborted checkpoint the partition is dropped and restored again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

from stream_app.state import KeyedState, decode_value, encode_value

logger = logging.getLogger(__name__)


class _Packable(Protocol):
    def pack(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=_Packable)
Produce = Callable[[str, bytes, bytes, int], None]


class PartitionState(Generic[S]):
    """One partition's keys: restored bytes, live objects and the keys changed since the last
    checkpoint."""

    __slots__ = ("dirty", "live", "raw")

    def __init__(self, raw: dict[bytes, bytes | None] | None = None) -> None:
        self.raw: dict[bytes, bytes | None] = raw or {}
        self.live: dict[str, KeyedState[S]] = {}
        self.dirty: set[str] = set()


class StateStore(Generic[S]):
    """Keyed state of one stage (``cards`` or ``terminals``), partitioned like its input."""

    def __init__(self, name: str, changelog: str, load: Callable[[dict[str, Any]], S],
                 new: Callable[[], S]) -> None:
        self.name = name
        self.changelog = changelog
        self._load = load
        self._new = new
        self.partitions: dict[int, PartitionState[S]] = {}
        self.undecodable = 0

    def assign(self, partition: int, restored: dict[bytes, bytes | None]) -> None:
        """Install a partition restored from its changelog."""
        self.partitions[partition] = PartitionState(restored)

    def revoke(self, partition: int) -> None:
        self.partitions.pop(partition, None)

    def get(self, partition: int, key: str) -> KeyedState[S]:
        """The key's state (created empty when unknown); marks it dirty."""
        part = self.partitions[partition]
        part.dirty.add(key)
        entry = part.live.get(key)
        if entry is None:
            entry = part.live[key] = self._decode(part, key)
        return entry

    def peek(self, key: str) -> KeyedState[S] | None:
        """A copy of the key's state for read-only use (``/predict``), from any partition."""
        for part in list(self.partitions.values()):
            entry = part.live.get(key)
            if entry is not None:
                return KeyedState.from_dict(entry.to_dict(), self._load)
            if part.raw.get(key.encode()) is not None:
                return self._decode(part, key)
        return None

    def _decode(self, part: PartitionState[S], key: str) -> KeyedState[S]:
        raw = part.raw.pop(key.encode(), None)
        if raw is None:
            return KeyedState(self._new())
        try:
            return KeyedState.from_dict(decode_value(raw), self._load)
        except Exception as exc:  # a hostile or corrupt changelog record: start the key anew
            self.undecodable += 1
            logger.error("store=%s key=%r: changelog value undecodable, key starts empty "
                         "error=%s", self.name, key, exc)
            return KeyedState(self._new())

    def flush(self, produce: Produce, prune_below: int | None) -> int:
        """Send every dirty key to the changelog; returns how many were sent."""
        sent = 0
        for partition, part in self.partitions.items():
            for key in part.dirty:
                entry = part.live[key]
                entry.prune(prune_below)
                produce(self.changelog, key.encode(), encode_value(entry.to_dict()), partition)
                sent += 1
            part.dirty.clear()
        return sent

    def keys(self, partition: int) -> int:
        part = self.partitions.get(partition)
        return 0 if part is None else len(part.raw) + len(part.live)
