"""Drift monitor benchmark: cost per event, false alarms on a stable stream, detection delay.

Run: .venv/bin/python bench/bench_drift.py
"""

from __future__ import annotations

import logging
import time

import pandas as pd

from drift.calibration import (
    CALIBRATION_FEATURES,
    label_stream,
    run,
    run_labels,
    stream_from_frame,
)
from drift.monitor import DriftMonitor
from sentinel.settings import DriftSettings
from training.simulation import DriftScenario, SimulationConfig, simulate

logger = logging.getLogger("bench_drift")
SCENARIOS = [("amount_shift", 1.0), ("fraud_rate", 1.0), ("fraud_rate", 6.0),
             ("card_testing", 1.0), ("card_testing", 30.0), ("night_fraud", 1.0),
             ("night_fraud", 30.0)]


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    stable = stream_from_frame(simulate(SimulationConfig(n_days=90, seed=0)), warmup_days=30)
    monitor = DriftMonitor(DriftSettings(), CALIBRATION_FEATURES, "1")
    started = time.perf_counter()
    fired = run(monitor, stable)
    elapsed = time.perf_counter() - started
    logger.info("stable events=%d alerts=%d us_per_event=%.2f", len(stable), len(fired),
                elapsed / len(stable) * 1e6)
    for kind, intensity in SCENARIOS:
        config = SimulationConfig(n_days=42, seed=0, drift=DriftScenario(kind, 37, intensity))
        stream = stream_from_frame(simulate(config), warmup_days=30)
        onset = stream.first_index_at(stream.seconds[0] // 86_400 * 86_400 + 7 * 86_400)
        alerts = run(DriftMonitor(DriftSettings(), CALIBRATION_FEATURES, "1"), stream)
        first = [(end - onset, a.signal) for end, a in alerts][:3]
        logger.info("scenario=%s intensity=%s first_alerts(delay_events, signal)=%s",
                    kind, intensity, first or "none")
    for kind in ("card_testing", "fraud_rate", "night_fraud"):  # the label path, 7-day delay
        frame = simulate(SimulationConfig(n_days=60, seed=0, drift=DriftScenario(kind, 45, 1.0)))
        t0 = frame["event_time"].min().normalize()
        labels = label_stream(frame[frame["event_time"] >= t0 + pd.Timedelta(days=30)])
        onset = t0.timestamp() + 45 * 86_400
        monitor = DriftMonitor(DriftSettings(), CALIBRATION_FEATURES, "1")
        started = time.perf_counter()
        alerts = run_labels(monitor, labels)
        cost = (time.perf_counter() - started) / len(labels) * 1e6
        first = [(round((labels.label_seconds[end - 1] - onset) / 86_400, 2), a.signal)
                 for end, a in alerts][:3]
        logger.info("label path scenario=%s first_alerts(days_after_onset, signal)=%s "
                    "us_per_label=%.1f", kind, first or "none", cost)


if __name__ == "__main__":
    main()
