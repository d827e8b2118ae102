"""A/A runs of the promotion evaluator: false promotions when the candidate is no better.

Run: .venv/bin/python bench/bench_promotion_aa.py [--preset fast] [--seed 600] [--twins 20]

One simulated world (``bench_closed_loop``'s preset: 5,000 cards, card testing from day 40),
one champion trained as in ``bench_closed_loop`` (the labels known a week before the onset),
and ``--twins`` candidates: the champion retrained on the same data with another booster seed
(no training gate, so no twin is picked for its test AP). Each twin is then judged as the
retrainer judges a candidate: its shadow evidence is every payment after the training data,
both models' decisions as served, fed in label-time order, and the evaluator
(:func:`lifecycle.promotion.decide_promotion`, the preset's rules) looks at it every simulated
hour until the last day; its first promotion is a false promotion. Cheaper than
``bench_closed_loop.py --aa`` (one world, one feature computation for all twins; no store,
no registry round trips per hour); the decisions are the same function on the same evidence.
No drift alert is acted on, so every fraud is compared as a known pattern.
"""

from __future__ import annotations

import argparse
import logging
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
from bench_closed_loop import PRESETS, _champion_config, _ns, _settings  # same folder

from features.offline import compute_features
from features.spec import FeatureConfig
from lifecycle.labelstore import LabelStore
from lifecycle.pipeline import train_and_register
from lifecycle.promotion import PromotionRules, decide_promotion
from lifecycle.registry import ModelRegistry
from lifecycle.retrainer import Retrainer
from training.simulation import DriftScenario, SimulationConfig, simulate

logger = logging.getLogger("bench_promotion_aa")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--preset", choices=sorted(PRESETS), default="fast")
    parser.add_argument("--seed", type=int, default=600, help="the world's seed")
    parser.add_argument("--twins", type=int, default=20)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    for noisy in ("mlflow", "training", "alembic", "features"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    sc = replace(PRESETS[args.preset], seed=args.seed)
    root = Path(tempfile.mkdtemp(prefix="bench-aa-"))
    settings = _settings(root, sc)
    rules = PromotionRules.from_settings(settings.drift)
    logger.info("scenario %s twins=%d rules %s", sc, args.twins, rules)
    frame = simulate(SimulationConfig(
        n_customers=sc.customers, n_terminals=sc.terminals, n_days=sc.days, seed=sc.seed,
        label_delay_days=sc.label_delay_hours / 24,
        drift=DriftScenario("card_testing", sc.onset_day, sc.intensity)))
    frame = frame.sort_values("event_time", kind="stable").reset_index(drop=True)
    day0 = frame["event_time"].min().normalize()
    trained_at = day0 + pd.Timedelta(days=sc.onset_day - sc.champion_days_before_onset)
    feats = compute_features(frame, config=FeatureConfig.from_settings(settings.features))
    registry = ModelRegistry(settings)
    retrainer = Retrainer(settings, LabelStore(root / "store.sqlite"), registry, lambda e: None)
    pre = frame[frame["event_time"] < trained_at]
    tx = pre.drop(columns=["is_fraud", "label_time"])
    labels = pre[pre["label_time"] <= trained_at][["transaction_id", "is_fraud", "label_time"]]
    base = _champion_config(retrainer, sc)

    def fit(k: int):
        config = replace(base, seed=base.seed + k, min_improvement=-1.0,
                         booster=replace(base.booster, seed=base.booster.seed + k))
        out = train_and_register(settings, tx, labels, reason=f"aa{k}", config=config,
                                 registry=registry)
        return registry.load(out.model)

    # the evidence: every payment after the training data, in label-time order
    after = frame[frame["event_time"] >= trained_at]
    after = after.iloc[np.argsort(_ns(after["label_time"]), kind="stable")]
    label_ns = _ns(after["label_time"])
    champion = fit(0)
    X = feats.set_index("transaction_id").loc[after["transaction_id"],
                                              list(champion.feature_names)].to_numpy(np.float64)
    y = after["is_fraud"].to_numpy().astype(int)
    a_score = champion.score(X)
    a_flag = champion.decide(a_score) != "approve"
    looks = pd.date_range(trained_at + pd.Timedelta(hours=1),
                          day0 + pd.Timedelta(days=sc.days), freq="h")
    ends = np.searchsorted(label_ns, _ns(pd.Series(looks)), side="right")
    print("\n| twin (booster seed) | promoted after (h) | evidence then: payments / frauds | "
          "net gain at the end (a payment) | candidate vs champion recall | "
          "genuine flagged | wall |\n|---|---|---|---|---|---|---|")
    false = 0
    for k in range(1, args.twins + 1):
        started = time.perf_counter()
        twin = fit(k)
        b_score = twin.score(X)
        b_flag = twin.decide(b_score) != "approve"
        promoted = None
        for look, end in zip(looks, ends, strict=True):
            verdict = decide_promotion(y[:end], a_score[:end], b_score[:end], a_flag[:end],
                                       b_flag[:end], rules=rules)
            if verdict.action == "promote":
                promoted = (look, end)
                break
        false += promoted is not None
        value = np.where(y == 1, 1.0, -rules.false_alert_cost)
        gain = float((value * (b_flag.astype(float) - a_flag)).mean())
        fraud, genuine = y == 1, y == 0
        when = "never" if promoted is None else \
            f"{(promoted[0] - trained_at) / pd.Timedelta(hours=1):.0f}"
        evidence = "-" if promoted is None else \
            f"{promoted[1]:,} / {int(y[:promoted[1]].sum())}"
        print(f"| {base.booster.seed + k} | {when} | {evidence} | {gain:+.5f} | "
              f"{b_flag[fraud].mean():.3f} vs {a_flag[fraud].mean():.3f} | "
              f"{b_flag[genuine].mean():.3%} vs {a_flag[genuine].mean():.3%} | "
              f"{time.perf_counter() - started:.0f} s |", flush=True)
    print(f"\nA/A false promotions: {false} of {args.twins} (world seed {sc.seed}, "
          f"{len(looks)} hourly looks over {len(y):,} payments, {int(y.sum())} frauds)")


if __name__ == "__main__":
    main()
