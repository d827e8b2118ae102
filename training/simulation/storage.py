"""Reading and writing simulated transactions as Parquet or CSV, keeping dtypes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

_TIMES = ("event_time", "label_time")


def write_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` to Parquet (times stay UTC timestamps)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(path, index=False)
    return path


def read_parquet(path: str | Path) -> pd.DataFrame:
    """Read a frame written by :func:`write_parquet`, times as ``datetime64[ns, UTC]``."""
    return _normalise(pd.read_parquet(path))


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` to CSV with ISO 8601 UTC times."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frame.to_csv(path, index=False, date_format="%Y-%m-%dT%H:%M:%S.%f%z")
    return path


def read_csv(path: str | Path) -> pd.DataFrame:
    """Read a frame written by :func:`write_csv`, with the simulator's dtypes."""
    frame = pd.read_csv(path, dtype={"transaction_id": str, "card_id": str, "terminal_id": str})
    return _normalise(frame)


def _normalise(frame: pd.DataFrame) -> pd.DataFrame:
    for column in _TIMES:
        if column in frame:
            frame[column] = pd.to_datetime(frame[column], utc=True).astype("datetime64[ns, UTC]")
    return frame
