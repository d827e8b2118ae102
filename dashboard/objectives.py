"""The service objectives the headline numbers are coloured against.

They are the thresholds of ``deploy/prometheus/alerts.yml``, written once more here because the
dashboard ships without the deploy directory; ``tests/unit/test_dashboard_objectives.py`` reads
alerts.yml and fails when a rule and its objective here disagree.

>>> LATENCY_P99.status(0.024), LATENCY_P99.status(0.12), LATENCY_P99.status(None)
('ok', 'breach', 'nodata')
>>> VERDICTS.status(0.0), VERDICTS.status(3.2)
('breach', 'ok')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

Status = Literal["ok", "breach", "nodata"]


@dataclass(frozen=True)
class Objective:
    """A bound a number must keep: above ``limit`` is a breach when ``bad_above``, else a
    value at or below ``limit`` is (``limit`` 0: "must not be zero")."""

    alert: str
    limit: float
    bad_above: bool
    text: str

    def status(self, value: float | None) -> Status:
        if value is None:
            return "nodata"
        breached = value > self.limit if self.bad_above else value <= self.limit
        return "breach" if breached else "ok"

    @property
    def rule(self) -> str:
        """The comparison of the alert's expression, as alerts.yml writes it."""
        return f"> {self.limit:g}" if self.bad_above else f"== {self.limit:g}"


LATENCY_OBJECTIVE_S = 0.05
LATENCY_P99 = Objective("SentinelEventToVerdictLatencyHigh", LATENCY_OBJECTIVE_S, True,
                        "objective < 50 ms")
LATENCY_P50 = Objective("SentinelEventToVerdictLatencyHigh", LATENCY_OBJECTIVE_S, True,
                        "objective < 50 ms")
DEAD_LETTER_RATIO = Objective("SentinelDeadLetterRateHigh", 0.01, True, "objective < 1 %")
SHADOW_DISAGREEMENT = Objective("SentinelShadowDisagreementHigh", 0.05, True,
                                "objective < 5 %")
VERDICTS = Objective("SentinelNoVerdicts", 0.0, False, "must not be 0")
HELD = Objective("SentinelTransactionsHeld", 0.0, True, "must be 0")
REGISTRY_UP = Objective("SentinelRegistryUnreachable", 0.0, False, "must be reachable")
# on min(sentinel_worker_ready): one worker at 0 is a breach
WORKERS_READY = Objective("SentinelWorkerNotReady", 0.0, False, "all ready")

ALL = (LATENCY_P99, DEAD_LETTER_RATIO, SHADOW_DISAGREEMENT, VERDICTS, HELD, REGISTRY_UP,
       WORKERS_READY)
