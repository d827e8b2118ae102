"""Which features help: model quality per feature set on the handbook's baseline split.

    .venv/bin/python bench/bench_features.py --input book.parquet [--drop NAME ...]
        [--only NAME ...] [--models lgbm,rf] [--timing]

Computes :func:`features.compute_features` once on the whole history (the book-sized
simulation, seed 0, unless ``--input``), splits with :func:`training.split.split` (train
2018-07-25..07-31, 7-day delay, test 2018-08-08..08-14, known-compromised cards removed) and
prints AUC, AP and CP@100 on the test week for LightGBM (the training code's
:class:`~training.learners.BoosterParams`, or overrides) and a random forest (the handbook's
tuned forest: 100 trees, depth 20), with and without chosen feature subsets, plus recall in the
top of the ranking by fraud scenario and the AP without the compromised-terminal frauds that no
arrived label can reveal yet (no label of the terminal's compromise has arrived: see
:func:`_unseen_compromises`), and the AUC ceiling they impose.
``--timing`` adds the offline time and the online per-event cost over a replay of 40 days.
"""

from __future__ import annotations

import argparse
import logging
import time

import numpy as np
import pandas as pd

from features import FEATURE_NAMES, OnlineFeatureStore, TransactionRecord, compute_features
from features.clock import series_to_micros
from features.spec import DAY_US
from training.dataset import make_dataset
from training.learners import BoosterParams
from training.model_metrics import average_precision, card_precision_at_k, roc_auc
from training.simulation.fraud import TERMINAL_DAYS
from training.split import days_since, split
from training.stream_order import feature_events

logger = logging.getLogger(__name__)


def _load(path: str | None, seed: int) -> pd.DataFrame:
    if path:
        return pd.read_parquet(path)
    from training.simulation.config import SimulationConfig
    from training.simulation.simulator import simulate

    return simulate(SimulationConfig(seed=seed))


def _fit_lgbm(X: np.ndarray, y: np.ndarray, params: BoosterParams) -> object:
    import lightgbm as lgb

    return lgb.train(params.as_lightgbm(), lgb.Dataset(X, label=y), params.num_trees)


def _fit_rf(X: np.ndarray, y: np.ndarray, seed: int) -> object:
    from sklearn.ensemble import RandomForestClassifier

    model = RandomForestClassifier(n_estimators=100, max_depth=20, n_jobs=2, random_state=seed)
    return model.fit(X, y)


def _score(model: object, X: np.ndarray) -> np.ndarray:
    if hasattr(model, "predict_proba"):
        return model.predict_proba(X)[:, 1]
    return model.predict(X)  # type: ignore[attr-defined]


def _timing(frame: pd.DataFrame, days: int) -> tuple[float, int]:
    """Mean online cost (µs) per transaction over a replay of the first ``days`` days."""
    start = frame["event_time"].min()
    head = frame[frame["event_time"] < start + pd.Timedelta(days=days)]
    events = list(feature_events(head))
    store = OnlineFeatureStore()
    n = 0
    began = time.perf_counter()
    for event in events:
        if isinstance(event, TransactionRecord):
            store.process_transaction(event)
            n += 1
        else:
            store.process_label(event)
    return (time.perf_counter() - began) / n * 1e6, n


def _unseen_compromises(frame: pd.DataFrame, scenario: np.ndarray) -> np.ndarray:
    """Compromised-terminal frauds that no arrived label can reveal: no compromised-terminal
    fraud of the same terminal in the last ``TERMINAL_DAYS`` (a compromise's length) has its
    label by then. The simulator changes nothing about such a payment but its label, and picks
    the terminal uniformly at random, so its features are distributed as a random genuine
    payment's: any model ranks it, in expectation, above half of the genuine payments.

    A fraud at ``tf`` with label time ``lt`` reveals its terminal's compromise to queries at
    times in ``[lt, tf + TERMINAL_DAYS)``; a payment is unseen when no such interval of its
    terminal covers it (an older compromise's label counts as revealing: the bound is loose
    in the model's favour)."""
    t = series_to_micros(frame["event_time"])
    label = series_to_micros(frame["label_time"])
    codes = pd.factorize(frame["terminal_id"])[0].astype(np.int64)
    s2 = scenario == 2
    start, end = label[s2], t[s2] + TERMINAL_DAYS * DAY_US
    lo = int(min(t.min(), start.min(initial=t.min()))) - 1
    span = int(max(t.max(), end.max(initial=t.max()))) - lo + 1
    keep = start < end
    opened = np.sort(codes[s2][keep] * span + (start[keep] - lo))
    closed = np.sort(codes[s2][keep] * span + (end[keep] - lo))
    query = codes * span + (t - lo)
    covering = np.searchsorted(opened, query, "right") - np.searchsorted(closed, query, "right")
    return s2 & (covering == 0)


def _auc_ceiling(y: np.ndarray, s: np.ndarray, unseen: np.ndarray) -> str:
    """The highest AUC any model can reach when the ``unseen`` frauds look like genuine
    payments: every other fraud above every genuine payment, the unseen ones where this model
    put them (and at random: half the genuine payments below each), and the share of genuine
    payments the other frauds would have to beat on average for an AUC of 0.89."""
    genuine = np.sort(s[y == 0])

    def share_below(scores: np.ndarray) -> np.ndarray:  # ties count half, as in AUC
        lo, hi = np.searchsorted(genuine, scores, "left"), np.searchsorted(genuine, scores, "right")
        return (lo + hi) / 2 / len(genuine)

    seen = (y == 1) & ~unseen
    below, seen_below = share_below(s[unseen]), share_below(s[seen])
    frauds = int(y.sum())
    at_model = (seen.sum() + below.sum()) / frauds
    at_random = (seen.sum() + 0.5 * unseen.sum()) / frauds
    needed = (0.89 * frauds - 0.5 * unseen.sum()) / seen.sum()
    perfect = s.copy()
    perfect[seen] = s.max() + 1.0  # every other fraud above every genuine payment
    must = "would have to (out of reach)" if needed > 1 else "must"
    return (f"AUC ceiling={at_model:.4f} (unseen at random {at_random:.4f}); "
            f"AP ceiling={average_precision(y, perfect):.3f}; for AUC 0.89 the other "
            f"{int(seen.sum())} frauds {must} beat {needed:.4%} of genuine payments "
            f"on average (here {seen_below.mean():.4%}; unseen: {below.mean():.3f})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=None)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--models", default="lgbm,rf")
    parser.add_argument("--drop", nargs="*", default=[], help="feature names to leave out")
    parser.add_argument("--only", nargs="*", default=None, help="use only these features")
    parser.add_argument("--num-trees", type=int, default=BoosterParams.num_trees)
    parser.add_argument("--learning-rate", type=float, default=BoosterParams.learning_rate)
    parser.add_argument("--num-leaves", type=int, default=BoosterParams.num_leaves)
    parser.add_argument("--min-child-samples", type=int, default=BoosterParams.min_child_samples)
    parser.add_argument("--timing", action="store_true")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    source = _load(args.input, args.seed)
    dataset = make_dataset(source, "bench")
    frame = dataset.frame
    began = time.perf_counter()
    features = compute_features(frame)
    offline_s = time.perf_counter() - began
    names = [n for n in (args.only or FEATURE_NAMES) if n not in set(args.drop)]
    X = features[names].to_numpy(np.float64)
    y = frame["is_fraud"].to_numpy()
    parts = split(frame)
    train, test = parts.train, parts.test
    cards = frame["card_id"].to_numpy()[test]
    days = days_since(frame["event_time"].iloc[test], parts.windows.test[0])
    yt = y[test]
    scenario = unseen = None
    if "fraud_scenario" in source:  # the canonical frame drops it: take it from the source
        by_id = source.set_index("transaction_id")["fraud_scenario"]
        scenario_all = by_id.reindex(frame["transaction_id"].to_numpy()).to_numpy()
        scenario, unseen = scenario_all[test], _unseen_compromises(frame, scenario_all)[test]
    params = BoosterParams(
        num_trees=args.num_trees,
        learning_rate=args.learning_rate,
        num_leaves=args.num_leaves,
        min_child_samples=args.min_child_samples,
    )
    print(f"rows={len(frame)} features={len(names)} train={len(train)} test={len(test)}")
    print("| model | AUC | AP | CP@100 | ceiling; recall@top1% by scenario |")
    print("|---|---|---|---|---|")
    for kind in args.models.split(","):
        if kind == "lgbm":
            model = _fit_lgbm(X[train], y[train], params)
        else:
            model = _fit_rf(X[train], y[train], args.seed)
        s = _score(model, X[test])
        by = ""
        if unseen is not None:  # compromised-terminal frauds no arrived label reveals yet
            keep = ~unseen
            by += f"AP without {int(unseen.sum())} unseen s2 frauds="
            by += f"{average_precision(yt[keep], s[keep]):.3f} "
            by += _auc_ceiling(yt, s, unseen) + " "
        if scenario is not None:
            top = s >= np.quantile(s, 0.99)
            by += " ".join(
                f"s{k}={np.mean(top[(scenario == k) & (yt == 1)]):.2f}"
                for k in sorted(set(scenario[yt == 1]))
            )
        print(
            f"| {kind} | {roc_auc(yt, s):.3f} | {average_precision(yt, s):.3f} | "
            f"{card_precision_at_k(cards, days, yt, s):.3f} | {by} |"
        )
    if args.timing:
        cost, n = _timing(frame, days=40)
        print(f"offline {offline_s:.1f}s for {len(frame)} rows; online {cost:.1f} µs/tx over {n}")


if __name__ == "__main__":
    main()
