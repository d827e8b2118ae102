"""The label path of drift detection, run by the retrainer.

The worker scores a payment days before its label arrives and keeps no per-transaction score
(docs/streaming.md), so the champion's errors are watched where verdicts and labels meet: the
retrainer's label store. Each batch of arriving labels (chargebacks, and the fraud labels a
batch of fraud reports gives the payments stored when it is read,
:meth:`~lifecycle.labelstore.LabelStore.resolve`) is joined with the stored verdicts and fed
to :meth:`drift.monitor.DriftMonitor.observe_labels`, whose label monitor
(:class:`drift.labels.LabelMonitor`) runs ADWIN on missed frauds, HDDM-A on the error and a
Poisson CUSUM on frauds per batch; this module is the adapter that feeds it. Its alerts go
to the drift-alerts topic like the worker's, so the retrainer acts on them through the same
guardrails.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from drift.monitor import DriftMonitor
from features import FeatureConfig
from lifecycle.labelstore import LabelStore
from schemas.events import DriftAlert, LabelFeedback
from sentinel.settings import Settings


class LabelDriftWatch:
    """Joins arriving labels with the champion's verdicts and watches its errors."""

    def __init__(self, settings: Settings, store: LabelStore,
                 monitor: DriftMonitor | None = None) -> None:
        names = FeatureConfig.from_settings(settings.features).names
        self.monitor = monitor or DriftMonitor(settings.drift, names)
        self.store = store
        self.joined = 0
        self.unmatched = 0

    def observe(self, labels: Sequence[LabelFeedback]) -> list[DriftAlert]:
        """Alerts from this batch of labels (in label-time order); labels whose verdict is not
        stored (never scored here, or its verdict not consumed yet) are counted and skipped."""
        if not labels:
            return []
        verdicts = self.store.verdicts_of([x.transaction_id for x in labels])
        by_id = {row.transaction_id: row for row in verdicts.itertuples(index=False)}
        matched = sorted((x for x in labels if x.transaction_id in by_id),
                         key=lambda x: x.reported_at)
        self.unmatched += len(labels) - len(matched)
        if not matched:
            return []
        self.joined += len(matched)
        rows = [by_id[x.transaction_id] for x in matched]
        self.monitor.set_model_version(str(rows[-1].model_version))
        return self.monitor.observe_labels(
            np.array([r.score for r in rows], dtype=np.float64),
            np.array([x.is_fraud for x in matched], dtype=bool),
            [x.reported_at for x in matched],
            flagged=np.array([bool(r.flagged) for r in rows]))
