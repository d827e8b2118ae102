"""Model quality on the book-sized simulation, handbook baseline split (no MLflow).

    .venv/bin/python bench/bench_training.py [--input book.parquet] [--train-days 7]

Prints AUC, AP and CP@100 on the test week for the LightGBM candidate and the logistic
baseline, next to the handbook's published numbers, with the time of each step.
"""

from __future__ import annotations

import argparse
import logging
import time

import pandas as pd

from lifecycle.pipeline import TrainingConfig, featurize, fit_and_evaluate
from sentinel.settings import Settings
from training.dataset import make_dataset
from training.learners import BoosterParams
from training.quality import validate_transactions
from training.split import SplitConfig

BOOK = {
    "logistic regression (book 3.4)": (0.871, 0.606, 0.291),
    "XGBoost tuned (book 5.3)": (0.869, 0.687, 0.303),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--input", default=None, help="parquet from `sentinel simulate`")
    parser.add_argument("--seed", type=int, default=0, help="simulation seed")
    parser.add_argument("--train-days", type=int, default=7)
    parser.add_argument("--num-trees", type=int, default=BoosterParams.num_trees)
    parser.add_argument("--learning-rate", type=float, default=BoosterParams.learning_rate)
    parser.add_argument("--num-leaves", type=int, default=BoosterParams.num_leaves)
    parser.add_argument("--scale-pos-weight", type=float, default=BoosterParams.scale_pos_weight)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    times: dict[str, float] = {}

    started = time.perf_counter()
    if args.input:
        frame = pd.read_parquet(args.input)
    else:
        from training.simulation.config import SimulationConfig
        from training.simulation.simulator import simulate

        frame = simulate(SimulationConfig(seed=args.seed))
    times["simulate/load"] = time.perf_counter() - started

    started = time.perf_counter()
    validate_transactions(frame)
    times["data gate (GX)"] = time.perf_counter() - started
    started = time.perf_counter()
    dataset = make_dataset(frame, args.input or f"simulate(seed={args.seed})")
    times["canonical + digest"] = time.perf_counter() - started
    started = time.perf_counter()
    X, names = featurize(dataset, Settings())
    times["features"] = time.perf_counter() - started

    config = TrainingConfig(
        split=SplitConfig(train_days=args.train_days),
        booster=BoosterParams(
            num_trees=args.num_trees,
            learning_rate=args.learning_rate,
            num_leaves=args.num_leaves,
            scale_pos_weight=args.scale_pos_weight,
        ),
    )
    started = time.perf_counter()
    evaluation = fit_and_evaluate(dataset, X, names, config)
    times["split + fit both + evaluate"] = time.perf_counter() - started

    windows = evaluation.split.windows.as_params()
    print(
        f"rows={dataset.rows} fraud_rate={dataset.fraud_rate:.4%} features={len(names)} "
        f"digest={dataset.digest[:12]}"
    )
    print(
        f"train {windows['split.train']}  delay {windows['split.delay_days']}d  "
        f"test {windows['split.test']}  (validation {windows['split.validation']})"
    )
    print(f"train rows={len(evaluation.split.train)} test rows={len(evaluation.split.test)}")
    print()
    print("| model | AUC | AP | CP@100 | precision@thr | recall@thr |")
    print("|---|---|---|---|---|---|")
    for label, m in (
        ("LightGBM (Sentinel)", evaluation.metrics),
        ("logistic regression (Sentinel)", evaluation.baseline_metrics),
    ):
        print(
            f"| {label} | {m['roc_auc']:.3f} | {m['average_precision']:.3f} | "
            f"{m['card_precision_at_100']:.3f} | {m['precision_at_threshold']:.3f} | "
            f"{m['recall_at_threshold']:.3f} |"
        )
    for label, (auc, ap, cp) in BOOK.items():
        print(f"| {label} | {auc:.3f} | {ap:.3f} | {cp:.3f} | | |")
    print()
    for step, seconds in times.items():
        print(f"{step}: {seconds:.1f}s")


if __name__ == "__main__":
    main()
