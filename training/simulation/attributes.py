"""Optional realistic attributes for simulated transactions, whose distributions differ for fraud.

``channel`` (pos, ecom, atm, moto: frauds are mostly card-not-present), ``merchant_category``
(an MCC: frauds favour money transfer, gambling and digital goods), ``new_device`` (first
payment from this device: 4 % of genuine payments, 35 % of frauds) and ``country_mismatch``
(card and merchant countries differ: 3 % genuine, 25 % fraud). Drawn from their own seeded
generator after the simulation, so the transactions themselves are unchanged.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

CHANNELS = np.array(["pos", "ecom", "atm", "moto"])
MCCS = np.array(["5411", "5812", "5541", "5999", "4829", "7995", "5816"])
COLUMNS = ("channel", "merchant_category", "new_device", "country_mismatch")

_CHANNEL_P = {False: [0.62, 0.30, 0.06, 0.02], True: [0.25, 0.62, 0.05, 0.08]}
_MCC_P = {False: [0.35, 0.25, 0.18, 0.12, 0.04, 0.03, 0.03],
          True: [0.12, 0.10, 0.08, 0.20, 0.20, 0.15, 0.15]}
_NEW_DEVICE_P = {False: 0.04, True: 0.35}
_MISMATCH_P = {False: 0.03, True: 0.25}


def add_attributes(frame: pd.DataFrame, seed: int = 0) -> pd.DataFrame:
    """A copy of ``frame`` with :data:`COLUMNS` drawn by ``is_fraud`` (same seed, same values)."""
    rng = np.random.default_rng([seed, 17])
    fraud = frame["is_fraud"].to_numpy().astype(bool)
    n = len(frame)
    out = frame.copy()
    channel = np.empty(n, dtype=object)
    mcc = np.empty(n, dtype=object)
    new_device = np.zeros(n, dtype=bool)
    mismatch = np.zeros(n, dtype=bool)
    for label in (False, True):
        rows = np.flatnonzero(fraud == label)
        channel[rows] = rng.choice(CHANNELS, size=len(rows), p=_CHANNEL_P[label])
        mcc[rows] = rng.choice(MCCS, size=len(rows), p=_MCC_P[label])
        new_device[rows] = rng.random(len(rows)) < _NEW_DEVICE_P[label]
        mismatch[rows] = rng.random(len(rows)) < _MISMATCH_P[label]
    out["channel"], out["merchant_category"] = channel, mcc
    out["new_device"], out["country_mismatch"] = new_device, mismatch
    return out
