"""Detection by label arrival model: AP, AUC and CP@100 on the book-sized world per seed.

    .venv/bin/python bench/bench_arrival.py [--seeds 0 1 2 3 4]
        [--arrivals fixed reports reports-fast] [--out results.jsonl]

For each seed, simulates the handbook's world once (:func:`simulate_ledger`) and gives it each
label arrival model (:mod:`training.simulation.arrival`; same payments, only the label times
differ). Features: ``fixed`` uses the book's protocol (terminal windows shifted back by
D = 7 days); ``reports`` models use each label from its own arrival time (D = 0). Split: the
book's (train 2018-07-25..07-31, 7-day gap, test 2018-08-08..08-14, known-compromised cards
removed); LightGBM with :class:`~training.learners.BoosterParams` (seed + 42). Beside each run:
the share of test frauds at a compromised terminal no arrived label reveals yet
(``bench_features._unseen_compromises``) and the AUC ceiling they impose when ranked at random.
One JSON line per (seed, arrival) to ``--out`` and a Markdown table with the means.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from dataclasses import replace

import numpy as np
from bench_features import _fit_lgbm, _unseen_compromises

from features import compute_features
from features.spec import FeatureConfig
from training.dataset import make_dataset
from training.learners import BoosterParams
from training.model_metrics import average_precision, card_precision_at_k, roc_auc
from training.simulation.arrival import PRESETS
from training.simulation.config import SimulationConfig
from training.simulation.simulator import simulate_ledger, to_frame
from training.split import days_since, split


def run(seed: int, arrivals: list[str]) -> list[dict[str, float | int | str]]:
    config = SimulationConfig(seed=seed)
    _, ledger = simulate_ledger(config)
    out = []
    for name in arrivals:
        began = time.perf_counter()
        source = to_frame(ledger, replace(config, arrival=PRESETS[name]))
        frame = make_dataset(source, "bench").frame
        delay = 7 if name == "fixed" else 0
        features = compute_features(frame, None, FeatureConfig(label_delay_days=delay))
        X = features[list(FeatureConfig().names)].to_numpy(np.float64)
        y = frame["is_fraud"].to_numpy()
        parts = split(frame)
        train, test = parts.train, parts.test
        model = _fit_lgbm(X[train], y[train], BoosterParams(seed=seed + 42))
        s = model.predict(X[test])  # type: ignore[attr-defined]
        yt = y[test]
        by_id = source.set_index("transaction_id")["fraud_scenario"]
        scenario = by_id.reindex(frame["transaction_id"].to_numpy()).to_numpy()
        unseen = _unseen_compromises(frame, scenario)[test]
        frauds = int(yt.sum())
        row: dict[str, float | int | str] = {
            "seed": seed, "arrival": name, "feature_delay_days": delay,
            "test_rows": len(test), "test_frauds": frauds,
            "ap": average_precision(yt, s), "auc": roc_auc(yt, s),
            "cp100": card_precision_at_k(frame["card_id"].to_numpy()[test],
                                         days_since(frame["event_time"].iloc[test],
                                                    parts.windows.test[0]), yt, s),
            "unseen_share": float(unseen.sum() / frauds),
            "auc_ceiling": float((frauds - 0.5 * unseen.sum()) / frauds),
            "seconds": time.perf_counter() - began,
        }
        print(json.dumps(row), flush=True)
        out.append(row)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--arrivals", nargs="+", default=list(PRESETS), choices=list(PRESETS))
    parser.add_argument("--out", default=None, help="append the JSON lines here")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    rows = []
    for seed in args.seeds:
        result = run(seed, args.arrivals)
        rows += result
        if args.out:
            with open(args.out, "a") as f:
                f.writelines(json.dumps(r) + "\n" for r in result)
    print("| arrival | seeds | AP | AUC | CP@100 | unseen frauds | AUC ceiling |")
    print("|---|---|---|---|---|---|---|")
    for name in args.arrivals:
        mine = [r for r in rows if r["arrival"] == name]
        mean = {k: float(np.mean([float(r[k]) for r in mine]))
                for k in ("ap", "auc", "cp100", "unseen_share", "auc_ceiling")}
        print(f"| {name} | {len(mine)} | {mean['ap']:.3f} | {mean['auc']:.3f} | "
              f"{mean['cp100']:.3f} | {mean['unseen_share']:.1%} | {mean['auc_ceiling']:.3f} |")


if __name__ == "__main__":
    main()
