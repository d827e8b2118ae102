"""The predecessor's decisions on the served champion's frauds: the live rollback's yardstick.

A promoted champion is judged against the model it replaced *on the same payments*, not
against that model's recall in an earlier window. After a shift the book changes and the
predecessor's recall on the known patterns moves with it: measured against its recall in the
promotion's evidence, the closed-loop bench (tenth session, seeds 707 and 709) rolled back
models that caught the new pattern to one that caught none of it. The predecessor was trained
before these payments, so its decisions are out of sample; they come from the feature code the
worker runs (:func:`lifecycle.backfill.score_rows`), computed in batches over the stored
history and cached per payment (a stored payment's features never change).
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import pandas as pd

from features.spec import FeatureConfig
from lifecycle.backfill import cached_over_history, score_rows
from lifecycle.labelstore import LabelStore

logger = logging.getLogger(__name__)


class PredecessorDecisions:
    """Whether the predecessor would have flagged each payment asked about; per version."""

    def __init__(self, store: LabelStore, config: FeatureConfig) -> None:
        self.store = store
        self.config = config
        self.version: str | None = None
        self._cache: dict[str, bool] = {}

    def of(self, model: Any, version: str, ids: pd.Series, times: pd.Series,
           min_batch: int = 1) -> np.ndarray:
        """1.0 flagged, 0.0 approved, NaN not computed yet (fewer than ``min_batch`` new
        payments: the caller leaves them out until the next batch)."""
        if version != self.version:
            self.version, self._cache = version, {}

        def decide(tx: pd.DataFrame, labels: pd.DataFrame, wanted: list[str]) -> dict[str, bool]:
            rows = np.flatnonzero(tx["transaction_id"].isin(set(wanted)).to_numpy())
            logger.info("scored %d payments with predecessor v%s", len(rows), version)
            if not len(rows):
                return {}
            flagged = model.decide(score_rows(tx, labels, rows, model, self.config)) != "approve"
            return dict(zip(tx["transaction_id"].to_numpy()[rows].tolist(), flagged.tolist(),
                            strict=True))

        return cached_over_history(self._cache, self.store, self.config, ids, times, min_batch,
                                   decide, model.attributes)
