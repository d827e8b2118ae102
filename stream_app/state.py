"""Keyed feature state as the worker keeps it in its stores: a state plus a replay memory.

At-least-once delivery means a restarted worker may see a transaction its state already holds
(the changelog was written, the source offset not yet committed). ``recent`` remembers, by
transaction id, the source offset and features of the key's transactions that are not yet
committed, so a replayed transaction gets exactly the features it got the first time and the
state is not updated twice. Entries below the partition's committed offset can never be
replayed and are pruned when the key is written, which keeps changelog values small (the
state alone, plus the one or two transactions of the last second). The remembered features are
tuples of floats: the garbage collector untracks such tuples (and then the dict holding only
them) in its first pass, so thousands of keys' memories add nothing to a full collection.
"""

from __future__ import annotations

import json
import marshal
from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

MARSHAL = b"M"  # format tag of changelog values; older values were JSON objects (b"{")
RECENT_MAX = 4096  # a bound for safety only: commits prune the memory long before this


class _Serialisable(Protocol):
    def pack(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=_Serialisable)


class KeyedState(Generic[S]):
    """One key's feature state and the features of its uncommitted transactions."""

    __slots__ = ("recent", "state")

    def __init__(self, state: S, recent: dict[str, tuple[int, tuple[float, ...]]] | None = None,
                 ) -> None:
        self.state = state
        self.recent: dict[str, tuple[int, tuple[float, ...]]] = recent or {}

    def features(self, transaction_id: str, offset: int,
                 compute: Callable[[S], list[float]]) -> tuple[float, ...]:
        """The transaction's features: remembered if already seen, else computed (updating)."""
        seen = self.recent.get(transaction_id)
        if seen is not None:
            return seen[1]
        out = tuple(compute(self.state))
        recent = self.recent
        recent[transaction_id] = (offset, out)
        if len(recent) > RECENT_MAX:
            del recent[next(iter(recent))]
        return out

    def prune(self, committed: int | None) -> None:
        """Forget transactions whose source offset is below ``committed`` (never replayed)."""
        recent = self.recent
        if committed is None or not recent:
            return
        for offset, _ in recent.values():
            if offset < committed:  # something to forget: rebuild once
                self.recent = {k: v for k, v in recent.items() if v[0] >= committed}
                return

    def to_dict(self) -> dict[str, Any]:
        """The changelog form (the state's :meth:`pack`: packed columns, ``features.packed``)."""
        return {"s": self.state.pack(), "r": [[k, o, f] for k, (o, f) in self.recent.items()]}

    @classmethod
    def from_dict(cls, data: dict[str, Any], load: Callable[[dict[str, Any]], S]) -> KeyedState[S]:
        return cls(load(data["s"]), {k: (o, tuple(f)) for k, o, f in data.get("r", [])})


def encode_value(data: dict[str, Any]) -> bytes:
    """A changelog value: ``marshal`` (format 4) of the plain dict, tagged.

    About ten times cheaper than JSON for these lists of ints and strings, and this encoding
    runs once per touched key per batch, which made it the worker's largest cost. marshal is
    only for trusted data: the changelog is an internal topic written by the worker alone
    (whoever can write it can corrupt the state in any encoding).
    """
    return MARSHAL + marshal.dumps(data, 4)


def decode_value(raw: bytes | dict[str, Any]) -> dict[str, Any]:
    """The dict of :func:`encode_value` (JSON values of older workers are read too)."""
    if isinstance(raw, dict):
        return raw
    if raw[:1] == MARSHAL:
        return marshal.loads(raw[1:])  # type: ignore[no-any-return]  # noqa: S302 - ours
    return json.loads(raw)  # type: ignore[no-any-return]
