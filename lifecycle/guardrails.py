"""When a drift alert may start a retrain: pure rules, no clock or broker of their own.

A burst of alerts for one shift (several signals, ADWIN re-firing) must cost one retrain, and
retraining must not run away: a cooldown after each retrain, a daily cap, and enough labels
that arrived after the shift began (otherwise the new model learns the old world), among them
enough frauds (``retrain_min_frauds``: a new pattern is learnt from its examples, and a few
dozen give a model that catches the next bursts by chance).

>>> from datetime import UTC, datetime, timedelta
>>> from sentinel.settings import DriftSettings
>>> g = Guardrails(DriftSettings(retrain_min_labels=10, retrain_cooldown_s=60))
>>> t = datetime(2024, 1, 1, tzinfo=UTC)
>>> g.decide("score", t, labels_since_shift=50).retrain
True
>>> g.record_retrain(t)
>>> g.decide("amount", t + timedelta(seconds=30), labels_since_shift=50).reason
'cooldown'
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sentinel.settings import DriftSettings

DAY = timedelta(days=1)


@dataclass(frozen=True)
class Decision:
    """Whether to retrain now, and why (a metric label: retrain, duplicate, cooldown, ...)."""

    retrain: bool
    reason: str


class Guardrails:
    """Alert dedup by signal within a window, cooldown, daily cap and minimum labels."""

    def __init__(self, settings: DriftSettings, dedup_window_s: float | None = None) -> None:
        self.settings = settings
        self.dedup_window = timedelta(seconds=dedup_window_s if dedup_window_s is not None
                                      else settings.retrain_cooldown_s)
        self._seen: dict[str, datetime] = {}
        self._retrains: deque[datetime] = deque()
        self.pending_since: datetime | None = None

    def decide(self, signal: str, now: datetime, labels_since_shift: int,
               frauds_since_shift: int | None = None) -> Decision:
        """Judge one alert at time ``now`` (wall clock of the retrainer, or event time)."""
        last = self._seen.get(signal)
        duplicate = last is not None and now - last < self.dedup_window
        self._seen[signal] = now
        if duplicate and self.pending_since is None:
            return Decision(False, "duplicate")
        limited = self.limits(now)
        if not limited.retrain:
            return limited
        if labels_since_shift < self.settings.retrain_min_labels:
            self.pending_since = self.pending_since or now
            return Decision(False, "min_labels")
        if (self.settings.retrain_min_frauds and frauds_since_shift is not None
                and frauds_since_shift < self.settings.retrain_min_frauds):
            self.pending_since = self.pending_since or now
            return Decision(False, "min_frauds")
        return Decision(True, "retrain")

    def limits(self, now: datetime) -> Decision:
        """The cooldown since the last retrain and the daily cap alone (follow-up retrains)."""
        if self._retrains and now - self._retrains[-1] < timedelta(
                seconds=self.settings.retrain_cooldown_s):
            return Decision(False, "cooldown")
        while self._retrains and now - self._retrains[0] >= DAY:
            self._retrains.popleft()
        if len(self._retrains) >= self.settings.retrain_daily_cap:
            return Decision(False, "daily_cap")
        return Decision(True, "retrain")

    def record_retrain(self, now: datetime) -> None:
        """A retrain started at ``now``: the cooldown and the daily cap count from here."""
        self._retrains.append(now)
        self.pending_since = None

    def retrains_today(self, now: datetime) -> int:
        return sum(1 for t in self._retrains if now - t < DAY)

    def to_dict(self) -> dict[str, Any]:
        """The rules' memory as JSON-able values, so a restarted retrainer resumes it."""
        return {"seen": {k: v.isoformat() for k, v in self._seen.items()},
                "retrains": [t.isoformat() for t in self._retrains],
                "pending_since": self.pending_since.isoformat() if self.pending_since else None}

    def restore(self, saved: dict[str, Any]) -> None:
        """Take back the memory :meth:`to_dict` gave."""
        self._seen = {k: datetime.fromisoformat(v) for k, v in saved.get("seen", {}).items()}
        self._retrains = deque(datetime.fromisoformat(t) for t in saved.get("retrains", []))
        pending = saved.get("pending_since")
        self.pending_since = datetime.fromisoformat(pending) if pending else None
