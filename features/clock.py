"""Event time as int64 microseconds since the epoch, and the calendar features derived from it.

The calendar functions work on Python ints and numpy int64 arrays alike (floor division), so
the online and offline forms share them.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import TypeVar, cast

import numpy as np
import pandas as pd

from features.spec import DAY_US, HOUR_US

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_US = timedelta(microseconds=1)
NIGHT_LAST_HOUR = 6

T = TypeVar("T", int, np.ndarray)


def to_micros(moment: datetime) -> int:
    """Microseconds since the epoch; a naive datetime is read as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // _ONE_US


def from_micros(micros: int) -> datetime:
    """The UTC datetime of microseconds since the epoch (the inverse of :func:`to_micros`)."""
    return _EPOCH + micros * _ONE_US


def series_to_micros(times: pd.Series) -> np.ndarray:
    """A datetime column (tz-aware or naive = UTC) as int64 microseconds since the epoch."""
    values = pd.to_datetime(times, utc=True)
    return cast(np.ndarray,
                values.dt.tz_localize(None).to_numpy().astype("datetime64[us]").astype(np.int64))


def is_weekend(micros: T) -> T:
    """1 on Saturday and Sunday (UTC). 1970-01-01 was a Thursday (weekday 3)."""
    return ((micros // DAY_US + 3) % 7 >= 5) * 1


def is_night(micros: T) -> T:
    """1 when the UTC hour is <= 6, as in the handbook."""
    return ((micros % DAY_US) // HOUR_US <= NIGHT_LAST_HOUR) * 1


def to_cents(amount: float) -> int:
    """An amount in major units as integer cents (round half to even, like ``np.rint``)."""
    return round(amount * 100)
