"""A public-style file of anonymised numeric columns: ``Time`` (seconds from the first
payment), ``V1``..``Vk``, ``Amount``, ``channel`` and ``Class``, with no card or terminal ids
(the shape of the well-known card-fraud datasets of PCA components). Seeded.

Frauds shift a few components, some only together (an interaction a linear model misses),
and favour ``ecom``; the rest is noise. ``python -m training.simulation.anonymised --rows 4000
--out examples/transactions.csv`` wrote the example file shipped in the repo.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import pandas as pd


def anonymised(rows: int = 4000, components: int = 8, fraud_rate: float = 0.03,
               days: float = 10.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng([seed, 29])
    fraud = rng.random(rows) < fraud_rate
    V = rng.normal(size=(rows, components))
    f = np.flatnonzero(fraud)
    V[f, 0] += rng.normal(1.8, 0.6, len(f))
    V[f, 1] -= rng.normal(1.2, 0.6, len(f))
    both = f[rng.random(len(f)) < 0.5]  # half of the frauds: V3 and V4 high together
    V[both, 2] = np.abs(V[both, 2]) + 1.0
    V[both, 3] = np.abs(V[both, 3]) + 1.0
    amount = np.where(fraud, rng.gamma(1.5, 90.0, rows), rng.gamma(2.0, 35.0, rows)).round(2)
    channel = np.where(fraud, rng.choice(["ecom", "pos", "moto"], rows, p=[0.7, 0.2, 0.1]),
                       rng.choice(["ecom", "pos", "moto"], rows, p=[0.3, 0.65, 0.05]))
    frame = pd.DataFrame({"Time": np.sort(rng.uniform(0, days * 86_400, rows)).round(0)})
    for j in range(components):
        frame[f"V{j + 1}"] = V[:, j].round(5)
    frame["Amount"] = amount
    frame["channel"] = channel
    frame["Class"] = fraud.astype(int)
    return frame


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=4000)
    parser.add_argument("--components", type=int, default=8)
    parser.add_argument("--fraud-rate", type=float, default=0.03)
    parser.add_argument("--days", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True)
    args = parser.parse_args(argv)
    frame = anonymised(args.rows, args.components, args.fraud_rate, args.days, args.seed)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(args.out, index=False)
    print(f"wrote {len(frame)} rows ({int(frame['Class'].sum())} fraud) to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
