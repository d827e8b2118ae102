"""Always-valid tests and confidence sequences for the mean of bounded observations, by betting.

A promotion evaluator that looks at growing evidence every few minutes and promotes the first
time a fixed-sample interval excludes zero makes many tests, and its false-promotion rate grows
with the number of looks. A *test by betting* does not: a gambler starts with capital 1 and
bets on each new observation ``x_t`` against the null "the mean is at most ``m``" with the
payoff ``1 + lambda_t (x_t - m)``, the stake ``lambda_t >= 0`` chosen from the past only. Under
the null the capital is a nonnegative supermartingale, so by Ville's inequality it ever
reaches ``1 / alpha`` with probability at most ``alpha``, however often one looks and whenever
one stops. Rejecting the null at the first time it does is an always-valid test; the values
``m`` not rejected so far form a confidence sequence.

Method: Waudby-Smith & Ramdas, "Estimating means of bounded random variables by betting",
JRSS-B 86(1), 2024 (arXiv:2010.09686), with their aGRAPA stakes (approximate growth-rate
adaptive to the particular alternative, section 5.3) truncated at ``c / (m - low)``, c = 1/2;
confidence sequences in general: Howard, Ramdas, McAuliffe & Sekhon, "Time-uniform,
nonparametric, nonasymptotic confidence sequences", Ann. Statist. 49(2), 2021.

The observations must be fed in the order they became known (each look sees a prefix of the
next look's sequence): :func:`training.evidence.paired_evidence` orders by label time.

>>> import numpy as np
>>> rng = np.random.default_rng(0)
>>> rejects_at_most(rng.uniform(-1, 1, 2000), low=-1, high=1, m=0.0, alpha=0.05)
False
>>> rejects_at_most(rng.uniform(-0.8, 1, 2000), low=-1, high=1, m=0.0, alpha=0.05)
True
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

_TRUNCATION = 0.5


def log_capital(x: np.ndarray, low: float, high: float, m: float) -> np.ndarray:
    """The bettor's log capital after each observation against "mean <= ``m``"."""
    if not low < high:
        raise ValueError(f"need low < high, got {low}, {high}")
    y = (np.clip(np.asarray(x, float), low, high) - low) / (high - low)
    mu0 = (m - low) / (high - low)
    if len(y) == 0 or mu0 >= 1.0:
        return np.zeros(len(y))
    if mu0 <= 0.0:  # "mean <= low" is refuted by any observation above low
        return np.where(np.cumsum(y) > 0, np.inf, 0.0)
    t = np.arange(1, len(y) + 1, dtype=float)
    mean = (0.5 + np.cumsum(y)) / (t + 1)  # mean[i]: estimate after i + 1 observations
    prior_mean = np.concatenate([[0.5], mean[:-1]])  # predictable: from the past only
    var = (0.25 + np.cumsum((y - prior_mean) ** 2)) / (t + 1)
    prior_var = np.concatenate([[0.25], var[:-1]])
    edge = prior_mean - mu0
    stake = np.clip(edge / (prior_var + edge**2), 0.0, _TRUNCATION / mu0)
    return np.cumsum(np.log1p(stake * (y - mu0)))


def rejects_at_most(x: np.ndarray, *, low: float, high: float, m: float, alpha: float) -> bool:
    """Whether the evidence ``x`` (in arrival order) has ever refuted "the mean is <= ``m``"
    at level ``alpha``: True at a look stays True at every later look."""
    capital = log_capital(x, low, high, m)
    return bool(len(capital) and capital.max() >= math.log(1 / alpha))


def rejects_at_least(x: np.ndarray, *, low: float, high: float, m: float, alpha: float) -> bool:
    """Whether ``x`` has ever refuted "the mean is >= ``m``" at level ``alpha``."""
    return rejects_at_most(-np.asarray(x, float), low=-high, high=-low, m=-m, alpha=alpha)


@dataclass(frozen=True)
class Bounds:
    """One-sided always-valid bounds of a mean at a look, each at level ``alpha``."""

    n: int
    mean: float
    lower: float
    upper: float


def bounds(x: np.ndarray, *, low: float, high: float, alpha: float, tol: float = 1e-4) -> Bounds:
    """The confidence sequence at this look, by bisection on ``m`` (the capital against
    "mean <= m" falls as ``m`` rises). For the record: decisions call
    :func:`rejects_at_most` / :func:`rejects_at_least` at their threshold directly."""
    x = np.asarray(x, float)
    if len(x) == 0:
        return Bounds(0, float("nan"), low, high)
    lo, hi = low, high  # the lower bound: "mean <= lo" refuted (or lo == low), "<= hi" not
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if rejects_at_most(x, low=low, high=high, m=mid, alpha=alpha) \
            else (lo, mid)
    lower = lo
    lo, hi = low, high  # the upper bound: "mean >= hi" refuted (or hi == high), ">= lo" not
    while hi - lo > tol:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if rejects_at_least(x, low=low, high=high, m=mid, alpha=alpha) \
            else (mid, hi)
    return Bounds(len(x), float(x.mean()), float(lower), float(hi))
