"""Card-holders' fraud reports in the simulated world: by a card's time range or by id alone.

The ``reports`` label arrival (:mod:`training.simulation.arrival`) gives each fraud its own
report time. Real card-holders often report differently: "every payment since Monday was not
me" (a range of their card) or "this payment" without naming its terminal and time (an id).
:func:`fraud_reports` turns a seeded share of the reported frauds into such
``FraudReport`` rows:

- a card whose frauds are reported is, with probability ``range_share``, reported once as
  a range: at the earliest report time ``r`` of its frauds, the range from its first fraud
  up to ``r``. The range names every payment of the card in it, genuine ones included (the
  card-holder's claim is what the label records); frauds of the card at or after ``r`` keep
  their own labels;
- each other reported fraud is, with probability ``id_share``, reported by id alone at its
  own report time.

The labels these reports stand for are :func:`features.reports.resolve_reports`' (the same
function the offline features use; the worker resolves them online, ``features.reports``):
:func:`labels_with_reports` is what training and the parity tests give the features.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from features.reports import LOOKBACK_DAYS, REPORT_COLUMNS, resolve_reports
from training.simulation.errors import SimulationError


def fraud_reports(frame: pd.DataFrame, labels: pd.DataFrame, range_share: float = 0.3,
                  id_share: float = 0.3, seed: int = 0) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(labels left as they are, reports): ``labels`` (``training.stream_order.label_frame``
    of ``frame``) without the reported frauds that became reports, and the reports
    (columns ``features.reports.REPORT_COLUMNS``), one seeded draw per card and per fraud."""
    if not (0 <= range_share <= 1 and 0 <= id_share <= 1):
        raise SimulationError("report shares must be within [0, 1]", field="reports")
    rng = np.random.default_rng(seed)
    reported = labels["is_fraud"].to_numpy(dtype=bool, copy=True)
    if "label_source" in labels:
        reported &= (labels["label_source"] == "report").to_numpy()
    frauds = labels[reported]
    cards = np.sort(frauds["card_id"].unique())
    by_range = set(cards[rng.random(len(cards)) < range_share].tolist())
    rows: list[dict[str, object]] = []
    taken: set[str] = set()
    for card, group in frauds[frauds["card_id"].isin(by_range)].groupby("card_id", sort=True):
        r = group["label_time"].min()
        covered = group[group["transaction_time"] < r]
        if covered.empty:
            continue
        rows.append({"report_id": f"range-{card}", "card_id": card, "reported_at": r,
                     "start": covered["transaction_time"].min(), "end": r})
        taken |= set(covered["transaction_id"])
    rest = frauds[~frauds["transaction_id"].isin(taken)]
    by_id = rest[rng.random(len(rest)) < id_share]
    for row in by_id.itertuples(index=False):
        rows.append({"report_id": f"id-{row.transaction_id}", "card_id": row.card_id,
                     "transaction_id": row.transaction_id, "reported_at": row.label_time})
    taken |= set(by_id["transaction_id"])
    reports = pd.DataFrame(rows, columns=list(REPORT_COLUMNS))
    for column in ("reported_at", "transaction_time", "start", "end"):
        reports[column] = pd.to_datetime(reports[column], utc=True)
    kept = labels[~(reported & labels["transaction_id"].isin(taken).to_numpy())]
    return kept.reset_index(drop=True), reports.sort_values(
        ["reported_at", "report_id"], kind="stable", ignore_index=True)


def labels_with_reports(frame: pd.DataFrame, labels: pd.DataFrame, reports: pd.DataFrame,
                        lookback_days: float = LOOKBACK_DAYS) -> pd.DataFrame:
    """``labels`` and the labels the reports resolve to (a payment may then have several:
    the features count it as a fraud from its earliest fraud label)."""
    resolved, _ = resolve_reports(frame, reports, lookback_days)
    columns = [c for c in labels.columns if c in resolved.columns]
    return pd.concat([labels[columns], resolved[columns]], ignore_index=True)
