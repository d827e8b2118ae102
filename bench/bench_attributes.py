"""Transaction attributes as model inputs: what they are worth, in one run (no MLflow).

    .venv/bin/python bench/bench_attributes.py [--customers 2000] [--rows 100000]

1. The simulator with ``--with-attributes``: the test AP of Sentinel's LightGBM without and
   with the attributes (channel, merchant_category categorical; new_device, country_mismatch
   numeric), same data, same split.
2. An anonymised-numeric file (``training.simulation.anonymised``: Time, V1..V8, Amount,
   channel, Class; no card or terminal ids), shaped as ``sentinel train --columns ...
   --time-origin ... --split-fractions 0.6,0.1,0.3`` does: Sentinel's pipeline against a plain
   LightGBM (``lightgbm.LGBMClassifier()`` defaults, ``channel`` as a categorical) fitted on the
   same columns and the same train rows, AP on the same test rows. Target: ratio >= 0.97.
3. ``--cost``: the per-event work attributes add on the worker's path, in process (not the
   worker's throughput, which needs ``bench_worker.py`` with attributes: not measured): decode
   a Transaction, encode and decode its hand-off, and build a 1000-row batch's model inputs
   (``scoring.inputs``), with 0 and with 30 numeric attributes.
"""

from __future__ import annotations

import argparse
import logging
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score

from lifecycle.pipeline import TrainingConfig, featurize, fit_and_evaluate, with_attributes
from sentinel.settings import Settings
from training import columns
from training.dataset import make_dataset
from training.simulation.anonymised import anonymised
from training.simulation.attributes import add_attributes
from training.simulation.config import SimulationConfig
from training.simulation.simulator import simulate
from training.split import SplitConfig

SIM_NUMERIC = ("new_device", "country_mismatch")
SIM_CATEGORICAL = ("channel", "merchant_category")
V = tuple(f"V{i}" for i in range(1, 9))


def _ap(frame: pd.DataFrame, config: TrainingConfig) -> tuple[float, np.ndarray, np.ndarray]:
    dataset = make_dataset(frame, "bench", config.numeric, config.categorical)
    X, names = featurize(dataset, Settings())
    X, names, spec = with_attributes(dataset, X, names, config)
    evaluation = fit_and_evaluate(dataset, X, names, config, spec=spec)
    return (evaluation.metrics["average_precision"], evaluation.split.train,
            evaluation.split.test)


def simulator(customers: int, seed: int) -> None:
    frame = add_attributes(simulate(SimulationConfig(
        n_customers=customers, n_terminals=2 * customers, n_days=120, seed=seed)), seed)
    base = TrainingConfig()
    without, _, test = _ap(frame, base)
    with_, _, _ = _ap(frame, TrainingConfig(numeric=SIM_NUMERIC, categorical=SIM_CATEGORICAL))
    print(f"simulator: {len(frame)} rows, {frame['is_fraud'].mean():.2%} fraud, "
          f"test rows {len(test)}")
    print(f"| AP without attributes | AP with attributes |\n|---|---|\n"
          f"| {without:.4f} | {with_:.4f} |")


def anonymised_file(rows: int, seed: int) -> None:
    raw = anonymised(rows=rows, fraud_rate=0.01, days=30, seed=seed)
    frame = columns.shape(raw, {"event_time": "Time", "amount": "Amount", "is_fraud": "Class"},
                          columns.parse_origin("2013-09-01T00:00:00Z"))
    config = TrainingConfig(split=SplitConfig(fractions=(0.6, 0.1, 0.3)), numeric=V,
                            categorical=("channel",))
    started = time.perf_counter()
    ours, train, test = _ap(frame, config)
    seconds = time.perf_counter() - started
    # the plain LightGBM: same columns, same rows (the canonical order is by time, then id)
    canonical = make_dataset(frame, "bench", V, ("channel",)).frame
    plain_X = canonical[[*V, "amount", "channel"]].astype({"channel": "category"})
    y = canonical["is_fraud"].to_numpy()
    model = lgb.LGBMClassifier(random_state=0, verbose=-1, n_jobs=1)
    model.fit(plain_X.iloc[train], y[train])
    plain = average_precision_score(y[test], model.predict_proba(plain_X.iloc[test])[:, 1])
    print(f"anonymised file: {rows} rows, {y.mean():.2%} fraud, train {len(train)} "
          f"test {len(test)} rows; sentinel pipeline {seconds:.1f}s")
    print(f"| sentinel train AP | plain LightGBM AP | ratio (target >= 0.97) |\n|---|---|---|\n"
          f"| {ours:.4f} | {plain:.4f} | {ours / plain:.3f} |")


def cost(n: int = 20_000) -> None:
    import json

    from features.attributes import Attribute, AttributeSpec, attributes_of
    from schemas import Transaction, decode
    from stream_app import scoring
    from stream_app.handoff import Handoff

    base = {"transaction_id": "t1", "card_id": "c1", "terminal_id": "m1", "amount": 12.5,
            "event_time": "2024-03-01T10:00:00+00:00"}
    spec = AttributeSpec(tuple(Attribute(f"a{i}", "num") for i in range(30)))
    rng = np.random.default_rng(0)
    head = rng.random(26).tolist()
    print("| attributes | decode us/event | hand-off encode+decode us/event "
          "| model inputs us/event | total us/event |\n|---|---|---|---|---|")
    for k in (0, 30):
        attrs = {f"a{i}": float(rng.normal()) for i in range(k)} or None
        raw = json.dumps({**base, "attributes": attrs} if attrs else base).encode()
        started = time.perf_counter()
        for _ in range(n):
            tx = decode(Transaction, raw)
        t_decode = (time.perf_counter() - started) / n * 1e6
        h = Handoff(tx.transaction_id, tx.card_id, tx.terminal_id, tx.amount, "x", 0, 0, head,
                    0, attributes_of(tx))
        batch = [h] * 1000
        started = time.perf_counter()
        for _ in range(n // 1000):
            Handoff.decode_many(Handoff.encode_batch(batch))
        t_handoff = (time.perf_counter() - started) / (n // 1000 * 1000) * 1e6
        X = rng.random((1000, 26))
        cols = np.arange(26)
        use = spec if k else AttributeSpec()
        started = time.perf_counter()
        for _ in range(n // 1000):
            scoring.inputs(use, X, cols, [b.attrs for b in batch])
        t_inputs = (time.perf_counter() - started) / (n // 1000 * 1000) * 1e6
        print(f"| {k} | {t_decode:.1f} | {t_handoff:.1f} | {t_inputs:.1f} | "
              f"{t_decode + t_handoff + t_inputs:.1f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--cost", action="store_true", help="only the per-event cost (3.)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    if args.cost:
        cost()
        return
    simulator(args.customers, args.seed)
    print()
    anonymised_file(args.rows, args.seed)


if __name__ == "__main__":
    main()
