"""The offline form: the same features over a whole history, vectorised with numpy.

Rows are grouped by packing (group code, time) into one sortable int64 key, so every window is
a ``searchsorted`` and every sum a difference of int64 prefix sums of cents. Terminal fraud
counts treat each arrived fraud label as an interval of query times it contributes to. See
:mod:`features.spec` for the definitions, which :mod:`features.online` computes per event.
"""

from __future__ import annotations

import logging
from typing import cast

import numpy as np
import pandas as pd

from features.clock import is_night, is_weekend, series_to_micros
from features.errors import FeatureError
from features.spec import HOUR_US, SECOND_US, FeatureConfig

logger = logging.getLogger(__name__)

REQUIRED = ("transaction_id", "event_time", "card_id", "terminal_id", "amount")
_KEY_LIMIT = 2**62


class _Keys:
    """Packs (group code, time) into int64 keys sorted by group, time, then input order."""

    def __init__(self, codes: np.ndarray, times: np.ndarray, lo: int, hi: int) -> None:
        self.base = lo - 1
        self.span = hi - self.base + 2
        if (int(codes.max(initial=0)) + 1) * self.span >= _KEY_LIMIT:
            raise FeatureError("time range x number of groups too large for int64 keys")
        self.codes = codes
        self.order = np.lexsort((times, codes))
        self.sorted = self.key(codes[self.order], times[self.order])

    def key(self, codes: np.ndarray, times: np.ndarray) -> np.ndarray:
        return cast(np.ndarray, codes * self.span + (times - self.base))


def compute_features(
    transactions: pd.DataFrame,
    labels: pd.DataFrame | None = None,
    config: FeatureConfig | None = None,
) -> pd.DataFrame:
    """transaction_id and ``config.names`` columns, one row per input row, in input order.

    ``labels`` has transaction_id, is_fraud, label_time; a transaction may have several (a
    chargeback and fraud reports, :func:`features.reports.resolve_reports`): it is a fraud from
    the earliest label_time of its fraud labels, and a genuine label never takes that back
    (as online, in any arrival order). Without ``labels`` the transactions' own is_fraud and
    label_time columns are the labels.
    """
    config = config or FeatureConfig()
    missing = [c for c in REQUIRED if c not in transactions]
    if missing:
        raise FeatureError(f"transactions lack columns {missing}", field=missing[0])
    t = series_to_micros(transactions["event_time"])
    cents = np.rint(transactions["amount"].to_numpy(np.float64) * 100).astype(np.int64)
    columns: dict[str, np.ndarray] = {
        "amount": transactions["amount"].to_numpy(np.float64),
        "is_weekend": is_weekend(t).astype(np.float64),
        "is_night": is_night(t).astype(np.float64),
    }
    if len(t):
        columns |= _card_features(transactions, t, cents, config)
        columns |= _terminal_features(transactions, labels, t, config)
    else:
        columns |= {name: np.empty(0) for name in config.names[3:]}
    frame = pd.DataFrame({"transaction_id": transactions["transaction_id"].to_numpy()})
    for name in config.names:
        frame[name] = columns[name]
    return frame


def merge_labels(transactions: pd.DataFrame, labels: pd.DataFrame) -> pd.DataFrame:
    """One label per payment standing for all of its labels (a chargeback, fraud reports:
    :func:`features.reports.resolve_reports`), by the rules :func:`compute_features` applies,
    so that ``compute_features(tx, merge_labels(tx, labels))`` equals
    ``compute_features(tx, labels)``; a training set needs one target per payment.

    A payment with a fraud label is a fraud, known from its earliest fraud label that counts
    (known after the payment; without one, from its earliest fraud label, which the features
    ignore as they would anyway); a genuine label never takes a fraud back. A payment without
    a fraud label keeps its earliest genuine label. ``transactions``: transaction_id,
    event_time; ``labels``: transaction_id, is_fraud, label_time and any other columns, which
    come from the label chosen. Sorted by label_time, then transaction_id.
    """
    if labels.empty:
        return labels.reset_index(drop=True)
    fraud = labels["is_fraud"].to_numpy().astype(bool)
    label_t = series_to_micros(labels["label_time"])
    row = pd.Index(transactions["transaction_id"]).get_indexer(labels["transaction_id"])
    paid = series_to_micros(transactions["event_time"])
    known = row >= 0
    counts = fraud & known
    counts[known] &= label_t[known] > paid[row[known]]
    ids = pd.factorize(labels["transaction_id"])[0]
    order = np.lexsort((np.arange(len(labels)), label_t, ~counts, ~fraud, ids))
    first = np.concatenate([[True], ids[order][1:] != ids[order][:-1]])
    merged = labels.iloc[order[first]]
    return merged.sort_values(["label_time", "transaction_id"], kind="stable",
                              ignore_index=True)


def _card_features(
    tx: pd.DataFrame, t: np.ndarray, cents: np.ndarray, config: FeatureConfig
) -> dict[str, np.ndarray]:
    codes = pd.factorize(tx["card_id"])[0].astype(np.int64)
    history = config.history_us
    keys = _Keys(codes, t, int(t.min()) - history - HOUR_US, int(t.max()))
    order, skey = keys.order, keys.sorted
    ts, cs = t[order], cents[order]
    pos = np.arange(len(ts))
    cum_c = np.concatenate([[0], np.cumsum(cs)])
    cum_q = np.concatenate([[0], np.cumsum(cs * cs)])
    values: list[np.ndarray] = []
    for span in config.card_spans_us:
        lo = np.searchsorted(skey, skey - span, side="right")
        n = pos + 1 - lo
        values += [n.astype(np.float64), (cum_c[pos + 1] - cum_c[lo]) / (100 * n)]
    values.append((pos + 1 - np.searchsorted(skey, skey - HOUR_US, side="right")).astype(float))
    lo = np.searchsorted(skey, skey - history, side="right")
    n = pos - lo
    s = cum_c[pos] - cum_c[lo]
    var_num = n * (cum_q[pos] - cum_q[lo]) - s * s
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = np.where((n > 0) & (s > 0), (cs * n) / s, 1.0)
        zscore = np.where((n >= 2) & (var_num > 0), (cs * n - s) / np.sqrt(var_num), 0.0)
    prev_t = np.concatenate([[0], ts[:-1]])
    since = np.where(n > 0, t[order] - prev_t, history) / SECOND_US
    values += [ratio, zscore, _seen_terminal(tx, codes, t, history)[order], since]
    with np.errstate(divide="ignore", invalid="ignore"):
        values.append(np.where(n > 0, _smaller_before(cs, n) / n, 0.5))
        for span in config.card_spans_us:
            if span < history:
                hi = np.searchsorted(skey, skey - span, side="right")
                m, older = hi - lo, cum_c[hi] - cum_c[lo]
                values.append(np.where((m > 0) & (older > 0), (cs * m) / older, 1.0))
    out: dict[str, np.ndarray] = {}
    for name, sorted_values in zip(config.card_names, values, strict=True):
        column = np.empty(len(ts), dtype=np.float64)
        column[order] = sorted_values
        out[name] = column
    return out


def _smaller_before(cents: np.ndarray, n: np.ndarray) -> np.ndarray:
    """For each row (sorted by card, time), how many of its ``n`` predecessors have fewer cents.

    One vectorised pass per lag k, over the rows with at least k predecessors: the total work
    is the sum of the window sizes, as in the online form.
    """
    by_n = np.argsort(-n, kind="stable")
    n_sorted = -n[by_n]
    count = np.zeros(len(cents), dtype=np.int64)
    for k in range(1, int(n.max(initial=0)) + 1):
        rows = by_n[: np.searchsorted(n_sorted, -k, side="right")]
        count[rows] += cents[rows - k] < cents[rows]
    return count


def _seen_terminal(
    tx: pd.DataFrame, card_codes: np.ndarray, t: np.ndarray, history: int
) -> np.ndarray:
    """1 where the card used the same terminal earlier within the history window."""
    terminal_codes = pd.factorize(tx["terminal_id"])[0].astype(np.int64)
    order = np.lexsort((t, terminal_codes, card_codes))
    c, k, ts = card_codes[order], terminal_codes[order], t[order]
    same = np.concatenate([[False], (c[1:] == c[:-1]) & (k[1:] == k[:-1])])
    prev_t = np.concatenate([[0], ts[:-1]])
    seen = np.empty(len(t), dtype=np.float64)
    seen[order] = (same & (prev_t > ts - history)).astype(np.float64)
    return seen


def _terminal_features(
    tx: pd.DataFrame, labels: pd.DataFrame | None, t: np.ndarray, config: FeatureConfig
) -> dict[str, np.ndarray]:
    codes = pd.factorize(tx["terminal_id"])[0].astype(np.int64)
    delay, widest = config.delay_us, max(config.terminal_spans_us)
    keys = _Keys(codes, t, int(t.min()) - delay - widest, int(t.max()) + delay + widest)
    query = keys.key(codes, t)
    if delay:
        hi = np.searchsorted(keys.sorted, query - delay, side="right")
    else:
        hi = np.searchsorted(keys.sorted, query, side="left")
    f_codes, f_times, f_label_times = _frauds(tx, labels, codes, t)
    out: dict[str, np.ndarray] = {}
    frauds = np.zeros(len(t), dtype=np.int64)
    for w, span in zip(config.terminal_windows, config.terminal_spans_us, strict=True):
        n = hi - np.searchsorted(keys.sorted, query - delay - span, side="right")
        # a fraud counts for queries at t in [max(tf + D, label time), tf + D + w)
        start = np.maximum(f_times + (delay if delay else 1), f_label_times)
        end = f_times + delay + span
        valid = (start < end) & (f_label_times > f_times)
        a = np.sort(keys.key(f_codes[valid], start[valid]))
        b = np.sort(keys.key(f_codes[valid], end[valid]))
        frauds = np.searchsorted(a, query, side="right") - np.searchsorted(b, query, side="right")
        out[f"terminal_nb_tx_{w}d"] = n.astype(np.float64)
        with np.errstate(divide="ignore", invalid="ignore"):
            out[f"terminal_risk_{w}d"] = np.where(n > 0, frauds / n, 0.0)
    w = max(config.terminal_windows)
    out[f"terminal_nb_fraud_{w}d"] = frauds.astype(np.float64)
    first, last = _fraud_span(keys, query, t, f_codes, f_times, f_label_times, config)
    out[f"terminal_seconds_since_first_fraud_{w}d"] = first
    out[f"terminal_seconds_since_last_fraud_{w}d"] = last
    return out


def _fraud_span(
    keys: _Keys,
    query: np.ndarray,
    t: np.ndarray,
    f_codes: np.ndarray,
    f_times: np.ndarray,
    f_label_times: np.ndarray,
    config: FeatureConfig,
) -> tuple[np.ndarray, np.ndarray]:
    """Seconds from the earliest and the latest counted fraud of the widest window to t (-1).

    The window's frauds are a range of the terminal's frauds sorted by time; a fraud counts
    once its label has arrived (``label_time <= t``), so each end steps inwards past frauds
    whose labels are still to come: one vectorised step per such fraud, usually none.
    """
    delay, widest = config.delay_us, max(config.terminal_spans_us)
    valid = f_label_times > f_times
    fkey = keys.key(f_codes[valid], f_times[valid])
    order = np.argsort(fkey, kind="stable")
    fkey, ftimes, flabels = fkey[order], f_times[valid][order], f_label_times[valid][order]
    lo = np.searchsorted(fkey, query - delay - widest, side="right")
    hi = np.searchsorted(fkey, query - delay, side="right" if delay else "left")
    ends = []
    for pointer, step in ((lo, 1), (hi - 1, -1)):
        pointer = pointer.copy()
        todo = np.flatnonzero(lo < hi)
        while len(todo):
            inside = (pointer[todo] >= lo[todo]) & (pointer[todo] < hi[todo])
            todo = todo[inside]
            waiting = flabels[pointer[todo]] > t[todo]
            todo = todo[waiting]
            pointer[todo] += step
        found = (lo < hi) & (pointer >= lo) & (pointer < hi)
        safe = np.clip(pointer, 0, max(len(ftimes) - 1, 0))
        seconds = (t - ftimes[safe]) / SECOND_US if len(ftimes) else np.zeros(len(t))
        ends.append(np.where(found, seconds, -1.0))
    return ends[0], ends[1]


def _frauds(
    tx: pd.DataFrame, labels: pd.DataFrame | None, codes: np.ndarray, t: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(terminal code, transaction time, label time) of every fraud label of a known tx."""
    if labels is None:
        for column in ("is_fraud", "label_time"):
            if column not in tx:
                raise FeatureError(f"no labels given and transactions lack {column}", field=column)
        fraud = tx["is_fraud"].to_numpy().astype(bool)
        return codes[fraud], t[fraud], series_to_micros(tx["label_time"])[fraud]
    frauds = labels[labels["is_fraud"].astype(bool)]
    row = pd.Index(tx["transaction_id"]).get_indexer(frauds["transaction_id"])
    label_t = series_to_micros(frauds["label_time"])
    known = row >= 0
    row, label_t = row[known], label_t[known]
    counts = label_t > t[row]  # a label known no later than its payment never counts
    row, label_t = row[counts], label_t[counts]
    order = np.lexsort((label_t, row))  # a payment is a fraud from its earliest fraud label
    row, label_t = row[order], label_t[order]
    first = np.concatenate([[True], row[1:] != row[:-1]]) if len(row) else np.zeros(0, bool)
    return codes[row[first]], t[row[first]], label_t[first]
