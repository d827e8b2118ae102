"""State cost of fraud-report resolution: bytes of a card's changelog value with and without
its payments of the last ``reports.lookback_days`` (``features.reports.CardPayments``).

Run::

    .venv/bin/python bench/bench_report_state.py --customers 1000 --days 183 --lookback 120

Simulates a world (the handbook's generator, seeded), replays every card's payments through
the card stage's state (``CardState`` + its payments, as ``stream_app.card_stage`` does) and
encodes the card's changelog value (``stream_app.state.encode_value``) after each payment,
the value the checkpoint writes for a touched card. Prints JSON: per lookback, the mean bytes
written per card write over the whole run and over the last 30 days (lookback filled), and
the state per card at the end (what a restore reads), mean and p99, and the memory of a card
once decoded (tracemalloc, the worker's live form); ``--id-length`` pads
transaction ids to a production-like length (UUIDs: 36). No broker, no timing.
"""

from __future__ import annotations

import argparse
import json
import tracemalloc

import numpy as np

from features import CardState, FeatureConfig, TransactionRecord, card_stage
from features.clock import series_to_micros
from features.reports import lookback_us
from features.spec import DAY_US
from stream_app.state import KeyedState, decode_value, encode_value
from training.simulation import SimulationConfig, simulate


def run(frame: object, lookback_days: float | None, id_length: int) -> dict[str, float]:
    """``lookback_days`` None: the card state alone (no payments kept), the old value."""
    config = FeatureConfig()
    cards: dict[str, KeyedState[CardState]] = {}
    times = series_to_micros(frame["event_time"])  # type: ignore[index]
    last_days = int(times.max()) - 30 * DAY_US
    written, late = [], []
    lookback = lookback_us(lookback_days or 0)
    for tx_id, card, terminal, amount, t in zip(
            frame["transaction_id"].tolist(), frame["card_id"].tolist(),  # type: ignore[index]
            frame["terminal_id"].tolist(), frame["amount"].tolist(),  # type: ignore[index]
            times.tolist(), strict=True):
        entry = cards.get(card)
        if entry is None:
            entry = cards[card] = KeyedState(CardState())
        tx_id = tx_id.ljust(id_length, "0")
        card_stage(entry.state, TransactionRecord(tx_id, card, terminal, amount, t), config)
        if lookback_days is not None:
            entry.state.payments.payment(tx_id, terminal, t, lookback)
        size = len(encode_value(entry.to_dict()))
        written.append(size)
        if t > last_days:
            late.append(size)
    values = [encode_value(e.to_dict()) for e in cards.values()]
    final = np.array([len(v) for v in values])
    kept = np.array([len(e.state.payments) for e in cards.values()])
    cards.clear()
    tracemalloc.start()
    live = [KeyedState.from_dict(decode_value(v), CardState.from_dict) for v in values]
    memory = tracemalloc.get_traced_memory()[0] / len(live)
    tracemalloc.stop()
    return {"write_mean_bytes": round(float(np.mean(written)), 1),
            "write_mean_bytes_last_30d": round(float(np.mean(late)), 1),
            "state_mean_bytes": round(float(final.mean()), 1),
            "state_p99_bytes": round(float(np.percentile(final, 99)), 1),
            "payments_kept_mean": round(float(kept.mean()), 1),
            "live_memory_bytes_per_card": round(memory)}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--customers", type=int, default=1000)
    ap.add_argument("--days", type=int, default=183)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lookback", type=float, nargs="+", default=[120.0])
    ap.add_argument("--id-length", type=int, default=0)
    args = ap.parse_args()
    frame = simulate(SimulationConfig(n_customers=args.customers,
                                      n_terminals=2 * args.customers, n_days=args.days,
                                      seed=args.seed))
    out: dict[str, object] = {"transactions": len(frame), "cards": int(frame.card_id.nunique()),
                              "days": args.days, "id_length": max(args.id_length, 10)}
    out["card_state_only"] = run(frame, None, args.id_length)
    for days in args.lookback:
        out[f"lookback_{days:g}d"] = run(frame, days, args.id_length)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
