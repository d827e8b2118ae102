"""A user's file in Sentinel's shape: renamed columns, numeric times, absent ids.

``--columns event_time=Time,is_fraud=Class`` renames the file's ``Time`` to ``event_time`` and
``Class`` to ``is_fraud``; ``--time-origin 2013-09-01T00:00:00Z`` reads a numeric
``event_time`` as seconds from that origin. A file without ``transaction_id`` gets
``row-<n>`` (its row number); without ``card_id`` or ``terminal_id``, each transaction gets a
card or terminal of its own (``card-<transaction_id>``, ``terminal-<transaction_id>``), so the
card or terminal history features take their no-history values (counts 0, averages and ratios
of a first payment, fraud risk 0, seconds since -1) in training and on the stream alike
(``sentinel produce --input`` applies the same rules).
"""

from __future__ import annotations

from collections.abc import Mapping

import pandas as pd

from training.dataset import REQUIRED_COLUMNS
from training.errors import DatasetError

TARGETS = (*REQUIRED_COLUMNS, "label_time", "merchant_category", "channel")


def parse_mapping(text: str | None) -> dict[str, str]:
    """``"event_time=Time,is_fraud=Class"`` as ``{"event_time": "Time", "is_fraud": "Class"}``."""
    out: dict[str, str] = {}
    for part in (text or "").split(","):
        if not part.strip():
            continue
        target, sep, source = (p.strip() for p in part.partition("="))
        if not sep or not target or not source:
            raise DatasetError(f"--columns {part!r}: use sentinel_name=file_name")
        if target not in TARGETS:
            raise DatasetError(f"--columns {target!r}: not one of {', '.join(TARGETS)}")
        out[target] = source
    return out


def parse_origin(text: str | None) -> pd.Timestamp | None:
    if not text:
        return None
    try:
        origin = pd.Timestamp(text)
    except ValueError as exc:
        raise DatasetError(f"--time-origin {text!r}: use an ISO 8601 time") from exc
    return origin.tz_localize("UTC") if origin.tzinfo is None else origin.tz_convert("UTC")


def shape(frame: pd.DataFrame, mapping: Mapping[str, str] | None = None,
          time_origin: pd.Timestamp | None = None) -> pd.DataFrame:
    """The file's frame with Sentinel's column names, times and ids (a new frame)."""
    mapping = dict(mapping or {})
    absent = [source for source in mapping.values() if source not in frame.columns]
    if absent:
        raise DatasetError(f"--columns names columns the file does not have: {absent}")
    out = frame.rename(columns={source: target for target, source in mapping.items()})
    if time_origin is not None and "event_time" in out.columns:
        seconds = pd.to_numeric(out["event_time"], errors="coerce")
        if seconds.isna().all():
            raise DatasetError("--time-origin needs a numeric event_time (seconds)")
        out["event_time"] = time_origin + pd.to_timedelta(seconds, unit="s")
    if "transaction_id" not in out.columns:
        out["transaction_id"] = [f"row-{i}" for i in range(len(out))]
    ids = out["transaction_id"].astype(str)
    for column in ("card_id", "terminal_id"):
        if column not in out.columns:
            out[column] = (column.removesuffix("_id") + "-") + ids
    return out
