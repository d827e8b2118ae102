"""The handbook's transaction simulator (chapter 3.2) with optional drift scenarios.

>>> from training.simulation import SimulationConfig, simulate
>>> frame = simulate(SimulationConfig(n_customers=50, n_terminals=100, n_days=5, seed=1))
>>> list(frame.columns)[:3]
['transaction_id', 'event_time', 'card_id']
"""

from __future__ import annotations

from training.simulation.config import DriftKind, DriftScenario, FraudScenario, SimulationConfig
from training.simulation.errors import SimulationError
from training.simulation.simulator import COLUMNS, day_index, simulate
from training.simulation.storage import read_csv, read_parquet, write_csv, write_parquet

__all__ = [
    "COLUMNS",
    "DriftKind",
    "DriftScenario",
    "FraudScenario",
    "SimulationConfig",
    "SimulationError",
    "day_index",
    "read_csv",
    "read_parquet",
    "simulate",
    "write_csv",
    "write_parquet",
]
