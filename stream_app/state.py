"""Keyed feature state as the worker keeps it in Faust tables: a state plus a replay memory.

At-least-once delivery means a restarted worker may see a transaction its state already holds
(the changelog was written, the offset not yet committed). ``recent`` remembers the features of
the key's last transactions by id, so a replayed transaction gets exactly the features it got
the first time and the state is not updated twice.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, Protocol, TypeVar

RECENT = 64


class _Serialisable(Protocol):
    def to_dict(self) -> dict[str, Any]: ...


S = TypeVar("S", bound=_Serialisable)


class KeyedState(Generic[S]):
    """One key's feature state and the features of its most recent transactions."""

    __slots__ = ("recent", "state")

    def __init__(self, state: S, recent: dict[str, list[float]] | None = None) -> None:
        self.state = state
        self.recent: dict[str, list[float]] = recent or {}

    def features(self, transaction_id: str, compute: Callable[[S], list[float]]) -> list[float]:
        """The transaction's features: remembered if already seen, else computed (updating)."""
        seen = self.recent.get(transaction_id)
        if seen is not None:
            return seen
        out = compute(self.state)
        recent = self.recent
        recent[transaction_id] = out
        if len(recent) > RECENT:
            del recent[next(iter(recent))]
        return out

    def to_dict(self) -> dict[str, Any]:
        return {"s": self.state.to_dict(), "r": list(self.recent.items())}

    @classmethod
    def from_dict(cls, data: dict[str, Any], load: Callable[[dict[str, Any]], S]) -> KeyedState[S]:
        return cls(load(data["s"]), {k: list(v) for k, v in data.get("r", [])})
