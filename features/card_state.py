"""Per-card state and the card features, online form: depends only on the card's own events.

The state keeps the card's events of the last ``history + slack`` as parallel lists (time in
microseconds, amount in cents, terminal) plus running prefix sums of cents and cents squared,
so every window is two bisects and a subtraction.

``payments`` (:class:`features.reports.CardPayments`) is the card's longer memory of payment
ids for fraud reports; the card features never read it.
"""

from __future__ import annotations

import math
import sys
from array import array
from bisect import bisect_right
from collections.abc import Callable
from itertools import accumulate
from typing import Any

from features import packed
from features.reports import CardPayments
from features.spec import DAY_US, HOUR_US, SECOND_US, FeatureConfig


class CardState:
    """One card's recent events. Serialise with :meth:`to_dict` for a changelog-backed table."""

    __slots__ = ("cents", "cum_cents", "cum_squares", "payments", "terminals", "times",
                 "watermark")

    def __init__(self) -> None:
        # int64 arrays, not lists: one contiguous buffer each instead of an int object per
        # event, so the changelog encoding of a state touched once a batch reads warm memory
        self.times = array("q")
        self.cents = array("q")
        self.terminals: list[str] = []
        self.cum_cents: list[int] = [0]
        self.cum_squares: list[int] = [0]
        self.watermark: int | None = None
        self.payments = CardPayments()

    def __len__(self) -> int:
        return len(self.times)

    def update(self, time_us: int, cents: int, terminal: str, config: FeatureConfig) -> list[float]:
        """Add one transaction and return its card features in ``config.card_names`` order."""
        times = self.times
        if times and time_us < times[-1]:
            pos = bisect_right(times, time_us)
            times.insert(pos, time_us)
            self.cents.insert(pos, cents)
            self.terminals.insert(pos, sys.intern(terminal))
            self._rebuild_sums()
        else:
            pos = len(times)
            times.append(time_us)
            self.cents.append(cents)
            self.terminals.append(sys.intern(terminal))  # one shared object per terminal id
            self.cum_cents.append(self.cum_cents[-1] + cents)
            self.cum_squares.append(self.cum_squares[-1] + cents * cents)
        out = self._features(pos, time_us, cents, terminal, config)
        if self.watermark is None or time_us > self.watermark:
            self.watermark = time_us
        self._evict(self.watermark - config.history_us - config.retention_slack_days * DAY_US)
        return out

    def _features(
        self, pos: int, t: int, cents: int, terminal: str, config: FeatureConfig
    ) -> list[float]:
        times, cum_c, cum_q = self.times, self.cum_cents, self.cum_squares
        out: list[float] = []
        end = cum_c[pos + 1]
        for span in config.card_spans_us:
            lo = bisect_right(times, t - span, 0, pos)
            n = pos + 1 - lo
            out.append(float(n))
            out.append((end - cum_c[lo]) / (100 * n))
        out.append(float(pos + 1 - bisect_right(times, t - HOUR_US, 0, pos)))
        history = config.history_us
        lo = bisect_right(times, t - history, 0, pos)
        n = pos - lo
        s = cum_c[pos] - cum_c[lo]
        var_num = n * (cum_q[pos] - cum_q[lo]) - s * s
        out.append((cents * n) / s if n and s > 0 else 1.0)
        out.append((cents * n - s) / math.sqrt(var_num) if n >= 2 and var_num > 0 else 0.0)
        out.append(1.0 if terminal in self.terminals[lo:pos] else 0.0)
        out.append(((t - times[pos - 1]) if n else history) / SECOND_US)
        out.append(sum(1 for c in self.cents[lo:pos] if c < cents) / n if n else 0.5)
        for span in config.card_spans_us:
            if span < history:
                # the older part of the history: (t - history, t - span]
                hi = bisect_right(times, t - span, lo, pos)
                m, older = hi - lo, cum_c[hi] - cum_c[lo]
                out.append((cents * m) / older if m and older > 0 else 1.0)
        return out

    def _rebuild_sums(self) -> None:
        self.cum_cents = [0, *accumulate(self.cents)]
        self.cum_squares = [0, *accumulate(c * c for c in self.cents)]

    def _evict(self, horizon: int) -> None:
        if self.times and self.times[0] <= horizon:
            k = bisect_right(self.times, horizon)
            del self.times[:k], self.cents[:k], self.terminals[:k]
            del self.cum_cents[:k], self.cum_squares[:k]

    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-able form: parallel lists, no per-event keys."""
        return self._columns(packed.plain_ints, packed.plain_strings)

    def pack(self) -> dict[str, Any]:
        """:meth:`to_dict` with packed columns (``features.packed``; the changelog form)."""
        return self._columns(packed.pack_ints, packed.pack_strings)

    def _columns(self, ints: Callable[[Any], Any], strings: Callable[[Any], Any]) -> dict[str, Any]:
        out = {"t": ints(self.times), "c": ints(self.cents), "k": strings(self.terminals),
               "w": self.watermark}
        if self.payments.watermark is not None or self.payments.open:
            pay = self.payments
            out["p"] = pay.pack() if ints is packed.pack_ints else pay.to_dict()
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> CardState:
        """From :meth:`to_dict` or :meth:`pack`."""
        state = cls()
        state.times = packed.unpack_ints(data["t"])
        state.cents = packed.unpack_ints(data["c"])
        state.terminals = [sys.intern(k) for k in packed.unpack_strings(data["k"])]
        state.watermark = data.get("w")
        if "p" in data:
            state.payments = CardPayments.from_dict(data["p"])
        state._rebuild_sums()
        return state
