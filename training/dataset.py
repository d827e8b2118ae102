"""Training data: reading transactions, the canonical frame, and its content digest.

Documented input columns (CSV or Parquet, or the simulator's DataFrame):

============== ========================================== ==========
column         meaning                                    required
============== ========================================== ==========
transaction_id unique id of the payment                   yes
event_time     when it happened (ISO 8601; naive = UTC)    yes
card_id        card (customer) id                         yes
terminal_id    terminal (merchant) id                     yes
amount         amount in major units, >= 0                yes
is_fraud       label, 0 or 1                              yes
label_time     when the label became known                no
============== ========================================== ==========

Other columns (e.g. the simulator's ``fraud_scenario``) are ignored. The digest is a SHA-256
over the canonical frame (columns in a fixed order, rows sorted by time then id), so the same
data gives the same digest whatever the file format or row order.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import cast

import numpy as np
import pandas as pd

from training.errors import DatasetError

logger = logging.getLogger(__name__)

REQUIRED_COLUMNS: tuple[str, ...] = (
    "transaction_id",
    "event_time",
    "card_id",
    "terminal_id",
    "amount",
    "is_fraud",
)
OPTIONAL_COLUMNS: tuple[str, ...] = ("label_time",)
_STRING_COLUMNS = ("transaction_id", "card_id", "terminal_id")
_TIME_COLUMNS = ("event_time", "label_time")


@dataclass(frozen=True)
class Dataset:
    """A canonical training frame with where it came from and its content digest."""

    frame: pd.DataFrame
    digest: str
    source: str

    @property
    def rows(self) -> int:
        return len(self.frame)

    @property
    def fraud_rate(self) -> float:
        return float(self.frame["is_fraud"].mean()) if len(self.frame) else 0.0

    @property
    def start(self) -> pd.Timestamp:
        return self.frame["event_time"].min()

    @property
    def end(self) -> pd.Timestamp:
        return self.frame["event_time"].max()


def read_transactions(path: str | Path) -> pd.DataFrame:
    """Read a CSV or Parquet file as is (types untouched: the data gate judges them)."""
    path = Path(path)
    if not path.exists():
        raise DatasetError("no such file", source=str(path))
    suffix = "".join(path.suffixes[-2:]).lower()
    try:
        if suffix.endswith((".parquet", ".pq")):
            return pd.read_parquet(path)
        if suffix.endswith((".csv", ".csv.gz")):
            return pd.read_csv(path, dtype={c: "string" for c in _STRING_COLUMNS})
    except (OSError, ValueError) as exc:
        raise DatasetError(f"cannot read transactions: {exc}", source=str(path)) from exc
    raise DatasetError("unknown format: use .csv, .csv.gz or .parquet", source=str(path))


def parse_times(values: pd.Series) -> pd.Series:
    """Event times as UTC datetimes; what cannot be parsed becomes NaT (the gate counts it)."""
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values.dt.tz_convert("UTC")
    if pd.api.types.is_datetime64_any_dtype(values):
        return values.dt.tz_localize("UTC")
    return pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")


def canonicalize(frame: pd.DataFrame, numeric: tuple[str, ...] = (),
                 categorical: tuple[str, ...] = ()) -> pd.DataFrame:
    """The documented columns with fixed types and order, rows sorted by (event_time, id),
    then the declared attributes: ``numeric`` ones as float64 (booleans 1/0, missing NaN),
    ``categorical`` ones as objects (missing ``None``).

    Call after the data gate: this assumes the columns exist and hold valid values.
    """
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DatasetError(f"missing columns: {', '.join(missing)}")
    columns = [*REQUIRED_COLUMNS, *(c for c in OPTIONAL_COLUMNS if c in frame.columns)]
    out = pd.DataFrame(index=frame.index)
    for column in columns:
        values = frame[column]
        if column in _STRING_COLUMNS:
            out[column] = values.astype(str).astype(object)
        elif column in _TIME_COLUMNS:
            out[column] = parse_times(values).astype("datetime64[ns, UTC]")
        elif column == "amount":
            out[column] = values.astype("float64")
        else:
            out[column] = values.astype("int8")
    for column in numeric:
        out[column] = pd.to_numeric(frame[column].astype("object").where(
            frame[column].notna(), None), errors="coerce").astype("float64")
    for column in categorical:
        out[column] = frame[column].astype(object).where(frame[column].notna(), None)
    out = out.sort_values(["event_time", "transaction_id"], kind="stable")
    return out.reset_index(drop=True)


def digest(frame: pd.DataFrame) -> str:
    """SHA-256 of a canonical frame's column names, types and values."""
    sha = hashlib.sha256()
    for column in frame.columns:
        values = frame[column]
        sha.update(f"{column}:{values.dtype}\x1e".encode())
        if values.dtype == object:
            sha.update("\x1f".join(map(str, values.tolist())).encode())
        else:
            sha.update(np.ascontiguousarray(_numeric(values)).tobytes())
        sha.update(b"\x1d")
    return sha.hexdigest()


def _numeric(values: pd.Series) -> np.ndarray:
    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return cast(np.ndarray,
                    values.dt.tz_localize(None).to_numpy("datetime64[ns]").view("int64"))
    return cast(np.ndarray, values.to_numpy())


def make_dataset(frame: pd.DataFrame, source: str, numeric: tuple[str, ...] = (),
                 categorical: tuple[str, ...] = ()) -> Dataset:
    """Canonicalize a validated frame (with its declared attributes) and address it by
    content."""
    canonical = canonicalize(frame, numeric, categorical)
    dataset = Dataset(frame=canonical, digest=digest(canonical), source=source)
    logger.info(
        "dataset ready source=%s rows=%d fraud_rate=%.4f digest=%s",
        source,
        dataset.rows,
        dataset.fraud_rate,
        dataset.digest[:12],
    )
    return dataset
