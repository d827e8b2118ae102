"""Shadow evidence from the payments a new candidate has not seen (out-of-time backfill).

A candidate registered at T was trained on the payments labelled by T; the newest of them is
its ``cutoff``. The payments after the cutoff were scored live by the champion, but not by the
candidate: the worker starts shadowing it only after T, so the first shadow results mature a
full label delay after T. Here those payments get the candidate's score from the same feature
code the worker runs (:func:`features.offline.compute_features`, proven equal to the online
state) over the stored history and its labels (fraud reports' included, as
:meth:`~lifecycle.labelstore.LabelStore.training_frame` reads them), and its attributes
through its feature spec as the worker encodes them, beside the champion's live verdict, and
are stored as shadow results with source ``backfill``. They are out of sample (no label of
theirs existed when the candidate was trained) and their labels mature from T on, so the
promotion test can start as soon as there is enough of them. The worker's own shadow results
are added as they come.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta

import numpy as np
import pandas as pd

from features.attributes import AttributeSpec
from features.spec import FeatureConfig
from lifecycle.labelstore import LabelStore
from training.model import FraudModel

logger = logging.getLogger(__name__)


def cutoff_of(frame: pd.DataFrame, labels: pd.DataFrame) -> datetime | None:
    """The newest labelled payment of a training set: nothing after it was trained on."""
    labelled = frame.loc[frame["transaction_id"].isin(labels["transaction_id"]), "event_time"]
    return None if labelled.empty else pd.Timestamp(labelled.max()).to_pydatetime()


def history_days(config: FeatureConfig) -> int:
    """How far before a payment its features look: the widest window plus the label delay."""
    return max(config.card_windows + config.terminal_windows) + config.label_delay_days + 1


Compute = Callable[[pd.DataFrame, pd.DataFrame, list[str]], Mapping[str, bool]]


def cached_over_history(cache: dict[str, bool], store: LabelStore, config: FeatureConfig,
                        ids: pd.Series, times: pd.Series, min_batch: int, compute: Compute,
                        spec: AttributeSpec | None = None) -> np.ndarray:
    """A per-payment flag computed over the stored history in batches and cached (a stored
    payment's features never change): once ``min_batch`` of ``ids`` are new, ``compute(tx,
    labels, new_ids)`` runs on the history they need (:func:`history_days` before the oldest,
    with ``spec``'s attributes). Returns 1.0 / 0.0, NaN where not computed yet (the caller
    leaves those out until the next batch)."""
    new = ~ids.isin(cache.keys()).to_numpy()
    if new.sum() >= max(1, min_batch):
        since = pd.Timestamp(pd.to_datetime(times[new], utc=True).min()).to_pydatetime()
        tx, labels = store.training_frame(since - timedelta(days=history_days(config)), spec)
        cache.update(compute(tx, labels, ids[new].tolist()))
    return np.array([float(cache[i]) if i in cache else np.nan for i in ids])


def score_rows(tx: pd.DataFrame, labels: pd.DataFrame, rows: np.ndarray, model: FraudModel,
               config: FeatureConfig) -> np.ndarray:
    """``model``'s scores of ``tx``'s ``rows``: the serving features over the stored history
    ``tx`` and ``labels`` (:meth:`LabelStore.training_frame` with the model's attributes)."""
    from features.offline import compute_features

    features = compute_features(tx, labels, config).iloc[rows]
    attributes = tx[[a.name for a in model.attributes.attributes]].iloc[rows]
    return model.score(model.inputs(features, attributes))


def backfill_shadow(store: LabelStore, candidate: FraudModel, candidate_version: str,
                    champion_version: str, cutoff: datetime, config: FeatureConfig) -> int:
    """Score the payments after ``cutoff`` that the champion scored live; store them as the
    candidate's shadow results (live ones win). Returns how many were stored."""
    spec = candidate.attributes  # its attributes as columns (the champion's, when retrained)
    tx, labels = store.training_frame(cutoff - timedelta(days=history_days(config)), spec)
    after = (tx["event_time"] > pd.Timestamp(cutoff)).to_numpy()
    if not after.any():
        return 0
    live = store.verdicts_of(tx.loc[after, "transaction_id"].tolist())
    live = live[live["model_version"] == champion_version].set_index("transaction_id")
    rows = np.flatnonzero(after & tx["transaction_id"].isin(live.index).to_numpy())
    if len(rows) == 0:
        return 0
    scores = score_rows(tx, labels, rows, candidate, config)
    ids = tx["transaction_id"].to_numpy()[rows]
    champion = live.loc[ids]
    stored = store.add_backfilled_shadow(
        ids.tolist(), champion_version, candidate_version,
        champion["score"].to_numpy(np.float64), scores.astype(np.float64),
        champion["flagged"].to_numpy().astype(bool), candidate.decide(scores) != "approve",
        tx["event_time"].iloc[rows].tolist())
    logger.info("backfilled %d shadow results of v%s after %s (of %d payments since)",
                stored, candidate_version, cutoff, int(after.sum()))
    return stored
