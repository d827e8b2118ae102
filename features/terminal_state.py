"""Per-terminal state and the terminal features, online form: depends only on the terminal.

Transactions are kept sorted by event time (bisect insertion), so slightly out-of-order
arrivals give the same answers; fraud labels arrive separately and are kept as their own
sorted list of (transaction time, label time, id). Windows are shifted back by the label delay.

A label may arrive before its transaction (a backlog, another producer's timing): it is kept as
*pending* until the transaction arrives, then applied, so the result does not depend on which
of the two came first. A label counts at ``t`` only if it was known at ``t`` (its label time),
which is what makes applying labels early safe.
"""

from __future__ import annotations

from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable
from typing import Any

from features import packed
from features.spec import DAY_US, SECOND_US, FeatureConfig


class TerminalState:
    """One terminal's recent transactions and the fraud labels that have arrived for them."""

    __slots__ = ("fraud_ids", "fraud_label_times", "fraud_times", "ids", "pending", "times",
                 "watermark")

    def __init__(self) -> None:
        # times as int64 arrays (contiguous, cheap to serialise; see CardState)
        self.times = array("q")
        self.ids: list[str] = []
        self.fraud_times = array("q")
        self.fraud_label_times = array("q")
        self.fraud_ids: list[str] = []
        self.watermark: int | None = None
        # labels whose transaction has not arrived: id -> (transaction time, fraud, label time)
        self.pending: dict[str, tuple[int, bool, int | None]] = {}

    def __len__(self) -> int:
        return len(self.times)

    def update(self, transaction_id: str, time_us: int, config: FeatureConfig) -> list[float]:
        """Features of a transaction (``config.terminal_names`` order), then remember it."""
        out = self.features(time_us, config)
        self.insert(transaction_id, time_us)
        self.advance(time_us, config)
        return out

    def insert(self, transaction_id: str, time_us: int) -> bool:
        """Remember a transaction (idempotent; False when already known) and apply a label
        that arrived before it. Safe before the transaction is scored: features at ``t`` only
        count transactions before ``t`` (``t - D``), so a stage may insert every transaction
        as soon as it reads it and score them later in any order."""
        if self._holds(transaction_id, time_us):
            return False
        pos = bisect_right(self.times, time_us)
        self.times.insert(pos, time_us)
        self.ids.insert(pos, transaction_id)
        if self.pending:
            early = self.pending.pop(transaction_id, None)
            if early is not None and early[0] == time_us:
                self.apply_label(transaction_id, time_us, early[1], early[2])
        return True

    def advance(self, time_us: int, config: FeatureConfig, safe_us: int | None = -1) -> None:
        """A transaction at ``time_us`` was scored: move the watermark and forget what no
        window of a later transaction can reach. A stage that scores out of event-time order
        passes ``safe_us``, the oldest event time it may still score (None: unknown, keep
        everything); -1 means in order (the watermark is safe)."""
        if self.watermark is None or time_us > self.watermark:
            self.watermark = time_us
        if safe_us is None:
            return
        newest = self.watermark if safe_us == -1 else min(self.watermark, safe_us)
        span = config.delay_us + max(config.terminal_spans_us)
        self._evict(newest - span - config.retention_slack_days * DAY_US)

    def features(self, t: int, config: FeatureConfig) -> list[float]:
        """Counts and fraud rates in ``(t - D - w, t - D]`` (``(t - w, t)`` when D = 0), then the
        widest window's fraud count and seconds since its first and last fraud."""
        times, ftimes, delay = self.times, self.fraud_times, config.delay_us
        if delay:
            hi = bisect_right(times, t - delay)
            fhi = bisect_right(ftimes, t - delay)
        else:
            hi = bisect_left(times, t)
            fhi = bisect_left(ftimes, t)
        out: list[float] = []
        label_times = self.fraud_label_times
        counted: list[int] = []
        widest = max(config.terminal_spans_us)
        for span in config.terminal_spans_us:
            start = t - delay - span
            n = hi - bisect_right(times, start, 0, hi)
            flo = bisect_right(ftimes, start, 0, fhi)
            frauds = sum(1 for lt in label_times[flo:fhi] if lt <= t)
            out.append(float(n))
            out.append(frauds / n if n else 0.0)
            if span == widest and frauds:
                counted = [i for i in range(flo, fhi) if label_times[i] <= t]
        out.append(float(len(counted)))
        if counted:
            out.append((t - ftimes[counted[0]]) / SECOND_US)
            out.append((t - ftimes[counted[-1]]) / SECOND_US)
        else:
            out += [-1.0, -1.0]
        return out

    def apply_label(
        self,
        transaction_id: str,
        transaction_time_us: int,
        is_fraud: bool,
        label_time_us: int | None = None,
    ) -> bool:
        """Record a label; False when it was not applied: ignored (the transaction expired, or
        the label was known no later than it), or kept pending until its transaction arrives.

        Several labels of one transaction give the same result in any order: it is a fraud
        from the earliest ``label_time_us`` of its fraud labels, and a genuine label never
        takes a fraud back (a correction would need an event of its own).

        ``label_time_us`` is when the label became known; features at ``t`` count the fraud only
        if it is ``<= t``; a label known no later than its transaction is ignored (in the replay
        it arrives before the transaction). None means: count it from now on. Idempotent.
        """
        if label_time_us is not None and label_time_us <= transaction_time_us:
            return False
        if not self._holds(transaction_id, transaction_time_us):
            # kept until the transaction arrives; dropped with the window horizon (``_evict``)
            self._pend(transaction_id, transaction_time_us, is_fraud, label_time_us)
            return False
        if not is_fraud:  # labels are monotone: a genuine label never takes a fraud back
            return True
        lo = bisect_left(self.fraud_times, transaction_time_us)
        hi = bisect_right(self.fraud_times, transaction_time_us, lo)
        present = next((i for i in range(lo, hi) if self.fraud_ids[i] == transaction_id), None)
        known = transaction_time_us if label_time_us is None else label_time_us
        if present is None:
            self.fraud_times.insert(hi, transaction_time_us)
            self.fraud_ids.insert(hi, transaction_id)
            self.fraud_label_times.insert(hi, known)
        elif known < self.fraud_label_times[present]:  # the earliest fraud label counts
            self.fraud_label_times[present] = known
        return True

    def _pend(self, transaction_id: str, time_us: int, is_fraud: bool,
              label_time_us: int | None) -> None:
        """Keep a label for a transaction not seen yet; several merge as :meth:`apply_label`
        would apply them (a fraud stays a fraud, from its earliest label)."""
        old = self.pending.get(transaction_id)
        if old is not None and old[0] == time_us and old[1]:
            if not is_fraud:
                return
            if old[2] is None or (label_time_us is not None and old[2] < label_time_us):
                label_time_us = old[2]
        self.pending[transaction_id] = (time_us, is_fraud, label_time_us)

    def _holds(self, transaction_id: str, time_us: int) -> bool:
        i = bisect_left(self.times, time_us)
        while i < len(self.times) and self.times[i] == time_us:
            if self.ids[i] == transaction_id:
                return True
            i += 1
        return False

    def _evict(self, horizon: int) -> None:
        if self.times and self.times[0] <= horizon:
            k = bisect_right(self.times, horizon)
            del self.times[:k], self.ids[:k]
        if self.fraud_times and self.fraud_times[0] <= horizon:
            k = bisect_right(self.fraud_times, horizon)
            del self.fraud_times[:k], self.fraud_ids[:k], self.fraud_label_times[:k]
        if self.pending and min(t for t, _, _ in self.pending.values()) <= horizon:
            self.pending = {k: v for k, v in self.pending.items() if v[0] > horizon}

    def to_dict(self) -> dict[str, Any]:
        """A compact JSON-able form: parallel lists, no per-event keys."""
        return self._columns(packed.plain_ints, packed.plain_strings)

    def pack(self) -> dict[str, Any]:
        """:meth:`to_dict` with packed columns (``features.packed``; the changelog form)."""
        return self._columns(packed.pack_ints, packed.pack_strings)

    def _columns(self, ints: Callable[[Any], Any], strings: Callable[[Any], Any]) -> dict[str, Any]:
        return {
            "t": ints(self.times),
            "i": strings(self.ids),
            "ft": ints(self.fraud_times),
            "fl": ints(self.fraud_label_times),
            "fi": strings(self.fraud_ids),
            "w": self.watermark,
            "p": [[k, t, f, lt] for k, (t, f, lt) in self.pending.items()],
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TerminalState:
        """From :meth:`to_dict` or :meth:`pack`."""
        state = cls()
        state.times = packed.unpack_ints(data["t"])
        state.ids = packed.unpack_strings(data["i"])
        state.fraud_times = packed.unpack_ints(data["ft"])
        state.fraud_label_times = packed.unpack_ints(data["fl"])
        state.fraud_ids = packed.unpack_strings(data["fi"])
        state.watermark = data.get("w")
        state.pending = {k: (t, bool(f), lt) for k, t, f, lt in data.get("p", [])}
        return state
